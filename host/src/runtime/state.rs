//! Per-run store data ([`HostState`]), the sandbox limits (and the [`SandboxLimiter`] that holds
//! a plugin's memories and tables to them in total), and everything a run shares across the
//! stores of its plan, upgrade and rollback calls ([`RunEnv`]).

use crate::capabilities::services::RunRecords;
use crate::capabilities::Capabilities;
use crate::config::Limits;
use crate::grants::Grants;
use crate::report::Reporter;
use crate::runtime::record::{Faults, Transcript};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What the stores of one run share.
#[derive(Clone)]
pub struct RunEnv {
    pub caps: Capabilities,
    pub records: RunRecords,
    pub reporter: Arc<dyn Reporter>,
    pub limits: Limits,
    pub faults: Faults,
    pub transcript: Transcript,
    pub grants: Arc<Grants>,
    /// The run journal (real runs); None on the fake host.
    pub journal: Option<Arc<crate::journal::Journal>>,
    /// What the site says about containers and tables beyond the grants.
    pub site: Arc<SitePolicy>,
    /// Images, mounts and networks the run has seen on granted containers or loaded from
    /// granted archives: what a container the plugin runs may use (kept in the run records).
    pub approved: Arc<std::sync::Mutex<crate::capabilities::docker::policy::Approved>>,
    /// Backups taken so far in this run (count, bytes), against `max_backups`/`max_backup_gb`.
    pub backups_taken: Arc<std::sync::Mutex<(u32, u64)>>,
    /// Resume may run again a change whose outcome the journal does not know (the operator's
    /// `--rerun-in-doubt`; `--yes` never does).
    pub rerun_in_doubt: bool,
}

/// Site facts the sandbox applies beyond the grants.
#[derive(Clone, Debug, Default)]
pub struct SitePolicy {
    /// `[docker_policy] deny_privileged`: `--privileged` is dropped from every container run.
    pub deny_privileged: bool,
    /// Tables a capability owns (database, table): statements may not name them (OMS
    /// `oms_normal_config`, which only the console capability reads and writes).
    pub reserved_tables: Vec<(String, String)>,
    /// `[docker_policy] secret_env`: variables that hold credentials besides those whose names
    /// say so (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*KEY*`).
    pub secret_env: Vec<String>,
    /// The site's own credentials (the MetaDB connections' passwords), as (what a plugin is
    /// shown instead, the value): a container's files and output may hold them too (OMS keeps
    /// the MetaDB password in its config.yaml), and the plugin never sees them.
    pub credentials: Vec<(String, String)>,
}

impl SitePolicy {
    /// The tables the console capability owns, from its config.
    pub fn for_console(console: &crate::capabilities::console::config::ConsoleConfig, deny_privileged: bool, secret_env: Vec<String>) -> SitePolicy {
        let reserved_tables = console.rm_db.iter().map(|db| (db.clone(), "oms_normal_config".to_string())).collect();
        SitePolicy { deny_privileged, reserved_tables, secret_env, credentials: Vec::new() }
    }

    /// With the password of each MetaDB connection of `metadb` that has one, hidden from the plugin.
    pub fn with_credentials(mut self, metadb: &std::collections::BTreeMap<String, crate::capabilities::sql::mysql::config::ConnectionConfig>) -> SitePolicy {
        for (name, connection) in metadb {
            if let Ok(Some(password)) = connection.password(name) {
                self.credentials.push((format!("opshost-secret:metadb/{name}"), password));
            }
        }
        self
    }
}

/// Holds all of a plugin's linear memories and tables to one total each (wasmtime's own
/// `StoreLimits` bounds each one separately, and a component can have many).
pub struct SandboxLimiter {
    max_memory: usize,
    max_table_elements: usize,
    memory: usize,
    table_elements: usize,
}

/// Instances, memories and tables one plugin may have (a Rust component has a handful).
const MAX_INSTANCES: usize = 32;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;

impl SandboxLimiter {
    pub fn new(limits: &Limits) -> Self {
        SandboxLimiter { max_memory: (limits.memory_mb << 20) as usize, max_table_elements: limits.max_table_elements as usize, memory: 0, table_elements: 0 }
    }
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory - current.min(self.memory) + desired;
        if total > self.max_memory {
            wasmtime::bail!(
                "forcing trap when growing memory to {desired} bytes: the plugin's memories would hold {total} bytes together, over memory_mb = {} in [limits]",
                self.max_memory >> 20
            );
        }
        self.memory = total;
        Ok(true)
    }
    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements - current.min(self.table_elements) + desired;
        if total > self.max_table_elements {
            wasmtime::bail!("forcing trap when growing a table to {desired} elements: the plugin's tables would hold {total} together, over max_table_elements = {} in [limits]", self.max_table_elements);
        }
        self.table_elements = total;
        Ok(true)
    }
    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// What a store may do, besides what its grants allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `upgrade` and `rollback`: every granted call.
    Full,
    /// `plan`: reads only; every call that could change something is refused.
    ReadOnly,
    /// `manifest`: no host calls at all.
    NoHost,
}

pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: SandboxLimiter,
    pub mode: Mode,
    /// What the run's stores share: capabilities, records, reporter, limits, grants, journal…
    pub env: RunEnv,
    pub notices: Vec<String>,
    /// Notices past `max_notices`, dropped.
    pub notices_dropped: u64,
    /// Bytes of log lines and progress labels written for the plugin (bounded by `max_log_mb`),
    /// and whether some past that were dropped.
    pub logged_bytes: u64,
    pub log_dropped: bool,
    /// Wall time spent in host calls: excluded from the plugin's CPU budget.
    pub host_time: Duration,
    /// Wall time spent after each call making its outcome durable in the run journal and adding
    /// it to the transcript (host bookkeeping, not the plugin's): excluded from the CPU budget.
    pub bookkeeping_time: Duration,
    /// Bytes of arguments and outcomes this store has kept whole in the transcript (bounded).
    pub transcript_bytes: usize,
    /// Host calls made so far, and sleep asked for so far (both bounded by [`Limits`]).
    pub calls_made: u64,
    pub slept: Duration,
}

/// The most WASI resources (streams, pollables) a plugin may hold at once.
pub const MAX_RESOURCES: usize = 1024;

impl HostState {
    pub fn new(env: &RunEnv) -> Self {
        // No preopened directories, no environment, no arguments, no network.
        let wasi = WasiCtxBuilder::new().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        // WASI's streams and pollables live in the table, outside the guest's `memory_mb`: a
        // plugin holds a few at a time, so a thousand is plenty and bounds what it could pile up
        // (wasmtime's default is a million).
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        HostState {
            wasi,
            table,
            limiter: SandboxLimiter::new(&env.limits),
            mode: Mode::Full,
            env: env.clone(),
            notices: Vec::new(),
            notices_dropped: 0,
            logged_bytes: 0,
            log_dropped: false,
            host_time: Duration::ZERO,
            bookkeeping_time: Duration::ZERO,
            transcript_bytes: 0,
            calls_made: 0,
            slept: Duration::ZERO,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl crate::bindings::opshost::plugin::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_are_bounded_together() {
        let limits = Limits { memory_mb: 10, max_table_elements: 100, ..Limits::default() };
        let mut l = SandboxLimiter::new(&limits);
        // Two memories of 4 MiB each fit; growing one of them to 7 MiB would make 11 MiB.
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(l.memory_growing(4 << 20, 7 << 20, None).unwrap_err().to_string().contains("memory_mb = 10"));
        assert!(l.memory_growing(4 << 20, 6 << 20, None).unwrap());
        assert!(l.table_growing(0, 60, None).unwrap());
        assert!(l.table_growing(0, 41, None).is_err());
        assert!(l.table_growing(0, 40, None).unwrap());
    }
}
