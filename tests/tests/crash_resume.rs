//! Crash safety on the real Docker engine and MariaDB: the host is killed (abort, as kill -9)
//! right after each journaled call of the OMS 4.1.1 -> 4.2.0 upgrade, N out of N. After
//! `opshost resume` the deployment is fully upgraded; after `opshost rollback` it is fully
//! original (containers, options, rm and cm content, ha.config).

mod common;

use common::*;
use std::process::Output;
use std::time::{Duration, Instant};

fn upgrade_aborting_after(d: &Deployment, n: u64) -> Output {
    let mut a: Vec<String> = vec!["upgrade".into()];
    a.extend(site_args(d));
    a.extend(["--to".into(), "4.2.0".into(), "--yes".into()]);
    run(std::process::Command::new(target_dir().join("opshost"))
        .args(&a)
        .env("OPSHOST_CACHE_DIR", d.dir.path().join("cache"))
        .env("OPSHOST_ABORT_AFTER_CALLS", n.to_string()))
}

fn latest_run(d: &Deployment) -> serde_json::Value {
    d.runs().as_array().unwrap().last().cloned().unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn killed_after_every_call_resume_completes_and_rollback_restores() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();
    let d = Deployment::new("crash", &[], 18094);
    let (rm, cm, _) = d.dbs();
    let Baseline { rm: rm0, cm: cm0, binds: binds0, env: env0 } = d.baseline();
    let mut n = 1;
    loop {
        let o = upgrade_aborting_after(&d, n);
        if o.status.success() {
            // Past the last call: the upgrade finished without being killed. Undo it and stop.
            let o = rollback(&d);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            break;
        }
        assert_eq!(o.status.code(), None, "call {n}: the host should have been killed: {}", text(&o));
        let run = latest_run(&d);
        let id = run["id"].as_str().unwrap().to_string();
        assert_eq!(run["status"], "upgrading", "call {n}");

        // runs --show says where it stopped and what resume will do.
        let show = d.opshost(&["runs", "show", &id, "--config", d.site.to_str().unwrap()]);
        let words = text(&show);
        assert!(words.contains(&format!("after {n} completed calls")) && words.contains("opshost resume"), "call {n}: {words}");

        let o = d.opshost(&["resume", &id, "--config", d.site.to_str().unwrap(), "--yes"]);
        assert_eq!(o.status.code(), Some(0), "call {n}: resume failed: {}", text(&o));
        assert_eq!(latest_run(&d)["status"], "upgraded", "call {n}");
        assert_eq!(d.state(&d.new_name()), "running", "call {n}");
        assert_eq!(d.state(&d.old()), "exited", "call {n}");
        assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.2.0", "call {n}");
        wait_until(&format!("call {n}: new OMS healthy"), || d.healthy());

        let o = rollback(&d);
        assert_eq!(o.status.code(), Some(0), "call {n}: rollback failed: {}", text(&o));
        assert_eq!(d.state(&d.old()), "running", "call {n}");
        wait_until(&format!("call {n}: old OMS healthy"), || d.healthy());
        assert_eq!(d.inspect(&d.old(), "{{json .HostConfig.Binds}}"), binds0, "call {n}");
        assert_eq!(d.inspect(&d.old(), "{{json .Config.Env}}"), env0, "call {n}");
        d.ha_config_after_rollback(&rm);
        assert_eq!(d.rm_checksum_but_ha_config(&rm), rm0, "call {n}: rm differs");
        wait_until(&format!("call {n}: cm equal to before"), || d.checksum(&cm) == cm0);
        // Ready for the next round: the stopped 4.2.0 container is kept by rollback; clear it.
        let _ = docker(&["rm", "-f", &d.new_name()]);
        n += 1;
    }
    assert!(n > 30, "the upgrade made only {} calls: the kill loop did not cover it", n - 1);
    eprintln!("killed and resumed after each of {} calls", n - 1);
}

#[test]
fn a_run_killed_midway_rolls_back_from_its_records_without_resuming() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("crashrb", &[], 18095);
    let (rm, cm, _) = d.dbs();
    let (rm0, cm0) = (d.checksum(&rm), d.checksum(&cm));
    // Kill it after the new container started (past the backups), then roll back directly.
    let mut killed_after_run = false;
    for n in 20..80 {
        let o = upgrade_aborting_after(&d, n);
        assert_eq!(o.status.code(), None, "{}", text(&o));
        let started_new = d.state(&d.new_name()) == "running";
        let o = rollback(&d);
        assert_eq!(o.status.code(), Some(0), "after call {n}: {}", text(&o));
        assert_eq!(d.state(&d.old()), "running");
        d.ha_config_after_rollback(&rm);
        assert_eq!(d.rm_checksum_but_ha_config(&rm), rm0, "after call {n}");
        wait_until("cm equal to before", || d.checksum(&cm) == cm0);
        let _ = docker(&["rm", "-f", &d.new_name()]);
        if started_new {
            killed_after_run = true;
            break;
        }
    }
    assert!(killed_after_run, "never killed after the new container started");
}

/// Ctrl-C in the middle of the upgrade (a real SIGINT, sent by the test hook after call 12): the
/// host finishes the call in flight, starts no other, and exits 130 with the run still
/// resumable and nothing in doubt; it says how to go on or undo. `opshost resume` then completes
/// the upgrade, and rollback restores everything.
#[test]
fn ctrl_c_stops_between_two_calls_and_the_run_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("sigint", &[], 18096);
    let (rm, cm, _) = d.dbs();
    let Baseline { rm: rm0, cm: cm0, .. } = d.baseline();
    let mut a: Vec<String> = vec!["upgrade".into()];
    a.extend(site_args(&d));
    a.extend(["--to".into(), "4.2.0".into(), "--yes".into()]);
    let o = run(std::process::Command::new(target_dir().join("opshost"))
        .args(&a)
        .env("OPSHOST_CACHE_DIR", d.dir.path().join("cache"))
        .env("OPSHOST_TEST_SIGINT_AFTER_CALLS", "12"));
    let words = text(&o);
    assert_eq!(o.status.code(), Some(130), "{words}");
    assert!(words.contains("Ctrl-C: stopping after the call in flight ends"), "{words}");
    assert!(words.contains("stopped at your request before") && words.contains("opshost resume"), "{words}");
    let run = latest_run(&d);
    assert_eq!(run["status"], "upgrading", "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    // Where it stopped: after exactly 12 calls, none of them in doubt.
    let show = text(&d.opshost(&["runs", "show", &id, "--config", d.site.to_str().unwrap()]));
    assert!(show.contains("after 12 completed calls") && !show.contains("in doubt"), "{show}");
    let calls: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.dir.path().join("state/runs").join(&id).join("upgrade-calls.json")).unwrap()).unwrap();
    assert_eq!(calls.len(), 12, "the host started a call after Ctrl-C: {calls:?}");

    let log = || std::fs::read_to_string(d.dir.path().join("state/runs").join(&id).join("run.log")).unwrap();
    assert!(log().contains("END   stopped (stopped at the operator's request before"), "{}", log());

    let o = d.opshost(&["resume", &id, "--config", d.site.to_str().unwrap(), "--yes"]);
    assert_eq!(o.status.code(), Some(0), "resume: {}", text(&o));
    assert_eq!(latest_run(&d)["status"], "upgraded");
    assert!(log().contains("RUN   resume of the upgrade") && log().contains("[replayed from the journal]") && log().ends_with("END   upgraded\n"), "{}", log());
    assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.2.0");
    wait_until("new OMS healthy", || d.healthy());

    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(0), "rollback: {}", text(&o));
    assert_eq!(d.state(&d.old()), "running");
    d.ha_config_after_rollback(&rm);
    assert_eq!(d.rm_checksum_but_ha_config(&rm), rm0, "rm differs");
    wait_until("cm equal to before", || d.checksum(&cm) == cm0);
}

/// The new OMS does not come online within online_timeout_s (here: held offline by the test). The
/// upgrade stops with every change made and HA still off, as the vendor's procedure keeps it
/// until the servers are online; the run says it can be resumed. Once the cause is fixed,
/// `resume` waits again (a fresh deadline: the old polls are dropped, no change is re-run) and
/// finishes: HA on with a catch-up window covering the whole downtime. Rollback still works after.
#[test]
fn an_upgrade_that_times_out_waiting_resumes_once_the_cause_is_fixed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();
    let d = Deployment::new("wait", &[], 18098);
    let (rm, _, _) = d.dbs();
    let site = std::fs::read_to_string(&d.site).unwrap();
    assert!(site.contains("online_timeout_s = \"90\""));
    std::fs::write(&d.site, site.replace("online_timeout_s = \"90\"", "online_timeout_s = \"6\"")).unwrap();
    let hold = d.dir.path().join("store/standin-hold");
    std::fs::write(&hold, "held by the test").unwrap();
    let ha = || -> serde_json::Value {
        serde_json::from_str(&mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"))).unwrap()
    };

    let o = upgrade(&d);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let run = latest_run(&d);
    let id = run["id"].as_str().unwrap().to_string();
    assert_eq!(run["status"], "upgrade-timed-out", "{t}");
    assert!(t.contains(&format!("run {id}: upgrade timed out waiting for oms 4.2.0")) && t.contains(&format!("opshost resume {id}")), "{t}");
    assert!(t.contains("HA stays off until every server is online"), "the plugin says what it left as it is: {t}");
    assert_eq!(ha()["enable"].as_bool(), Some(false), "HA stays off while the new OMS is not online");
    assert_eq!((d.state(&d.old()), d.state(&d.new_name())), ("exited".to_string(), "running".to_string()));
    let show = text(&d.opshost(&["runs", "show", &id, "--config", d.site.to_str().unwrap()]));
    assert!(show.contains("resumable") && show.contains("opshost resume"), "{show}");

    // The cause is fixed; resume waits again and finishes.
    std::fs::remove_file(&hold).unwrap();
    let o = d.opshost(&["resume", &id, "--config", d.site.to_str().unwrap(), "--yes"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("the wait that timed out starts again"), "{t}");
    assert_eq!(latest_run(&d)["status"], "upgraded");
    let now = ha();
    assert_eq!(now["enable"].as_bool(), Some(true), "{now}");
    assert!(now["refetchStoreIntervalMin"].as_u64().unwrap_or(0) >= 31, "{now}");
    assert!(d.healthy());
    let run_dir = d.dir.path().join("state/runs").join(&id);
    assert!(run_dir.join("upgrade.journal.timed-out").exists(), "the journal as it was is kept");
    // No change ran twice: one load, one create, one stop, one dump, one exec over both attempts.
    let journal = std::fs::read_to_string(run_dir.join("upgrade.journal")).unwrap();
    for call in ["docker.load-image", "docker.create", "docker.stop", "sql.dump-databases", "docker.exec"] {
        let begins = journal.lines().filter(|l| l.contains("\"entry\":\"begin\"") && l.contains(&format!("\"call\":\"{call}\""))).count();
        assert_eq!(begins, 1, "{call} in the resumed journal");
    }

    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(d.state(&d.old()), "running");
    d.wait_healthy(true);
}
