//! Every scenario shipped with the plugins passes on the fake host through the real runtime,
//! and the runner itself fails when it should (a wrong expectation, a fault that never fires).

use opshost::fakehost::runner::run_scenario;
use opshost::fakehost::scenario::Scenario;
use opshost::registry::signature::{Policy, TrustStore};
use opshost::registry::Plugin;
use opshost::report::Silent;
use opshost::runtime::engine::Runtime;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

async fn oms_420(runtime: &Runtime) -> Plugin {
    let path = Path::new(env!("OPSHOST_BUNDLED_PLUGINS")).join("oms_4_2_0.wasm");
    let policy = Policy { trust: TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    Plugin::open(runtime, &path, &policy).await.expect("bundled plugin loads")
}

fn scenario_dir() -> PathBuf {
    root().join("plugins/oms-4.2.0/scenarios")
}

fn scenarios() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_shipped_oms_420_scenario_passes() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = oms_420(&runtime).await;
    let files = scenarios();
    assert!(files.len() >= 20, "expected the full scenario set, found {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let s = Scenario::load(f).unwrap();
        let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
        if !r.passed {
            failures.push(format!("{}: {}", f.display(), serde_json::to_string_pretty(&r).unwrap()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn failure_at_each_step_is_rolled_back_to_the_original_state() {
    // The list: docker_init exits 1, a dump fails, the load fails, servers never come
    // online, setting a parameter fails (both directions), plus stop, trim, verify and run.
    let runtime = Runtime::new(None).unwrap();
    let plugin = oms_420(&runtime).await;
    let failing: Vec<PathBuf> = scenarios().into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('1')).collect();
    assert_eq!(failing.len(), 10);
    for f in failing {
        let s = Scenario::load(&f).unwrap();
        let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
        let upgrade = r.steps.iter().find(|s| s.step == "upgrade").unwrap();
        let rollback = r.steps.iter().find(|s| s.step == "rollback").unwrap();
        assert!(upgrade.error.is_some(), "{}: the upgrade should have failed", f.display());
        assert!(rollback.error.is_none(), "{}: rollback failed: {:?}", f.display(), rollback.error);
        // ha.config (and so rm) may differ in refetchStoreIntervalMin alone: the vendor's rollback
        // sets it when an OMS was stopped (the check then says "but for …").
        for must in [
            "container oms_411 on local running",
            "container oms_411 on local options as before",
            "parameter ha.config as before",
            "database rm_411 content as before",
            "database cm_411 content as before",
        ] {
            let c = rollback.checks.iter().find(|c| c.what.starts_with(must)).unwrap_or_else(|| panic!("{}: no check {must:?}", f.display()));
            assert!(c.ok, "{}: {must}: {}", f.display(), c.detail);
        }
        assert!(r.passed, "{}", serde_json::to_string_pretty(&r).unwrap());
    }
}

#[tokio::test]
async fn the_runner_fails_a_scenario_whose_expectations_do_not_hold() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = oms_420(&runtime).await;
    let mut s = Scenario::load(&scenario_dir().join("01-happy-path-then-rollback.toml")).unwrap();
    // The heartbeat trim is not undone, so cm_hb_411 cannot equal its initial content.
    s.expect.rollback.as_mut().unwrap().databases_as_initial.push("cm_hb_411".into());
    let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
    assert!(!r.passed);
    let failed: Vec<&str> = r.steps.iter().flat_map(|s| s.checks.iter()).filter(|c| !c.ok).map(|c| c.what.as_str()).collect();
    assert_eq!(failed, vec!["database cm_hb_411 content as before but for ha.config (checksum)"]);
}

/// The vendor's rollback sets refetchStoreIntervalMin: the scenario excuses that one field of
/// ha.config, and only it. Expecting ha.config exactly as before must fail, on the parameter and
/// on rm's checksum both.
#[tokio::test]
async fn the_refetch_window_the_rollback_sets_is_the_only_difference_excused() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = oms_420(&runtime).await;
    let mut s = Scenario::load(&scenario_dir().join("01-happy-path-then-rollback.toml")).unwrap();
    let rollback = s.expect.rollback.as_mut().unwrap();
    assert_eq!(rollback.parameters_as_initial_except.remove("ha.config"), Some(vec!["refetchStoreIntervalMin".to_string()]));
    rollback.parameters_as_initial.push("ha.config".into());
    let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
    let failed: Vec<&str> = r.steps.iter().flat_map(|s| s.checks.iter()).filter(|c| !c.ok).map(|c| c.what.as_str()).collect();
    assert_eq!(failed, vec!["parameter ha.config as before", "database rm_411 content as before (checksum)"]);
}

#[tokio::test]
async fn a_fault_that_never_fires_fails_the_scenario() {
    let runtime = Runtime::new(None).unwrap();
    let plugin = oms_420(&runtime).await;
    let mut s = Scenario::load(&scenario_dir().join("14-fail-dump.toml")).unwrap();
    s.faults[0].nth = Some(9);
    s.expect = Default::default();
    let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
    assert!(!r.passed);
    assert_eq!(r.unfired_faults.len(), 1, "{:?}", r.unfired_faults);
}

#[tokio::test]
async fn an_inherited_is_upgrade_false_is_overridden_for_the_new_container() {
    // The fake docker_init.sh refuses without IS_UPGRADE=true, as the vendor's does.
    let runtime = Runtime::new(None).unwrap();
    let plugin = oms_420(&runtime).await;
    let mut s = Scenario::load(&scenario_dir().join("01-happy-path-then-rollback.toml")).unwrap();
    s.docker.containers[0].env.push("IS_UPGRADE=false".into());
    s.steps = vec!["upgrade".into()];
    s.expect = Default::default();
    let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
    // The plugin overrides an inherited IS_UPGRADE=false with true, so the upgrade still passes.
    assert!(r.passed, "{}", serde_json::to_string_pretty(&r).unwrap());
    let run = r.steps[0].calls.iter().find(|c| c.call == "docker.create").unwrap();
    let env = run.args["spec"]["env"].as_array().unwrap();
    assert!(env.iter().any(|kv| kv[0] == "IS_UPGRADE" && kv[1] == "true"), "{env:?}");
    assert!(!env.iter().any(|kv| kv[0] == "IS_UPGRADE" && kv[1] == "false"), "{env:?}");
}

/// `oms-3.3.0` -> the bundled component `oms_3_3_0.wasm`.
fn component_of(plugin_dir: &str) -> PathBuf {
    Path::new(env!("OPSHOST_BUNDLED_PLUGINS")).join(format!("{}.wasm", plugin_dir.replace(['-', '.'], "_")))
}

#[tokio::test]
async fn every_plugin_ships_scenarios_and_they_all_pass() {
    let runtime = Runtime::new(None).unwrap();
    let policy = Policy { trust: TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root().join("plugins")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("oms-") && !name.starts_with("odc-") {
            continue;
        }
        let scenarios: Vec<PathBuf> = std::fs::read_dir(dir.join("scenarios"))
            .unwrap_or_else(|_| panic!("plugin {name} ships no scenarios/"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
            .collect();
        assert!(!scenarios.is_empty(), "plugin {name} ships no scenarios");
        let plugin = Plugin::open(&runtime, &component_of(&name), &policy).await.unwrap();
        assert_eq!(plugin.manifest.name, name, "the directory is named after the manifest");
        for f in scenarios {
            let s = Scenario::load(&f).unwrap();
            let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
            assert!(r.passed, "{}: {}", f.display(), serde_json::to_string_pretty(&r).unwrap());
            checked.push(f);
        }
    }
    assert!(checked.len() >= 26, "{checked:?}");
}
