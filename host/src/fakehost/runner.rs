//! Run a scenario: build the fake host, call plan / upgrade / rollback on the real runtime,
//! check that plan changed nothing, and check every expectation against the fake state.

use super::scenario::{ContainerExpect, Expect, Scenario};
use super::FakeHost;
use crate::bindings::{Error, Plan};
use crate::capabilities::docker::{ContainerState, RunSpec};
use crate::registry::context_for;
use crate::report::Reporter;
use crate::runtime::engine::LoadedPlugin;
use crate::runtime::record::CallRecord;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One checked expectation.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub ok: bool,
    pub error: Option<Error>,
    pub plan: Option<Plan>,
    pub notices: Vec<String>,
    pub checks: Vec<Check>,
    /// Transcript entries of this step.
    pub calls: Vec<CallRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub plugin: String,
    pub plugin_hash: String,
    pub passed: bool,
    pub steps: Vec<StepReport>,
    pub unfired_faults: Vec<String>,
    /// What differs between the initial state and the end state, in words.
    pub changes: Vec<String>,
}

/// The observable state of the fake deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub containers: BTreeMap<(String, String), (ContainerState, RunSpec)>,
    pub checksums: BTreeMap<String, String>,
    pub images: BTreeMap<String, Vec<String>>,
}

impl Snapshot {
    pub fn take(fake: &FakeHost, nodes: &[String]) -> Result<Snapshot> {
        let containers = fake.docker.containers().into_iter().map(|(node, state, spec)| ((node, spec.name.clone()), (state, spec))).collect();
        let mut checksums = BTreeMap::new();
        for db in fake.sql.database_names() {
            checksums.insert(db.clone(), fake.sql.checksum_now(&db).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        let images = nodes.iter().map(|n| (n.clone(), fake.docker.images(n))).collect();
        Ok(Snapshot { containers, checksums, images })
    }

    /// Differences from `before`, in words.
    pub fn changes_since(&self, before: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (key, (state, spec)) in &self.containers {
            match before.containers.get(key) {
                None => out.push(format!("container {} on {}: new, {} ({})", key.1, key.0, state.as_str(), spec.image)),
                Some((s0, spec0)) => {
                    if s0 != state {
                        out.push(format!("container {} on {}: {} -> {}", key.1, key.0, s0.as_str(), state.as_str()));
                    }
                    if spec0 != spec {
                        out.push(format!("container {} on {}: options changed", key.1, key.0));
                    }
                }
            }
        }
        for key in before.containers.keys().filter(|k| !self.containers.contains_key(*k)) {
            out.push(format!("container {} on {}: removed", key.1, key.0));
        }
        for (db, sum) in &self.checksums {
            match before.checksums.get(db) {
                None => out.push(format!("database {db}: created")),
                Some(s0) if s0 != sum => out.push(format!("database {db}: content changed")),
                _ => {}
            }
        }
        for db in before.checksums.keys().filter(|d| !self.checksums.contains_key(*d)) {
            out.push(format!("database {db}: dropped"));
        }
        for (node, images) in &self.images {
            for i in images.iter().filter(|i| !before.images.get(node).is_some_and(|b| b.contains(i))) {
                out.push(format!("image {i} on {node}: loaded"));
            }
        }
        out
    }
}

fn check(checks: &mut Vec<Check>, what: impl Into<String>, ok: bool, detail: impl Into<String>) {
    checks.push(Check { what: what.into(), ok, detail: detail.into() });
}

/// Run `scenario` against `plugin` on a fresh fake host.
pub async fn run_scenario(plugin: &LoadedPlugin, scenario: &Scenario, reporter: Arc<dyn Reporter>) -> Result<ScenarioReport> {
    run_scenario_with(plugin, scenario, reporter, &mut |_: &str| {}, &mut |_: &StepReport| {}).await
}

/// [`run_scenario`], telling the caller as each step begins and ends (the demo narrates with it).
pub async fn run_scenario_with(
    plugin: &LoadedPlugin,
    scenario: &Scenario,
    reporter: Arc<dyn Reporter>,
    on_begin: &mut dyn FnMut(&str),
    on_end: &mut dyn FnMut(&StepReport),
) -> Result<ScenarioReport> {
    let mut fake = FakeHost::new(scenario, reporter.clone())?;
    let initial = Snapshot::take(&fake, &scenario.nodes)?;
    let initial_params = params_now(&fake, scenario).await;
    let manifest = plugin.manifest(&fake.env).await?;
    fake.bind_grants(&manifest, scenario.grants.clone());
    let ctx = context_for(&manifest, &scenario.product, &scenario.source, &scenario.target, &scenario.parameters, &scenario.nodes);
    let mut steps = Vec::new();
    for step in &scenario.steps {
        on_begin(step);
        let before = Snapshot::take(&fake, &scenario.nodes)?;
        let first_call = fake.env.transcript.lock().unwrap().len();
        let (result, notices, plan) = match &ctx {
            Err(refusal) => (Err(refusal.clone()), Vec::new(), None),
            Ok(ctx) => match step.as_str() {
                "plan" => match plugin.plan(&fake.env, ctx).await {
                    Ok(o) => {
                        let plan = o.result.as_ref().ok().cloned();
                        (o.result.map(|_| ()), o.notices, plan)
                    }
                    Err(trap) => (Err(trapped(trap)), Vec::new(), None),
                },
                "upgrade" => match plugin.upgrade(&fake.env, ctx).await {
                    Ok(o) => (o.result, o.notices, None),
                    Err(trap) => (Err(trapped(trap)), Vec::new(), None),
                },
                _ => match plugin.rollback(&fake.env, ctx).await {
                    Ok(o) => (o.result, o.notices, None),
                    Err(trap) => (Err(trapped(trap)), Vec::new(), None),
                },
            },
        };
        let calls: Vec<CallRecord> = fake.env.transcript.lock().unwrap()[first_call..].to_vec();
        let after = Snapshot::take(&fake, &scenario.nodes)?;
        let mut checks = Vec::new();
        if step == "plan" {
            let changed = after.changes_since(&before);
            check(&mut checks, "plan changed nothing", changed.is_empty(), changed.join("; "));
        }
        let expect = match step.as_str() {
            "plan" => scenario.expect.plan.as_ref(),
            "upgrade" => scenario.expect.upgrade.as_ref(),
            _ => scenario.expect.rollback.as_ref(),
        };
        match expect {
            Some(e) => evaluate(e, &fake, &initial, &initial_params, &result, &notices, plan.as_ref(), &calls, &mut checks).await,
            None => check(&mut checks, "outcome ok", result.is_ok(), result.as_ref().err().map(|e| e.to_string()).unwrap_or_default()),
        }
        let ok = checks.iter().all(|c| c.ok);
        let report = StepReport { step: step.clone(), ok, error: result.err(), plan, notices, checks, calls };
        on_end(&report);
        steps.push(report);
    }
    let unfired_faults = fake.env.faults.unfired();
    let end = Snapshot::take(&fake, &scenario.nodes)?;
    Ok(ScenarioReport {
        scenario: scenario.name.clone(),
        plugin: manifest.name.clone(),
        plugin_hash: plugin.hash.clone(),
        passed: steps.iter().all(|s| s.ok) && unfired_faults.is_empty(),
        steps,
        unfired_faults,
        changes: end.changes_since(&initial),
    })
}

/// A trap (the plugin crashed, or a sandbox limit stopped it) as the step's failure.
fn trapped(trap: anyhow::Error) -> Error {
    Error::Failed(format!("the plugin stopped: {trap:#}"))
}

/// Values of every parameter an expectation names, now.
async fn params_now(fake: &FakeHost, s: &Scenario) -> BTreeMap<String, Option<String>> {
    let mut names: Vec<&String> = Vec::new();
    for e in [&s.expect.plan, &s.expect.upgrade, &s.expect.rollback].into_iter().flatten() {
        names.extend(e.parameters.keys());
        names.extend(e.parameters_as_initial.iter());
        names.extend(e.parameters_as_initial_except.keys());
    }
    let mut out = BTreeMap::new();
    for n in names {
        out.insert(n.clone(), fake.env.caps.console.get_parameter(n).await.ok().flatten());
    }
    out
}

/// The checksum of `db` with each of `changed` set back to its initial value, then to the value
/// it has now; None when a parameter cannot be set (the checks then fail).
async fn checksum_with_initial_parameters(fake: &FakeHost, db: &str, changed: &[&String], initial: &BTreeMap<String, Option<String>>) -> Option<String> {
    let console = &fake.env.caps.console;
    let mut now = Vec::new();
    for name in changed {
        now.push((*name, console.get_parameter(name).await.ok().flatten()?));
        console.set_parameter(name, initial.get(*name)?.as_deref()?).await.ok()?;
    }
    let sum = fake.sql.checksum_now(db).ok();
    for (name, value) in now {
        console.set_parameter(name, &value).await.ok()?;
    }
    sum
}

#[allow(clippy::too_many_arguments)]
async fn evaluate(
    e: &Expect,
    fake: &FakeHost,
    initial: &Snapshot,
    initial_params: &BTreeMap<String, Option<String>>,
    result: &Result<(), Error>,
    notices: &[String],
    plan: Option<&Plan>,
    calls: &[CallRecord],
    checks: &mut Vec<Check>,
) {
    match (e.outcome.as_str(), result) {
        ("ok", Ok(())) => check(checks, "outcome ok", true, ""),
        ("ok", Err(err)) => check(checks, "outcome ok", false, err.to_string()),
        (_, Ok(())) => check(checks, "outcome error", false, "the step succeeded"),
        (_, Err(err)) => {
            check(checks, "outcome error", true, err.to_string());
            if let Some(text) = &e.error_contains {
                check(checks, format!("error contains {text:?}"), err.message().contains(text.as_str()), err.message());
            }
            if let Some(kind) = &e.error_kind {
                check(checks, format!("error kind {kind}"), err.kind() == kind, err.kind());
            }
        }
    }
    let now = match Snapshot::take(fake, &[]) {
        Ok(s) => s,
        Err(err) => return check(checks, "state readable", false, err.to_string()),
    };
    for c in &e.containers {
        container_checks(c, &now, initial, checks);
    }
    for (name, want) in &e.parameters {
        let got = fake.env.caps.console.get_parameter(name).await;
        check(checks, format!("parameter {name} = {want}"), matches!(&got, Ok(Some(v)) if v == want), format!("{got:?}"));
    }
    for name in &e.parameters_as_initial {
        let got = fake.env.caps.console.get_parameter(name).await.ok().flatten();
        let want = initial_params.get(name).cloned().flatten();
        check(checks, format!("parameter {name} as before"), got == want, format!("now {got:?}, before {want:?}"));
    }
    for (name, fields) in &e.parameters_as_initial_except {
        let got = fake.env.caps.console.get_parameter(name).await.ok().flatten();
        let want = initial_params.get(name).cloned().flatten();
        // The value without the named fields; a value that is not a JSON object compares whole.
        let without = |v: &Option<String>| -> Option<serde_json::Value> {
            let text = v.as_deref()?;
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(mut m)) => {
                    for f in fields {
                        m.remove(f);
                    }
                    Some(serde_json::Value::Object(m))
                }
                _ => Some(serde_json::Value::String(text.to_string())),
            }
        };
        check(
            checks,
            format!("parameter {name} as before but for {}", fields.join(", ")),
            got.is_some() && without(&got) == without(&want),
            format!("now {got:?}, before {want:?}"),
        );
    }
    for db in &e.databases_as_initial {
        let want = initial.checksums.get(db);
        let mut got = now.checksums.get(db).cloned();
        let mut but = String::new();
        // The parameters this step expects at new values (the vendor's rollback sets HA's refetch
        // window) are the one allowed difference: compare with them put back as they were.
        let changed: Vec<&String> = e
            .parameters
            .iter()
            .filter(|(n, want)| matches!(initial_params.get(*n), Some(Some(v)) if v != *want))
            .map(|(n, _)| n)
            .chain(e.parameters_as_initial_except.keys())
            .collect();
        if got.as_ref() != want && !changed.is_empty() {
            got = checksum_with_initial_parameters(fake, db, &changed, initial_params).await;
            but = format!(" but for {}", changed.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "));
        }
        check(
            checks,
            format!("database {db} content as before{but} (checksum)"),
            got.is_some() && got.as_ref() == want,
            format!("now {got:?}, before {want:?}"),
        );
    }
    for q in &e.queries {
        let got = fake.sql.query_text(&q.database, &q.sql);
        check(checks, format!("{}: {} = {:?}", q.database, q.sql, q.rows), matches!(&got, Ok(rows) if *rows == q.rows), format!("{got:?}"));
    }
    for text in &e.notices_contain {
        check(checks, format!("notice contains {text:?}"), notices.iter().any(|n| n.contains(text.as_str())), notices.join(" | "));
    }
    for text in &e.notices_absent {
        check(checks, format!("no notice contains {text:?}"), !notices.iter().any(|n| n.contains(text.as_str())), notices.join(" | "));
    }
    if !e.plan_contains.is_empty() {
        let words = plan.map(|p| {
            p.findings
                .iter()
                .cloned()
                .chain(p.steps.iter().chain(p.rollback.iter()).map(|s| format!("{}: {}", s.title, s.detail)))
                .collect::<Vec<_>>()
                .join("\n")
        });
        for text in &e.plan_contains {
            check(checks, format!("plan mentions {text:?}"), words.as_deref().is_some_and(|w| w.contains(text.as_str())), "");
        }
    }
    let names: Vec<&str> = calls.iter().map(|c| c.call.as_str()).collect();
    if !e.calls_in_order.is_empty() {
        let mut it = names.iter();
        let ok = e.calls_in_order.iter().all(|want| it.any(|n| n == want));
        check(checks, format!("calls in order {:?}", e.calls_in_order), ok, names.join(", "));
    }
    for absent in &e.calls_absent {
        check(checks, format!("no {absent} call"), !names.contains(&absent.as_str()), "");
    }
    for want in &e.call_counts {
        let n = calls.iter().filter(|c| c.call == want.call && want.matching.as_ref().is_none_or(|m| c.args.to_string().contains(m.as_str()))).count();
        let which = want.matching.as_ref().map(|m| format!(" matching {m}")).unwrap_or_default();
        check(checks, format!("{} {} call(s){which}", want.count, want.call), n == want.count, format!("{n} made"));
    }
    for image in &e.images {
        check(checks, format!("image {image} on local"), fake.docker.images("local").iter().any(|x| x == image), "");
    }
}

fn container_checks(c: &ContainerExpect, now: &Snapshot, initial: &Snapshot, checks: &mut Vec<Check>) {
    let key = (c.node.clone(), c.name.clone());
    let found = now.containers.get(&key);
    let label = format!("container {} on {}", c.name, c.node);
    if c.state.as_deref() == Some("absent") {
        return check(checks, format!("{label} absent"), found.is_none(), "");
    }
    let Some((state, spec)) = found else {
        return check(checks, format!("{label} exists"), false, "it does not");
    };
    if let Some(want) = &c.state {
        check(checks, format!("{label} {want}"), state.as_str() == want, state.as_str());
    }
    if let Some(want) = &c.image {
        check(checks, format!("{label} image {want}"), &spec.image == want, spec.image.clone());
    }
    for kv in &c.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        check(checks, format!("{label} env {kv}"), spec.env.iter().any(|(ek, ev)| ek == k && ev == v), format!("{:?}", spec.env));
    }
    for k in &c.env_absent {
        check(checks, format!("{label} has no env {k}"), !spec.env.iter().any(|(ek, _)| ek == k), "");
    }
    if c.unchanged {
        let was = initial.containers.get(&key).map(|(_, s)| s);
        check(checks, format!("{label} options as before"), was == Some(spec), if was.is_none() { "it did not exist before".into() } else { String::new() });
    }
    if let Some(other) = &c.mounts_as {
        let was = initial.containers.get(&(c.node.clone(), other.clone())).map(|(_, s)| &s.mounts);
        check(checks, format!("{label} mounts as {other}'s were"), was == Some(&spec.mounts), format!("{:?}", spec.mounts));
    }
    if let Some(n) = &c.network_mode {
        check(checks, format!("{label} network {n}"), &spec.network_mode == n, spec.network_mode.clone());
    }
    if let Some(p) = c.pids_limit {
        check(checks, format!("{label} pids limit {p}"), spec.pids_limit == Some(p), format!("{:?}", spec.pids_limit));
    }
    if let Some(p) = c.privileged {
        check(checks, format!("{label} privileged {p}"), spec.privileged == p, "");
    }
    for u in &c.ulimits {
        let have: Vec<String> = spec.ulimits.iter().map(|x| format!("{}={}:{}", x.name, x.soft, x.hard)).collect();
        check(checks, format!("{label} ulimit {u}"), have.contains(u), have.join(","));
    }
}
