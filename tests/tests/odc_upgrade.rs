//! End to end on a real Docker engine and a real MariaDB: a stand-in ODC 4.2.2 (single node, and
//! HA: two nodes on the one local engine with their own container names and ports, behind a
//! stand-in nginx) is upgraded to 4.3.0 by the `opshost` binary and rolled back, with the MetaDB
//! exactly as before. The stand-in ODC migrates its schema on start and refuses a newer one, so
//! the rollback only works because it restores the MetaDB first. Needs what tests/run-all.sh
//! starts and builds (it fails loudly without it). Ports 2898x/2899x, names *_odc*_<pid>: apart
//! from the OMS tests.

mod common;

use common::odc::*;
use common::*;
use opshost::capabilities::services::RunRecords;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn odc_single_node_upgrade_then_rollback() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_images();
    let d = OdcDeployment::new("s", &[28989], None);
    let n = &d.nodes[0];
    let base = d.baseline();
    assert_eq!(base.schema, "4.2.0.1,4.2.2.1");
    let old_env = d.env_of(&n.container);
    let old_options = d.options(&n.container);
    assert!(old_options.contains("cpu-period=100000 cpu-quota=400000 memory=8589934592"), "{old_options}");

    let o = d.cli("plan", &["--to", "4.3.0"]);
    let t = text(&o);
    eprintln!("{t}");
    assert_eq!(o.status.code(), Some(0), "{t}");
    for want in [
        format!("ODC 4.2.2 in container {} (running, image {ODC_OLD}) on node local", n.container),
        "schema version 4.2.2.1".into(),
        "--cpu-period 100000 --cpu-quota 400000 --memory 8G".into(),
        "DATABASE_PASSWORD=***".into(),
        "before any old ODC starts".into(),
    ] {
        assert!(t.contains(&want), "plan lacks {want:?}:\n{t}");
    }
    // Every password in the plan is masked. (The test password, "opshost-test", also appears in
    // run-all.sh's temp paths, so look for it where a value would be: after "PASSWORD=".)
    let db_password = env("OPSHOST_TEST_DB_PASSWORD");
    assert!(t.match_indices("PASSWORD=").all(|(i, _)| t[i + "PASSWORD=".len()..].starts_with("***")), "the plan shows a password:\n{t}");
    assert!(
        !t.contains(&format!("={db_password}")) && !t.contains(&format!(":{db_password}@")) && !t.contains(ADMIN_PASSWORD),
        "the plan shows a password:\n{t}"
    );

    let o = d.cli("upgrade", &["--to", "4.3.0", "--yes"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("clear the browser cache"), "{t}");
    // The new ODC runs from the loaded archive with the old env, mounts and limits, and migrated the MetaDB.
    assert_eq!(d.state(&n.container), "running");
    assert_eq!(d.inspect(&n.container, "{{.Config.Image}}"), ODC_NEW);
    let new_env = d.env_of(&n.container);
    for e in odc_env(&d.db, n.port) {
        assert!(new_env.contains(&e), "{e} missing from {new_env:?}");
    }
    assert!(new_env.contains(&"STANDIN_VERSION=4.3.0".to_string()), "the new image's own defaults win: {new_env:?}");
    assert_eq!(d.options(&n.container), old_options);
    assert!(d.healthy(n.port));
    assert_eq!(d.version_on(n.port), "4.3.0");
    assert_eq!(d.schema(), "4.2.0.1,4.2.2.1,4.3.0.1,4.3.0.2");
    assert!(mariadb(&format!("SHOW CREATE TABLE {}.connect_connection", d.db)).contains("environment_id"));
    assert!(text(&docker(&["logs", &n.container])).contains("Migrating schema of MetaDB"));
    // The old container's whole run spec is in the run records; the backup is on disk.
    let (dir, run) = d.last_run();
    assert_eq!(run["status"], "upgraded");
    let records = RunRecords::read(&dir).unwrap();
    let old: serde_json::Value = serde_json::from_str(&records["odc.old"]).unwrap();
    assert_eq!(old[0][0], "local");
    assert_eq!(old[0][2]["image"], ODC_OLD);
    assert_eq!(old[0][2]["memory_bytes"], 8u64 << 30);
    let recorded_env: Vec<String> =
        old[0][2]["env"].as_array().unwrap().iter().map(|kv| format!("{}={}", kv[0].as_str().unwrap(), kv[1].as_str().unwrap())).collect();
    // Secrets are recorded as references the host resolves (the plugin never saw the values).
    for e in odc_env(&d.db, n.port) {
        let (key, _) = e.split_once('=').unwrap();
        let want = if key.contains("PASSWORD") { format!("{key}=opshost-secret:{}/{key}", n.container) } else { e.clone() };
        assert!(recorded_env.contains(&want), "{want} not recorded: {recorded_env:?}");
    }
    let pw = env("OPSHOST_TEST_DB_PASSWORD");
    assert!(
        !recorded_env.iter().any(|e| e.ends_with(&format!("={pw}")) || e.ends_with(&format!("={ADMIN_PASSWORD}"))),
        "a password reached the plugin's records: {recorded_env:?}"
    );
    let backup = d.dir.path().join("backups").join(run["id"].as_str().unwrap()).join(format!("{}.sql", d.db));
    assert!(std::fs::metadata(&backup).map(|m| m.len() > 0).unwrap_or(false), "{}", backup.display());
    // Why the rollback must restore the MetaDB: the old image refuses the migrated schema.
    old_odc_refuses_migrated_schema(&d);

    let o = d.cli("rollback", &["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(d.env_of(&n.container), old_env);
    d.assert_restored(&base);
    // A second rollback of the same run is refused.
    let o = d.cli("rollback", &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already rolled back"), "{}", text(&o));
}

#[test]
fn odc_ha_two_nodes_and_nginx_upgrade_then_rollback() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_images();
    let d = Arc::new(OdcDeployment::new("ha", &[28991, 28992], Some(28990)));
    let nginx_port = d.nginx.as_ref().unwrap().1;
    let nginx = d.nginx.as_ref().unwrap().0.clone();
    let base = d.baseline();
    assert!(d.healthy(nginx_port), "ODC answers through nginx");
    assert_eq!(d.version_on(nginx_port), "4.2.2");

    // While the upgrade runs, in the vendor's order: never an old ODC and a new one serving at
    // the same time (an old node on the schema a new one migrated), and never an old one after
    // the backup was taken.
    let done = Arc::new(AtomicBool::new(false));
    let outages: Arc<Mutex<Vec<String>>> = Arc::default();
    let probes = Arc::new(Mutex::new(0u32));
    let watcher = {
        let (d, done, outages, probes) = (d.clone(), done.clone(), outages.clone(), probes.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let versions: Vec<String> = d.nodes.iter().map(|n| d.version_on(n.port)).collect();
                if versions.iter().any(|v| v == "4.2.2") && versions.iter().any(|v| v == "4.3.0") {
                    outages.lock().unwrap().push(format!("{:?}: old and new ODC serving at once: {versions:?}", Instant::now()));
                }
                *probes.lock().unwrap() += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let o = d.cli("upgrade", &["--to", "4.3.0", "--yes"]);
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(*probes.lock().unwrap() > 5, "the watcher barely ran");
    assert!(outages.lock().unwrap().is_empty(), "{:?}\n{t}", outages.lock().unwrap());
    for n in &d.nodes {
        assert_eq!(d.inspect(&n.container, "{{.Config.Image}}"), ODC_NEW, "{}", n.container);
        assert_eq!(d.version_on(n.port), "4.3.0");
        assert!(d.env_of(&n.container).contains(&format!("ODC_SERVER_PORT={}", n.port)));
        let before = &base.containers.iter().find(|c| c.0 == n.container).unwrap().3;
        assert_eq!(&d.options(&n.container), before, "{}: the new ODC keeps the old one's options, its restart policy included", n.container);
        assert!(before.contains("\"Name\":\"unless-stopped\""), "{before}");
    }
    // The new nodes started one after the other: b's new container after a's.
    let started = |c: &str| d.inspect(c, "{{.State.StartedAt}}");
    assert!(started(&d.nodes[1].container) > started(&d.nodes[0].container));
    assert_eq!(d.inspect(&nginx, "{{.Config.Image}}"), NGINX_NEW);
    let nginx_before = &base.containers.iter().find(|c| c.0 == nginx).unwrap().3;
    assert_eq!(&d.options(&nginx), nginx_before, "nginx keeps its config mount, published port and restart policy");
    assert!(nginx_before.starts_with("default ") && nginx_before.contains(&format!("\"HostPort\":\"{nginx_port}\"")), "{nginx_before}");
    assert!(d.healthy(nginx_port));
    assert_eq!(d.version_on(nginx_port), "4.3.0");
    assert!(text(&docker(&["logs", &nginx])).contains("nginx/1.26.2"));
    assert_eq!(d.schema(), "4.2.0.1,4.2.2.1,4.3.0.1,4.3.0.2");
    // One backup, taken after every old ODC stopped and before the first new one started.
    let (dir, _) = d.last_run();
    let calls: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("upgrade-calls.json")).unwrap()).unwrap();
    let names: Vec<&str> = calls.as_array().unwrap().iter().filter_map(|c| c["call"].as_str()).collect();
    assert_eq!(names.iter().filter(|c| **c == "sql.dump-databases").count(), 1, "{names:?}");
    let dump = names.iter().position(|c| *c == "sql.dump-databases").unwrap();
    assert_eq!(names[..dump].iter().filter(|c| **c == "docker.stop").count(), d.nodes.len(), "every ODC node stops before the backup: {names:?}");
    assert!(Some(dump) < names.iter().position(|c| *c == "docker.run"), "{names:?}");
    old_odc_refuses_migrated_schema(&d);

    let o = d.cli("rollback", &["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    d.assert_restored(&base);
    assert_eq!(d.inspect(&nginx, "{{.Config.Image}}"), NGINX_OLD);
    assert!(d.healthy(nginx_port));
    assert_eq!(d.version_on(nginx_port), "4.2.2");
}

#[test]
fn odc_failing_schema_migration_is_rolled_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_images();
    // The new ODC (it inherits the old container's env) applies part of its 4.3.0 migration and
    // exits 1, and its restart policy (the old container's, carried over) starts it again and
    // again: the upgrade notices the crash loop at once (not after the health timeout) and the
    // rollback removes the half-migrated schema with the restore.
    let d = OdcDeployment::with_env("f", &[28993], None, &["STANDIN_FAIL_MIGRATE=4.3.0"], true);
    let n = &d.nodes[0];
    let base = d.baseline();

    let started = Instant::now();
    let o = d.cli("upgrade", &["--to", "4.3.0", "--yes"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "container {} on node local restarting (it exited, and its restart policy starts it again) instead of becoming healthy",
            n.container
        )) && t.contains("migration 4.3.0"),
        "{t}"
    );
    assert!(started.elapsed() < Duration::from_secs(50), "the failure was noticed only at the health timeout");
    assert!(["restarting", "running"].contains(&d.state(&n.container).as_str()), "{}", d.state(&n.container));
    assert_eq!(d.schema(), "4.2.0.1,4.2.2.1", "the failed migration recorded no version");
    assert!(
        mariadb(&format!("SHOW TABLES FROM {} LIKE 'collaboration_environment'", d.db)).contains("collaboration_environment"),
        "half of the migration is in the MetaDB"
    );
    assert_eq!(d.last_run().1["status"], "upgrade-failed");

    let o = d.cli("rollback", &["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(mariadb(&format!("SHOW TABLES FROM {} LIKE 'collaboration_environment'", d.db)), "");
    d.assert_restored(&base);
}

#[test]
fn odc_4_2_2_straight_to_4_3_1_as_the_vendor_allows_then_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _ = docker(&["rmi", "-f", ODC_NEW, "reg.example.com/oceanbase/odc-server:4.3.1"]);
    // 4.2.2 -> 4.3.1 in one hop (odc-4.3.1): the vendor's 4.3.1 release notes allow a direct
    // upgrade from V2.0.0 on, so the route is not through 4.3.0. Its own archive and grants.
    let d = OdcDeployment::new("r", &[28994], None);
    let n = &d.nodes[0];
    let base = d.baseline();
    let images = env("OPSHOST_TEST_IMAGES");
    let mut site = std::fs::read_to_string(&d.site).unwrap();
    site.push_str(&format!(
        "\n[products.odc.hops.\"4.3.1\"]\nimage_archive = \"{images}/odc-server-4.3.1.tar.gz\"\n\n[grants.\"odc-4.3.1\"]\ndocker = [\"{c}\"]\nimage-archive = [\"{images}/odc-server-4.3.1.tar.gz\"]\nsql = [\"metadb/{db}\"]\nconsole = [\"servers\"]\n",
        c = n.container,
        db = d.db
    ));
    std::fs::write(&d.site, site).unwrap();

    let o = d.cli("upgrade", &["--to", "4.3.1", "--yes"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("Plan of odc-4.3.1") && !t.contains("Plan of odc-4.3.0"), "one hop, with odc-4.3.1: {t}");
    assert!(t.contains("the vendor's ODC 4.3.1 release notes"), "{t}");
    assert_eq!(d.inspect(&n.container, "{{.Config.Image}}"), "reg.example.com/oceanbase/odc-server:4.3.1");
    assert_eq!(d.version_on(n.port), "4.3.1");
    // ODC 4.3.1 applied 4.3.0's migrations and its own.
    assert_eq!(d.schema(), "4.2.0.1,4.2.2.1,4.3.0.1,4.3.0.2,4.3.1.1");
    let site_arg = d.site.display().to_string();
    let runs: serde_json::Value = serde_json::from_slice(&d.opshost(&["runs", "list", "--config", &site_arg, "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["plugin"], "odc-4.3.1", "{runs}");

    let o = d.cli("rollback", &["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(d.inspect(&n.container, "{{.Config.Image}}"), ODC_OLD);
    d.wait_healthy(n.port, true);
    assert_eq!(d.version_on(n.port), "4.2.2");
    assert_eq!(d.schema(), base.schema);
    assert_eq!(d.checksum(), base.checksum, "the MetaDB differs from before the upgrade");
    assert_eq!(d.env_of(&n.container), base.containers[0].2);
    assert_eq!(d.options(&n.container), base.containers[0].3);
}
