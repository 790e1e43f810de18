//! `opshost demo`: the README's first command. Upgrades a simulated OMS 4.1.1 to 4.2.0 on the
//! fake host with the bundled plugin, rolls it back, and shows what changed and what came back.

use super::Cli;
use crate::fakehost::runner::{run_scenario_with, StepReport};
use crate::fakehost::scenario::Scenario;
use crate::registry::Plugin;
use crate::report::Terminal;
use anyhow::Result;
use clap::Args;
use std::path::Path;
use std::sync::Arc;

/// The OMS 4.1.1 -> 4.2.0 plugin, built with the host (host/build.rs).
pub const BUNDLED_OMS_420: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oms_4_2_0.wasm"));
/// The public half of the test vendor key the bundled plugins are signed with.
pub const TEST_VENDOR_KEY: &str = include_str!("../../../plugins/keys/test-vendor.pub");
pub const DEMO_BASE: &str = include_str!("../../../plugins/oms-4.2.0/scenarios/_oms-4.1.1-deployment.toml");
pub const DEMO_SCENARIO: &str = include_str!("../../../plugins/oms-4.2.0/scenarios/01-happy-path-then-rollback.toml");

#[derive(Args)]
pub struct DemoArgs {
    /// Also print every capability call the plugin makes.
    #[arg(long)]
    pub transcript: bool,
    /// Print the report (each step's plan, calls, checks, and what changed) as JSON instead of text.
    #[arg(long, conflicts_with = "transcript")]
    pub json: bool,
}

pub async fn run(cli: &Cli, a: &DemoArgs) -> Result<i32> {
    let runtime = cli.runtime()?;
    // The demo trusts the test vendor key and nothing else: the bundled plugin must verify under it.
    let policy = crate::registry::signature::Policy {
        trust: crate::registry::signature::TrustStore::default().with_key("test-vendor", TEST_VENDOR_KEY)?,
        allow_unsigned: false,
    };
    let plugin = Plugin::from_bytes(&runtime, Path::new("<bundled oms-4.2.0>"), BUNDLED_OMS_420, &policy).await?;
    let scenario = Scenario::parse_layers(&[DEMO_BASE, DEMO_SCENARIO], "the demo scenario")?;
    if a.json {
        let report = run_scenario_with(&plugin.loaded, &scenario, Arc::new(crate::report::Silent), &mut |_| {}, &mut |_| {}).await?;
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"plugin": plugin.summary(), "report": report}))?);
        return Ok(if report.passed { 0 } else { 1 });
    }
    println!("opshost demo: OMS 4.1.1 -> 4.2.0 on the fake host (in-memory Docker, embedded SQL MetaDB, virtual clock)");
    let signers = match &plugin.verdict {
        crate::registry::signature::Verdict::Trusted { signers } => signers.join(", "),
        crate::registry::signature::Verdict::Unverified { .. } => "nobody".into(),
    };
    println!(
        "plugin {} ({}), signed by {signers}, {}\n",
        plugin.manifest.name,
        &plugin.loaded.hash[..19],
        if plugin.loaded.cached { "from the compile cache" } else { "compiled now" }
    );
    let report = run_scenario_with(
        &plugin.loaded,
        &scenario,
        Arc::new(Terminal::new(a.transcript, false)),
        &mut |step: &str| println!("\n== {step} =="),
        &mut |step: &StepReport| print_step(step),
    )
    .await?;
    println!("\nSummary");
    let upgrade_ok = report.steps.iter().any(|s| s.step == "upgrade" && s.error.is_none());
    println!(
        "  upgrade:  {}",
        if upgrade_ok { "OMS 4.2.0 ran in oms_420 with oms_411's mounts; schema migrated by docker_init.sh; HA back on" } else { "FAILED" }
    );
    let restored: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.step == "rollback")
        .flat_map(|s| s.checks.iter().filter(|c| c.ok && c.what != "outcome ok").map(|c| c.what.clone()))
        .collect();
    println!("  rollback: {} checks hold:", restored.len());
    for r in &restored {
        println!("    ok {r}");
    }
    if report.changes.is_empty() {
        println!("  end state equals the start state");
    } else {
        println!("  left behind on purpose (kept for inspection / not restorable by design):");
        for c in &report.changes {
            println!("    - {c}");
        }
    }
    println!("\n{}", if report.passed { "demo passed: OMS restored" } else { "demo FAILED: see the checks above" });
    Ok(if report.passed { 0 } else { 1 })
}

fn print_step(step: &StepReport) {
    if let Some(plan) = &step.plan {
        crate::ops::upgrade::print_plan("oms-4.2.0", plan);
    }
    match &step.error {
        None => println!("{} finished ({} host calls)", step.step, step.calls.len()),
        Some(e) => println!("{} failed ({}): {}", step.step, e.kind(), e.message()),
    }
    // Notices were printed as they came (the terminal reporter).
    for c in step.checks.iter().filter(|c| !c.ok) {
        println!("  FAIL {}: {}", c.what, c.detail);
    }
}
