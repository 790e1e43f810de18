//! End to end on a real Docker engine and a real MariaDB: OMS CE 3.2.2 -> 3.3.0 (the seed's hop),
//! and the two-hop route 3.2.2 -> 3.3.0 -> 3.3.1 that `opshost upgrade --to 3.3.1` finds over the
//! plugin directory, each hop its own run and backup, unwound newest first by `opshost rollback`.
//! Needs what tests/run-all.sh starts and builds.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn cli(d: &Deployment, cmd: &str, extra: &[&str]) -> (i32, String) {
    let mut a = vec![cmd.to_string()];
    a.extend(site_args(d));
    a.extend(extra.iter().map(|s| s.to_string()));
    let o = d.opshost(&a.iter().map(String::as_str).collect::<Vec<_>>());
    (o.status.code().unwrap_or(-1), text(&o))
}

fn schema_version(d: &Deployment) -> String {
    mariadb(&format!("SELECT version FROM {}.oms_version", d.dbs().0))
}

/// Everything as before the upgrade: the 3.2.2 container serves with its options, rm and cm hold
/// exactly their old content (checksums; ha.config but for its refetch window), the schema is 3.2.2 again.
fn assert_back_at_start(d: &Deployment, b: &Baseline) {
    let (rm, cm, _) = d.dbs();
    assert_eq!(d.state(&d.old()), "running");
    d.wait_healthy(true);
    assert_eq!(d.inspect(&d.old(), "{{json .HostConfig.Binds}}"), b.binds);
    assert_eq!(d.inspect(&d.old(), "{{json .Config.Env}}"), b.env);
    assert_eq!(schema_version(d), "3.2.2");
    // ha.config may differ in refetchStoreIntervalMin alone (the vendor's rollback of a hop with
    // the HA step sets it).
    d.ha_config_after_rollback(&rm);
    assert_eq!(d.rm_checksum_but_ha_config(&rm), b.rm, "rm content differs from before the upgrade");
    // cm: the stand-in marks its server online again once it runs; wait for that write.
    let start = Instant::now();
    while d.checksum(&cm) != b.cm {
        assert!(start.elapsed() < Duration::from_secs(20), "cm content differs from before the upgrade: {}", mariadb(&format!("SELECT * FROM {cm}.host")));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn oms_3_2_2_to_3_3_0_then_rollback() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::at("3.2.2", "r1", &[], 18091);
    d.write_route_site(&["3.3.0"]);
    let _ = docker(&["rmi", "-f", &oms_image("3.3.0")]);
    let base = d.baseline();

    // No route to 4.2.0: 4.1.1 is a fresh install only. The refusal names the gap, changes nothing.
    let (code, t) = cli(&d, "plan", &["--to", "4.2.0"]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("no route from oms 3.2.2 to 4.2.0") && t.contains("4.2.0 is reached only from 4.1.1") && t.contains("Missing hop"), "{t}");
    assert_eq!(d.state(&d.old()), "running");

    let (code, t) = cli(&d, "upgrade", &["--to", "3.3.0", "--yes"]);
    assert_eq!(code, 0, "{t}");
    let new = d.container_at("3.3.0");
    assert_eq!(d.state(&d.old()), "exited", "the old container is stopped and kept for rollback");
    assert_eq!(d.state(&new), "running");
    assert_eq!(d.inspect(&new, "{{.Config.Image}}"), oms_image("3.3.0"));
    let env = d.inspect(&new, "{{json .Config.Env}}");
    assert!(env.contains("OMS_HOST_IP=127.0.0.1") && !env.contains("IS_UPGRADE"), "3.3.0 has no IS_UPGRADE yet: {env}");
    assert_eq!(d.inspect(&new, "{{json .HostConfig.Binds}}"), base.binds, "same mounts as the old container");
    assert_eq!(schema_version(&d), "3.3.0");
    d.wait_healthy(true);

    let (code, t) = cli(&d, "rollback", &["--yes"]);
    assert_eq!(code, 0, "{t}");
    assert_eq!(d.state(&new), "exited");
    assert_back_at_start(&d, &base);
    let runs = d.runs();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "rolled-back");
    assert!(runs[0].get("route").is_none(), "a single hop is no route: {runs}");
}

#[test]
fn two_hop_route_then_unwind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::at("3.2.2", "r2", &[], 18092);
    d.write_route_site(&["3.3.0", "3.3.1"]);
    let base = d.baseline();

    // A plugin directory with only the first hop names the missing one; dropping the second
    // plugin file in completes the route, with no rebuild of the host.
    let dropin = d.dir.path().join("dropin");
    std::fs::create_dir_all(&dropin).unwrap();
    let bundled = target_dir().join("plugins");
    std::fs::copy(bundled.join("oms_3_3_0.wasm"), dropin.join("oms_3_3_0.wasm")).unwrap();
    let dir_flag = format!("--plugins-dir={}", dropin.display());
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1", &dir_flag]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("3.3.1 is reached only from 3.3.0") || t.contains("no plugin upgrades oms to 3.3.1"), "{t}");
    assert!(t.contains("Missing hop: a plugin that upgrades oms from one of 3.2.2, 3.3.0 to 3.3.1"), "{t}");
    std::fs::copy(bundled.join("oms_3_3_1.wasm"), dropin.join("oms_3_3_1.wasm")).unwrap();
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1", &dir_flag]);
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("Route for oms: 2 hops"), "{t}");

    let (code, t) = cli(&d, "plan", &["--to", "3.3.1"]);
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains("Route for oms: 2 hops") && t.contains("1. 3.2.2 -> 3.3.0  with plugin oms-3.3.0") && t.contains("2. 3.3.0 -> 3.3.1  with plugin oms-3.3.1"),
        "{t}"
    );
    // Grants are per hop: with none for the second hop, the refusal suggests that hop's own
    // block, from its own parameters (its containers and archive, not the first hop's).
    let full = std::fs::read_to_string(&d.site).unwrap();
    let second = full.find("\n[grants.\"oms-3.3.1\"]\n").expect("the route site grants oms-3.3.1 last");
    std::fs::write(&d.site, &full[..second]).unwrap();
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1"]);
    assert_ne!(code, 0, "{t}");
    let suggestion = &t[t.find("[grants.\"oms-3.3.1\"]").unwrap_or_else(|| panic!("no block for hop 2 in:\n{t}"))..];
    let archive = format!("{}/oms-{}.tar.gz", env("OPSHOST_TEST_IMAGES"), oms_image("3.3.1").rsplit(':').next().unwrap());
    assert!(suggestion.contains(&format!("docker = [\"{}\", \"{}\"]", d.container_at("3.3.0"), d.container_at("3.3.1"))), "{t}");
    assert!(suggestion.contains(&format!("image-archive = [\"{archive}\"]")) && !suggestion.contains(&d.old()), "{t}");
    assert!(!t.contains("later hop of a route"), "the hop has its own table: {t}");
    // Without its [products.oms.hops."3.3.1"] table, the hop has no containers of its own: the
    // refusal says where to name them.
    let table = full.find("\n[products.oms.hops.\"3.3.1\"]\n").unwrap();
    let end = table + 1 + full[table + 1..].find("\n\n").unwrap();
    std::fs::write(&d.site, format!("{}{}", &full[..table], &full[end..second])).unwrap();
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1"]);
    assert_ne!(code, 0, "{t}");
    assert!(t.contains("This is a later hop of a route: name its own containers and image archive in [products.oms.hops.\"3.3.1\"]"), "{t}");
    std::fs::write(&d.site, &full).unwrap();
    let (code, json) = cli(&d, "plan", &["--to", "3.3.1", "--json"]);
    assert_eq!(code, 0, "{json}");
    let plan: serde_json::Value = serde_json::from_str(&json[json.find('{').unwrap()..]).unwrap();
    assert_eq!(plan["route"].as_array().unwrap().len(), 2);
    assert_eq!(plan["route"][1]["plugin"], "oms-3.3.1");
    assert!(plan["plan"]["steps"].as_array().unwrap().len() > 3);

    let (code, t) = cli(&d, "upgrade", &["--to", "3.3.1", "--yes"]);
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("== hop 2 of 2: 3.3.0 -> 3.3.1 (oms-3.3.1) ==") && t.contains("route complete: oms 3.2.2 -> 3.3.1 in 2 hops"), "{t}");
    let (c322, c330, c331) = (d.old(), d.container_at("3.3.0"), d.container_at("3.3.1"));
    assert_eq!((d.state(&c322).as_str(), d.state(&c330).as_str(), d.state(&c331).as_str()), ("exited", "exited", "running"));
    assert!(d.inspect(&c331, "{{json .Config.Env}}").contains("IS_UPGRADE=true"), "3.3.1 needs IS_UPGRADE");
    assert_eq!(schema_version(&d), "3.3.1");
    d.wait_healthy(true);
    // Two runs, one route, each with its own verified backup of the three databases.
    let runs = d.runs();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["target"].as_str(), runs[1]["target"].as_str()), (Some("3.3.0"), Some("3.3.1")));
    assert!(runs.iter().all(|r| r["status"] == "upgraded" && r["route"]["id"] == runs[0]["id"] && r["route"]["target"] == "3.3.1"), "{runs:?}");
    for r in runs {
        let dumps = std::fs::read_dir(d.dir.path().join("backups").join(r["id"].as_str().unwrap()))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
            .count();
        assert_eq!(dumps, 3, "run {} has its own dumps of rm, cm and cm_hb", r["id"]);
    }
    // At the target: nothing left to do.
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1"]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("already at 3.3.1"), "{t}");

    let (code, t) = cli(&d, "rollback", &["--yes"]);
    assert_eq!(code, 0, "{t}");
    assert!(
        // Two runs begun in the same second have ids where one is the other's prefix
        // (oms-…-093740 and oms-…-093740-2): match each heading up to its versions.
        t.find(&format!("rolling back run {} (3.3.0 -> 3.3.1)", runs[1]["id"].as_str().unwrap())).is_some_and(|newest| t
            .find(&format!("rolling back run {} (3.2.2 -> 3.3.0)", runs[0]["id"].as_str().unwrap()))
            .is_some_and(|oldest| newest < oldest)),
        "newest hop first: {t}"
    );
    assert_eq!((d.state(&c330).as_str(), d.state(&c331).as_str()), ("exited", "exited"));
    assert_back_at_start(&d, &base);
    assert!(d.runs().as_array().unwrap().iter().all(|r| r["status"] == "rolled-back"));
    // Unwound: the deployment is at 3.2.2 again. The stopped 3.3.0 container is kept for a look,
    // so planning the route again refuses and names it; once removed, the route plans again.
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1"]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains(&format!("a container named {c330} already exists")), "{t}");
    assert!(docker(&["rm", &c330, &c331]).status.success());
    let (code, t) = cli(&d, "plan", &["--to", "3.3.1"]);
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("OMS 3.2.2 in container"), "{t}");
}

#[test]
fn a_failing_second_hop_is_unwound_with_the_first() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The stand-in's docker_init.sh of 3.3.1 changes part of the schema and exits 1.
    let d = Deployment::at("3.2.2", "r3", &["STANDIN_FAIL_INIT=3.3.1"], 18093);
    d.write_route_site(&["3.3.0", "3.3.1"]);
    let base = d.baseline();

    let (code, t) = cli(&d, "upgrade", &["--to", "3.3.1", "--yes"]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("docker_init.sh") && t.contains("unwinds every hop of the route"), "{t}");
    let runs = d.runs();
    let runs = runs.as_array().unwrap().clone();
    assert_eq!((runs[0]["status"].as_str(), runs[1]["status"].as_str()), (Some("upgraded"), Some("upgrade-failed")));

    // Nothing new starts on a half-done route, and the first hop cannot be undone from under the second.
    let (code, t) = cli(&d, "upgrade", &["--to", "3.3.1", "--yes"]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("roll it back first"), "{t}");
    let (code, t) = cli(&d, "rollback", &["--run", runs[0]["id"].as_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("still stand") && t.contains(runs[1]["id"].as_str().unwrap()), "{t}");
    assert_eq!(d.state(&d.container_at("3.3.1")), "running", "refusals change nothing");

    let (code, t) = cli(&d, "rollback", &["--yes"]);
    assert_eq!(code, 0, "{t}");
    assert_back_at_start(&d, &base);
    assert!(d.runs().as_array().unwrap().iter().all(|r| r["status"] == "rolled-back"));
}
