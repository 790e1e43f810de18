//! Per-run store data ([`HostState`]), the sandbox limits, and everything a run shares across
//! the stores of its plan, upgrade and rollback calls ([`RunEnv`]).

use crate::capabilities::services::RunRecords;
use crate::capabilities::Capabilities;
use crate::grants::Grants;
use crate::runtime::host_call::{Faults, Transcript};
use crate::runtime::report::Reporter;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Sandbox limits; `[limits]` in the site config, with safe defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory a plugin may grow to.
    pub memory_mb: u64,
    /// CPU time the plugin's own code may use per call (time in host calls does not count).
    pub cpu_seconds: u64,
    /// Deadline of an ordinary host call.
    pub call_timeout_s: u64,
    /// Deadline of dumps, restores, image loads, exec and waits.
    pub long_call_timeout_s: u64,
    /// Largest arguments or result one host call may carry (JSON bytes).
    pub max_payload_bytes: usize,
    /// Longest single sleep a plugin may ask for.
    pub max_sleep_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: 256, cpu_seconds: 60, call_timeout_s: 300, long_call_timeout_s: 6 * 3600, max_payload_bytes: 16 << 20, max_sleep_ms: 600_000 }
    }
}

impl Limits {
    /// Cut a plugin-provided string for output to a sane size.
    pub fn clip(&self, mut s: String) -> String {
        const MAX: usize = 64 * 1024;
        if s.len() > MAX {
            let mut end = MAX;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str(" …[clipped]");
        }
        s
    }
}

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
}

pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub store_limits: StoreLimits,
    pub caps: Capabilities,
    pub records: RunRecords,
    pub reporter: Arc<dyn Reporter>,
    pub limits: Limits,
    pub faults: Faults,
    pub transcript: Transcript,
    pub notices: Vec<String>,
    pub grants: Arc<Grants>,
    pub journal: Option<Arc<crate::journal::Journal>>,
    /// Wall time spent in host calls: excluded from the plugin's CPU budget.
    pub host_time: Duration,
}

impl HostState {
    pub fn new(env: &RunEnv) -> Self {
        // No preopened directories, no environment, no arguments, no network.
        let wasi = WasiCtxBuilder::new().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            store_limits: StoreLimitsBuilder::new().memory_size((env.limits.memory_mb << 20) as usize).instances(16).tables(64).memories(16).trap_on_grow_failure(true).build(),
            caps: env.caps.clone(),
            records: env.records.clone(),
            reporter: env.reporter.clone(),
            limits: env.limits.clone(),
            faults: env.faults.clone(),
            transcript: env.transcript.clone(),
            notices: Vec::new(),
            grants: env.grants.clone(),
            journal: env.journal.clone(),
            host_time: Duration::ZERO,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl crate::bindings::opshost::plugin::types::Host for HostState {}
