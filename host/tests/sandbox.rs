//! The sandbox holds against a hostile plugin: every attack is contained with a clear error, and
//! nothing changes that the grants did not allow. Runs on the fake host through the real runtime.

use opshost::fakehost::runner::{run_scenario, ScenarioReport};
use opshost::fakehost::scenario::Scenario;
use opshost::registry::signature::{Policy, TrustStore};
use opshost::registry::Plugin;
use opshost::runtime::engine::Runtime;
use opshost::runtime::report::Silent;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Run the hostile plugin's `attack` on the OMS 4.1.1 fake deployment. The site grants it
/// oms_411 and rm_411 only.
async fn attack(name: &str, extra: &str) -> ScenarioReport {
    let runtime = Runtime::new(None).unwrap();
    let policy = Policy { trust: TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    let plugin = Plugin::open(&runtime, &Path::new(env!("OPSHOST_SIGNED_PLUGINS")).join("hostile.wasm"), &policy).await.unwrap();
    let base = std::fs::read_to_string(root().join("plugins/oms-4.2.0/scenarios/_oms-4.1.1-deployment.toml")).unwrap();
    let grants = if extra.contains("grants") { "" } else { r#"grants = { docker = ["oms_411"], sql = ["metadb/rm_411"], console = ["servers"] }"# };
    let case = format!(
        r#"
name = "hostile: {name}"
steps = ["upgrade"]
parameters = {{ attack = "{name}" }}
{grants}
{extra}
[expect.upgrade]
outcome = "error"
databases_as_initial = ["rm_411", "cm_411", "cm_hb_411"]
"#
    );
    let mut s = Scenario::parse_layers(&[&base, &case], name).unwrap();
    s.parameters.retain(|k, _| k == "attack");
    run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap()
}

fn error_of(r: &ScenarioReport) -> (String, String) {
    let e = r.steps[0].error.as_ref().unwrap_or_else(|| panic!("{} did not fail: {}", r.scenario, serde_json::to_string_pretty(r).unwrap()));
    (e.kind().to_string(), e.message().to_string())
}

fn assert_contained(r: &ScenarioReport, kind: &str, message: &str) {
    let (k, m) = error_of(r);
    assert_eq!(k, kind, "{}: {m}", r.scenario);
    assert!(m.contains(message), "{}: expected {message:?} in {m:.300}", r.scenario);
    assert!(r.passed, "{}: state changed: {:?}", r.scenario, r.steps[0].checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    assert!(r.changes.is_empty(), "{}: {:?}", r.scenario, r.changes);
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_cpu_budget() {
    let r = attack("loop", "limits = { cpu_seconds = 1 }").await;
    assert_contained(&r, "failed", "more than 1 s of its own CPU time");
}

#[tokio::test]
async fn unbounded_allocation_is_stopped_by_the_memory_limit() {
    let r = attack("alloc", "limits = { memory_mb = 32 }").await;
    assert_contained(&r, "failed", "the plugin stopped");
    let (_, m) = error_of(&r);
    assert!(m.contains("memory"), "{m}");
}

#[tokio::test]
async fn no_host_files_environment_or_sockets() {
    assert_contained(&attack("read-file", "").await, "failed", "read failed");
    assert_contained(&attack("env", "").await, "failed", "env vars: 0, args: 0");
    assert_contained(&attack("socket", "").await, "failed", "connect failed");
}

#[tokio::test]
async fn ungranted_containers_and_databases_are_denied_with_the_fix() {
    let r = attack("docker-undeclared", "").await;
    assert_contained(&r, "denied", "does not declare that need in its manifest");
    let r = attack("docker-ungranted", "").await;
    assert_contained(&r, "denied", "add \"local/oms_999\" to docker in [grants.\"hostile\"]");
    // The denial is in the transcript; the backend never saw the call.
    let stop = r.steps[0].calls.iter().find(|c| c.call == "docker.stop").unwrap();
    assert_eq!(stop.outcome["error"]["kind"], "denied");
    assert_contained(&attack("sql-undeclared", "").await, "denied", "does not declare");
    assert_contained(&attack("sql-ungranted", "").await, "denied", "add \"metadb/rm_other\" to sql");
}

#[tokio::test]
async fn identifiers_cannot_carry_sql() {
    let r = attack("inject", "grants = { sql = [\"metadb/*\"], docker = [\"oms_411\"] }").await;
    assert_contained(&r, "invalid-input", "is not a plain identifier");
}

#[tokio::test]
async fn oversized_arguments_results_and_messages_are_capped() {
    assert_contained(&attack("huge-argument", "").await, "denied", "exceed the sandbox limit");
    assert_contained(&attack("huge-result", "").await, "failed", "the result exceeds the sandbox limit");
    let r = attack("huge-error", "").await;
    let (_, m) = error_of(&r);
    assert!(m.len() < 100_000 && m.ends_with("[clipped]"), "{}", m.len());
    assert_contained(&attack("huge-log", "").await, "failed", "logged");
}

#[tokio::test]
async fn a_trap_midway_stops_the_run_and_only_granted_changes_happened() {
    // (Its expectations differ from the others: the stop did happen.)
    let r = attack("trap-midway", "").await;
    let (kind, m) = error_of(&r);
    assert_eq!(kind, "failed");
    assert!(m.contains("the plugin stopped") && m.contains("trapped in upgrade()"), "{m}");
    // The one change: the granted stop of oms_411 before the crash (and the stopped OMS marking
    // its server offline in cm_411, as the product does).
    assert_eq!(r.changes, vec!["container oms_411 on local: running -> exited".to_string(), "database cm_411: content changed".to_string()]);
    assert!(r.steps[0].calls.iter().filter(|c| c.call.starts_with("docker.") || c.call.starts_with("sql.")).all(|c| c.call == "docker.stop"));
}

#[tokio::test]
async fn a_hung_backend_times_out_and_the_plugin_gets_a_typed_error() {
    // The OMS plugin itself, with docker.stop hanging for 3 s and a 1 s call deadline.
    let runtime = Runtime::new(None).unwrap();
    let policy = Policy { trust: TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    let plugin = Plugin::open(&runtime, &Path::new(env!("OPSHOST_SIGNED_PLUGINS")).join("oms_4_2_0.wasm"), &policy).await.unwrap();
    let base = std::fs::read_to_string(root().join("plugins/oms-4.2.0/scenarios/_oms-4.1.1-deployment.toml")).unwrap();
    let case = r#"
name = "hung engine"
steps = ["upgrade", "rollback"]
limits = { call_timeout_s = 1 }
faults = [{ call = "docker.stop", delay_ms = 3000 }]
[expect.upgrade]
outcome = "error"
error_kind = "timeout"
error_contains = "docker.stop did not finish within 1 s"
[expect.rollback]
databases_as_initial = ["rm_411", "cm_411", "cm_hb_411"]
parameters_as_initial = ["ha.config"]
"#;
    let s = Scenario::parse_layers(&[&base, case], "hung engine").unwrap();
    let started = std::time::Instant::now();
    let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
    assert!(r.passed, "{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the call was not cut at its deadline");
}
