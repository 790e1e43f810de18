//! Keeps the fake host honest: the OMS 4.1.1 -> 4.2.0 plugin makes the same sequence of
//! capability calls, and reaches the same end state, on the fake host (scenario 01) and on the
//! real Docker engine and MariaDB.

mod common;

use common::*;
use opshost::fakehost::runner::run_scenario;
use opshost::fakehost::scenario::Scenario;
use opshost::registry::Plugin;
use opshost::report::Silent;
use opshost::runtime::engine::Runtime;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Call names without the host's own services, each run of polling for the new version (its
/// log, the servers, the health) folded into one "wait online" (how many polls it takes is
/// timing, not behaviour).
fn shape(calls: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in calls {
        let name = c["call"].as_str().unwrap();
        if name.starts_with("host.") {
            continue;
        }
        // The wait's polls (how many is timing): the new container's state and log, the servers,
        // health; it starts right after docker_init.sh's exec.
        let polling = matches!(out.last().map(String::as_str), Some("wait online" | "docker.exec"));
        let name = if matches!(name, "console.list-servers" | "console.health" | "docker.logs") || (name == "docker.inspect" && polling) {
            "wait online"
        } else {
            name
        };
        if name == "wait online" && out.last().map(String::as_str) == Some("wait online") {
            continue;
        }
        out.push(name.to_string());
    }
    out
}

#[derive(Debug, PartialEq)]
struct EndState {
    old_container: String,
    new_container: String,
    rm_as_before: bool,
    cm_as_before: bool,
    ha_config_as_before_but_refetch: bool,
}

#[test]
fn the_fake_host_makes_the_same_calls_and_reaches_the_same_state_as_the_real_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();

    // Real.
    let d = Deployment::new("conf", &[], 18092);
    let (rm, cm, _) = d.dbs();
    let (rm0, cm0) = (d.checksum(&rm), d.checksum(&cm));
    let o = upgrade(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run_id = d.runs()[0]["id"].as_str().unwrap().to_string();
    let run_dir = d.dir.path().join("state/runs").join(run_id);
    let read = |f: &str| -> Vec<Value> { serde_json::from_str(&std::fs::read_to_string(run_dir.join(f)).unwrap()).unwrap() };
    let (real_up, real_rb) = (read("upgrade-calls.json"), read("rollback-calls.json"));
    let start = Instant::now();
    while d.checksum(&cm) != cm0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let real_end = EndState {
        old_container: d.state(&d.old()),
        new_container: d.state(&d.new_name()),
        rm_as_before: d.rm_checksum_but_ha_config(&rm) == rm0,
        cm_as_before: d.checksum(&cm) == cm0,
        ha_config_as_before_but_refetch: d.ha_config_after_rollback(&rm).is_some(),
    };

    // Fake.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(async {
        let runtime = Runtime::new(None).unwrap();
        let policy = opshost::registry::signature::Policy {
            trust: opshost::registry::signature::TrustStore::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/keys/test-vendor.pub")]).unwrap(),
            allow_unsigned: false,
        };
        let plugin = Plugin::open(&runtime, &target_dir().join("plugins/oms_4_2_0.wasm"), &policy).await.unwrap();
        let scenario = Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/oms-4.2.0/scenarios/01-happy-path-then-rollback.toml")).unwrap();
        run_scenario(&plugin.loaded, &scenario, Arc::new(Silent)).await.unwrap()
    });
    assert!(report.passed, "{}", serde_json::to_string_pretty(&report).unwrap());
    let step = |name: &str| report.steps.iter().find(|s| s.step == name).unwrap();
    let calls = |name: &str| -> Vec<Value> { step(name).calls.iter().map(|c| serde_json::to_value(c).unwrap()).collect() };
    let check =
        |what: &str| step("rollback").checks.iter().find(|c| c.what == what).map(|c| c.ok).unwrap_or_else(|| panic!("scenario 01 has no check {what:?}"));
    let fake_end = EndState {
        old_container: if check("container oms_411 on local running") { "running".into() } else { "?".into() },
        new_container: if check("container oms_420 on local exited") { "exited".into() } else { "?".into() },
        rm_as_before: check("database rm_411 content as before but for ha.config (checksum)"),
        cm_as_before: check("database cm_411 content as before (checksum)"),
        ha_config_as_before_but_refetch: check("parameter ha.config as before but for refetchStoreIntervalMin"),
    };

    assert_eq!(shape(&real_up), shape(&calls("upgrade")), "upgrade: real vs fake call sequence");
    assert_eq!(shape(&real_rb), shape(&calls("rollback")), "rollback: real vs fake call sequence");
    assert_eq!(real_end, fake_end);
    assert_eq!(
        real_end,
        EndState {
            old_container: "running".into(),
            new_container: "exited".into(),
            rm_as_before: true,
            cm_as_before: true,
            ha_config_as_before_but_refetch: true
        }
    );
}
