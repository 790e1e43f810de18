//! `opshost check`: the findings of [`crate::ops::check`], one line each (or JSON), exit 1 when
//! something would make an upgrade refuse.

use super::Cli;
use crate::ops::check::{CheckRequest, Status};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckArgs {
    /// The site config to check.
    #[arg(long, value_name = "FILE", env = "OPSHOST_CONFIG")]
    pub config: PathBuf,
    /// Check this product section only (default: every product of the site config).
    #[arg(long)]
    pub product: Option<String>,
    /// Also check the route to this version: every hop's plugin found, trusted and granted.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Print the findings as JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: &Cli, a: &CheckArgs) -> Result<i32> {
    let request = CheckRequest { config: a.config.clone(), product: a.product.clone(), to: a.to.clone() };
    let findings = crate::ops::check::check(&cli.setup(), &request).await?;

    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warned = findings.iter().filter(|f| f.status == Status::Warn).count();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"findings": findings, "failed": failed, "warnings": warned}))?);
    } else {
        for f in &findings {
            let tag = match f.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            let mut lines = f.detail.lines();
            println!("{tag}  {:<18} {}", f.subject, lines.next().unwrap_or(""));
            for l in lines {
                println!("      {:<18} {l}", "");
            }
        }
        println!();
        if failed > 0 {
            println!("{failed} failed, {warned} warnings: an upgrade would refuse; fix each FAIL line, then check again");
        } else {
            println!("0 failed, {warned} warnings: nothing found that would make an upgrade refuse");
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
