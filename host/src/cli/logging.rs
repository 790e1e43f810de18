//! What reaches the terminal besides a command's own output: `-q` (warnings, errors, the plan,
//! notices and the outcome), the default, `-v` (plugin debug logs and every host call with its
//! duration and outcome), `-vv` (each call's arguments too). The host's diagnostics are
//! `tracing` events on stderr; `RUST_LOG` (e.g. `RUST_LOG=opshost=trace,mysql_async=debug`)
//! sets their filter instead of `-v`. Colour only on a terminal and never under `NO_COLOR`.
//! The run's own `run.log` holds everything whatever the level.

use crate::report::{set_verbosity, Verbosity};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Set the terminal's level for this process and start the diagnostics subscriber.
pub fn init(verbose: u8, quiet: bool) {
    let verbosity = match (quiet, verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        (false, 1) => Verbosity::Verbose,
        (false, _) => Verbosity::Trace,
    };
    set_verbosity(verbosity);
    let default = match verbosity {
        Verbosity::Quiet => "error",
        Verbosity::Normal => "warn",
        Verbosity::Verbose => "warn,opshost=debug",
        Verbosity::Trace => "info,opshost=trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG={v:?} is not a valid filter ({e}); using {default:?}");
            EnvFilter::new(default)
        }),
        _ => EnvFilter::new(default),
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).without_time().try_init();
}
