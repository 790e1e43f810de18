//! `opshost upgrade|rollback|runs` on a real deployment described by the site config.

use super::Cli;
use crate::bindings::Context;
use crate::capabilities::services::RunRecords;
use crate::capabilities::Capabilities;
use crate::config::{ProductConfig, SiteConfig};
use crate::grants::Grants;
use crate::registry::{context_for, find_by_hash, find_hop, Plugin};
use crate::runtime::host_call::Faults;
use crate::runtime::report::{Reporter, Terminal};
use crate::runtime::state::RunEnv;
use crate::runs::{current_version, now_ms, Lock, RunMeta, RunStatus, Runs};
use anyhow::{Context as _, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct SiteArgs {
    /// Site config (TOML).
    #[arg(long, value_name = "FILE")]
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
    #[arg(long)]
    pub yes: bool,
    /// Print every capability call.
    #[arg(long)]
    pub transcript: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// The run to roll back (default: the product's latest).
    #[arg(long)]
    pub run: Option<String>,
    #[arg(long)]
    pub yes: bool,
    #[arg(long)]
    pub transcript: bool,
}

#[derive(Args)]
pub struct RunsArgs {
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// One run in detail.
    #[arg(long)]
    pub show: Option<String>,
    #[arg(long)]
    pub json: bool,
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
            Some(t) => Ok(Grants::new(&plugin.manifest, Some(t.clone()))),
            None => Err(format!(
                "the site config grants plugin {} nothing; review what it needs and add:\n\n{}",
                plugin.manifest.name,
                suggest_grants(&plugin.manifest, &self.product.parameters)
            )),
        }
    }

    pub fn env(&self, backup_dir: PathBuf, records: RunRecords, reporter: Arc<dyn Reporter>, yes: bool, grants: &Grants) -> Result<RunEnv> {
        Ok(RunEnv {
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
        context_for(&plugin.manifest, self.product.kind(&self.section), source, target, &self.product.parameters, &self.product.nodes).map_err(|e| e.message().to_string())
    }

    fn save_transcript(&self, meta: &RunMeta, env: &RunEnv, name: &str) {
        let calls = env.transcript.lock().unwrap();
        let path = self.runs.run_dir(&meta.id).join(name);
        if let Ok(text) = serde_json::to_string_pretty(&*calls) {
            let _ = std::fs::write(path, text);
        }
    }
}

/// Show the plan of the hop `from -> to` on the real deployment (read-only).
pub async fn plan(cli: &Cli, a: &SiteArgs, to: &str, json: bool) -> Result<i32> {
    let site = Site::open(a)?;
    let runtime = cli.runtime()?;
    let latest = site.runs.latest(&site.section)?;
    let from = current_version(&site.product.version, latest.as_ref());
    let plugin = find_hop(&runtime, &site.plugins_dir(cli), site.product.kind(&site.section), &from, to, &cli.policy(&site.config.trust)?).await?;
    let ctx = match site.context(&plugin, &from, to) {
        Ok(c) => c,
        Err(m) => {
            eprintln!("refused: {m}");
            return Ok(1);
        }
    };
    let grants = match site.grants(&plugin) {
        Ok(g) => g,
        Err(m) => {
            eprintln!("refused: {m}");
            return Ok(1);
        }
    };
    let reporter: Arc<dyn Reporter> = if json { Arc::new(crate::runtime::report::Silent) } else { Arc::new(Terminal::new(false, false)) };
    let scratch = tempfile_dir()?;
    let env = site.env(scratch.clone(), RunRecords::in_memory(), reporter, false, &grants)?;
    let outcome = plugin.loaded.plan(&env, &ctx).await?;
    let _ = std::fs::remove_dir_all(&scratch);
    match outcome.result {
        Ok(mut p) => {
            p.findings.extend(site.config.docker_policy.describe());
            p.findings.extend(grants.describe());
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                super::plan::print_plan(&plugin.manifest.name, &p);
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

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("opshost-plan-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub async fn upgrade(cli: &Cli, a: &UpgradeArgs) -> Result<i32> {
    let site = Site::open(&a.site)?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let runtime = cli.runtime()?;
    let latest = site.runs.latest(&site.section)?;
    if let Some(m) = latest.as_ref().filter(|m| m.status.unsettled()) {
        eprintln!(
            "refused: run {} of {} is {}; roll it back first: opshost rollback --config {} --product {} --run {}",
            m.id,
            m.product,
            m.status.words(),
            site.path.display(),
            site.section,
            m.id
        );
        return Ok(1);
    }
    let from = current_version(&site.product.version, latest.as_ref());
    let plugin = find_hop(&runtime, &site.plugins_dir(cli), site.product.kind(&site.section), &from, &a.to, &cli.policy(&site.config.trust)?).await?;
    let ctx = match site.context(&plugin, &from, &a.to) {
        Ok(c) => c,
        Err(m) => {
            eprintln!("refused: {m}");
            return Ok(1);
        }
    };
    let grants = match site.grants(&plugin) {
        Ok(g) => g,
        Err(m) => {
            eprintln!("refused: {m}");
            return Ok(1);
        }
    };
    let reporter: Arc<dyn Reporter> = Arc::new(Terminal::new(a.transcript, false));
    // Plan first: prechecks on the real deployment, nothing changes.
    let scratch = tempfile_dir()?;
    let plan_env = site.env(scratch.clone(), RunRecords::in_memory(), reporter.clone(), a.yes, &grants)?;
    let planned = plugin.loaded.plan(&plan_env, &ctx).await?;
    let _ = std::fs::remove_dir_all(&scratch);
    let mut p = match planned.result {
        Ok(p) => p,
        Err(e) => {
            eprintln!("refused before any change ({}): {}", e.kind(), e.message());
            return Ok(1);
        }
    };
    p.findings.extend(site.config.docker_policy.describe());
    p.findings.extend(grants.describe());
    super::plan::print_plan(&plugin.manifest.name, &p);
    let question = format!("Upgrade {} {} -> {} now? The steps marked [changes] will run.", site.section, from, a.to);
    if !plan_env.caps.services.confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    let meta = site.runs.create(RunMeta {
        id: String::new(),
        product: site.section.clone(),
        source: from.clone(),
        target: a.to.clone(),
        plugin: plugin.manifest.name.clone(),
        plugin_hash: plugin.loaded.hash.clone(),
        site_config: std::fs::canonicalize(&site.path).unwrap_or(site.path.clone()).display().to_string(),
        started_ms: now_ms(),
        status: RunStatus::Upgrading,
        finished_ms: None,
        error: None,
    })?;
    let run_dir = site.runs.run_dir(&meta.id);
    eprintln!("run {} (records in {})", meta.id, run_dir.display());
    let env = site.env(site.config.backup_dir.join(&meta.id), RunRecords::at(run_dir.join("records.json"))?, reporter, a.yes, &grants)?;
    let outcome = plugin.loaded.upgrade(&env, &ctx).await;
    site.save_transcript(&meta, &env, "upgrade-calls.json");
    finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::Upgraded, RunStatus::UpgradeFailed, &a.site)
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
    let (code, error) = match outcome {
        Ok((Ok(()), notices)) => {
            for n in notices {
                println!("notice: {n}");
            }
            (0, None)
        }
        Ok((Err(e), _)) => (1, Some(format!("{}: {}", e.kind(), e.message()))),
        Err(trap) => (1, Some(format!("the plugin stopped: {trap:#}"))),
    };
    meta.status = if code == 0 { ok } else { failed };
    meta.error = error.clone();
    site.runs.save(&meta)?;
    match (error, meta.status) {
        (None, s) => println!("run {}: {}", meta.id, s.words()),
        (Some(e), RunStatus::UpgradeFailed) => {
            eprintln!("run {}: upgrade failed: {e}", meta.id);
            eprintln!("to return to {} {}: opshost rollback --config {} --product {} --run {}", meta.product, meta.source, a.config.display(), a.product, meta.id);
        }
        (Some(e), _) => eprintln!("run {}: rollback failed: {e}\nfix the cause and run the same rollback again", meta.id),
    }
    Ok(code)
}

pub async fn rollback(cli: &Cli, a: &RollbackArgs) -> Result<i32> {
    let site = Site::open(&a.site)?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let runtime = cli.runtime()?;
    let mut meta = match &a.run {
        Some(id) => site.runs.load(id)?,
        None => site.runs.latest(&site.section)?.with_context(|| format!("no run of {} in {}: nothing to roll back", site.section, site.runs.dir.display()))?,
    };
    if meta.product != site.section {
        anyhow::bail!("run {} is of {}, not {}", meta.id, meta.product, site.section);
    }
    if meta.status == RunStatus::RolledBack {
        eprintln!("refused: run {} was already rolled back; rolling back twice would overwrite what {} {} wrote since", meta.id, meta.product, meta.source);
        return Ok(1);
    }
    let plugin = find_by_hash(&runtime, &site.plugins_dir(cli), &meta.plugin_hash, &meta.plugin, &cli.policy(&site.config.trust)?).await?;
    let ctx = match site.context(&plugin, &meta.source, &meta.target) {
        Ok(c) => c,
        Err(m) => {
            eprintln!("refused: {m}");
            return Ok(1);
        }
    };
    let grants = match site.grants(&plugin) {
        Ok(g) => g,
        Err(m) => {
            eprintln!("refused: {m}");
            return Ok(1);
        }
    };
    let reporter: Arc<dyn Reporter> = Arc::new(Terminal::new(a.transcript, false));
    let run_dir = site.runs.run_dir(&meta.id);
    let env = site.env(site.config.backup_dir.join(&meta.id), RunRecords::at(run_dir.join("records.json"))?, reporter, a.yes, &grants)?;
    let question = format!("Roll back run {} ({} {} -> {}, {}): restore the MetaDB from its backups and restart {} {}?", meta.id, meta.product, meta.source, meta.target, meta.status.words(), meta.product, meta.source);
    if !env.caps.services.confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    meta.status = RunStatus::RollingBack;
    site.runs.save(&meta)?;
    let outcome = plugin.loaded.rollback(&env, &ctx).await;
    site.save_transcript(&meta, &env, "rollback-calls.json");
    finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &a.site)
}

pub async fn runs(a: &RunsArgs) -> Result<i32> {
    let config = SiteConfig::load(&a.config)?;
    let runs = Runs::new(&config.state_dir());
    if let Some(id) = &a.show {
        let m = runs.load(id)?;
        let records = std::fs::read_to_string(runs.run_dir(id).join("records.json")).unwrap_or_default();
        if a.json {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"run": m, "records": serde_json::from_str::<serde_json::Value>(&records).ok()}))?);
        } else {
            println!("run {}: {} {} -> {} with {} — {}", m.id, m.product, m.source, m.target, m.plugin, m.status.words());
            if let Some(e) = &m.error {
                println!("error: {e}");
            }
            println!("records: {}", Path::new(&runs.run_dir(id)).join("records.json").display());
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
            println!("{:<28} {:<6} {} -> {:<8} {}", m.id, m.product, m.source, m.target, m.status.words());
        }
    }
    Ok(0)
}
