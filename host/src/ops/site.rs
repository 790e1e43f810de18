//! A site as the operations see it: the site config and one product of it ([`Site`]), the route
//! from the deployed version to a target with every hop's plugin, context and grants checked
//! ([`Hop`]), the environment a run's plugin calls run in, and the checks made before anything
//! changes (health URLs, key files, backup space, the MetaDB run lock, the backups a rollback needs).
//!
//! Over 500 lines: every check a site makes before any change is here, so what an upgrade,
//! a rollback and `opshost check` refuse on is one list.

use super::runs::{RunMeta, Runs};
use super::{Setup, SiteRef};
use crate::bindings::Context;
use crate::capabilities::services::RunRecords;
use crate::capabilities::Capabilities;
use crate::config::{ProductConfig, SiteConfig};
use crate::grants::Grants;
use crate::journal::entry::Header;
use crate::journal::{Journal, Replay};
use crate::registry::{context_for, find_route, Plugin};
use crate::report::Reporter;
use crate::runtime::instance::Outcome;
use crate::runtime::record::Faults;
use crate::runtime::state::RunEnv;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Everything a command on a real deployment works with.
pub struct Site {
    pub config: SiteConfig,
    pub path: PathBuf,
    pub section: String,
    pub product: ProductConfig,
    pub runs: Runs,
}

impl Site {
    pub fn open(a: &SiteRef) -> Result<Site> {
        let config = SiteConfig::load(&a.config)?;
        let product = config.product(&a.product)?.clone();
        let runs = Runs::new(&config.state_dir());
        Ok(Site { path: a.config.clone(), section: a.product.clone(), product, runs, config })
    }

    pub fn plugins_dir(&self, setup: &Setup) -> PathBuf {
        setup.plugins_dir.clone().or_else(|| self.config.plugins_dir.clone()).unwrap_or_else(crate::registry::default_dir)
    }

    /// The plugin's grants from the site config, or a refusal with a block to paste.
    pub fn grants(&self, plugin: &Plugin) -> Result<Grants, String> {
        match self.config.grants.get(&plugin.manifest.name) {
            Some(t) => {
                // Grants may be bound to who signed the plugin, and to its exact bytes.
                let name = &plugin.manifest.name;
                if let Some(want) = t.get("signers").filter(|w| !plugin.signers().iter().any(|s| w.contains(s))) {
                    return Err(format!(
                        "the site grants {name} only to a plugin signed by {}; {} is signed by {}: use the plugin those keys signed, or change signers in [grants.\"{name}\"]",
                        want.join(", "),
                        plugin.path.display(),
                        if plugin.signers().is_empty() { "no trusted key".to_string() } else { plugin.signers().join(", ") }
                    ));
                }
                let hash = &plugin.loaded.hash;
                if let Some(want) = t.get("sha256").filter(|w| !w.iter().any(|h| hash.trim_start_matches("sha256:") == h.trim_start_matches("sha256:"))) {
                    return Err(format!(
                        "the site grants {name} only to a plugin file of sha256 {}; {} is {hash}: use that file, or change sha256 in [grants.\"{name}\"]",
                        want.join(", "),
                        plugin.path.display()
                    ));
                }
                Ok(Grants::new(&plugin.manifest, Some(t.clone())))
            }
            None => {
                let target = &plugin.manifest.target;
                // A later hop of a route works on its own containers and archive: named in its
                // hops table, or this suggestion repeats the first hop's.
                let hop_table = if self.product.hops.contains_key(target) || plugin.manifest.sources.contains(&self.product.version) {
                    String::new()
                } else {
                    format!(
                        "\nThis is a later hop of a route: name its own containers and image archive in [products.{}.hops.\"{target}\"] (container, new_container, image_archive), and grant those.",
                        self.section
                    )
                };
                Err(format!(
                    "the site config grants plugin {} nothing; review what it needs and add:\n\n{}{hop_table}",
                    plugin.manifest.name,
                    suggest_grants(&plugin.manifest, &self.product.parameters_for(target))
                ))
            }
        }
    }

    pub fn env(
        &self,
        backup_dir: PathBuf,
        records: RunRecords,
        reporter: Arc<dyn Reporter>,
        yes: bool,
        grants: &Grants,
        journal: Option<Arc<Journal>>,
    ) -> Result<RunEnv> {
        let mut approved: crate::capabilities::docker::policy::Approved = match records.get(crate::capabilities::docker::policy::RECORD_KEY) {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the run records' {} are unreadable: {e}", crate::capabilities::docker::policy::RECORD_KEY))?,
            None => Default::default(),
        };
        // Images the operator named for any hop of this product.
        approved.approve_parameters(std::iter::once(&self.product.parameters).chain(self.product.hops.values()).flatten());
        Ok(RunEnv {
            journal,
            site: Arc::new(
                crate::runtime::state::SitePolicy::for_console(
                    &self.product.console.metadb,
                    self.config.docker_policy.deny_privileged,
                    self.config.docker_policy.secret_env.clone(),
                )
                .with_credentials(&self.config.metadb),
            ),
            approved: Arc::new(Mutex::new(approved)),
            backups_taken: Arc::new(Mutex::new(backups_in(&backup_dir))),
            rerun_in_doubt: false,
            grants: Arc::new(grants.clone()),
            caps: Capabilities::real(&self.config, &self.product, backup_dir, reporter.clone(), yes)?,
            records,
            reporter,
            limits: self.config.limits.clone(),
            faults: Faults::default(),
            transcript: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub fn context(&self, plugin: &Plugin, source: &str, target: &str) -> Result<Context, String> {
        context_for(&plugin.manifest, self.product.kind(&self.section), source, target, &self.product.parameters_for(target), &self.product.nodes)
            .map_err(|e| e.message().to_string())
    }

    pub fn config_hash(&self) -> Result<String> {
        Ok(crate::runtime::engine::sha256_hex(&std::fs::read(&self.path)?))
    }

    pub fn header(&self, meta: &RunMeta, operation: &str) -> Result<Header> {
        Ok(Header {
            run: meta.id.clone(),
            operation: operation.into(),
            plugin: meta.plugin.clone(),
            plugin_hash: meta.plugin_hash.clone(),
            site_config_hash: self.config_hash()?,
        })
    }

    /// The export's host calls as `NAME` (`upgrade-calls.json`) and, when it ran, where its time
    /// went beside it (`upgrade-timing.json`).
    pub fn save_transcript(&self, meta: &RunMeta, env: &RunEnv, name: &str, outcome: &Result<Outcome<()>>) {
        let calls = env.transcript.lock().unwrap();
        let path = self.runs.run_dir(&meta.id).join(name);
        if let Ok(text) = serde_json::to_string_pretty(&*calls) {
            let _ = std::fs::write(&path, text);
        }
        if let Some(Ok(text)) = outcome.as_ref().ok().map(|o| serde_json::to_string_pretty(&o.timing)) {
            let _ = std::fs::write(path.with_file_name(name.replace("-calls.json", "-timing.json")), text);
        }
    }
}

/// One hop of a route, checked against the site config before anything runs.
pub struct Hop {
    pub plugin: Plugin,
    pub ctx: Context,
    pub grants: Grants,
}

impl Site {
    /// The route from the deployed version to `to`, every hop's context and grants checked: a
    /// refusal here comes before anything changes.
    pub async fn route(&self, setup: &Setup, runtime: &crate::runtime::engine::Runtime, from: &str, to: &str) -> Result<Result<Vec<Hop>, String>> {
        let plugins = match find_route(runtime, &self.plugins_dir(setup), self.product.kind(&self.section), from, to, &setup.policy(&self.config.trust)?).await
        {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("{e:#}"))),
        };
        let mut hops = Vec::new();
        let mut source = from.to_string();
        for plugin in plugins {
            let target = plugin.manifest.target.clone();
            let ctx = match self.context(&plugin, &source, &target) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let grants = match self.grants(&plugin) {
                Ok(g) => g,
                Err(e) => return Ok(Err(e)),
            };
            hops.push(Hop { plugin, ctx, grants });
            source = target;
        }
        Ok(Ok(hops))
    }

    /// The hop's plan against the deployment as it is now (prechecks; changes nothing).
    pub async fn plan_hop(&self, hop: &Hop, reporter: Arc<dyn Reporter>, yes: bool) -> Result<(Result<crate::bindings::Plan, crate::bindings::Error>, RunEnv)> {
        let scratch = tempfile_dir()?;
        let env = self.env(scratch.clone(), RunRecords::in_memory(), reporter, yes, &hop.grants, None)?;
        // The operator's own input first: a container, archive or database the site config
        // names must exist.
        let target = &hop.ctx.target_version;
        let named = match self.named_containers_exist(&env, target).await {
            Ok(()) => match self.health_urls_cover_the_nodes(target) {
                Ok(()) => self.named_files_and_databases_exist(&env, target).await,
                refused => refused,
            },
            refused => refused,
        };
        if let Err(refusal) = named {
            let _ = std::fs::remove_dir_all(&scratch);
            return Ok((Err(crate::bindings::Error::InvalidInput(refusal)), env));
        }
        // The backups must fit before anything stops: the host checks, whatever the plugin plans.
        let granted: Vec<(String, String)> =
            hop.grants.exact("sql").iter().filter_map(|g| g.split_once('/')).map(|(c, d)| (c.to_string(), d.to_string())).collect();
        let space = match self.backup_space(&env, &granted).await {
            Ok(words) => words,
            Err(refusal) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Ok((Err(crate::bindings::Error::Failed(refusal)), env));
            }
        };
        let planned = hop.plugin.loaded.plan(&env, &hop.ctx).await;
        let _ = std::fs::remove_dir_all(&scratch);
        let mut accounts = Vec::new();
        for (name, c) in &self.config.metadb {
            match env.caps.sql.excess_privileges(name).await {
                Ok(excess) if !excess.is_empty() => accounts.push(format!(
                    "warning: MetaDB connection {name} logs in as {}, which holds {} on *.*; opshost needs only its product's databases and RELOAD (README \"Least-privilege MetaDB account\"): grants bound a plugin's statements, the account bounds the rest",
                    c.user,
                    excess.join(", ")
                )),
                _ => {}
            }
        }
        let lock = self.run_lock_finding(&env.reporter).await;
        Ok((
            planned?.result.map(|mut p| {
                p.findings.extend(lock);
                p.findings.extend(self.config.docker_policy.describe());
                if self.product.console.health_insecure_tls {
                    p.findings.push(format!(
                        "warning: health_insecure_tls = true in [products.{}.console]: the health probe does not verify the product's HTTPS certificate",
                        self.section
                    ));
                }
                p.findings.extend(hop.grants.describe());
                p.findings.extend(space);
                p.findings.extend(accounts);
                p
            }),
            env,
        ))
    }
}

/// Free space a run's backups need: half again the databases' size on the server (a dump's text
/// can be larger than the pages it came from; tables with binary columns already count twice,
/// as their escaped values can be), and some room besides.
fn backup_space_needed(database_bytes: u64) -> u64 {
    database_bytes + database_bytes / 2 + (64 << 20)
}

/// Bytes free for an unprivileged writer on the file system holding `dir` (or its nearest
/// existing parent: the run's folder does not exist yet).
fn free_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a struct we own.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The closest of `names` to `typo` (fewest single-character edits), if it is close at all.
fn closest<'a>(typo: &str, names: &'a [String]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for j in 0..b.len() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    names.iter().map(|n| (distance(typo, n), n.as_str())).filter(|(d, _)| *d <= 2.max(typo.len() / 3)).min().map(|(_, n)| n)
}

impl Site {
    /// Every running container the operator named in this hop's parameters (`container`,
    /// `nginx_container`, …; not the new one) exists on the product's nodes: a typo is the
    /// operator's to fix in the site config, and the host says which line, not a grant.
    pub async fn named_containers_exist(&self, env: &RunEnv, target: &str) -> Result<(), String> {
        let written = self.product.parameters_for(target);
        for (key, name) in written.iter().filter(|(k, _)| (k.as_str() == "container" || k.ends_with("_container")) && !k.starts_with("new_")) {
            for node in &self.product.nodes {
                let Ok(names) = env.caps.docker.container_names(node).await else { continue };
                if names.is_empty() || names.contains(name) {
                    continue;
                }
                let table = self.table_of(key, target);
                let hint = closest(name, &names).map(|c| format!("did you mean {c:?}? ")).unwrap_or_default();
                let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
                let more = if names.len() > shown.len() { format!(" and {} more", names.len() - shown.len()) } else { String::new() };
                return Err(format!(
                    "{key} = {name:?} in {table} of {} names no container on node {node}: {hint}correct it there (containers on {node}: {}{more})",
                    self.path.display(),
                    shown.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Every node of the product has a health URL the probe can ask (`http://host[:port]/path`),
    /// and every URL names one of its nodes: else the wait for the new version would fail after
    /// the old one stopped.
    pub fn health_urls_cover_the_nodes(&self, target: &str) -> Result<(), String> {
        let urls = &self.product.console.health_urls;
        let at = format!("health_urls in [products.{}.console] of {}", self.section, self.path.display());
        let written = self.product.parameters_for(target);
        if let Some(node) = self.product.nodes.iter().find(|n| !urls.contains_key(*n)) {
            return Err(format!(
                "{at} has no URL for node {node}: add {node} = \"http://<its address>:<port>/{}\" there (the upgrade waits on it before it reports the new version up)",
                if self.product.kind(&self.section) == "odc" { "api/v1/heartbeat/isHealthy" } else { "oms/health" }
            ));
        }
        for (node, url) in urls {
            // A key that is no node is one a parameter names (ODC's nginx_health = "nginx").
            if !self.product.nodes.contains(node) && !written.iter().any(|(k, v)| k.ends_with("_health") && v == node) {
                return Err(format!(
                    "{at} names {node:?}, which is neither a node product {} runs on (nodes = {:?}) nor named by a *_health parameter: correct the name there",
                    self.section, self.product.nodes
                ));
            }
            if let Err(why) = crate::capabilities::console::real::check_url(url) {
                return Err(format!("{at}: the URL of node {node} ({url:?}) {why}: correct it there"));
            }
        }
        let console = &self.product.console;
        if let (Some(_), false) = (&console.health_ca_file, console.health_insecure_tls) {
            if let Err(why) = crate::capabilities::console::http::HttpClient::new(&console.tls_trust()) {
                return Err(format!("{why} (in [products.{}.console] of {})", self.section, self.path.display()));
            }
        }
        Ok(())
    }

    /// Every backup a run's upgrade recorded (its dump calls in the journal) is in the run's
    /// backup folder, whole: the size recorded at dump time and the end marker.
    pub fn backups_intact(&self, meta: &RunMeta) -> Result<(), String> {
        let journal = self.runs.run_dir(&meta.id).join("upgrade.journal");
        let dir = self.config.backup_dir.join(&meta.id);
        // The backups the upgrade's dumps returned; with a journal that cannot be read, every
        // backup the run's directory describes (each beside its description).
        let backups: Vec<serde_json::Value> = match Replay::load(&journal) {
            Ok((_, replay)) => replay
                .calls
                .iter()
                .filter(|c| c.call == "sql.dump-database" || c.call == "sql.dump-databases")
                .flat_map(|call| call.outcome().as_ref().map(crate::capabilities::sql::backups_in_outcome).unwrap_or_default())
                .collect(),
            Err(_) if !journal.exists() => return Ok(()),
            Err(_) => std::fs::read_dir(&dir)
                .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| std::fs::read(p).ok().and_then(|b| serde_json::from_slice(&b).ok()))
                .collect(),
        };
        for b in backups {
            let (Some(name), Some(bytes)) = (b["name"].as_str(), b["bytes"].as_u64()) else { continue };
            crate::capabilities::sql::mysql::format::check_backup_file(&dir.join(format!("{name}.sql")), bytes)
                .map_err(|why| format!("{why}; run {} cannot be rolled back from it", meta.id))?;
        }
        Ok(())
    }

    /// The name of this product's run lock on its MetaDB: the console's databases name the
    /// deployment there (two products may share a MetaDB server, never an rm database).
    pub fn run_lock_name(&self) -> String {
        let m = &self.product.console.metadb;
        let key = m.rm_db.as_deref().or(m.cm_db.as_deref()).unwrap_or(&self.section);
        // MariaDB and MySQL take names of at most 64 characters.
        format!("opshost/{key}").chars().take(64).collect()
    }

    /// Take this product's run lock on its MetaDB for the command's life (besides the flock on
    /// this host): `Err` is the refusal to print, naming the holder. A MetaDB that cannot be
    /// reached gives no lock and a warning: the checks after this one report it.
    pub async fn take_run_lock(&self, reporter: &Arc<dyn Reporter>) -> Result<Result<Option<mysql_async::Conn>, String>> {
        let connection = &self.product.console.metadb.connection;
        let sql = crate::capabilities::sql::mysql::MysqlSql::new(&self.config.metadb, self.config.state_dir(), reporter.clone())?;
        let name = self.run_lock_name();
        Ok(match sql.take_run_lock(connection, &name).await {
            Ok(Ok(held)) => Ok(Some(held)),
            Ok(Err(holder)) => Err(format!(
                "another opshost is working on {} on MetaDB {connection}: its lock {name:?} is held by {holder}; wait for it to finish (the lock goes when that connection closes)",
                self.section
            )),
            Err(e) => {
                reporter.log(crate::report::Level::Warn, &format!("no run lock on MetaDB {connection}: {}", e.message()));
                Ok(None)
            }
        })
    }

    /// A plan line when another opshost holds the run lock now.
    pub async fn run_lock_finding(&self, reporter: &Arc<dyn Reporter>) -> Option<String> {
        let connection = &self.product.console.metadb.connection;
        let sql = crate::capabilities::sql::mysql::MysqlSql::new(&self.config.metadb, self.config.state_dir(), reporter.clone()).ok()?;
        let name = self.run_lock_name();
        let holder = sql.run_lock_holder(connection, &name).await.ok()??;
        Some(format!(
            "warning: another opshost is working on {} right now (its lock {name:?} on MetaDB {connection} is held by {holder}): an upgrade or rollback is refused until it finishes",
            self.section
        ))
    }

    /// The environment of a journaled operation (an upgrade or a rollback) of `meta`'s run: a new
    /// journal at `journal`, the run's records and backup folder.
    pub fn journaled_env(&self, meta: &RunMeta, journal: &Path, operation: &str, reporter: Arc<dyn Reporter>, yes: bool, grants: &Grants) -> Result<RunEnv> {
        let journal = Arc::new(Journal::create(journal, self.header(meta, operation)?)?.limited_to(self.config.limits.max_journal_mb));
        let records = RunRecords::in_run(&self.runs.run_dir(&meta.id))?;
        self.env(self.config.backup_dir.join(&meta.id), records, reporter, yes, grants, Some(journal))
    }

    /// The config table a parameter of this hop is written in, for messages.
    pub fn table_of(&self, key: &str, target: &str) -> String {
        if self.product.hops.get(target).is_some_and(|h| h.contains_key(key)) {
            format!("[products.{}.hops.\"{target}\"]", self.section)
        } else {
            format!("[products.{}.parameters]", self.section)
        }
    }

    /// Every image archive (`image_archive`, `*_archive`) the operator wrote is a readable file
    /// here, and every database (`*_db`) exists on the MetaDB connection (`connection`, else the
    /// only one): caught now, with the config line named, not by a plugin half way.
    pub async fn named_files_and_databases_exist(&self, env: &RunEnv, target: &str) -> Result<(), String> {
        let written = self.product.parameters_for(target);
        let at = |key: &str| format!("{} of {}", self.table_of(key, target), self.path.display());
        for (key, path) in written.iter().filter(|(k, _)| k.as_str() == "image_archive" || k.ends_with("_archive")) {
            if let Err(e) = std::fs::File::open(path) {
                return Err(format!(
                    "{key} = {path:?} in {}: {e}; correct the path there (the archive must be on this host: opshost streams it to the engine)",
                    at(key)
                ));
            }
        }
        let connection = match written.get("connection") {
            Some(c) => c.clone(),
            None if self.config.metadb.len() == 1 => self.config.metadb.keys().next().cloned().unwrap_or_default(),
            None => return Ok(()),
        };
        for (key, db) in written.iter().filter(|(k, _)| k.ends_with("_db")) {
            // A MetaDB that cannot be reached is reported by the checks after this one.
            if let Ok(false) = env.caps.sql.database_exists(&connection, db).await {
                return Err(format!("{key} = {db:?} in {} names no database on MetaDB connection {connection}: correct it there", at(key)));
            }
        }
        Ok(())
    }

    /// The plan's lines about the backups (the server, what each granted database holds, the
    /// space), or a refusal: an object that cannot be backed up exactly, or backups that would
    /// not fit in `backup_dir` (naming both figures). `databases`: (connection, database), for
    /// a hop those its plugin is granted by name.
    pub async fn backup_space(&self, env: &RunEnv, databases: &[(String, String)]) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        let mut by_connection: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (connection, database) in databases {
            by_connection.entry(connection).or_default().push(database.clone());
        }
        for (connection, databases) in &by_connection {
            match env.caps.sql.describe_backup(connection, databases).await {
                Ok(l) => lines.extend(l),
                // The server is down or an object cannot be read: the backup could not be exact.
                Err(e) if e.kind() == "failed" && !e.message().starts_with("cannot connect") => {
                    return Err(format!("{}: refused before anything changes", e.message()))
                }
                Err(_) => {}
            }
        }
        let mut total = 0u64;
        let mut names = Vec::new();
        for (connection, database) in databases {
            if let Ok(bytes) = env.caps.sql.database_bytes(connection, database).await {
                total += bytes;
                names.push(database.to_string());
            }
        }
        let dir = &self.config.backup_dir;
        let (Some(free), false) = (free_bytes(dir), names.is_empty()) else { return Ok(lines) };
        let need = backup_space_needed(total);
        let what = format!("{} ({} on the server)", names.join(", "), mib(total));
        if free < need {
            return Err(format!(
                "backup_dir {} has {} free, and backing up {what} needs about {} (1.5 times their size and 64 MiB): free space there or point backup_dir at a bigger disk, then plan again",
                dir.display(),
                mib(free),
                mib(need)
            ));
        }
        lines.push(format!("backup space: {} free in {}, about {} needed for {what}", mib(free), dir.display(), mib(need)));
        Ok(lines)
    }
}

/// A `[grants."<plugin>"]` block from the manifest's needs, filled in from the product's parameters.
fn suggest_grants(m: &crate::bindings::Manifest, params: &std::collections::BTreeMap<String, String>) -> String {
    let mut table: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let conn = params.get("connection").cloned().unwrap_or_else(|| "metadb".into());
    for n in &m.needs {
        let concrete: Vec<String> = match n.capability.as_str() {
            _ if !n.target.contains('*') => vec![n.target.clone()],
            "docker" => params.iter().filter(|(k, _)| k.contains("container")).map(|(_, v)| v.clone()).collect(),
            "image-archive" => params.iter().filter(|(k, _)| k.contains("archive")).map(|(_, v)| v.clone()).collect(),
            "sql" => params.iter().filter(|(k, _)| k.ends_with("_db")).map(|(_, v)| format!("{conn}/{v}")).collect(),
            _ => vec![n.target.clone()],
        };
        let slot = table.entry(n.capability.clone()).or_default();
        for c in if concrete.is_empty() { vec![n.target.clone()] } else { concrete } {
            if !slot.contains(&c) {
                slot.push(c);
            }
        }
    }
    let mut out = format!("[grants.\"{}\"]\n", m.name);
    for (cap, items) in table {
        out.push_str(&format!("{cap} = [{}]\n", items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ")));
    }
    out
}

/// The backups a run has taken so far, (count, bytes), from the descriptions in its backup
/// folder: the sandbox's `max_backups` and `max_backup_gb` hold for the run as a whole, not anew
/// for each process of it (a resume, the rollback).
fn backups_in(dir: &std::path::Path) -> (u32, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice::<crate::capabilities::sql::Backup>(&std::fs::read(e.path()).ok()?).ok())
        .fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.bytes))
}

pub fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("opshost-plan-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_backups_so_far_count_against_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(backups_in(&dir.path().join("none yet")), (0, 0));
        let backup = |name: &str, bytes: u64| crate::capabilities::sql::Backup {
            name: name.into(),
            database: "rm_411".into(),
            bytes,
            tables: 1,
            rows: 1,
            checksum: "xxh3-stored:00".into(),
        };
        for (name, bytes) in [("rm", 1000), ("cm", 24)] {
            std::fs::write(dir.path().join(format!("{name}.json")), serde_json::to_vec(&backup(name, bytes)).unwrap()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.sql")), "-- dump").unwrap();
        }
        std::fs::write(dir.path().join("torn.json"), "{").unwrap();
        assert_eq!(backups_in(dir.path()), (2, 1024));
    }
}
