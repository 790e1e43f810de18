//! `opshost plan`: prechecks and the ordered steps an upgrade would take; changes nothing.

use super::Cli;
use crate::fakehost::scenario::Scenario;
use crate::fakehost::FakeHost;
use crate::registry::{context_for, resolve};
use crate::report::{Silent, Terminal};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(true).args(["scenario", "config"])))]
pub struct PlanArgs {
    /// With --scenario: the plugin file, or plugin name in the plugin directory.
    #[arg(requires = "scenario")]
    pub plugin: Option<String>,
    /// Plan against the fake deployment a scenario describes.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Plan against the real deployment of a site config (read-only); --scenario goes first.
    #[arg(long, value_name = "FILE", env = "OPSHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// With --config: the product section of the site config, e.g. oms.
    #[arg(long)]
    pub product: Option<String>,
    /// With --config: the target version.
    #[arg(long)]
    pub to: Option<String>,
    /// Print the plan as JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: &Cli, a: &PlanArgs) -> Result<i32> {
    if a.scenario.is_none() {
        let (Some(config), Some(product), Some(to)) = (&a.config, &a.product, &a.to) else {
            anyhow::bail!("with --config (or OPSHOST_CONFIG) give --product P --to VERSION");
        };
        return crate::ops::upgrade::plan(&cli.setup(), &crate::ops::SiteRef { config: config.clone(), product: product.clone() }, to, a.json).await;
    }
    let (Some(plugin), Some(scenario)) = (&a.plugin, &a.scenario) else {
        anyhow::bail!("give PLUGIN --scenario FILE, or --config FILE --product P --to VERSION");
    };
    let runtime = cli.runtime()?;
    let plugin = resolve(&runtime, plugin, &cli.plugins_dir(), &cli.policy(&[])?).await?;
    let s = Scenario::load(scenario)?;
    let reporter: Arc<dyn crate::report::Reporter> = if a.json { Arc::new(Silent) } else { Arc::new(Terminal::new(false, false)) };
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
        Ok(plan) => crate::ops::upgrade::print_plan(&plugin.manifest.name, &plan),
        Err(e) if a.json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({"error": e}))?),
        Err(e) => {
            eprintln!("refused ({}): {}", e.kind(), e.message());
            return Ok(1);
        }
    }
    Ok(0)
}
