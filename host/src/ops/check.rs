//! `check`: a site looked over before the night. Every Docker engine and MetaDB the site config
//! names, the MetaDB account's privileges, free space for the backups, the containers, archives,
//! databases and health URLs each product names, the plugins that would run with their
//! signatures and grants: one [`Finding`] each. With a target version, the route's plugins and
//! the first hop's plan, as `plan` runs it. It changes nothing, as `plan` changes nothing; it
//! takes no lock.

use super::runs::{current_version, top};
use super::site::{tempfile_dir, Site};
use super::{Setup, SiteRef};
use crate::capabilities::services::RunRecords;
use crate::grants::Grants;
use crate::report::{Reporter, Silent};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What to check.
pub struct CheckRequest {
    pub config: PathBuf,
    /// One product section only (None: every product of the site config).
    pub product: Option<String>,
    /// Also the route to this version: every hop's plugin found, trusted and granted.
    pub to: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the check.
#[derive(Serialize)]
pub struct Finding {
    pub status: Status,
    /// What was looked at: `docker local`, `metadb metadb`, `oms containers`, …
    pub subject: String,
    pub detail: String,
}

#[derive(Default)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    fn add(&mut self, status: Status, subject: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Finding { status, subject: subject.into(), detail: detail.into() });
    }
    fn result(&mut self, subject: &str, r: Result<String, String>) {
        match r {
            Ok(d) => self.add(Status::Ok, subject, d),
            Err(d) => self.add(Status::Fail, subject, d),
        }
    }
}

/// The MetaDB connection a product's `*_db` parameters live on: `connection`, else the only one.
fn connection_of(site: &Site) -> Option<String> {
    match site.product.parameters.get("connection") {
        Some(c) => Some(c.clone()),
        None if site.config.metadb.len() == 1 => site.config.metadb.keys().next().cloned(),
        None => Some(site.product.console.metadb.connection.clone()),
    }
}

/// Every database a product's parameters name (`*_db`, in `parameters` and every hop's table).
fn databases_of(site: &Site) -> Vec<String> {
    let mut dbs: Vec<String> = std::iter::once(&site.product.parameters)
        .chain(site.product.hops.values())
        .flatten()
        .filter(|(k, _)| k.ends_with("_db"))
        .map(|(_, v)| v.clone())
        .collect();
    dbs.sort();
    dbs.dedup();
    dbs
}

/// Every finding about the site, in the order they were made; an `Err` only when the check
/// itself could not run (the site config unreadable).
pub async fn check(setup: &Setup, a: &CheckRequest) -> Result<Vec<Finding>> {
    let config = crate::config::SiteConfig::load(&a.config)?;
    let products: Vec<String> = match &a.product {
        Some(p) => {
            config.product(p)?;
            vec![p.clone()]
        }
        None => config.products.keys().cloned().collect(),
    };
    anyhow::ensure!(a.to.is_none() || products.len() == 1, "--to needs --product: the site config has {} products", products.len());
    let silent: Arc<dyn Reporter> = Arc::new(Silent);
    let mut out = Findings::default();

    // The engines of every node.
    let docker = crate::capabilities::docker::real::BollardDocker::new(config.nodes.clone(), Vec::new(), config.docker_policy.clone(), silent.clone());
    let mut engines_up = BTreeMap::new();
    for node in config.nodes.keys() {
        let r = docker.engine_version(node).await.map_err(|e| e.message().to_string());
        engines_up.insert(node.clone(), r.is_ok());
        out.result(&format!("docker {node}"), r);
    }

    // Every MetaDB connection: the server, the account and the databases the products name.
    let scratch = tempfile_dir()?;
    let sql = crate::capabilities::sql::mysql::MysqlSql::new(&config.metadb, scratch.clone(), silent.clone())?;
    let mut sites = Vec::new();
    for section in &products {
        sites.push(Site::open(&SiteRef { config: a.config.clone(), product: section.clone() })?);
    }
    let mut metadb_up = BTreeMap::new();
    for connection in config.metadb.keys() {
        let subject = format!("metadb {connection}");
        let databases: Vec<String> = sites.iter().filter(|s| connection_of(s).as_deref() == Some(connection)).flat_map(databases_of).collect();
        use crate::capabilities::sql::Sql;
        match sql.describe_backup(connection, &databases).await {
            Err(e) if e.message().starts_with("cannot connect") => {
                metadb_up.insert(connection.clone(), false);
                out.add(Status::Fail, subject, e.message());
                continue;
            }
            Err(e) => out.add(Status::Fail, &subject, format!("{}: an upgrade would refuse before anything changes", e.message())),
            Ok(lines) => lines.into_iter().for_each(|l| match l.strip_prefix("warning: ") {
                Some(warning) => out.add(Status::Warn, &subject, warning.to_string()),
                None => out.add(Status::Ok, &subject, l),
            }),
        }
        metadb_up.insert(connection.clone(), true);
        match sql.account_check(connection, &databases).await {
            Err(e) => out.add(Status::Fail, &subject, e.message()),
            Ok(acc) => {
                let (user, host) = acc.account.rsplit_once('@').unwrap_or((acc.account.as_str(), "%"));
                if acc.reload {
                    out.add(Status::Ok, &subject, format!("account {}: RELOAD held (a dump's snapshot is taken side by side)", acc.account));
                } else {
                    out.add(
                        Status::Warn,
                        &subject,
                        format!(
                            "account {} lacks RELOAD: dumps read on one connection, slower; GRANT RELOAD ON *.* TO '{user}'@'{host}' to read side by side",
                            acc.account
                        ),
                    );
                }
                if !acc.excess.is_empty() {
                    out.add(
                        Status::Warn,
                        &subject,
                        format!("account holds {} on *.*, which opshost never needs (README \"Least-privilege MetaDB account\")", acc.excess.join(", ")),
                    );
                }
                if acc.roles {
                    out.add(Status::Warn, &subject, format!("account {} has roles: privileges held through them are not counted here", acc.account));
                }
                for (db, lacking) in acc.missing {
                    if lacking.is_empty() {
                        out.add(Status::Ok, &subject, format!("account {} holds what opshost needs on {db}", acc.account));
                    } else {
                        out.add(
                            Status::Fail,
                            &subject,
                            format!(
                                "account {} lacks {} on {db}, needed to back it up, migrate it and restore it on rollback: GRANT {} ON `{db}`.* TO '{user}'@'{host}'",
                                acc.account,
                                lacking.join(", "),
                                lacking.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }

    // Plugins: read once, trusted or not.
    let runtime = setup.runtime()?;
    let policy = setup.policy(&config.trust)?;
    for site in &sites {
        let product = &site.section;
        let kind = site.product.kind(product).to_string();
        let history = site.runs.history(product)?;
        let from = current_version(&site.product.version, &history);
        match top(&history).filter(|m| m.status.unsettled()) {
            Some(m) => out.add(
                Status::Fail,
                product,
                format!(
                    "run {} is {}: an upgrade is refused until it is resumed or rolled back; `opshost runs show {} --config {}` says how",
                    m.id,
                    m.status.words(),
                    m.id,
                    a.config.display()
                ),
            ),
            None => out.add(Status::Ok, product, format!("{kind} {from} on {}", site.product.nodes.join(", "))),
        }
        let env = match site.env(scratch.clone(), RunRecords::in_memory(), silent.clone(), false, &Grants::unrestricted(), None) {
            Ok(env) => env,
            Err(e) => {
                out.add(Status::Fail, product, format!("{e:#} (in [products.{product}] of {})", a.config.display()));
                continue;
            }
        };
        let target = a.to.clone().unwrap_or_default();
        let nodes_up = site.product.nodes.iter().all(|n| engines_up.get(n) == Some(&true));
        if nodes_up {
            out.result(
                &format!("{product} containers"),
                site.named_containers_exist(&env, &target).await.map(|()| "every container the site config names exists".into()),
            );
        }
        out.result(&format!("{product} health"), site.health_urls_cover_the_nodes(&target).map(|()| "every node has a health URL".into()));
        for node in &site.product.nodes {
            match env.caps.console.health(node).await {
                Ok(true) => out.add(Status::Ok, format!("{product} health"), format!("node {node} answers healthy")),
                Ok(false) => out.add(Status::Warn, format!("{product} health"), format!("node {node} does not answer healthy now")),
                Err(e) => out.add(Status::Warn, format!("{product} health"), format!("node {node}: {}", e.message())),
            }
        }
        let connection = connection_of(site);
        if connection.as_ref().is_some_and(|c| metadb_up.get(c) == Some(&true)) {
            out.result(
                &format!("{product} parameters"),
                site.named_files_and_databases_exist(&env, &target).await.map(|()| "every archive and database the site config names exists".into()),
            );
            let dbs: Vec<(String, String)> = databases_of(site).into_iter().map(|d| (connection.clone().unwrap_or_default(), d)).collect();
            match site.backup_space(&env, &dbs).await {
                Ok(lines) => {
                    for l in lines.into_iter().filter(|l| l.starts_with("backup space")) {
                        out.add(Status::Ok, format!("{product} backups"), l);
                    }
                }
                Err(e) => out.add(Status::Fail, format!("{product} backups"), e),
            }
            if let Some(lock) = site.run_lock_finding(&silent).await {
                out.add(Status::Warn, format!("{product} lock"), lock.trim_start_matches("warning: ").to_string());
            }
        }
        // The plugins that would run.
        let dir = site.plugins_dir(setup);
        let subject = format!("{product} plugins");
        if let Some(to) = &a.to {
            match site.route(setup, &runtime, &from, to).await? {
                Ok(hops) => {
                    for h in &hops {
                        out.add(
                            Status::Ok,
                            &subject,
                            format!(
                                "{} -> {}: {} (signed by {}), granted",
                                h.ctx.source_version,
                                h.ctx.target_version,
                                h.plugin.manifest.name,
                                h.plugin.signers().join("+")
                            ),
                        );
                    }
                    // The first hop's plan, as `plan` runs it: the plugin's own prechecks.
                    let (planned, _) = site.plan_hop(&hops[0], silent.clone(), false).await?;
                    match planned {
                        Ok(p) => out.add(
                            Status::Ok,
                            format!("{product} plan"),
                            format!(
                                "{} plans {} steps, {} of them changes; `opshost plan` shows them",
                                hops[0].plugin.manifest.name,
                                p.steps.len(),
                                p.steps.iter().filter(|s| s.changes).count()
                            ),
                        ),
                        // Said once: the host's own checks above may have found it already.
                        Err(e)
                            if out
                                .0
                                .iter()
                                .any(|f| f.status == Status::Fail && f.detail.contains(e.message().trim_end_matches(": refused before anything changes"))) => {}
                        Err(e) => out.add(Status::Fail, format!("{product} plan"), format!("refused ({}): {}", e.kind(), e.message())),
                    }
                }
                Err(e) => out.add(Status::Fail, &subject, e),
            }
            continue;
        }
        let found = crate::registry::scan_to_read(&runtime, &dir, &policy).await?;
        let next: Vec<_> = found.iter().flatten().filter(|p| p.manifest.product == kind && p.manifest.sources.contains(&from)).collect();
        if next.is_empty() {
            out.add(Status::Warn, &subject, format!("no plugin in {} upgrades {kind} from {from}", dir.display()));
        }
        for p in next {
            let name = &p.manifest.name;
            let summary = p.summary();
            if let Some(why) = summary.not_trusted {
                out.add(Status::Fail, &subject, format!("{name} ({from} -> {}) in {}: not trusted ({why})", p.manifest.target, p.path.display()));
                continue;
            }
            match site.grants(p) {
                Ok(_) => out.add(Status::Ok, &subject, format!("{name} ({from} -> {}) signed by {}, granted", p.manifest.target, p.signers().join("+"))),
                Err(e) => out.add(Status::Fail, &subject, e),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out.0)
}
