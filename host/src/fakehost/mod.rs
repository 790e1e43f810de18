//! The fake host, a product feature for plugin authors: a scenario ([`scenario`]) sets up an
//! in-memory Docker, a MetaDB on embedded SQLite, console servers and a virtual clock
//! ([`FakeHost`]); the runner ([`runner`]) drives a plugin through plan, upgrade and rollback
//! on the real runtime and checks the scenario's expectations.

pub mod runner;
pub mod scenario;

use crate::capabilities::console::fake::fake_console;
use crate::capabilities::docker::fake::FakeDocker;
use crate::capabilities::services::fake::{FakeServices, VirtualClock};
use crate::capabilities::services::RunRecords;
use crate::capabilities::sql::fake::FakeSql;
use crate::capabilities::Capabilities;
use crate::config::Limits;
use crate::report::Reporter;
use crate::runtime::record::Faults;
use crate::runtime::state::{RunEnv, SitePolicy};
use anyhow::{Context as _, Result};
use scenario::Scenario;
use std::sync::{Arc, Mutex};

/// The fake backends of one scenario, kept so the runner can look at their state.
pub struct FakeHost {
    pub docker: Arc<FakeDocker>,
    pub sql: Arc<FakeSql>,
    pub clock: VirtualClock,
    pub env: RunEnv,
}

impl FakeHost {
    /// Hold the plugin to its manifest, and to the scenario's `[grants]` when it has them.
    pub fn bind_grants(&mut self, manifest: &crate::bindings::Manifest, granted: Option<crate::grants::GrantTable>) {
        self.env.grants = Arc::new(crate::grants::Grants::new(manifest, granted));
    }
}

impl FakeHost {
    pub fn new(s: &Scenario, reporter: Arc<dyn Reporter>) -> Result<Self> {
        let clock = VirtualClock::starting_at(s.clock_start_ms);
        let sql = Arc::new(FakeSql::new(s.sql.connections.clone()).with_limits(&s.limits.clone().unwrap_or_default()));
        for (db, script) in &s.sql.databases {
            crate::capabilities::sql::check_identifier("database", db).map_err(|e| anyhow::anyhow!("{e}"))?;
            sql.apply(db, script).map_err(|e| anyhow::anyhow!("setting up database {db}: {e}"))?;
        }
        let docker = Arc::new(FakeDocker::new(&s.docker, sql.clone(), clock.clone()).map_err(|e| anyhow::anyhow!("setting up docker: {e}"))?);
        let console = fake_console(s.console.clone(), sql.clone(), docker.clone());
        let site = Arc::new(SitePolicy::for_console(&s.console, false, Vec::new()));
        let caps = Capabilities {
            docker: docker.clone(),
            sql: sql.clone(),
            console: Arc::new(console),
            services: Arc::new(FakeServices { clock: clock.clone(), confirm_answer: s.confirm }),
        };
        let env = RunEnv {
            caps,
            records: RunRecords::in_memory(),
            reporter,
            limits: s.limits.clone().unwrap_or_default(),
            faults: Faults::new(s.faults.clone()).context("scenario faults")?,
            transcript: Arc::new(Mutex::new(Vec::new())),
            // Bound to the plugin's manifest once it is read (runner::run_scenario).
            grants: Arc::new(crate::grants::Grants::unrestricted()),
            journal: None,
            site,
            approved: Default::default(),
            backups_taken: Default::default(),
            rerun_in_doubt: false,
        };
        env.approved.lock().unwrap().approve_parameters(&s.parameters);
        Ok(FakeHost { docker, sql, clock, env })
    }
}

/// A run environment whose capabilities hold nothing: for calling `manifest()` (which must not
/// need the host) when listing or inspecting plugins.
pub fn inert_env() -> RunEnv {
    let clock = VirtualClock::starting_at(0);
    let sql = Arc::new(FakeSql::new(Vec::<String>::new()));
    let docker = Arc::new(FakeDocker::new(&Default::default(), sql.clone(), clock.clone()).expect("empty setup is valid"));
    let console = crate::capabilities::console::config::ConsoleConfig {
        connection: String::new(),
        rm_db: Some("rm".into()),
        cm_db: Some("cm".into()),
        servers_query: String::new(),
    };
    RunEnv {
        caps: Capabilities {
            docker: docker.clone(),
            sql: sql.clone(),
            console: Arc::new(fake_console(console, sql, docker)),
            services: Arc::new(FakeServices { clock, confirm_answer: false }),
        },
        records: RunRecords::in_memory(),
        reporter: Arc::new(crate::report::Silent),
        limits: Limits::default(),
        faults: Faults::default(),
        transcript: Arc::new(Mutex::new(Vec::new())),
        grants: Arc::new(crate::grants::Grants::unrestricted()),
        journal: None,
        site: Default::default(),
        approved: Default::default(),
        backups_taken: Default::default(),
        rerun_in_doubt: false,
    }
}
