//! Instantiate a plugin in a fresh store (memory limit, CPU budget) and call one export.

use crate::bindings::{Context, Error, Manifest, Plan};
use crate::runtime::engine::LoadedPlugin;
use crate::runtime::state::{HostState, RunEnv};
use anyhow::Result;
use wasmtime::error::Context as _;
use std::time::{Duration, Instant};
use wasmtime::{Store, UpdateDeadline};

/// Ticks between CPU-budget checks.
const CHECK_EVERY_TICKS: u64 = 10;

/// What a call to `upgrade`, `rollback` or `plan` gave: the plugin's own typed result, and the
/// notices it left for the operator.
pub struct Outcome<T> {
    pub result: Result<T, Error>,
    pub notices: Vec<String>,
}

/// A plugin's own error, its message cut to a sane size (a plugin can return megabytes).
fn clipped<T>(limits: &crate::runtime::state::Limits, r: Result<T, Error>) -> Result<T, Error> {
    r.map_err(|e| Error::from_kind(e.kind(), limits.clip(e.message().to_string())).expect("known kind"))
}

impl LoadedPlugin {
    fn store(&self, env: &RunEnv) -> Store<HostState> {
        let mut store = Store::new(&self.engine, HostState::new(env));
        store.limiter(|s| &mut s.store_limits);
        let started = Instant::now();
        let budget = Duration::from_secs(env.limits.cpu_seconds);
        store.set_epoch_deadline(CHECK_EVERY_TICKS);
        store.epoch_deadline_callback(move |ctx| {
            let guest = started.elapsed().saturating_sub(ctx.data().host_time);
            if guest > budget {
                return Err(wasmtime::format_err!(
                    "the plugin ran for more than {} s of its own CPU time (cpu_seconds in [limits]); it was stopped",
                    budget.as_secs()
                ));
            }
            Ok(UpdateDeadline::Continue(CHECK_EVERY_TICKS))
        });
        store
    }

    pub async fn manifest(&self, env: &RunEnv) -> Result<Manifest> {
        let mut store = self.store(env);
        let p = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
        Ok(p.call_manifest(&mut store).await.context("the plugin trapped in manifest()")?)
    }

    pub async fn plan(&self, env: &RunEnv, ctx: &Context) -> Result<Outcome<Plan>> {
        let mut store = self.store(env);
        let p = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
        let result = clipped(&env.limits, p.call_plan(&mut store, ctx).await.context("the plugin trapped in plan()")?);
        Ok(Outcome { result, notices: std::mem::take(&mut store.data_mut().notices) })
    }

    pub async fn upgrade(&self, env: &RunEnv, ctx: &Context) -> Result<Outcome<()>> {
        let mut store = self.store(env);
        let p = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
        let result = clipped(&env.limits, p.call_upgrade(&mut store, ctx).await.context("the plugin trapped in upgrade()")?);
        Ok(Outcome { result, notices: std::mem::take(&mut store.data_mut().notices) })
    }

    pub async fn rollback(&self, env: &RunEnv, ctx: &Context) -> Result<Outcome<()>> {
        let mut store = self.store(env);
        let p = self.pre.instantiate_async(&mut store).await.context("instantiating the plugin")?;
        let result = clipped(&env.limits, p.call_rollback(&mut store, ctx).await.context("the plugin trapped in rollback()")?);
        Ok(Outcome { result, notices: std::mem::take(&mut store.data_mut().notices) })
    }
}
