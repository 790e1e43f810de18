//! `opshost test`: run a plugin against fake-host scenarios and report every expectation.

use super::Cli;
use crate::fakehost::runner::{run_scenario, ScenarioReport};
use crate::fakehost::scenario::Scenario;
use crate::registry::resolve;
use crate::report::{Reporter, Silent, Terminal};
use anyhow::{Context as _, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct TestArgs {
    /// Plugin file, or plugin name in the plugin directory.
    pub plugin: String,
    /// Scenario files, or directories of them (*.toml).
    #[arg(long, required = true, num_args = 1..)]
    pub scenario: Vec<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print every capability call with its arguments and result.
    #[arg(long)]
    pub transcript: bool,
}

pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "toml") && !f.file_name().is_some_and(|n| n.to_string_lossy().starts_with('_')))
                .collect();
            found.sort();
            anyhow::ensure!(!found.is_empty(), "no scenario files (*.toml) in {}", p.display());
            out.extend(found);
        } else {
            anyhow::ensure!(p.is_file(), "scenario {} does not exist", p.display());
            out.push(p.clone());
        }
    }
    Ok(out)
}

pub async fn run(cli: &Cli, a: &TestArgs) -> Result<i32> {
    let runtime = cli.runtime()?;
    let plugin = resolve(&runtime, &a.plugin, &cli.plugins_dir(), &cli.policy(&[])?).await?;
    let mut reports = Vec::new();
    for file in scenario_files(&a.scenario)? {
        let s = Scenario::load(&file)?;
        let reporter: Arc<dyn Reporter> = if a.json || !a.transcript { Arc::new(Silent) } else { Arc::new(Terminal::new(true, false)) };
        if !a.json {
            eprintln!("scenario {} ({})", s.name, file.display());
        }
        let report = run_scenario(&plugin.loaded, &s, reporter).await?;
        if !a.json {
            print_report(&report, a.transcript);
        }
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!("{} passed, {} failed", reports.len() - failed, failed);
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

pub fn print_report(r: &ScenarioReport, verbose: bool) {
    for step in &r.steps {
        let head = match &step.error {
            None => "ok".to_string(),
            Some(e) => format!("{} ({})", e.kind(), e.message()),
        };
        println!("  {} {:<8} {head}", if step.ok { "PASS" } else { "FAIL" }, step.step);
        for c in &step.checks {
            if !c.ok || verbose {
                println!(
                    "       {} {}{}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.what,
                    if c.ok || c.detail.is_empty() { String::new() } else { format!(": {}", c.detail) }
                );
            }
        }
    }
    for f in &r.unfired_faults {
        println!("  FAIL fault never fired: {f}");
    }
    println!("  {} {}", if r.passed { "passed" } else { "FAILED" }, r.scenario);
}
