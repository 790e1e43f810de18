//! Instantiate a plugin in a fresh store (memory limit, CPU budget, what it may call) and call
//! one export within a wall-clock deadline. `manifest()` runs with no host calls and a short
//! deadline; `plan()` with reads only.

use crate::bindings::{Context, Error, Manifest, Plan, UpgradePlugin};
use crate::runtime::engine::LoadedPlugin;
use crate::runtime::state::{HostState, Mode, RunEnv};
use crate::text::{one_line, printable};
use anyhow::Result;
use std::time::{Duration, Instant};
use wasmtime::error::Context as _;
use wasmtime::{Store, UpdateDeadline};

/// Ticks between CPU-budget checks.
const CHECK_EVERY_TICKS: u64 = 10;

/// `manifest()` describes the plugin and needs nothing: this much CPU and wall time at most.
const MANIFEST_BUDGET: Duration = Duration::from_secs(2);
const MANIFEST_DEADLINE: Duration = Duration::from_secs(5);

/// What a call to `upgrade`, `rollback` or `plan` gave: the plugin's own typed result, and the
/// notices it left for the operator, and where its time went.
pub struct Outcome<T> {
    pub result: Result<T, Error>,
    pub notices: Vec<String>,
    pub timing: ExportTiming,
}

/// Where one export's wall time went: in host calls (Docker, SQL, waits), in the host's
/// bookkeeping after each call (the journal's durable end entry, the transcript), or in the
/// plugin and the runtime (instantiation, guest code, the host-call path up to the backend). A
/// run writes it to `timing.json` in its folder; the downtime bench reports the WASM layer's
/// share from it.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ExportTiming {
    /// From instantiation to the export's return, microseconds.
    pub wall_us: u64,
    /// Inside host calls, microseconds.
    pub host_calls_us: u64,
    /// Journal end entries (fsync) and transcript entries, microseconds.
    pub bookkeeping_us: u64,
    /// The rest: the plugin and the runtime, microseconds.
    pub plugin_and_runtime_us: u64,
}

impl ExportTiming {
    fn new(wall: Duration, host: Duration, bookkeeping: Duration) -> ExportTiming {
        let (wall_us, host_calls_us, bookkeeping_us) = (wall.as_micros() as u64, host.as_micros() as u64, bookkeeping.as_micros() as u64);
        ExportTiming { wall_us, host_calls_us, bookkeeping_us, plugin_and_runtime_us: wall_us.saturating_sub(host_calls_us + bookkeeping_us) }
    }
}

/// A plugin's own error, its message cut to a sane size (a plugin can return megabytes) and its
/// control characters escaped (it reaches the terminal).
fn clipped<T>(limits: &crate::config::Limits, r: Result<T, Error>) -> Result<T, Error> {
    r.map_err(|e| Error::from_kind(e.kind(), printable(&limits.clip(e.message().to_string())).into_owned()).expect("known kind"))
}

/// The most findings, and the most steps of the upgrade and of the rollback, a plan may have:
/// far above any product's, low enough that the host's own lines (its grants, its warnings)
/// stay in sight above the prompt.
pub const MAX_PLAN_ITEMS: usize = 200;

/// `invalid-input` for a plan of more than [`MAX_PLAN_ITEMS`] findings or steps.
fn within_plan_size(p: &Plan) -> Result<(), Error> {
    for (what, n) in [("findings", p.findings.len()), ("upgrade steps", p.steps.len()), ("rollback steps", p.rollback.len())] {
        if n > MAX_PLAN_ITEMS {
            return Err(Error::InvalidInput(format!("the plugin's plan has {n} {what}, more than the {MAX_PLAN_ITEMS} opshost shows: the plugin is faulty")));
        }
    }
    Ok(())
}

/// A plan as the host shows it: every text the plugin wrote made printable.
fn printable_plan(mut p: Plan) -> Plan {
    for f in &mut p.findings {
        *f = printable(f).into_owned();
    }
    for s in p.steps.iter_mut().chain(p.rollback.iter_mut()) {
        s.title = one_line(&s.title).into_owned();
        s.detail = one_line(&s.detail).into_owned();
    }
    p
}

impl LoadedPlugin {
    fn store(&self, env: &RunEnv, mode: Mode) -> Store<HostState> {
        let mut state = HostState::new(env);
        state.mode = mode;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let started = Instant::now();
        let budget =
            if mode == Mode::NoHost { MANIFEST_BUDGET.min(Duration::from_secs(env.limits.cpu_seconds)) } else { Duration::from_secs(env.limits.cpu_seconds) };
        store.set_epoch_deadline(CHECK_EVERY_TICKS);
        store.epoch_deadline_callback(move |ctx| {
            let guest = started.elapsed().saturating_sub(ctx.data().host_time + ctx.data().bookkeeping_time);
            if guest > budget {
                return Err(wasmtime::format_err!(
                    "the plugin ran for more than {} s of its own CPU time (cpu_seconds in [limits]); it was stopped",
                    budget.as_secs_f64()
                ));
            }
            Ok(UpdateDeadline::Continue(CHECK_EVERY_TICKS))
        });
        store
    }

    pub async fn manifest(&self, env: &RunEnv) -> Result<Manifest> {
        let mut store = self.store(env, Mode::NoHost);
        let call = async {
            let p = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
            anyhow::Ok(p.call_manifest(&mut store).await.map_err(|trap| trapped("manifest", trap))?)
        };
        tokio::time::timeout(MANIFEST_DEADLINE, call)
            .await
            .map_err(|_| anyhow::anyhow!("the plugin's manifest() did not return within {} s: it is not usable", MANIFEST_DEADLINE.as_secs()))?
    }

    pub async fn plan(&self, env: &RunEnv, ctx: &Context) -> Result<Outcome<Plan>> {
        let mut o = self.export(env, Mode::ReadOnly, "plan", ctx, |p, store, ctx| Box::pin(p.call_plan(store, ctx))).await?;
        o.result = o.result.and_then(|p| within_plan_size(&p).map(|_| printable_plan(p)));
        Ok(o)
    }

    pub async fn upgrade(&self, env: &RunEnv, ctx: &Context) -> Result<Outcome<()>> {
        self.export(env, Mode::Full, "upgrade", ctx, |p, store, ctx| Box::pin(p.call_upgrade(store, ctx))).await
    }

    pub async fn rollback(&self, env: &RunEnv, ctx: &Context) -> Result<Outcome<()>> {
        self.export(env, Mode::Full, "rollback", ctx, |p, store, ctx| Box::pin(p.call_rollback(store, ctx))).await
    }

    /// One export in a fresh store of `mode`, within `export_timeout_s`.
    async fn export<T>(
        &self,
        env: &RunEnv,
        mode: Mode,
        name: &str,
        ctx: &Context,
        call: impl for<'a> FnOnce(&'a UpgradePlugin, &'a mut Store<HostState>, &'a Context) -> ExportFuture<'a, T>,
    ) -> Result<Outcome<T>> {
        let mut store = self.store(env, mode);
        let deadline = Duration::from_secs(env.limits.export_timeout_s);
        let started = Instant::now();
        let run = async {
            let p = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
            let r = call(&p, &mut store, ctx).await.map_err(|trap| trapped(name, trap))?;
            anyhow::Ok(clipped(&env.limits, r))
        };
        let result = tokio::time::timeout(deadline, run).await.map_err(|_| {
            anyhow::anyhow!("the plugin's {name}() did not finish within {} s (export_timeout_s in [limits]); it was stopped", deadline.as_secs())
        })??;
        let timing = ExportTiming::new(started.elapsed(), store.data().host_time, store.data().bookkeeping_time);
        Ok(Outcome { result, notices: std::mem::take(&mut store.data_mut().notices), timing })
    }
}

/// A trap in export `name` as one error of text: wasmtime's backtrace names functions as the
/// plugin's own name section spells them, so its control characters are escaped (a function
/// named `\x1b[1A…` would repaint the operator's terminal).
fn trapped(name: &str, trap: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("the plugin trapped in {name}(): {}", crate::text::printable(&format!("{trap:#}")))
}

type ExportFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<Result<T, Error>>> + Send + 'a>>;
