//! `opshost plugins list|inspect`: what is in the drop-in directory, and one plugin in detail.
//! (`plugins new` / `plugin new` is in plugin_new.rs.)

use super::Cli;
use crate::registry::signature::TRUST_HINT;
use crate::registry::{scan_to_read, Plugin};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PluginsCmd {
    /// Every plugin in the plugin directory: name, product, versions, hash, signers, and whether a
    /// trusted key lets it run (exit 1 when one is unreadable or not trusted).
    List {
        /// Plugin directory (overrides --plugins-dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A plugin's manifest: versions, what it needs, its parameters (trusted or not: reading it
    /// runs nothing but its manifest, with no host at all).
    Inspect {
        /// The plugin file (.wasm).
        file: PathBuf,
        /// Print the summary and manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a plugin crate for one version hop: builds and passes its scenarios out of the box.
    New(super::plugin_new::NewArgs),
}

pub async fn run(cli: &Cli, cmd: &PluginsCmd) -> Result<i32> {
    let runtime = cli.runtime()?;
    match cmd {
        PluginsCmd::List { dir, json } => {
            let dir = dir.clone().unwrap_or_else(|| cli.plugins_dir());
            let found = scan_to_read(&runtime, &dir, &cli.policy(&[])?).await?;
            let untrusted = found.iter().filter(|f| matches!(f, Ok(p) if !p.summary().trusted)).count();
            let mut bad = untrusted;
            if *json {
                let rows: Vec<serde_json::Value> = found
                    .iter()
                    .map(|f| match f {
                        Ok(p) => serde_json::to_value(p.summary()).unwrap(),
                        Err((path, e)) => serde_json::json!({"path": path.display().to_string(), "error": format!("{e:#}")}),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                bad += found.iter().filter(|f| f.is_err()).count();
            } else {
                if found.is_empty() {
                    println!("no plugins in {}", dir.display());
                }
                for f in &found {
                    match f {
                        Ok(p) => {
                            let s = p.summary();
                            let signers = match &s.not_trusted {
                                None => format!("signed by {}", s.signers.join("+")),
                                Some(why) if why.ends_with("is not signed") => "NOT TRUSTED: unsigned".to_string(),
                                Some(why) if why.contains("no key is trusted") => "NOT TRUSTED: signed; no key is trusted yet".to_string(),
                                Some(_) => "NOT TRUSTED: signed by a key not trusted here".to_string(),
                            };
                            println!(
                                "{:<14} {:<4} {} -> {:<8} {}  {:<24} {}",
                                s.name,
                                s.product,
                                s.sources.join(","),
                                s.target,
                                &s.hash[..19],
                                signers,
                                s.path
                            );
                        }
                        Err((path, e)) => {
                            bad += 1;
                            println!("{:<14} unusable: {e:#}  {}", "?", path.display());
                        }
                    }
                }
            }
            if untrusted > 0 && !*json {
                println!("{untrusted} plugin(s) not trusted: plan and upgrade refuse them. {TRUST_HINT}.");
            }
            Ok(if bad > 0 { 1 } else { 0 })
        }
        PluginsCmd::Inspect { file, json } => {
            let p = Plugin::open_to_read(&runtime, file, &cli.policy(&[])?).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"summary": p.summary(), "manifest": p.manifest}))?);
                return Ok(0);
            }
            let m = &p.manifest;
            println!("{} — {} {} -> {}", m.name, m.product, m.sources.join(", "), m.target);
            println!("file:   {}\nsha256: {}", p.path.display(), p.loaded.hash.trim_start_matches("sha256:"));
            match &p.verdict {
                crate::registry::signature::Verdict::Trusted { signers } => println!("signed: by {}", signers.join(", ")),
                crate::registry::signature::Verdict::Unverified { reason } => {
                    println!("signed: NOT TRUSTED ({reason}): plan and upgrade refuse it. {TRUST_HINT}.")
                }
            }
            println!("needs:");
            for n in &m.needs {
                println!("  {:<14} {:<12} {}", n.capability, n.target, n.why);
            }
            println!("parameters:");
            for prm in &m.parameters {
                println!("  {:<18} {}{}", prm.name, prm.description, prm.default.as_ref().map(|d| format!(" [default: {d}]")).unwrap_or_default());
            }
            Ok(0)
        }
        PluginsCmd::New(a) => super::plugin_new::run(a),
    }
}
