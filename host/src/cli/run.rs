//! `opshost upgrade|rollback|runs` on a real deployment described by the site config.

use super::events::{emit, say, JsonLines};
use super::Cli;
use crate::bindings::Context;
use crate::capabilities::services::{RunRecords, Services, SystemServices};
use crate::capabilities::Capabilities;
use crate::config::{ProductConfig, SiteConfig};
use crate::grants::Grants;
use crate::journal::entry::Header;
use crate::journal::{Journal, Replay};
use crate::registry::{context_for, find_by_hash, find_route, Plugin};
use crate::runs::{current_version, now_ms, standing_above, to_unwind, top, Lock, RouteRef, RunMeta, RunStatus, Runs};
use crate::runtime::host_call::Faults;
use crate::runtime::report::{Reporter, RunLog, Tee, Terminal};
use crate::runtime::state::RunEnv;
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct SiteArgs {
    /// Site config (TOML).
    #[arg(long, value_name = "FILE", env = "OPSHOST_CONFIG")]
    pub config: PathBuf,
    /// Product section in the site config, e.g. oms.
    #[arg(long)]
    pub product: String,
}

#[derive(Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Target version.
    #[arg(long)]
    pub to: String,
    /// Answer yes to the confirmation (needed when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print every capability call with its arguments and result.
    #[arg(long)]
    pub transcript: bool,
    /// Stream JSON lines on stdout (schema: cli/events.rs; needs --yes); human text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// The run to roll back (default: the product's latest).
    #[arg(long)]
    pub run: Option<String>,
    /// Answer yes to the confirmation (needed when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print every capability call with its arguments and result.
    #[arg(long)]
    pub transcript: bool,
    /// Stream JSON lines on stdout (schema: cli/events.rs; needs --yes); human text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RunsArgs {
    /// Site config (TOML) whose runs to show.
    #[arg(long, value_name = "FILE", global = true, env = "OPSHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Option<RunsCmd>,
}

#[derive(clap::Subcommand)]
pub enum RunsCmd {
    /// Every run of the site, oldest first (the default).
    List,
    /// One run: where it stopped, what resume or rollback will do, its records.
    Show {
        /// The run's id (`opshost runs` lists them).
        id: String,
        /// Write the run report to this file: one self-contained HTML page (timeline with the
        /// downtime marked, host calls and their durations, backups, changes, the plan, what
        /// rollback does) to attach to a change ticket.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

/// The value, or print why the command refuses (nothing was changed) and exit 1.
macro_rules! or_refuse {
    ($e:expr) => {
        or_refuse!($e, "refused")
    };
    ($e:expr, $how:literal) => {
        match $e {
            Ok(v) => v,
            Err(m) => {
                eprintln!(concat!($how, ": {}"), m);
                return Ok(1);
            }
        }
    };
}

/// Everything a command on a real deployment works with.
pub struct Site {
    pub config: SiteConfig,
    pub path: PathBuf,
    pub section: String,
    pub product: ProductConfig,
    pub runs: Runs,
}

impl Site {
    pub fn open(a: &SiteArgs) -> Result<Site> {
        let config = SiteConfig::load(&a.config)?;
        let product = config.product(&a.product)?.clone();
        let runs = Runs::new(&config.state_dir());
        Ok(Site { path: a.config.clone(), section: a.product.clone(), product, runs, config })
    }

    pub fn plugins_dir(&self, cli: &Cli) -> PathBuf {
        cli.plugins_dir.clone().or_else(|| self.config.plugins_dir.clone()).unwrap_or_else(crate::registry::default_dir)
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
            site: Arc::new(crate::runtime::state::SitePolicy::for_console(
                &self.product.console.metadb,
                self.config.docker_policy.deny_privileged,
                self.config.docker_policy.secret_env.clone(),
            )),
            approved: Arc::new(Mutex::new(approved)),
            backups_taken: Default::default(),
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

    fn header(&self, meta: &RunMeta, operation: &str) -> Result<Header> {
        Ok(Header {
            run: meta.id.clone(),
            operation: operation.into(),
            plugin: meta.plugin.clone(),
            plugin_hash: meta.plugin_hash.clone(),
            site_config_hash: self.config_hash()?,
        })
    }

    fn save_transcript(&self, meta: &RunMeta, env: &RunEnv, name: &str) {
        let calls = env.transcript.lock().unwrap();
        let path = self.runs.run_dir(&meta.id).join(name);
        if let Ok(text) = serde_json::to_string_pretty(&*calls) {
            let _ = std::fs::write(path, text);
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
    pub(super) async fn route(&self, cli: &Cli, runtime: &crate::runtime::engine::Runtime, from: &str, to: &str) -> Result<Result<Vec<Hop>, String>> {
        let plugins = match find_route(runtime, &self.plugins_dir(cli), self.product.kind(&self.section), from, to, &cli.policy(&self.config.trust)?).await {
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
    pub(super) async fn plan_hop(
        &self,
        hop: &Hop,
        reporter: Arc<dyn Reporter>,
        yes: bool,
    ) -> Result<(Result<crate::bindings::Plan, crate::bindings::Error>, RunEnv)> {
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
/// can be larger than the pages it came from), and some room besides.
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
    pub(super) async fn named_containers_exist(&self, env: &RunEnv, target: &str) -> Result<(), String> {
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
    pub(super) fn health_urls_cover_the_nodes(&self, target: &str) -> Result<(), String> {
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
    fn backups_intact(&self, meta: &RunMeta) -> Result<(), String> {
        let Ok((_, replay)) = Replay::load(&self.runs.run_dir(&meta.id).join("upgrade.journal")) else { return Ok(()) };
        let dir = self.config.backup_dir.join(&meta.id);
        for call in replay.calls.iter().filter(|c| c.call == "sql.dump-database" || c.call == "sql.dump-databases") {
            for b in call.outcome.as_ref().map(crate::capabilities::sql::backups_in_outcome).unwrap_or_default() {
                let (Some(name), Some(bytes)) = (b["name"].as_str(), b["bytes"].as_u64()) else { continue };
                crate::capabilities::sql::real::check_backup_file(&dir.join(format!("{name}.sql")), bytes)
                    .map_err(|why| format!("{why}; run {} cannot be rolled back from it", meta.id))?;
            }
        }
        Ok(())
    }

    /// The name of this product's run lock on its MetaDB: the console's databases name the
    /// deployment there (two products may share a MetaDB server, never an rm database).
    fn run_lock_name(&self) -> String {
        let m = &self.product.console.metadb;
        let key = m.rm_db.as_deref().or(m.cm_db.as_deref()).unwrap_or(&self.section);
        // MariaDB and MySQL take names of at most 64 characters.
        format!("opshost/{key}").chars().take(64).collect()
    }

    /// Take this product's run lock on its MetaDB for the command's life (besides the flock on
    /// this host): `Err` is the refusal to print, naming the holder. A MetaDB that cannot be
    /// reached gives no lock and a warning: the checks after this one report it.
    async fn take_run_lock(&self, reporter: &Arc<dyn Reporter>) -> Result<Result<Option<mysql_async::Conn>, String>> {
        let connection = &self.product.console.metadb.connection;
        let sql = crate::capabilities::sql::real::MysqlSql::new(&self.config.metadb, self.config.state_dir(), reporter.clone())?;
        let name = self.run_lock_name();
        Ok(match sql.take_run_lock(connection, &name).await {
            Ok(Ok(held)) => Ok(Some(held)),
            Ok(Err(holder)) => Err(format!(
                "another opshost is working on {} on MetaDB {connection}: its lock {name:?} is held by {holder}; wait for it to finish (the lock goes when that connection closes)",
                self.section
            )),
            Err(e) => {
                reporter.log(crate::capabilities::services::Level::Warn, &format!("no run lock on MetaDB {connection}: {}", e.message()));
                Ok(None)
            }
        })
    }

    /// A plan line when another opshost holds the run lock now.
    pub(super) async fn run_lock_finding(&self, reporter: &Arc<dyn Reporter>) -> Option<String> {
        let connection = &self.product.console.metadb.connection;
        let sql = crate::capabilities::sql::real::MysqlSql::new(&self.config.metadb, self.config.state_dir(), reporter.clone()).ok()?;
        let name = self.run_lock_name();
        let holder = sql.run_lock_holder(connection, &name).await.ok()??;
        Some(format!(
            "warning: another opshost is working on {} right now (its lock {name:?} on MetaDB {connection} is held by {holder}): an upgrade or rollback is refused until it finishes",
            self.section
        ))
    }

    /// The environment of a journaled operation (an upgrade or a rollback) of `meta`'s run: a new
    /// journal at `journal`, the run's records and backup folder.
    fn journaled_env(&self, meta: &RunMeta, journal: &Path, operation: &str, reporter: Arc<dyn Reporter>, yes: bool, grants: &Grants) -> Result<RunEnv> {
        let journal = Arc::new(Journal::create(journal, self.header(meta, operation)?)?.limited_to(self.config.limits.max_journal_mb));
        let records = RunRecords::at(self.runs.run_dir(&meta.id).join("records.json"))?;
        self.env(self.config.backup_dir.join(&meta.id), records, reporter, yes, grants, Some(journal))
    }

    /// The config table a parameter of this hop is written in, for messages.
    fn table_of(&self, key: &str, target: &str) -> String {
        if self.product.hops.get(target).is_some_and(|h| h.contains_key(key)) {
            format!("[products.{}.hops.\"{target}\"]", self.section)
        } else {
            format!("[products.{}.parameters]", self.section)
        }
    }

    /// Every image archive (`image_archive`, `*_archive`) the operator wrote is a readable file
    /// here, and every database (`*_db`) exists on the MetaDB connection (`connection`, else the
    /// only one): caught now, with the config line named, not by a plugin half way.
    pub(super) async fn named_files_and_databases_exist(&self, env: &RunEnv, target: &str) -> Result<(), String> {
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
    pub(super) async fn backup_space(&self, env: &RunEnv, databases: &[(String, String)]) -> Result<Vec<String>, String> {
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

fn print_route(product: &str, hops: &[Hop]) {
    if hops.len() < 2 {
        return;
    }
    say!("Route for {product}: {} hops, each with its own run and MetaDB backup", hops.len());
    for (i, h) in hops.iter().enumerate() {
        say!("  {}. {} -> {}  with plugin {}", i + 1, h.ctx.source_version, h.ctx.target_version, h.plugin.manifest.name);
    }
    say!("Hops after the first are prechecked and planned when the hop before them has finished.");
    say!();
}

/// Show the route and the first hop's plan on the real deployment (read-only).
pub async fn plan(cli: &Cli, a: &SiteArgs, to: &str, json: bool) -> Result<i32> {
    let site = Site::open(a)?;
    let runtime = cli.runtime()?;
    let history = site.runs.history(&site.section)?;
    let from = current_version(&site.product.version, &history);
    let hops = or_refuse!(site.route(cli, &runtime, &from, to).await?);
    let reporter: Arc<dyn Reporter> = if json { Arc::new(crate::runtime::report::Silent) } else { Arc::new(Terminal::new(false, false)) };
    let (planned, _) = site.plan_hop(&hops[0], reporter, false).await?;
    match planned {
        Ok(p) => {
            if json {
                let route: Vec<_> = hops
                    .iter()
                    .map(|h| serde_json::json!({"plugin": h.plugin.manifest.name, "source": h.ctx.source_version, "target": h.ctx.target_version}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"route": route, "plan": p}))?);
            } else {
                print_route(&site.section, &hops);
                super::plan::print_plan(&hops[0].plugin.manifest.name, &p);
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("refused ({}): {}", e.kind(), e.message());
            Ok(1)
        }
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

pub(super) fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("opshost-plan-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub async fn upgrade(cli: &Cli, a: &UpgradeArgs) -> Result<i32> {
    let site = Site::open(&a.site)?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let runtime = cli.runtime()?;
    let history = site.runs.history(&site.section)?;
    if let Some(m) = top(&history).filter(|m| m.status.unsettled()) {
        eprintln!(
            "refused: run {} of {} ({} -> {}) is {}; roll it back first: opshost rollback --config {} --product {}",
            m.id,
            m.product,
            m.source,
            m.target,
            m.status.words(),
            site.path.display(),
            site.section,
        );
        return Ok(1);
    }
    let from = current_version(&site.product.version, &history);
    let hops = or_refuse!(site.route(cli, &runtime, &from, &a.to).await?);
    let reporter = console_reporter(a.transcript, a.json, a.yes)?;
    // Plan first: prechecks on the real deployment, nothing changes.
    let (planned, plan_env) = site.plan_hop(&hops[0], reporter.clone(), a.yes).await?;
    let p = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("refused before any change ({}): {}", e.kind(), e.message());
            return Ok(1);
        }
    };
    print_route(&site.section, &hops);
    super::plan::print_plan(&hops[0].plugin.manifest.name, &p);
    emit_plan(1, hops.len(), &hops[0], &p);
    let question = if hops.len() > 1 {
        format!("Upgrade {} {from} -> {} in {} hops now? The steps marked [changes] will run; each later hop is prechecked first and the route stops at the first refusal.", site.section, a.to, hops.len())
    } else {
        format!("Upgrade {} {from} -> {} now? The steps marked [changes] will run.", site.section, a.to)
    };
    if !plan_env.caps.services.confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    let _metadb_lock = or_refuse!(site.take_run_lock(&reporter).await?, "refused before any change");
    // A route continues the one the deployment stands on when it was cut short (e.g. resumed).
    let mut route = top(&history).and_then(|m| m.route.clone()).filter(|r| r.target == a.to);
    let mut hop_plan = p;
    for (i, hop) in hops.iter().enumerate() {
        if i > 0 {
            say!("\n== hop {} of {}: {} -> {} ({}) ==", i + 1, hops.len(), hop.ctx.source_version, hop.ctx.target_version, hop.plugin.manifest.name);
            let (planned, _) = site.plan_hop(hop, reporter.clone(), a.yes).await?;
            match planned {
                Ok(p) => {
                    super::plan::print_plan(&hop.plugin.manifest.name, &p);
                    emit_plan(i + 1, hops.len(), hop, &p);
                    hop_plan = p;
                }
                Err(e) => {
                    eprintln!(
                        "the route stopped before hop {} ({} -> {}): its precheck refused ({}): {}",
                        i + 1,
                        hop.ctx.source_version,
                        hop.ctx.target_version,
                        e.kind(),
                        e.message()
                    );
                    eprintln!("{} is at {} (hops 1..{} are upgraded); fix the cause and run the same upgrade again, or go back: opshost rollback --config {} --product {}", site.section, hop.ctx.source_version, i, site.path.display(), site.section);
                    return Ok(1);
                }
            }
        }
        let mut meta = site.runs.create(RunMeta {
            id: String::new(),
            product: site.section.clone(),
            source: hop.ctx.source_version.clone(),
            target: hop.ctx.target_version.clone(),
            plugin: hop.plugin.manifest.name.clone(),
            plugin_hash: hop.plugin.loaded.hash.clone(),
            site_config: std::fs::canonicalize(&site.path).unwrap_or(site.path.clone()).display().to_string(),
            started_ms: now_ms(),
            status: RunStatus::Upgrading,
            finished_ms: None,
            error: None,
            route: route.clone(),
        })?;
        if hops.len() > 1 && route.is_none() {
            let r = RouteRef { id: meta.id.clone(), source: from.clone(), target: a.to.clone() };
            meta.route = Some(r.clone());
            site.runs.save(&meta)?;
            route = Some(r);
        }
        let run_dir = site.runs.run_dir(&meta.id);
        eprintln!("run {} (records in {}, log in run.log)", meta.id, run_dir.display());
        emit("run", serde_json::json!({ "run": meta.id, "operation": "upgrade", "dir": run_dir }));
        let log = run_log(&run_dir, &format!("upgrade {} {} -> {} with {} ({})", meta.product, meta.source, meta.target, meta.plugin, meta.plugin_hash))?;
        for step in hop_plan.steps.iter() {
            log.line(&format!("PLAN  {}: {}", step.title, step.detail));
        }
        // The plan as confirmed: the run report shows it, with what rollback would do.
        let _ = std::fs::write(run_dir.join("plan.json"), serde_json::to_string_pretty(&hop_plan)?);
        let env = site.journaled_env(&meta, &run_dir.join("upgrade.journal"), "upgrade", Arc::new(Tee(vec![reporter.clone(), log])), a.yes, &hop.grants)?;
        let outcome = hop.plugin.loaded.upgrade(&env, &hop.ctx).await;
        site.save_transcript(&meta, &env, "upgrade-calls.json");
        let code = finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::Upgraded, RunStatus::UpgradeFailed, &a.site)?;
        if code != 0 {
            return Ok(code);
        }
    }
    if hops.len() > 1 {
        say!("route complete: {} {from} -> {} in {} hops", site.section, a.to, hops.len());
    }
    if site.product.version != a.to {
        eprintln!(
            "note: {} still says version = \"{}\" for {}; opshost knows it is at {} from its runs, and a rollback returns it to {}. Set version = \"{}\" there once you keep this version",
            site.path.display(),
            site.product.version,
            site.section,
            a.to,
            site.product.version,
            a.to
        );
    }
    Ok(0)
}

/// The terminal (stderr), and under `--json` the event stream too. `--json` needs `--yes`: no one
/// answers a prompt in a script.
fn console_reporter(transcript: bool, json: bool, yes: bool) -> Result<Arc<dyn Reporter>> {
    if !json {
        return Ok(Arc::new(Terminal::new(transcript, false)));
    }
    anyhow::ensure!(yes, "--json needs --yes: a script cannot answer the confirmation");
    super::events::enable();
    Ok(Arc::new(Tee(vec![Arc::new(Terminal::new(transcript, false)), Arc::new(JsonLines)])))
}

/// The plan event of `--json`.
fn emit_plan(hop: usize, of: usize, h: &Hop, plan: &crate::bindings::Plan) {
    emit(
        "plan",
        serde_json::json!({ "hop": hop, "of": of, "plugin": h.plugin.manifest.name, "source": h.ctx.source_version, "target": h.ctx.target_version, "plan": plan }),
    );
}

/// The run's log (`run.log` in its folder), opened with a first line saying what starts.
fn run_log(run_dir: &Path, what: &str) -> Result<Arc<RunLog>> {
    let log = Arc::new(RunLog::open(&run_dir.join("run.log"))?);
    log.line(&format!("RUN   {what}; opshost {} pid {}", env!("CARGO_PKG_VERSION"), std::process::id()));
    Ok(log)
}

fn finish(
    site: &Site,
    mut meta: RunMeta,
    outcome: Result<(Result<(), crate::bindings::Error>, Vec<String>)>,
    ok: RunStatus,
    failed: RunStatus,
    a: &SiteArgs,
) -> Result<i32> {
    meta.finished_ms = Some(now_ms());
    let run_dir = site.runs.run_dir(&meta.id);
    // An upgrade that timed out in a wait after its last change (the new version did not come
    // up in time) can be waited for again: resume drops the wait's polls and polls anew.
    let mut timed_out_waiting = false;
    let (code, error) = match outcome {
        // The notices were printed as they came (the terminal reporter): once is enough.
        Ok((Ok(()), _notices)) => (0, None),
        Ok((Err(e), _)) => {
            timed_out_waiting = matches!(e, crate::bindings::Error::Timeout(_))
                && failed == RunStatus::UpgradeFailed
                && crate::journal::Journal::ended_in_a_read(&run_dir.join("upgrade.journal"));
            (1, Some(format!("{}: {}", e.kind(), e.message())))
        }
        Err(trap) => (1, Some(format!("the plugin stopped: {trap:#}"))),
    };
    // Ctrl-C: the run stopped between two calls and keeps its in-progress status (resumable),
    // not failed.
    let stopped = crate::runtime::interrupt::stopped_before().filter(|_| error.is_some());
    meta.status = match (&stopped, code) {
        (Some(_), _) if failed == RunStatus::UpgradeFailed => RunStatus::Upgrading,
        (Some(_), _) => RunStatus::RollingBack,
        (None, 0) => ok,
        (None, _) if timed_out_waiting => RunStatus::UpgradeTimedOut,
        (None, _) => failed,
    };
    meta.error = error.clone();
    if let Ok(log) = RunLog::open(&run_dir.join("run.log")) {
        let how = match &stopped {
            Some(call) => format!("stopped (stopped at the operator's request before {call}: resumable)"),
            None => meta.status.words().to_string(),
        };
        log.line(&format!("END   {how}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()));
    }
    emit("outcome", serde_json::json!({ "run": meta.id, "status": meta.status, "error": error, "stopped_before": stopped }));
    if let (Some(call), Some(e)) = (&stopped, &error) {
        meta.finished_ms = None;
        site.runs.save(&meta)?;
        let what = if meta.status == RunStatus::Upgrading { "upgrade" } else { "rollback" };
        eprintln!("run {}: {what} stopped at your request before {call} ({e})", meta.id);
        eprintln!("to go on from there: opshost resume {} --config {}", meta.id, a.config.display());
        if meta.status == RunStatus::Upgrading {
            eprintln!("to undo what it did instead: opshost rollback --config {} --product {} --run {}", a.config.display(), a.product, meta.id);
        }
        return Ok(130);
    }
    site.runs.save(&meta)?;
    match (error, meta.status) {
        (None, s) => say!("run {}: {}", meta.id, s.words()),
        (Some(e), RunStatus::UpgradeFailed) => {
            eprintln!("run {}: upgrade failed: {e}", meta.id);
            match &meta.route {
                Some(r) if r.id != meta.id => eprintln!(
                    "to return to {} {} (the route's start): opshost rollback --config {} --product {}  (unwinds every hop of the route, newest first); to return to {} only: add --run {}",
                    meta.product, r.source, a.config.display(), a.product, meta.source, meta.id
                ),
                _ => eprintln!("to return to {} {}: opshost rollback --config {} --product {} --run {}", meta.product, meta.source, a.config.display(), a.product, meta.id),
            }
        }
        (Some(e), RunStatus::UpgradeTimedOut) => {
            eprintln!("run {}: upgrade timed out waiting for {} {}: {e}", meta.id, meta.product, meta.target);
            eprintln!(
                "every change of the upgrade is made; only the wait for the new version ran out, and nothing after it happened (what the plugin's notices say stays as it is)"
            );
            eprintln!("once the cause is fixed, wait again and finish: opshost resume {} --config {}", meta.id, a.config.display());
            eprintln!(
                "to return to {} {} instead: opshost rollback --config {} --product {} --run {}",
                meta.product,
                meta.source,
                a.config.display(),
                a.product,
                meta.id
            );
        }
        (Some(e), _) => eprintln!("run {}: rollback failed: {e}\nfix the cause and run the same rollback again", meta.id),
    }
    Ok(code)
}

pub async fn rollback(cli: &Cli, a: &RollbackArgs) -> Result<i32> {
    let site = Site::open(&a.site)?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let runtime = cli.runtime()?;
    let history = site.runs.history(&site.section)?;
    // What to undo, newest first: the named run, or the run on top with the rest of its route.
    let runs: Vec<RunMeta> = match &a.run {
        Some(id) => {
            let meta = site.runs.load(id)?;
            if meta.product != site.section {
                anyhow::bail!("run {} is of {}, not {}", meta.id, meta.product, site.section);
            }
            if meta.status == RunStatus::RolledBack {
                eprintln!(
                    "refused: run {} was already rolled back; rolling back twice would overwrite what {} {} wrote since",
                    meta.id, meta.product, meta.source
                );
                return Ok(1);
            }
            let above = standing_above(&history, &meta.id);
            if !above.is_empty() {
                eprintln!(
                    "refused: {} run(s) after {} still stand ({}); roll back newest first: opshost rollback --config {} --product {} (unwinds a whole route)",
                    above.len(),
                    meta.id,
                    above.iter().map(|m| format!("{} {} -> {}", m.id, m.source, m.target)).collect::<Vec<_>>().join(", "),
                    site.path.display(),
                    site.section
                );
                return Ok(1);
            }
            vec![meta]
        }
        None => {
            let runs = to_unwind(&history);
            if runs.is_empty() {
                if history.is_empty() {
                    eprintln!("refused: no run of {} in {}: nothing to roll back", site.section, site.runs.dir.display());
                } else {
                    eprintln!(
                        "refused: nothing to roll back: every run of {} is already rolled back (opshost runs list --config {})",
                        site.section,
                        site.path.display()
                    );
                }
                return Ok(1);
            }
            runs
        }
    };
    // Everything each rollback needs, checked before the first one starts.
    let mut prepared = Vec::new();
    for meta in &runs {
        let plugin = find_by_hash(&runtime, &site.plugins_dir(cli), &meta.plugin_hash, &meta.plugin, &cli.policy(&site.config.trust)?).await?;
        let ctx = or_refuse!(site.context(&plugin, &meta.source, &meta.target));
        let grants = or_refuse!(site.grants(&plugin));
        prepared.push(Hop { plugin, ctx, grants });
    }
    // Every backup the runs took is whole before anything is touched: a damaged file found by
    // the restore would leave the product stopped half way.
    for meta in &runs {
        or_refuse!(site.backups_intact(meta), "refused before any change");
    }
    let reporter = console_reporter(a.transcript, a.json, a.yes)?;
    let question = if runs.len() == 1 {
        let m = &runs[0];
        format!(
            "Roll back run {} ({} {} -> {}, {}): restore the MetaDB from its backups and restart {} {}?",
            m.id,
            m.product,
            m.source,
            m.target,
            m.status.words(),
            m.product,
            m.source
        )
    } else {
        say!("Rollback of the route {} -> {}, newest hop first:", runs.last().unwrap().source, runs[0].target);
        for (i, m) in runs.iter().enumerate() {
            say!("  {}. run {}: {} -> {} ({}), back to {}", i + 1, m.id, m.source, m.target, m.status.words(), m.source);
        }
        format!(
            "Roll back these {} runs: restore each hop's MetaDB backups and containers, ending at {} {}?",
            runs.len(),
            site.section,
            runs.last().unwrap().source
        )
    };
    if !(SystemServices { assume_yes: a.yes }).confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    let _metadb_lock = or_refuse!(site.take_run_lock(&reporter).await?, "refused before any change");
    for (mut meta, hop) in runs.into_iter().zip(prepared) {
        let run_dir = site.runs.run_dir(&meta.id);
        let journal_path = next_rollback_journal(&run_dir);
        meta.status = RunStatus::RollingBack;
        site.runs.save(&meta)?;
        eprintln!("rolling back run {} ({} -> {})", meta.id, meta.source, meta.target);
        emit("run", serde_json::json!({ "run": meta.id, "operation": "rollback", "dir": run_dir }));
        let log = run_log(
            &run_dir,
            &format!("rollback {} {} -> {} with {} (journal {})", meta.product, meta.target, meta.source, meta.plugin, journal_path.display()),
        )?;
        let env = site.journaled_env(&meta, &journal_path, "rollback", Arc::new(Tee(vec![reporter.clone(), log])), a.yes, &hop.grants)?;
        let outcome = hop.plugin.loaded.rollback(&env, &hop.ctx).await;
        site.save_transcript(&meta, &env, "rollback-calls.json");
        let code = finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &a.site)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

pub async fn runs(a: &RunsArgs) -> Result<i32> {
    let Some(config_path) = &a.config else { anyhow::bail!("give the site config: opshost runs list --config site.toml") };
    let config = SiteConfig::load(config_path)?;
    let runs = Runs::new(&config.state_dir());
    if let Some(RunsCmd::Show { id, html }) = &a.cmd {
        let m = runs.load(id)?;
        let records = std::fs::read_to_string(runs.run_dir(id).join("records.json")).unwrap_or_default();
        let site_args = format!("--config {} --product {}", config_path.display(), m.product);
        let words = explain(&site_args, &m, &runs.run_dir(id));
        if let Some(file) = html {
            let page = super::run_report::render(&m, &runs.run_dir(id), &words);
            std::fs::write(file, page).map_err(|e| anyhow::anyhow!("writing the run report {}: {e}", file.display()))?;
            println!("run report of {id} written to {}", file.display());
            return Ok(0);
        }
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"run": m, "explanation": words, "records": serde_json::from_str::<serde_json::Value>(&records).ok()})
                )?
            );
        } else {
            for line in words {
                println!("{line}");
            }
            println!("records ({}):", Path::new(&runs.run_dir(id)).join("records.json").display());
            println!("{records}");
        }
        return Ok(0);
    }
    let list = runs.list()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no runs in {}", runs.dir.display());
    } else {
        for m in list {
            let route = m.route.as_ref().map(|r| format!("  (route {} -> {}, {})", r.source, r.target, r.id)).unwrap_or_default();
            println!("{:<28} {:<6} {} -> {:<8} {}{route}", m.id, m.product, m.source, m.target, m.status.words());
        }
    }
    Ok(0)
}

/// `rollback.journal`, or `rollback-N.journal` for a later attempt.
fn next_rollback_journal(run_dir: &Path) -> PathBuf {
    let mut n = 1;
    loop {
        let p = if n == 1 { run_dir.join("rollback.journal") } else { run_dir.join(format!("rollback-{n}.journal")) };
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

/// The journal of the operation a run was in when it stopped (the latest rollback attempt's).
fn interrupted_journal(run_dir: &Path, status: RunStatus) -> Option<PathBuf> {
    match status {
        RunStatus::Upgrading | RunStatus::UpgradeTimedOut => Some(run_dir.join("upgrade.journal")),
        RunStatus::RollingBack => {
            let mut latest = None;
            let mut n = 1;
            loop {
                let p = if n == 1 { run_dir.join("rollback.journal") } else { run_dir.join(format!("rollback-{n}.journal")) };
                if !p.exists() {
                    return latest;
                }
                latest = Some(p);
                n += 1;
            }
        }
        _ => None,
    }
}

/// Where a run stopped and what resume or rollback would do, in plain words.
pub fn explain(site_args: &str, meta: &RunMeta, run_dir: &Path) -> Vec<String> {
    let mut out = vec![format!("run {}: {} {} -> {} with plugin {} — {}", meta.id, meta.product, meta.source, meta.target, meta.plugin, meta.status.words())];
    if let Some(e) = &meta.error {
        out.push(format!("error: {e}"));
    }
    let Some(path) = interrupted_journal(run_dir, meta.status) else {
        match meta.status {
            RunStatus::UpgradeFailed | RunStatus::RollbackFailed => {
                out.push(format!("next: opshost rollback {site_args} --run {} (restores from the backups this run recorded)", meta.id))
            }
            RunStatus::Upgraded => out.push(format!("next: nothing; to undo it: opshost rollback {site_args} --run {}", meta.id)),
            _ => {}
        }
        return out;
    };
    match Replay::load(&path) {
        Ok((h, r)) => {
            out.push(format!(
                "the host stopped during the {} after {} completed calls{}",
                h.operation,
                r.completed(),
                if r.truncated_tail { " (the last journal line was cut off and is ignored)" } else { "" }
            ));
            if let Some(last) = r.calls.iter().rev().find(|c| c.outcome.is_some()) {
                out.push(format!("last completed: #{} {} {}", last.seq, last.call, last.args));
            }
            match r.in_doubt() {
                Some(c) if c.effect == crate::runtime::host_call::Effect::Write => {
                    out.push(format!("in doubt: #{} {} {} started, and it is not known whether it finished; check by hand whether it happened, then resume with --rerun-in-doubt to run it again, or roll back", c.seq, c.call, c.args))
                }
                Some(c) => out.push(format!("in doubt: #{} {} started; it is safe to repeat, resume runs it again", c.seq, c.call)),
                None => {}
            }
            out.push(format!(
                "resume: opshost resume {} {site_args} replays those {} calls without touching anything, then continues the {} live",
                meta.id,
                r.completed(),
                h.operation
            ));
            out.push(format!("or roll back: opshost rollback {site_args} --run {} (from the backups and settings recorded so far)", meta.id));
        }
        Err(e) => out.push(format!("its journal cannot be read ({e:#}); roll back: opshost rollback {site_args} --run {}", meta.id)),
    }
    out
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The run to resume (see `opshost runs`).
    pub run: String,
    /// Site config (TOML) the run belongs to.
    #[arg(long, value_name = "FILE", env = "OPSHOST_CONFIG")]
    pub config: PathBuf,
    /// Answer yes to the confirmation. It never re-runs a call that may or may not have happened
    /// (see --rerun-in-doubt).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run again a change that had started when the host stopped and may or may not have
    /// happened. Check by hand first what it did (`opshost runs show RUN` names it).
    #[arg(long)]
    pub rerun_in_doubt: bool,
    /// Resume even though the site config changed since the run started.
    #[arg(long)]
    pub allow_config_change: bool,
    /// Print every capability call with its arguments and result.
    #[arg(long)]
    pub transcript: bool,
    /// Stream JSON lines on stdout (schema: cli/events.rs; needs --yes); human text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

pub async fn resume(cli: &Cli, a: &ResumeArgs) -> Result<i32> {
    let config = SiteConfig::load(&a.config)?;
    let runs = Runs::new(&config.state_dir());
    let mut meta = runs.load(&a.run)?;
    let site = Site::open(&SiteArgs { config: a.config.clone(), product: meta.product.clone() })?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let run_dir = runs.run_dir(&meta.id);
    let Some(path) = interrupted_journal(&run_dir, meta.status) else {
        eprintln!(
            "refused: run {} is {}: there is nothing to resume{}",
            meta.id,
            meta.status.words(),
            if meta.status == RunStatus::UpgradeFailed { " (the upgrade failed: roll it back)" } else { "" }
        );
        return Ok(1);
    };
    let (journal, header) = Journal::reopen(&path)?;
    let journal = journal.limited_to(site.config.limits.max_journal_mb);
    if header.plugin_hash != meta.plugin_hash {
        anyhow::bail!(
            "the journal of run {} was written by plugin {} {}, the run says {}: refusing to resume",
            meta.id,
            header.plugin,
            header.plugin_hash,
            meta.plugin_hash
        );
    }
    if header.site_config_hash != site.config_hash()? && !a.allow_config_change {
        eprintln!("refused: the site config {} changed since run {} started; resume with the config it ran with, or pass --allow-config-change if the change is deliberate", a.config.display(), meta.id);
        return Ok(1);
    }
    let runtime = cli.runtime()?;
    let plugin = find_by_hash(&runtime, &site.plugins_dir(cli), &meta.plugin_hash, &meta.plugin, &cli.policy(&site.config.trust)?).await?;
    let ctx = or_refuse!(site.context(&plugin, &meta.source, &meta.target));
    let grants = or_refuse!(site.grants(&plugin));
    let journal = if meta.status == RunStatus::UpgradeTimedOut {
        // The wait that ran out starts again: its polls are dropped, never a change.
        drop(journal);
        let dropped = Journal::drop_trailing_reads(&path)?;
        eprintln!(
            "run {}: the wait that timed out starts again ({dropped} polls after the last change are made anew; the journal as it was is kept beside it)",
            meta.id
        );
        Journal::reopen(&path)?.0.limited_to(site.config.limits.max_journal_mb)
    } else {
        journal
    };
    let site_args = format!("--config {} --product {}", a.config.display(), meta.product);
    for line in explain(&site_args, &meta, &run_dir) {
        eprintln!("{line}");
    }
    let log = run_log(&run_dir, &format!("resume of the {} in {} ({} {} -> {})", header.operation, path.display(), meta.product, meta.source, meta.target))?;
    let reporter: Arc<dyn Reporter> = Arc::new(Tee(vec![console_reporter(a.transcript, a.json, a.yes)?, log]));
    let _metadb_lock = or_refuse!(site.take_run_lock(&reporter).await?, "refused before any change");
    emit("run", serde_json::json!({ "run": meta.id, "operation": "resume", "dir": run_dir }));
    let mut env =
        site.env(site.config.backup_dir.join(&meta.id), RunRecords::at(run_dir.join("records.json"))?, reporter, a.yes, &grants, Some(Arc::new(journal)))?;
    env.rerun_in_doubt = a.rerun_in_doubt;
    let upgrading = header.operation == "upgrade";
    let outcome = if upgrading { plugin.loaded.upgrade(&env, &ctx).await } else { plugin.loaded.rollback(&env, &ctx).await };
    site.save_transcript(&meta, &env, if upgrading { "resume-upgrade-calls.json" } else { "resume-rollback-calls.json" });
    meta.error = None;
    let sa = SiteArgs { config: a.config.clone(), product: meta.product.clone() };
    if upgrading {
        let route = meta.route.clone().filter(|r| r.target != meta.target);
        let code = finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::Upgraded, RunStatus::UpgradeFailed, &sa)?;
        if let (0, Some(r)) = (code, route) {
            say!(
                "this run is one hop of the route to {}: continue it with opshost upgrade --config {} --product {} --to {}",
                r.target,
                a.config.display(),
                sa.product,
                r.target
            );
        }
        Ok(code)
    } else {
        finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &sa)
    }
}
