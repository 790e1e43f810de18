//! `opshost plan`: prechecks and the ordered steps an upgrade would take; changes nothing.

use super::Cli;
use crate::bindings::Plan;
use crate::fakehost::scenario::Scenario;
use crate::fakehost::FakeHost;
use crate::registry::{context_for, resolve};
use crate::runtime::report::{Silent, Terminal};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct PlanArgs {
    /// Plugin file, or plugin name in the plugin directory.
    pub plugin: String,
    /// Plan against the deployment a fake-host scenario describes.
    #[arg(long)]
    pub scenario: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: &Cli, a: &PlanArgs) -> Result<i32> {
    let runtime = cli.runtime()?;
    let plugin = resolve(&runtime, &a.plugin, &cli.plugins_dir()).await?;
    let s = Scenario::load(&a.scenario)?;
    let reporter: Arc<dyn crate::runtime::report::Reporter> = if a.json { Arc::new(Silent) } else { Arc::new(Terminal::new(false, false)) };
    let fake = FakeHost::new(&s, reporter)?;
    let ctx = match context_for(&plugin.manifest, &s.product, &s.source, &s.target, &s.parameters, &s.nodes) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("refused: {}", e.message());
            return Ok(1);
        }
    };
    let outcome = plugin.loaded.plan(&fake.env, &ctx).await?;
    match outcome.result {
        Ok(plan) if a.json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Ok(plan) => print_plan(&plugin.manifest.name, &plan),
        Err(e) if a.json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({"error": e}))?),
        Err(e) => {
            eprintln!("refused ({}): {}", e.kind(), e.message());
            return Ok(1);
        }
    }
    Ok(0)
}

pub fn print_plan(plugin: &str, plan: &Plan) {
    println!("Plan of {plugin}");
    println!("Found:");
    for f in &plan.findings {
        println!("  - {f}");
    }
    println!("Upgrade steps:");
    for (i, s) in plan.steps.iter().enumerate() {
        println!("  {:>2}. {:<20} {} {}", i + 1, s.title, if s.changes { "[changes]  " } else { "[read-only]" }, s.detail);
    }
    println!("Rollback, if needed:");
    for (i, s) in plan.rollback.iter().enumerate() {
        println!("  {:>2}. {:<20} {}", i + 1, s.title, s.detail);
    }
}
