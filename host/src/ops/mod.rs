//! The operations a site runs, as a library: open a site and plan a route ([`site`], [`upgrade`]),
//! upgrade, roll back ([`rollback`]), resume ([`resume`]), look a site over ([`check`]), the runs
//! and their locks ([`runs`]).
//! Each takes a typed request and reports through the run's [`crate::report::Reporter`] and the
//! event stream ([`events`]: human lines, and JSON lines under `--json`); it returns the exit
//! status the command ends with (0 done, 1 refused or failed, 130 stopped at the operator's
//! request). `cli/` parses arguments into these requests and calls them; nothing here imports `cli`.

use crate::registry::signature::{Policy, TrustEntry, TrustStore};
use crate::runtime::engine::Runtime;
use anyhow::Result;
use std::path::PathBuf;

/// The value, or print why the operation refuses (nothing was changed) and return exit status 1.
macro_rules! or_refuse {
    ($e:expr) => {
        or_refuse!($e, "refused")
    };
    ($e:expr, $how:literal) => {
        match $e {
            Ok(v) => v,
            Err(m) => {
                eprintln!(concat!($how, ": {}"), m);
                return Ok(1);
            }
        }
    };
}

pub mod check;
pub mod events;
pub mod resume;
pub mod rollback;
pub mod runs;
pub mod site;
pub mod upgrade;

/// What every operation takes from the invocation rather than the site: where plugin files are,
/// which keys to trust besides the site config's, and the compile cache.
pub struct Setup {
    /// Overrides the site config's `plugins_dir`.
    pub plugins_dir: Option<PathBuf>,
    /// None compiles every time.
    pub cache_dir: Option<PathBuf>,
    pub trust: Vec<PathBuf>,
    pub allow_unsigned: bool,
}

impl Setup {
    pub fn runtime(&self) -> Result<Runtime> {
        Runtime::new(self.cache_dir.clone())
    }

    /// The trust policy: this setup's keys plus `extra` (the site config's).
    pub fn policy(&self, extra: &[TrustEntry]) -> Result<Policy> {
        let mut keys: Vec<TrustEntry> = self.trust.iter().cloned().map(Into::into).collect();
        keys.extend(extra.iter().cloned());
        Ok(Policy { trust: TrustStore::load_entries(&keys)?, allow_unsigned: self.allow_unsigned })
    }

    /// Plugin files without a site: this setup's directory, else `plugins/` next to the binary.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir.clone().unwrap_or_else(crate::registry::default_dir)
    }
}

/// One product of a site config.
#[derive(Clone, Debug)]
pub struct SiteRef {
    pub config: PathBuf,
    pub product: String,
}

/// Upgrade a product to a version.
pub struct UpgradeRequest {
    pub site: SiteRef,
    pub to: String,
    /// Answer yes to the confirmation.
    pub yes: bool,
    /// Print every capability call with its arguments and result.
    pub transcript: bool,
    /// Stream JSON lines on stdout (needs `yes`).
    pub json: bool,
}

/// Roll back a run, or the run on top with the rest of its route.
pub struct RollbackRequest {
    pub site: SiteRef,
    pub run: Option<String>,
    pub yes: bool,
    pub transcript: bool,
    pub json: bool,
}

/// Resume a run the host stopped in.
pub struct ResumeRequest {
    pub run: String,
    pub config: PathBuf,
    /// Never re-runs a call in doubt (that is `rerun_in_doubt`).
    pub yes: bool,
    pub rerun_in_doubt: bool,
    pub allow_config_change: bool,
    pub transcript: bool,
    pub json: bool,
}
