//! `opshost upgrade|rollback|runs` on a real deployment described by the site config.

use super::Cli;
use crate::bindings::Context;
use crate::capabilities::services::RunRecords;
use crate::capabilities::Capabilities;
use crate::config::{ProductConfig, SiteConfig};
use crate::grants::Grants;
use crate::journal::entry::Header;
use crate::journal::{Journal, Replay};
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
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
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
    Show { id: String },
}

/// The value, or print why the command refuses (nothing was changed) and exit 1.
macro_rules! or_refuse {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(m) => {
                eprintln!("refused: {m}");
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
            Some(t) => Ok(Grants::new(&plugin.manifest, Some(t.clone()))),
            None => Err(format!(
                "the site config grants plugin {} nothing; review what it needs and add:\n\n{}",
                plugin.manifest.name,
                suggest_grants(&plugin.manifest, &self.product.parameters)
            )),
        }
    }

    pub fn env(&self, backup_dir: PathBuf, records: RunRecords, reporter: Arc<dyn Reporter>, yes: bool, grants: &Grants, journal: Option<Arc<Journal>>) -> Result<RunEnv> {
        Ok(RunEnv {
            journal,
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

    pub fn config_hash(&self) -> Result<String> {
        Ok(crate::runtime::engine::sha256_hex(&std::fs::read(&self.path)?))
    }

    fn header(&self, meta: &RunMeta, operation: &str) -> Result<Header> {
        Ok(Header { run: meta.id.clone(), operation: operation.into(), plugin: meta.plugin.clone(), plugin_hash: meta.plugin_hash.clone(), site_config_hash: self.config_hash()? })
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
    let ctx = or_refuse!(site.context(&plugin, &from, to));
    let grants = or_refuse!(site.grants(&plugin));
    let reporter: Arc<dyn Reporter> = if json { Arc::new(crate::runtime::report::Silent) } else { Arc::new(Terminal::new(false, false)) };
    let scratch = tempfile_dir()?;
    let env = site.env(scratch.clone(), RunRecords::in_memory(), reporter, false, &grants, None)?;
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
    let ctx = or_refuse!(site.context(&plugin, &from, &a.to));
    let grants = or_refuse!(site.grants(&plugin));
    let reporter: Arc<dyn Reporter> = Arc::new(Terminal::new(a.transcript, false));
    // Plan first: prechecks on the real deployment, nothing changes.
    let scratch = tempfile_dir()?;
    let plan_env = site.env(scratch.clone(), RunRecords::in_memory(), reporter.clone(), a.yes, &grants, None)?;
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
    let journal = Arc::new(Journal::create(&run_dir.join("upgrade.journal"), site.header(&meta, "upgrade")?)?);
    let env = site.env(site.config.backup_dir.join(&meta.id), RunRecords::at(run_dir.join("records.json"))?, reporter, a.yes, &grants, Some(journal))?;
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
    let ctx = or_refuse!(site.context(&plugin, &meta.source, &meta.target));
    let grants = or_refuse!(site.grants(&plugin));
    let reporter: Arc<dyn Reporter> = Arc::new(Terminal::new(a.transcript, false));
    let run_dir = site.runs.run_dir(&meta.id);
    let journal_path = next_rollback_journal(&run_dir);
    let env = site.env(site.config.backup_dir.join(&meta.id), RunRecords::at(run_dir.join("records.json"))?, reporter, a.yes, &grants, None)?;
    let question = format!("Roll back run {} ({} {} -> {}, {}): restore the MetaDB from its backups and restart {} {}?", meta.id, meta.product, meta.source, meta.target, meta.status.words(), meta.product, meta.source);
    if !env.caps.services.confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    meta.status = RunStatus::RollingBack;
    site.runs.save(&meta)?;
    let env = RunEnv { journal: Some(Arc::new(Journal::create(&journal_path, site.header(&meta, "rollback")?)?)), ..env };
    let outcome = plugin.loaded.rollback(&env, &ctx).await;
    site.save_transcript(&meta, &env, "rollback-calls.json");
    finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &a.site)
}

pub async fn runs(a: &RunsArgs) -> Result<i32> {
    let Some(config_path) = &a.config else { anyhow::bail!("give the site config: opshost runs list --config site.toml") };
    let config = SiteConfig::load(config_path)?;
    let runs = Runs::new(&config.state_dir());
    if let Some(RunsCmd::Show { id }) = &a.cmd {
        let m = runs.load(id)?;
        let records = std::fs::read_to_string(runs.run_dir(id).join("records.json")).unwrap_or_default();
        let site_args = format!("--config {} --product {}", config_path.display(), m.product);
        let words = explain(&site_args, &m, &runs.run_dir(id));
        if a.json {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"run": m, "explanation": words, "records": serde_json::from_str::<serde_json::Value>(&records).ok()}))?);
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
            println!("{:<28} {:<6} {} -> {:<8} {}", m.id, m.product, m.source, m.target, m.status.words());
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
        RunStatus::Upgrading => Some(run_dir.join("upgrade.journal")),
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
            RunStatus::UpgradeFailed | RunStatus::RollbackFailed => out.push(format!("next: opshost rollback {site_args} --run {} (restores from the backups this run recorded)", meta.id)),
            RunStatus::Upgraded => out.push(format!("next: nothing; to undo it: opshost rollback {site_args} --run {}", meta.id)),
            _ => {}
        }
        return out;
    };
    match Replay::load(&path) {
        Ok((h, r)) => {
            out.push(format!("the host stopped during the {} after {} completed calls{}", h.operation, r.completed(), if r.truncated_tail { " (the last journal line was cut off and is ignored)" } else { "" }));
            if let Some(last) = r.calls.iter().rev().find(|c| c.outcome.is_some()) {
                out.push(format!("last completed: #{} {} {}", last.seq, last.call, last.args));
            }
            match r.in_doubt() {
                Some(c) if c.effect == crate::runtime::host_call::Effect::Write => {
                    out.push(format!("in doubt: #{} {} {} started, and it is not known whether it finished; resume will ask before running it again", c.seq, c.call, c.args))
                }
                Some(c) => out.push(format!("in doubt: #{} {} started; it is safe to repeat, resume runs it again", c.seq, c.call)),
                None => {}
            }
            out.push(format!("resume: opshost resume {} {site_args} replays those {} calls without touching anything, then continues the {} live", meta.id, r.completed(), h.operation));
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
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long)]
    pub yes: bool,
    /// Resume even though the site config changed since the run started.
    #[arg(long)]
    pub allow_config_change: bool,
    #[arg(long)]
    pub transcript: bool,
}

pub async fn resume(cli: &Cli, a: &ResumeArgs) -> Result<i32> {
    let config = SiteConfig::load(&a.config)?;
    let runs = Runs::new(&config.state_dir());
    let mut meta = runs.load(&a.run)?;
    let site = Site::open(&SiteArgs { config: a.config.clone(), product: meta.product.clone() })?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let run_dir = runs.run_dir(&meta.id);
    let Some(path) = interrupted_journal(&run_dir, meta.status) else {
        eprintln!("refused: run {} is {}: there is nothing to resume{}", meta.id, meta.status.words(), if meta.status == RunStatus::UpgradeFailed { " (the upgrade failed: roll it back)" } else { "" });
        return Ok(1);
    };
    let (journal, header) = Journal::reopen(&path)?;
    if header.plugin_hash != meta.plugin_hash {
        anyhow::bail!("the journal of run {} was written by plugin {} {}, the run says {}: refusing to resume", meta.id, header.plugin, header.plugin_hash, meta.plugin_hash);
    }
    if header.site_config_hash != site.config_hash()? && !a.allow_config_change {
        eprintln!("refused: the site config {} changed since run {} started; resume with the config it ran with, or pass --allow-config-change if the change is deliberate", a.config.display(), meta.id);
        return Ok(1);
    }
    let runtime = cli.runtime()?;
    let plugin = find_by_hash(&runtime, &site.plugins_dir(cli), &meta.plugin_hash, &meta.plugin, &cli.policy(&site.config.trust)?).await?;
    let ctx = or_refuse!(site.context(&plugin, &meta.source, &meta.target));
    let grants = or_refuse!(site.grants(&plugin));
    let site_args = format!("--config {} --product {}", a.config.display(), meta.product);
    for line in explain(&site_args, &meta, &run_dir) {
        eprintln!("{line}");
    }
    let reporter: Arc<dyn Reporter> = Arc::new(Terminal::new(a.transcript, false));
    let env = site.env(site.config.backup_dir.join(&meta.id), RunRecords::at(run_dir.join("records.json"))?, reporter, a.yes, &grants, Some(Arc::new(journal)))?;
    let upgrading = header.operation == "upgrade";
    let outcome = if upgrading { plugin.loaded.upgrade(&env, &ctx).await } else { plugin.loaded.rollback(&env, &ctx).await };
    site.save_transcript(&meta, &env, if upgrading { "resume-upgrade-calls.json" } else { "resume-rollback-calls.json" });
    meta.error = None;
    let sa = SiteArgs { config: a.config.clone(), product: meta.product.clone() };
    if upgrading {
        finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::Upgraded, RunStatus::UpgradeFailed, &sa)
    } else {
        finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &sa)
    }
}
