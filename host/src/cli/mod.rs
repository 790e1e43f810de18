//! The `opshost` command line: one file per subcommand.

mod check;
mod demo;
mod keys;
mod logging;
mod plan;
mod plugin_new;
mod plugins;
mod run;
pub mod run_report;
mod test;

use crate::runtime::engine::{default_cache_dir, Runtime};
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "opshost", version, about = "Upgrade and roll back OceanBase ops products (OMS, ODC) in Docker through sandboxed WASM plugins")]
pub struct Cli {
    /// Directory of plugin files (default: plugins/ next to the binary).
    #[arg(long, global = true, value_name = "DIR", env = "OPSHOST_PLUGINS")]
    pub plugins_dir: Option<PathBuf>,
    /// Compile cache (default: ~/.cache/opshost).
    #[arg(long, global = true, value_name = "DIR", env = "OPSHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile plugins every time instead of using the cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Trusted public key (PEM), besides the site config's `trust`; repeatable.
    #[arg(long, global = true, value_name = "FILE")]
    pub trust: Vec<PathBuf>,
    /// Run plugins without a valid signature from a trusted key. For plugin development only.
    #[arg(long, global = true)]
    pub allow_unsigned: bool,
    /// More on stderr: -v plugin debug logs and each host call with its duration and outcome,
    /// -vv each call's arguments too. RUST_LOG (e.g. opshost=trace,mysql_async=debug) sets the
    /// diagnostics' filter instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less on stderr: warnings, errors, notices, the plan and the outcome only (run.log keeps all).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List and inspect plugin files; start a new plugin crate (new).
    #[command(subcommand, visible_alias = "plugin")]
    Plugins(plugins::PluginsCmd),
    /// Show what an upgrade would do (prechecks and ordered steps); changes nothing.
    Plan(plan::PlanArgs),
    /// Look a site over before the night: engines, MetaDBs, privileges, backup space, containers,
    /// plugins, signatures and grants, one line each; exit 1 when an upgrade would refuse.
    Check(check::CheckArgs),
    /// Upgrade a product of the site config to a version (plan, confirm, run).
    Upgrade(run::UpgradeArgs),
    /// Roll back a run from what it recorded (default: the product's latest run).
    Rollback(run::RollbackArgs),
    /// Runs on this site: status, records, where an interrupted run stopped.
    Runs(run::RunsArgs),
    /// Continue a run the host stopped in (crash, kill, reboot): replay its journal, then go on live.
    Resume(run::ResumeArgs),
    /// Run a plugin against fake-host scenarios; exit 0 only when every expectation holds.
    Test(test::TestArgs),
    /// Upgrade, then roll back, a simulated OMS 4.1.1 on the fake host, step by step.
    Demo(demo::DemoArgs),
    /// Signing keys.
    #[command(subcommand)]
    Key(keys::KeyCmd),
    /// Add a signature to a plugin (keeps the ones it has).
    Sign(keys::SignArgs),
    /// Check a plugin's signature against trusted keys; exit 0 only when one verifies it.
    Verify(keys::VerifyArgs),
    /// Shell completions on stdout, e.g. `opshost completions bash > /etc/bash_completion.d/opshost`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout, e.g. `opshost man > /usr/local/share/man/man1/opshost.1`;
    /// with --dir, one page per command written there (opshost.1, opshost-upgrade.1, …).
    Man {
        /// Write every command's page into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

impl Cli {
    /// What the operations take from the global flags.
    pub fn setup(&self) -> crate::ops::Setup {
        crate::ops::Setup {
            plugins_dir: self.plugins_dir.clone(),
            cache_dir: if self.no_cache { None } else { self.cache_dir.clone().or_else(default_cache_dir) },
            trust: self.trust.clone(),
            allow_unsigned: self.allow_unsigned,
        }
    }
    pub fn runtime(&self) -> Result<Runtime> {
        self.setup().runtime()
    }
    /// The trust policy: `--trust` keys plus `extra` (the site config's), `--allow-unsigned`.
    pub fn policy(&self, extra: &[crate::registry::signature::TrustEntry]) -> Result<crate::registry::signature::Policy> {
        self.setup().policy(extra)
    }
    pub fn plugins_dir(&self) -> PathBuf {
        self.setup().plugins_dir()
    }
}

/// Generated text to stdout; a reader that stops early (`| head`) is no error.
fn print_all(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

/// Run the command line; returns the process exit code (0 ok, 1 a check or step failed,
/// 2 the command could not run).
pub fn main() -> i32 {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return 2;
        }
    };
    let result = rt.block_on(async {
        if matches!(cli.command, Command::Upgrade(_) | Command::Rollback(_) | Command::Resume(_)) {
            crate::runtime::interrupt::install();
        }
        match &cli.command {
            Command::Plugins(plugins::PluginsCmd::New(a)) => plugin_new::run(a), // no runtime needed
            Command::Plugins(c) => plugins::run(&cli, c).await,
            Command::Plan(a) => plan::run(&cli, a).await,
            Command::Check(a) => check::run(&cli, a).await,
            Command::Upgrade(a) => run::upgrade(&cli, a).await,
            Command::Rollback(a) => run::rollback(&cli, a).await,
            Command::Runs(a) => run::runs(a).await,
            Command::Resume(a) => run::resume(&cli, a).await,
            Command::Test(a) => test::run(&cli, a).await,
            Command::Demo(a) => demo::run(&cli, a).await,
            Command::Key(c) => keys::key(c),
            Command::Sign(a) => keys::sign_cmd(a),
            Command::Verify(a) => keys::verify_cmd(&cli.trust, a),
            Command::Completions { shell } => {
                let mut out = Vec::new();
                clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "opshost", &mut out);
                print_all(&out)
            }
            Command::Man { dir: Some(dir) } => {
                std::fs::create_dir_all(dir)?;
                clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)?;
                println!("man pages written to {}", dir.display());
                Ok(0)
            }
            Command::Man { dir: None } => {
                let mut out = Vec::new();
                clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
                print_all(&out)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::text::continued(&format!("{e:#}"), "  "));
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "opshost", &mut missing);
        assert!(missing.is_empty(), "flags without help:\n{}", missing.join("\n"));
        Cli::command().debug_assert();
    }
}
