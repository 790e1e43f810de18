//! `opshost upgrade|rollback|resume|runs`: their arguments, each turned into the request of its
//! operation in [`crate::ops`]; and the runs listing (`runs list|show`), rendered here.

use super::Cli;
use crate::capabilities::services::{RunRecords, RECORDS_FILE};
use crate::config::SiteConfig;
use crate::ops::resume::explain;
use crate::ops::runs::Runs;
use crate::ops::{ResumeRequest, RollbackRequest, SiteRef, UpgradeRequest};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

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
    /// Stream JSON lines on stdout (schema: ops/events.rs; needs --yes); human text goes to stderr.
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
    /// Stream JSON lines on stdout (schema: ops/events.rs; needs --yes); human text goes to stderr.
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

pub async fn runs(a: &RunsArgs) -> Result<i32> {
    let Some(config_path) = &a.config else { anyhow::bail!("give the site config: opshost runs list --config site.toml") };
    let config = SiteConfig::load(config_path)?;
    let runs = Runs::new(&config.state_dir());
    if let Some(RunsCmd::Show { id, html }) = &a.cmd {
        let m = runs.load(id)?;
        let records = RunRecords::read(&runs.run_dir(id))?;
        let site_args = format!("--config {} --product {}", config_path.display(), m.product);
        let words = explain(&site_args, &m, &runs.run_dir(id));
        if let Some(file) = html {
            let page = super::run_report::render(&m, &runs.run_dir(id), &words);
            std::fs::write(file, page).map_err(|e| anyhow::anyhow!("writing the run report {}: {e}", file.display()))?;
            println!("run report of {id} written to {}", file.display());
            return Ok(0);
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"run": m, "explanation": words, "records": records}))?);
        } else {
            for line in words {
                println!("{line}");
            }
            println!("records ({}):", runs.run_dir(id).join(RECORDS_FILE).display());
            println!("{}", serde_json::to_string_pretty(&records)?);
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
    /// Stream JSON lines on stdout (schema: ops/events.rs; needs --yes); human text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

impl SiteArgs {
    pub fn site(&self) -> SiteRef {
        SiteRef { config: self.config.clone(), product: self.product.clone() }
    }
}

pub async fn upgrade(cli: &Cli, a: &UpgradeArgs) -> Result<i32> {
    let request = UpgradeRequest { site: a.site.site(), to: a.to.clone(), yes: a.yes, transcript: a.transcript, json: a.json };
    crate::ops::upgrade::upgrade(&cli.setup(), &request).await
}

pub async fn rollback(cli: &Cli, a: &RollbackArgs) -> Result<i32> {
    let request = RollbackRequest { site: a.site.site(), run: a.run.clone(), yes: a.yes, transcript: a.transcript, json: a.json };
    crate::ops::rollback::rollback(&cli.setup(), &request).await
}

pub async fn resume(cli: &Cli, a: &ResumeArgs) -> Result<i32> {
    let request = ResumeRequest {
        run: a.run.clone(),
        config: a.config.clone(),
        yes: a.yes,
        rerun_in_doubt: a.rerun_in_doubt,
        allow_config_change: a.allow_config_change,
        transcript: a.transcript,
        json: a.json,
    };
    crate::ops::resume::resume(&cli.setup(), &request).await
}
