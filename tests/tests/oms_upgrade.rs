//! End to end on a real Docker engine and a real MariaDB: a stand-in OMS 4.1.1 deployment is
//! upgraded to 4.2.0 by the `opshost` binary and rolled back, with nothing lost. Needs what
//! tests/run-all.sh starts and builds (it fails loudly without it).
//!
//! Over 500 lines: each test is one whole upgrade and rollback on the stand-in deployment
//! (common/), asserted on containers, rows and checksums; they are long because the outcome is.

mod common;

use common::*;
use opshost::capabilities::services::RunRecords;
use std::process::Command;
use std::time::{Duration, Instant};

/// After rollback: the old OMS serves again with its options, rm and cm equal their pre-upgrade
/// content (ha.config as before but for the refetch window the vendor's rollback sets), and every restore matched its dump's checksum.
fn assert_restored(d: &Deployment, b: &Baseline) {
    let (rm0, cm0, binds0, env0) = (b.rm.as_str(), b.cm.as_str(), b.binds.as_str(), b.env.as_str());
    let (rm, cm, hb) = d.dbs();
    assert_eq!(d.state(&d.old()), "running");
    d.wait_healthy(true);
    assert_eq!(d.inspect(&d.old(), "{{json .HostConfig.Binds}}"), binds0);
    assert_eq!(d.inspect(&d.old(), "{{json .Config.Env}}"), env0);
    assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.1.1");
    assert!(d.ha_config_after_rollback(&rm).is_some(), "the rollback did not set refetchStoreIntervalMin as the vendor's does");
    assert_eq!(d.rm_checksum_but_ha_config(&rm), rm0, "rm content differs from before the upgrade (beyond ha.config's refetch window)");
    // cm: the server row is online again, and the 4.2.0 column is gone.
    let start = Instant::now();
    while d.checksum(&cm) != cm0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "cm content differs from before the upgrade: {}",
            mariadb(&format!("SHOW CREATE TABLE {cm}.host; SELECT * FROM {cm}.host"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!mariadb(&format!("SHOW CREATE TABLE {hb}.heatbeat_sequence")).contains("v4_2_0_region"));
    // The heartbeat database came back as dumped: every restore verified its checksum.
    let runs = d.runs();
    let run = runs.as_array().unwrap().last().unwrap();
    let calls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.dir.path().join("state/runs").join(run["id"].as_str().unwrap()).join("rollback-calls.json")).unwrap())
            .unwrap();
    let restores: Vec<&serde_json::Value> = calls.as_array().unwrap().iter().filter(|c| c["call"] == "sql.restore-databases").collect();
    assert_eq!(restores.len(), 1, "the three databases restore in one call");
    let records = RunRecords::read(&d.dir.path().join("state/runs").join(run["id"].as_str().unwrap())).unwrap();
    let (_, backups): (String, Vec<serde_json::Value>) = serde_json::from_str(&records["metadb.backups"]).unwrap();
    let restored = restores[0]["outcome"]["ok"].as_array().unwrap();
    assert_eq!(restored.len(), 3);
    for r in restored {
        let db = r["database"].as_str().unwrap();
        let dumped = backups.iter().find(|b| b["database"] == db).unwrap();
        assert_eq!(r["checksum"], dumped["checksum"], "{db}");
    }
    assert_eq!(run["status"], "rolled-back");
}

#[test]
fn upgrade_then_rollback_on_real_docker_and_mariadb() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();
    let d = Deployment::new("ok", &[], 18089);
    let (rm, cm, hb) = d.dbs();
    // rm holds a view, a trigger and a routine (an OMS MetaDB of another shape): the rollback
    // must bring each back (the content checksum covers them, and they are checked by name).
    let mut c = d.rt.block_on(mysql_async::Conn::new(mysql_opts_for(&rm))).unwrap();
    for stmt in [
        "CREATE VIEW projects_named AS SELECT id, name FROM oms_project WHERE name LIKE 'project-%'".to_string(),
        "CREATE TRIGGER project_renamed BEFORE UPDATE ON oms_project FOR EACH ROW SET NEW.cost = OLD.cost".to_string(),
        "CREATE PROCEDURE project_count(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM oms_project; END".to_string(),
    ] {
        d.rt.block_on(mysql_async::prelude::Queryable::query_drop(&mut c, stmt)).unwrap();
    }
    drop(c);
    let objects = || {
        mariadb(&format!(
        "SELECT CONCAT((SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{rm}'), (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{rm}'), (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{rm}'))"
    ))
    };
    assert_eq!(objects(), "111");
    let base = d.baseline();
    let binds0 = base.binds.clone();

    // `opshost check` looks the site over first: engine, MetaDB, account, space, the route's
    // plugin with its signature and grants, and the plan; nothing found, exit 0, nothing changed.
    let site = d.site.to_str().unwrap().to_string();
    let o = d.opshost(&["check", "--config", &site, "--product", "oms", "--to", "4.2.0"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for must in [
        "ok    docker local".to_string(),
        "MetaDB metadb: MariaDB".to_string(),
        format!("holds what opshost needs on {rm}"),
        "backup space: ".to_string(),
        "every container the site config names exists".to_string(),
        "node local answers healthy".to_string(),
        "4.1.1 -> 4.2.0: oms-4.2.0 (signed by".to_string(),
        "oms-4.2.0 plans ".to_string(),
        "0 failed, ".to_string(),
    ] {
        assert!(t.contains(&must), "check lacks {must:?}:\n{t}");
    }
    assert!(!t.contains("FAIL"), "{t}");
    assert!(d.runs().as_array().unwrap().is_empty() && d.state(&d.new_name()) == "absent", "check changed something");
    let o = d.opshost(&["check", "--config", &site, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("check --json: {e}: {}", text(&o)));
    assert_eq!((o.status.code(), j["failed"].as_u64()), (Some(0), Some(0)), "{j}");
    assert!(j["findings"].as_array().unwrap().iter().any(|f| f["subject"] == "oms plugins" && f["status"] == "ok"), "{j}");

    let o = upgrade(&d);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("site policy deny_privileged") && t.contains("clear the browser cache"), "{t}");
    assert_eq!(t.matches("clear the browser cache before you log on").count(), 1, "each notice is printed once:\n{t}");
    assert!(t.contains("still says version = \"4.1.1\" for oms; opshost knows it is at 4.2.0"), "{t}");
    // The plan said what the backup would hold, and how the server would be read and restored.
    assert!(t.contains(&format!("backup of {rm}: ")) && t.contains("1 views, 1 triggers, 1 procedures, 0 functions, 0 events"), "{t}");
    assert!(t.contains("MetaDB metadb: MariaDB") && t.contains("every restore is verified by checksum"), "{t}");
    // The plan read the deployment's own config.yaml from the container (docker.read-file).
    assert!(t.contains(&format!("config.yaml: drc_rm_db {rm}, drc_cm_db {cm}, drc_cm_heartbeat_db {hb}, cm_location 1")), "{t}");
    // The new OMS runs from the loaded archive with the old mounts, and is healthy.
    assert_eq!(d.state(&d.old()), "exited");
    assert_eq!(d.state(&d.new_name()), "running");
    assert_eq!(d.inspect(&d.new_name(), "{{.Config.Image}}"), NEW_IMAGE);
    assert_eq!(d.inspect(&d.new_name(), "{{json .HostConfig.Binds}}"), binds0);
    let env_new = d.inspect(&d.new_name(), "{{json .Config.Env}}");
    assert!(env_new.contains("IS_UPGRADE=true") && env_new.contains("OMS_HOST_IP=127.0.0.1"), "{env_new}");
    // The new image's own defaults win over the old image's (not copied from the old container).
    assert!(env_new.contains("STANDIN_VERSION=4.2.0") && !env_new.contains("STANDIN_VERSION=4.1.1"), "{env_new}");
    // Same options as the old container, which was started the vendor's way (--pids-limit -1 shows as unlimited).
    let options = "{{.HostConfig.NetworkMode}} {{.HostConfig.PidsLimit}} {{json .HostConfig.Ulimits}}";
    assert_eq!(d.inspect(&d.new_name(), options), d.inspect(&d.old(), options));
    assert!(d.inspect(&d.new_name(), options).starts_with("host "), "{}", d.inspect(&d.new_name(), options));
    assert!(d.inspect(&d.new_name(), options).contains("{\"Name\":\"nproc\",\"Hard\":65535,\"Soft\":65535}"));
    assert!(d.healthy());
    assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.2.0");
    assert!(mariadb(&format!("SHOW CREATE TABLE {cm}.host")).contains("v4_2_0_cpu_cores"));
    assert_eq!(mariadb(&format!("SELECT host_status FROM {cm}.host")), "ONLINE");
    // The vendor's trim left only rows from max(id) on; the new OMS writes heartbeats again.
    let min_id: u64 = mariadb(&format!("SELECT MIN(id) FROM {hb}.heatbeat_sequence")).parse().unwrap();
    assert!(min_id >= 5000, "heartbeat rows below the trim point survived: min id {min_id}");
    let ha: serde_json::Value = serde_json::from_str(&mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"))).unwrap();
    assert_eq!((ha["enable"].as_bool(), ha["refetchStoreIntervalMin"].as_u64()), (Some(true), Some(31)));
    // HA was turned on in ha.config as the new version's docker_init.sh left it, not as recorded
    // before: the key that script added is kept (the vendor edits the value as it stands).
    assert_eq!(ha["standinSchemaVersion"].as_str(), Some("4.2.0"), "{ha}");
    // Each backup exists and is non-empty.
    let runs = d.runs();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "upgraded");
    for db in [&rm, &cm, &hb] {
        let f = d.dir.path().join("backups").join(&run_id).join(format!("{db}.sql"));
        assert!(std::fs::metadata(&f).map(|m| m.len() > 0).unwrap_or(false), "{}", f.display());
    }

    // The run's log: what ran, each call with its duration, the notices, the outcome.
    let log = || std::fs::read_to_string(d.dir.path().join("state/runs").join(&run_id).join("run.log")).unwrap();
    let upgraded = log();
    for must in [
        "RUN   upgrade oms 4.1.1 -> 4.2.0 with oms-4.2.0",
        "PLAN  stop old container: docker stop",
        "CALL  #",
        " docker.stop ",
        " ms ",
        "NOTE  OMS upgraded to 4.2.0",
        "END   upgraded",
    ] {
        assert!(upgraded.contains(must), "run.log lacks {must:?}:\n{upgraded}");
    }
    assert!(upgraded.lines().all(|l| l.len() > 20 && l.as_bytes()[8] == b'-' && l[15..20].starts_with('.')), "every line is stamped:\n{upgraded}");
    // config.yaml holds the MetaDB password: neither the plugin nor any file of the run saw it.
    let password = std::env::var("OPSHOST_TEST_DB_PASSWORD").unwrap();
    let mut hidden = false;
    for f in std::fs::read_dir(d.dir.path().join("state/runs").join(&run_id)).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&format!("oms_meta_password: {password}")), "the MetaDB password reached the run's files");
        hidden |= text.contains("oms_meta_password: <hidden by opshost>");
    }
    assert!(hidden, "the journal holds the config.yaml the plugin read, secrets hidden");

    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(d.state(&d.new_name()), "exited");
    assert_restored(&d, &base);
    assert_eq!(objects(), "111", "the rollback lost the view, the trigger or the routine");
    let rolled = log();
    assert!(rolled.starts_with(&upgraded), "the rollback appends to the run's log");
    for must in ["RUN   rollback oms 4.2.0 -> 4.1.1", " sql.restore-databases ", "NOTE  HA re-enabled; refetchStoreIntervalMin", "END   rolled back"] {
        assert!(rolled[upgraded.len()..].contains(must), "run.log lacks {must:?} after the rollback:\n{rolled}");
    }
    // A second rollback of the same run is refused.
    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already rolled back"));
    // The restore's progress is in bytes, with a rate, in the run's log.
    assert!(rolled[upgraded.len()..].lines().any(|l| l.contains("PROGR restore") && l.contains("B/")), "no byte progress of the restore:\n{rolled}");

    // The run report: one self-contained page, as a browser shows it.
    let report = d.dir.path().join("report.html");
    let o = d.opshost(&["runs", "--config", &site, "show", &run_id, "--html", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"), "the report loads nothing from elsewhere");
    let dom = String::from_utf8_lossy(&chromium(&report, &["--dump-dom"]).stdout).into_owned();
    for must in [run_id.clone(), "rolled back".into(), "downtime".into(), "stop old container".into(), "docker.stop".into(), "sql.restore-databases".into()] {
        assert!(dom.contains(&must), "the rendered report lacks {must:?}");
    }
    let calls: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.dir.path().join("state/runs").join(&run_id).join("upgrade-calls.json")).unwrap()).unwrap();
    let dumped: Vec<&serde_json::Value> =
        calls.iter().filter(|c| c["call"] == "sql.dump-databases").flat_map(|c| c["outcome"]["ok"].as_array().unwrap().iter()).collect();
    assert_eq!(dumped.len(), 3, "{calls:?}");
    // Where the upgrade's time went: the host calls hold at least what their records say, the
    // journal's and transcript's bookkeeping after them is apart, and the plugin with the runtime
    // is the rest of the export's wall time.
    let timing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.dir.path().join("state/runs").join(&run_id).join("upgrade-timing.json")).unwrap()).unwrap();
    let us = |k: &str| timing[k].as_u64().unwrap_or_else(|| panic!("{k} in {timing}"));
    let recorded_ms: u64 = calls.iter().map(|c| c["ms"].as_u64().unwrap()).sum();
    assert!(us("host_calls_us") >= recorded_ms * 1000 && us("wall_us") >= us("host_calls_us"), "{timing} against {recorded_ms} ms of recorded calls");
    assert!(us("bookkeeping_us") > 0, "the journal's end entries took no time: {timing}");
    assert_eq!(us("plugin_and_runtime_us"), us("wall_us") - us("host_calls_us") - us("bookkeeping_us"), "{timing}");
    assert!(us("plugin_and_runtime_us") * 10 < us("wall_us"), "the plugin took a tenth of the upgrade or more: {timing}");
    for b in dumped {
        let (db, sum) = (b["database"].as_str().unwrap(), b["checksum"].as_str().unwrap());
        assert!(dom.contains(&format!("<td>{db}</td>")) && dom.contains(sum), "the report lacks {db}'s backup and checksum {sum}");
    }
    assert_eq!(dom.matches("yes, checksum equal").count(), 3, "every backup restored and verified");
    let shot = d.dir.path().join("report.png");
    chromium(&report, &[&format!("--screenshot={}", shot.display())]);
    let (width, pixels) = png_pixels(&shot);
    let count = |rgb: (u8, u8, u8)| pixels.iter().filter(|p| **p == rgb).count();
    // The downtime band is drawn across the timeline (the legend's swatch alone is 140 pixels),
    // and the changes are drawn on the timeline too.
    let band = count(opshost::cli::run_report::DOWNTIME_RGB);
    assert!(band > 2000, "the downtime band is not on the screenshot ({band} pixels of its colour, {width} wide)");
    assert!(count((0x1e, 0x5a, 0xa8)) > 140, "no change drawn on the timeline");
}

#[test]
fn a_failing_init_script_is_rolled_back_with_nothing_lost() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("fail", &["STANDIN_FAIL_INIT=4.2.0"], 18090);
    let base = d.baseline();

    let o = upgrade(&d);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("docker_init.sh") && t.contains("exited with 1") && t.contains("Duplicate column name"), "{t}");
    assert!(t.contains("opshost rollback --config"), "the failure says how to roll back: {t}");
    assert_eq!(d.runs()[0]["status"], "upgrade-failed");
    // A new upgrade is refused until this run is rolled back.
    let o = upgrade(&d);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("roll it back first"), "{}", text(&o));

    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_restored(&d, &base);
}

/// A backup that lost an object between the dump and the restore (a trigger cut from the file by
/// hand) fails the rollback's verification: the checksum covers the objects, not only the rows.
#[test]
fn a_backup_that_lost_a_trigger_fails_the_rollback_verification() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();
    let d = Deployment::new("lost", &[], 18099);
    let (rm, _, _) = d.dbs();
    mariadb(&format!("CREATE TRIGGER {rm}.project_renamed BEFORE UPDATE ON {rm}.oms_project FOR EACH ROW SET NEW.cost = OLD.cost"));
    let o = upgrade(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run_id = d.runs()[0]["id"].as_str().unwrap().to_string();
    let file = d.dir.path().join("backups").join(&run_id).join(format!("{rm}.sql"));
    // Bytes: a binary string's values in the rows are any bytes.
    let dump = std::fs::read(&file).unwrap();
    let is_trigger = |l: &[u8]| {
        let l = String::from_utf8_lossy(l);
        l.starts_with("CREATE") && l.contains(" TRIGGER ") && l.contains("project_renamed")
    };
    assert!(dump.split(|&b| b == b'\n').any(is_trigger), "the trigger is in the dump");
    // Cut out: the file no longer has the size recorded at dump time; the rollback is refused
    // before it touches anything.
    let cut: Vec<u8> = dump.split_inclusive(|&b| b == b'\n').filter(|l| !is_trigger(l)).flatten().copied().collect();
    std::fs::write(&file, cut).unwrap();
    let o = rollback(&d);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("refused before any change: backup {} is truncated or changed", file.display())), "{t}");
    assert_eq!((d.state(&d.new_name()), d.runs()[0]["status"].as_str()), ("running".to_string(), Some("upgraded")), "{t}");
    // With a journal that cannot be read, the backups are still checked, from their descriptions.
    let journal = d.dir.path().join("state/runs").join(&run_id).join("upgrade.journal");
    let whole = std::fs::read_to_string(&journal).unwrap();
    let (head, rest) = whole.split_once('\n').unwrap();
    std::fs::write(&journal, format!("{head}\n{{garbage\n{rest}")).unwrap();
    let t = text(&rollback(&d));
    assert!(t.contains(&format!("refused before any change: backup {} is truncated or changed", file.display())), "{t}");
    std::fs::write(&journal, whole).unwrap();
    // Blanked to the same size: replayed, and the restored database's checksum gives it away.
    let blank = |dump: &[u8], hide: &dyn Fn(&[u8]) -> bool| -> Vec<u8> {
        let mut inside = false;
        dump.split_inclusive(|&b| b == b'\n')
            .flat_map(|l| {
                inside |= hide(l);
                if inside {
                    let end = l.trim_ascii_end();
                    inside = !end.ends_with(b";") && !end.ends_with(b"$$");
                    format!("--{}\n", " ".repeat(l.len() - 3)).into_bytes()
                } else {
                    l.to_vec()
                }
            })
            .collect()
    };
    let blanked = blank(&dump, &is_trigger);
    assert_eq!(blanked.len(), dump.len());
    std::fs::write(&file, blanked).unwrap();
    let o = rollback(&d);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("restored {rm} has checksum")) && t.contains("but backup"), "{t}");
    assert_eq!(d.runs()[0]["status"], "rollback-failed", "{t}");
    // A table missing from the file: the replay fails half way, rm is left without ha.config.
    let no_config = blank(&dump, &|l: &[u8]| l.starts_with(b"CREATE TABLE `oms_normal_config`"));
    assert_eq!(no_config.len(), dump.len());
    std::fs::write(&file, no_config).unwrap();
    let o = rollback(&d);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(mariadb(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{rm}' AND TABLE_NAME = 'oms_normal_config'")), "0");
    // The backup as it was: the same rollback again, although ha.config cannot be read now,
    // restores rm whole and brings the trigger back.
    std::fs::write(&file, &dump).unwrap();
    let o = rollback(&d);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("HA not turned off") && t.contains("began restoring the databases"), "{t}");
    assert_eq!(d.runs()[0]["status"], "rolled-back", "{t}");
    assert_eq!(d.state(&d.old()), "running");
    assert_eq!(mariadb(&format!("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{rm}'")), "1");
}

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("bad", &[], 18091);
    let (rm, cm, hb) = d.dbs();
    let sums = |d: &Deployment| (d.checksum(&rm), d.checksum(&cm), mariadb(&format!("SELECT COUNT(*) >= 5000 FROM {hb}.heatbeat_sequence")));
    let before = sums(&d);
    let good = std::fs::read_to_string(&d.site).unwrap();
    let typo = format!("names no container on node local: did you mean \"{}\"? correct it there", d.old());
    let not_granted = format!("is not granted to oms-4.2.0: add \"local/{}\" to docker in [grants.\"oms-4.2.0\"]", d.old());
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong source version", good.replace("version = \"4.1.1\"", "version = \"4.1.0\""), "no route from oms 4.1.0 to 4.2.0"),
        ("missing container", good.replace(&d.old(), "oms_nowhere"), "container = \"oms_nowhere\" in [products.oms.parameters]"),
        ("container typo", good.replace(&format!("container = \"{}\"", d.old()), &format!("container = \"{}x\"", d.old())), &typo),
        ("container not granted", good.replace(&format!("docker = [\"{}\", ", d.old()), "docker = ["), &not_granted),
        ("no grants at all", good.replace("[grants.\"oms-4.2.0\"]", "[grants.\"some-other-plugin\"]"), "the site config grants plugin oms-4.2.0 nothing"),
        ("MetaDB down", good.replace(&format!("port = {}", db_conn().port), "port = 1"), "cannot connect to MetaDB metadb"),
        ("unknown parameter", good.replace("poll_interval_s = \"1\"", "poll_intreval_s = \"1\""), "has no parameter poll_intreval_s"),
        (
            "archive not there",
            good.replace("image_archive = \"", "image_archive = \"/nonexistent").replace("image-archive = [\"", "image-archive = [\"/nonexistent"),
            "image_archive = \"/nonexistent",
        ),
        ("health URL missing", good.replace("health_urls = { local =", "health_urls = { locl ="), "has no URL for node local: add local = \"http://"),
        (
            "health URL of no node",
            good.replace("/oms/health\" }", "/oms/health\", locl = \"http://127.0.0.1:1/oms/health\" }"),
            "names \"locl\", which is neither a node product oms runs on",
        ),
        ("health URL not HTTP", good.replace("local = \"http://127.0.0.1", "local = \"ftp://127.0.0.1"), "is not an http:// or https:// URL: correct it there"),
        (
            "health CA file not there",
            good.replace("/oms/health\" }", "/oms/health\" }\nhealth_ca_file = \"/nonexistent/ca.pem\""),
            "health_ca_file /nonexistent/ca.pem: No such file or directory",
        ),
        (
            "database not there",
            good.replace(&format!("cm_hb_db = \"{hb}\""), "cm_hb_db = \"cm_hb_nowhere\""),
            "cm_hb_db = \"cm_hb_nowhere\" in [products.oms.parameters]",
        ),
    ];
    let site = d.site.to_str().unwrap().to_string();
    for (what, config, message) in cases {
        std::fs::write(&d.site, config).unwrap();
        // `opshost check` finds it the night before, on a FAIL line, with the same words.
        let o = d.opshost(&["check", "--config", &site, "--product", "oms", "--to", "4.2.0"]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{what}: check: {t}");
        assert!(t.lines().any(|l| l.starts_with("FAIL")) && t.contains(message), "{what}: check: expected {message:?} in:\n{t}");
        assert!(t.contains("an upgrade would refuse"), "{what}: {t}");
        let o = upgrade(&d);
        let t = text(&o);
        assert_ne!(o.status.code(), Some(0), "{what}: {t}");
        assert!(t.contains(message), "{what}: expected {message:?} in:\n{t}");
        assert_eq!(d.state(&d.old()), "running", "{what}");
        assert_eq!(d.state(&d.new_name()), "absent", "{what}");
        assert!(d.runs().as_array().unwrap().is_empty(), "{what}: a run was started");
        assert_eq!(sums(&d), before, "{what}: the MetaDB changed");
        assert!(d.healthy(), "{what}");
    }

    // The vendor runs OMS --privileged. With the site not dropping the flag (deny_privileged =
    // false), what the engine or the policy would refuse at `docker run` is refused by plan and by
    // upgrade before OMS stops. Whether this engine permits privileged containers is asked of it
    // directly, with the docker CLI.
    let probe = docker(&["run", "--rm", "--privileged", "--network", "none", "--entrypoint", "/opshost-test-no-such-entrypoint", OLD_IMAGE]);
    let engine_refuses = text(&probe).contains("apply caps");
    let keep = good.replace("deny_privileged = true", "deny_privileged = false");
    let allowed = keep.replace("[grants.\"oms-4.2.0\"]\n", &format!("[grants.\"oms-4.2.0\"]\nprivileged = [\"{}\"]\n", d.new_name()));
    assert_ne!(allowed, keep, "the grants block moved: fix the test");
    let refusal = if engine_refuses { "node local's Docker engine refuses --privileged containers" } else { "" };
    let cases = [
        // The old container cannot run privileged here, so no granted container does: the policy refuses.
        ("privileged not granted", keep, "--privileged is not allowed: no granted container on node local runs privileged"),
        ("engine refuses --privileged", allowed, refusal),
    ];
    for (what, config, message) in cases {
        std::fs::write(&d.site, &config).unwrap();
        let mut args = vec!["plan".to_string()];
        args.extend(site_args(&d));
        args.extend(["--to".into(), "4.2.0".into()]);
        let planned = d.opshost(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let o = upgrade(&d);
        if what == "engine refuses --privileged" && !engine_refuses {
            // An engine that permits it: the plan shows the flag the new container will run with.
            assert_eq!(planned.status.code(), Some(0), "{what}: {}", text(&planned));
            assert!(text(&planned).contains("--net host --privileged --pids-limit -1"), "{what}: {}", text(&planned));
            break;
        }
        for (step, o) in [("plan", &planned), ("upgrade", &o)] {
            let t = text(o);
            assert_ne!(o.status.code(), Some(0), "{what}, {step}: {t}");
            assert!(t.contains(message) && t.contains("deny_privileged = true"), "{what}, {step}: expected {message:?} and the fix in:\n{t}");
        }
        assert_eq!(d.state(&d.old()), "running", "{what}");
        assert_eq!(d.state(&d.new_name()), "absent", "{what}");
        assert!(d.runs().as_array().unwrap().is_empty(), "{what}: a run was started");
        assert_eq!(sums(&d), before, "{what}: the MetaDB changed");
        let probes = docker(&["ps", "-aq", "--filter", "label=opshost.probe"]);
        assert!(text(&probes).trim().is_empty(), "{what}: the privileged probe left a container: {}", text(&probes));
    }
    // The console lists a server that no node of the site config runs: upgrading this one would
    // leave an old OMS there on the migrated schema. Refused, nothing changed.
    std::fs::write(&d.site, &good).unwrap();
    mariadb(&format!("INSERT INTO {cm}.host (resource_group_id, ip, host_status) VALUES (1, '10.9.9.9', 'ONLINE')"));
    let o = upgrade(&d);
    let t = text(&o);
    mariadb(&format!("DELETE FROM {cm}.host WHERE ip = '10.9.9.9'"));
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("the OMS console lists server 10.9.9.9, which no node of this deployment runs (its nodes' OMS_HOST_IP: 127.0.0.1)"), "{t}");
    assert_eq!((d.state(&d.old()), d.state(&d.new_name())), ("running".to_string(), "absent".to_string()));
    assert!(d.runs().as_array().unwrap().is_empty(), "a run was started");
    assert_eq!(sums(&d), before, "the MetaDB changed");
    // Another opshost (here the test's own connection) holds this product's run lock on the
    // MetaDB: plan says who, and upgrade is refused before anything changes, naming the holder.
    let name = format!("opshost/{rm}");
    let mut holder = d.rt.block_on(mysql_async::Conn::new(mysql_opts_for(&rm))).unwrap();
    let got: Option<i64> = d.rt.block_on(mysql_async::prelude::Queryable::exec_first(&mut holder, "SELECT GET_LOCK(?, 0)", (name.clone(),))).unwrap();
    assert_eq!(got, Some(1));
    let mut args = vec!["plan".to_string()];
    args.extend(site_args(&d));
    args.extend(["--to".into(), "4.2.0".into()]);
    let planned = d.opshost(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        text(&planned).contains(&format!("warning: another opshost is working on oms right now (its lock {name:?} on MetaDB metadb is held by connection")),
        "{}",
        text(&planned)
    );
    let o = upgrade(&d);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("refused before any change: another opshost is working on oms on MetaDB metadb: its lock {name:?} is held by connection")),
        "{t}"
    );
    assert_eq!((d.state(&d.old()), d.state(&d.new_name())), ("running".to_string(), "absent".to_string()));
    assert!(d.runs().as_array().unwrap().is_empty(), "a run was started");
    assert_eq!(sums(&d), before, "the MetaDB changed");
    d.rt.block_on(holder.disconnect()).unwrap();
    // With the flag dropped by the site, the plan says so and shows the options actually used.
    let mut args = vec!["plan".to_string()];
    args.extend(site_args(&d));
    args.extend(["--to".into(), "4.2.0".into()]);
    let planned = d.opshost(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let t = text(&planned);
    assert_eq!(planned.status.code(), Some(0), "{t}");
    assert!(t.contains("--net host --pids-limit -1 --ulimit nproc=65535:65535") && !t.contains("--privileged --pids"), "{t}");
}

#[test]
fn a_container_started_with_other_mounts_is_unhealthy() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("mnt", &[], 18093);
    // Same config, but an empty store directory: not this deployment's state. (Host network:
    // the real one must stop first to free the port.)
    assert!(docker(&["stop", &d.old()]).status.success());
    let other = tempfile::tempdir().unwrap();
    let p = d.dir.path().display();
    let name = format!("oms_wrongmounts_{}", d.id);
    let o = docker(&[
        "run",
        "-d",
        "--net",
        "host",
        "--name",
        &name,
        "-v",
        &format!("{p}/config.yaml:/home/admin/conf/config.yaml"),
        "-v",
        &format!("{}:/home/ds/store", other.path().display()),
        "-e",
        "OMS_HOST_IP=127.0.0.1",
        OLD_IMAGE,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let start = Instant::now();
    let logs = loop {
        let l = text(&docker(&["logs", &name]));
        if l.contains("does not belong to this deployment") || start.elapsed() > Duration::from_secs(20) {
            break l;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let healthy = d.healthy();
    let _ = docker(&["rm", "-f", &name]);
    assert!(logs.contains("does not belong to this deployment") && !logs.contains("OMS service start successfully"), "{logs}");
    assert!(!healthy, "/oms/health must answer unhealthy");
}

#[test]
fn a_backup_that_would_not_fit_is_refused_before_anything_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("full", &[], 18094);
    // backup_dir on a 1 MiB file system: the three databases cannot fit.
    let backups = d.dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let o = run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", backups.to_str().unwrap()]));
    assert!(o.status.success(), "mounting a small tmpfs (the tests run as root): {}", text(&o));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(backups.clone());
    let mut plan = vec!["plan".to_string()];
    plan.extend(site_args(&d));
    plan.extend(["--to".into(), "4.2.0".into()]);
    for o in [d.opshost(&plan.iter().map(String::as_str).collect::<Vec<_>>()), upgrade(&d)] {
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains(&format!("backup_dir {} has", backups.display())) && t.contains("MiB free, and backing up") && t.contains("needs about"), "{t}");
        assert_eq!(d.state(&d.old()), "running");
        assert_eq!(d.state(&d.new_name()), "absent");
        assert!(d.runs().as_array().unwrap().is_empty(), "a run was started: {t}");
    }
}

/// `--json` on upgrade and rollback: stdout is only JSON lines of schema 1 (the plan, the run,
/// every call, the notices, the outcome), the human text goes to stderr; `--json` without
/// `--yes` is refused before anything happens.
#[test]
fn upgrade_and_rollback_stream_json_lines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("json", &[], 18097);
    let site = d.site.to_str().unwrap().to_string();
    let events = |o: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
            .inspect(|v| assert_eq!(v["v"], 1, "{v}"))
            .collect()
    };
    let kinds = |ev: &[serde_json::Value]| -> Vec<String> { ev.iter().map(|v| v["event"].as_str().unwrap().to_string()).collect() };

    let o = d.opshost(&["upgrade", "--config", &site, "--product", "oms", "--to", "4.2.0", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--json needs --yes"), "{}", text(&o));
    assert!(d.runs().as_array().unwrap().is_empty(), "refused, yet a run started");

    let o = d.opshost(&["upgrade", "--config", &site, "--product", "oms", "--to", "4.2.0", "--yes", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&o);
    let k = kinds(&ev);
    // The plan's read-only calls, then the plan, the run, its calls and events, the outcome.
    let p = k.iter().position(|e| e != "call").unwrap();
    assert_eq!((k[p].as_str(), k[p + 1].as_str(), k.last().map(String::as_str)), ("plan", "run", Some("outcome")), "{k:?}");
    assert!(ev[p]["plan"]["steps"].as_array().unwrap().iter().any(|s| s["title"] == "stop old container"), "{}", ev[p]);
    let stop = ev.iter().find(|v| v["event"] == "call" && v["call"] == "docker.stop").expect("a docker.stop call event");
    assert_eq!((stop["ok"].as_bool(), stop["ms"].is_u64()), (Some(true), true), "{stop}");
    assert!(ev.iter().any(|v| v["event"] == "notice" && v["message"].as_str().unwrap().contains("clear the browser cache")), "{k:?}");
    let out = ev.last().unwrap();
    assert_eq!((out["status"].as_str(), out["error"].is_null(), out["run"].as_str()), (Some("upgraded"), true, ev[p + 1]["run"].as_str()), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Upgrade steps:"), "the human plan goes to stderr");

    let o = d.opshost(&["rollback", "--config", &site, "--product", "oms", "-y", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = events(&o);
    assert!(ev.iter().any(|v| v["event"] == "call" && v["call"] == "sql.restore-databases" && v["ok"] == true), "{:?}", kinds(&ev));
    let progress = ev.iter().find(|v| v["event"] == "progress" && v["label"].as_str().unwrap_or("").starts_with("restore")).expect("restore progress events");
    assert_eq!(progress["unit"], "bytes", "{progress}");
    assert_eq!(ev.last().unwrap()["status"], "rolled-back", "{}", ev.last().unwrap());
}
