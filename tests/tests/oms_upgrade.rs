//! End to end on a real Docker engine and a real MariaDB: a stand-in OMS 4.1.1 deployment is
//! upgraded to 4.2.0 by the `opshost` binary and rolled back, with nothing lost. Needs what
//! tests/run-all.sh starts and builds (it fails loudly without it).

use opshost::capabilities::sql::real::{ConnectionConfig, MysqlSql};
use opshost::capabilities::sql::Sql;
use opshost::runtime::report::Silent;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests share one Docker engine and image tags: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const OLD_IMAGE: &str = "reg.example.com/oceanbase/oms:feature_4.1.1-ce";
const NEW_IMAGE: &str = "reg.example.com/oceanbase/oms:feature_4.2.0-ce";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with `bash tests/run-all.sh`, which starts Docker and MariaDB and builds the stand-in images"))
}

fn target_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn db_conn() -> ConnectionConfig {
    let url = env("OPSHOST_TEST_DB_URL");
    let (user, hostport) = url.trim_start_matches("mysql://").split_once('@').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    ConnectionConfig { host: host.into(), port: port.parse().unwrap(), user: user.into(), password_env: Some("OPSHOST_TEST_DB_PASSWORD".into()), password_file: None, max_connections: 2 }
}

fn mariadb(sql: &str) -> String {
    let c = db_conn();
    let o = run(Command::new("mariadb")
        .args(["--default-character-set=utf8mb4", "-N", "-h", &c.host, "-P", &c.port.to_string(), "-u", &c.user, "-e", sql])
        .env("MYSQL_PWD", env("OPSHOST_TEST_DB_PASSWORD")));
    assert!(o.status.success(), "mariadb -e {sql}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A stand-in OMS 4.1.1 deployment: MetaDB of realistic shape, mounted dirs, a running container.
struct Deployment {
    id: String,
    dir: tempfile::TempDir,
    port: u16,
    site: PathBuf,
    rt: tokio::runtime::Runtime,
    sql: MysqlSql,
}

const HA_CONFIG: &str = r#"{"enable":true,"enableHost":false,"enableStore":true,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72}"#;

impl Deployment {
    fn new(tag: &str, extra_env: &[&str], port: u16) -> Deployment {
        let id = format!("{tag}{}", std::process::id() % 100000);
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site.toml");
        let d = Deployment { id, dir, port, site, rt: tokio::runtime::Runtime::new().unwrap(), sql: MysqlSql::new(&BTreeMap::from([("metadb".to_string(), db_conn())]), std::env::temp_dir(), Arc::new(Silent)).unwrap() };
        d.cleanup();
        let (rm, cm, hb) = d.dbs();
        let p = d.dir.path();
        for sub in ["logs", "store", "run"] {
            std::fs::create_dir_all(p.join(sub)).unwrap();
        }
        let c = db_conn();
        std::fs::write(
            p.join("config.yaml"),
            format!(
                "oms_meta_host: {}\noms_meta_port: {}\noms_meta_user: {}\noms_meta_password: {}\ndrc_rm_db: {rm}\ndrc_cm_db: {cm}\ndrc_cm_heartbeat_db: {hb}\ncm_location: 1\nnginx_server_port: {port}\nstandin_heartbeat_ms: 200\n",
                c.host,
                c.port,
                c.user,
                env("OPSHOST_TEST_DB_PASSWORD")
            ),
        )
        .unwrap();
        let identity = format!("deployment-{}", d.id);
        std::fs::write(p.join("store/standin-identity"), &identity).unwrap();
        mariadb(&format!(
            "CREATE DATABASE {rm}; CREATE DATABASE {cm}; CREATE DATABASE {hb}; USE {rm};
             CREATE TABLE {rm}.oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, cfg_name VARCHAR(128) NOT NULL UNIQUE, cfg_value LONGTEXT, description VARCHAR(512), gmt_modified DATETIME(6));
             INSERT INTO {rm}.oms_normal_config (cfg_name, cfg_value, description, gmt_modified) VALUES ('ha.config', '{HA_CONFIG}', 'HA', '2026-11-01 10:00:00.123456'), ('oms.alarm.config', '{{\"enable\":false}}', NULL, NULL), ('store.retention.hours', '72', NULL, NULL);
             CREATE TABLE {rm}.oms_version (version VARCHAR(32) NOT NULL); INSERT INTO {rm}.oms_version VALUES ('4.1.1');
             CREATE TABLE {rm}.standin_identity (identity VARCHAR(128)); INSERT INTO {rm}.standin_identity VALUES ('{identity}');
             CREATE TABLE {rm}.cluster_info (region VARCHAR(64), cm_url VARCHAR(256), code VARCHAR(64), is_default_cm TINYINT); INSERT INTO {rm}.cluster_info VALUES ('hangzhou', 'http://127.0.0.1:8088', 'cn-hangzhou', 1);
             CREATE TABLE {rm}.oms_project (id BIGINT PRIMARY KEY, name VARCHAR(128), config JSON, cost DOUBLE, weight FLOAT, blob_cfg BLOB);
             INSERT INTO {rm}.oms_project SELECT seq, CONCAT('project-', seq), CONCAT('{{\"tables\":', seq, '}}'), seq / 7, seq / 3, UNHEX(SHA2(seq, 256)) FROM seq_1_to_2000;
             CREATE TABLE {cm}.resource_group (id INT PRIMARY KEY, name VARCHAR(64)); INSERT INTO {cm}.resource_group VALUES (1, 'default');
             CREATE TABLE {cm}.host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), status VARCHAR(16)); INSERT INTO {cm}.host (resource_group_id, ip, status) VALUES (1, '127.0.0.1', 'offline');
             CREATE TABLE {hb}.heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT);
             INSERT INTO {hb}.heatbeat_sequence (node, gmt_created) SELECT '127.0.0.1', 1767225600000 + seq FROM seq_1_to_5000;"
        ));
        let mut args = vec![
            "run", "-dit", "--net", "host", "--pids-limit", "-1", "--ulimit", "nproc=65535:65535", "--name",
        ];
        let name = d.old();
        args.push(&name);
        let mounts = d.mounts();
        for m in &mounts {
            args.push("-v");
            args.push(m);
        }
        args.extend(["-e", "OMS_HOST_IP=127.0.0.1"]);
        for e in extra_env {
            args.extend(["-e", e]);
        }
        args.push(OLD_IMAGE);
        let o = docker(&args);
        assert!(o.status.success(), "docker run: {}", text(&o));
        d.wait_healthy(true);
        std::fs::write(&d.site, d.site_toml("4.1.1", c.port)).unwrap();
        d
    }

    fn dbs(&self) -> (String, String, String) {
        (format!("rm_{}", self.id), format!("cm_{}", self.id), format!("cm_hb_{}", self.id))
    }
    fn old(&self) -> String {
        format!("oms_411_{}", self.id)
    }
    fn new_name(&self) -> String {
        format!("oms_420_{}", self.id)
    }
    fn mounts(&self) -> Vec<String> {
        let p = self.dir.path().display();
        vec![format!("{p}/config.yaml:/home/admin/conf/config.yaml"), format!("{p}/logs:/home/admin/logs"), format!("{p}/store:/home/ds/store"), format!("{p}/run:/home/ds/run")]
    }
    fn site_toml(&self, version: &str, db_port: u16) -> String {
        let (rm, cm, hb) = self.dbs();
        let p = self.dir.path().display();
        let c = db_conn();
        format!(
            r#"state_dir = "{p}/state"
backup_dir = "{p}/backups"
plugins_dir = "{plugins}"

[docker_policy]
deny_privileged = true   # this sandbox refuses --privileged

[nodes.local]

[metadb.metadb]
host = "{host}"
port = {db_port}
user = "{user}"
password_env = "OPSHOST_TEST_DB_PASSWORD"

[products.oms]
version = "{version}"
nodes = ["local"]

[products.oms.parameters]
container = "{old}"
new_container = "{new}"
image_archive = "{archives}/oms-feature_4.2.0-ce.tar.gz"
rm_db = "{rm}"
cm_db = "{cm}"
cm_hb_db = "{hb}"
online_timeout_s = "90"
poll_interval_s = "1"
stop_timeout_s = "5"

[products.oms.console]
rm_db = "{rm}"
cm_db = "{cm}"
health_urls = {{ local = "http://127.0.0.1:{port}/oms/health" }}
"#,
            plugins = target_dir().join("plugins").display(),
            host = c.host,
            user = c.user,
            old = self.old(),
            new = self.new_name(),
            archives = env("OPSHOST_TEST_IMAGES"),
            port = self.port,
        )
    }

    fn opshost(&self, args: &[&str]) -> Output {
        run(Command::new(target_dir().join("opshost")).args(args).env("OPSHOST_CACHE_DIR", self.dir.path().join("cache")))
    }

    fn healthy(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/oms/health", self.port);
        self.rt.block_on(opshost::capabilities::console::real::http_get(&url, Duration::from_secs(2))).map(|(s, b)| s == 200 && opshost::capabilities::console::real::healthy_body(&b)).unwrap_or(false)
    }

    fn wait_healthy(&self, want: bool) {
        let start = Instant::now();
        while self.healthy() != want {
            assert!(start.elapsed() < Duration::from_secs(60), "OMS on port {} never became {}; logs: {}", self.port, if want { "healthy" } else { "unhealthy" }, text(&docker(&["logs", &self.old()])));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn checksum(&self, db: &str) -> String {
        self.rt.block_on(self.sql.database_checksum("metadb", db)).unwrap()
    }

    fn state(&self, container: &str) -> String {
        let o = docker(&["inspect", "-f", "{{.State.Status}}", container]);
        if o.status.success() { String::from_utf8_lossy(&o.stdout).trim().to_string() } else { "absent".into() }
    }

    fn inspect(&self, container: &str, format: &str) -> String {
        String::from_utf8_lossy(&docker(&["inspect", "-f", format, container]).stdout).trim().to_string()
    }

    fn runs(&self) -> serde_json::Value {
        serde_json::from_slice(&self.opshost(&["runs", "--config", self.site.to_str().unwrap(), "--json"]).stdout).unwrap()
    }

    fn cleanup(&self) {
        let _ = docker(&["rm", "-f", &self.old(), &self.new_name()]);
        let (rm, cm, hb) = self.dbs();
        mariadb(&format!("DROP DATABASE IF EXISTS {rm}; DROP DATABASE IF EXISTS {cm}; DROP DATABASE IF EXISTS {hb};"));
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The new image must come from its archive, as on a real site.
fn remove_new_image() {
    let _ = docker(&["rmi", "-f", NEW_IMAGE]);
}

fn site_args(d: &Deployment) -> Vec<String> {
    vec!["--config".into(), d.site.display().to_string(), "--product".into(), "oms".into()]
}

fn upgrade(d: &Deployment) -> Output {
    let mut a = vec!["upgrade".to_string()];
    a.extend(site_args(d));
    a.extend(["--to".into(), "4.2.0".into(), "--yes".into()]);
    d.opshost(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

fn rollback(d: &Deployment) -> Output {
    let mut a = vec!["rollback".to_string()];
    a.extend(site_args(d));
    a.push("--yes".into());
    d.opshost(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

/// After rollback: the old OMS serves again with its options, rm and cm equal their pre-upgrade
/// content, ha.config is exactly as before, and every restore matched its dump's checksum.
fn assert_restored(d: &Deployment, rm0: &str, cm0: &str, binds0: &str, env0: &str) {
    let (rm, cm, hb) = d.dbs();
    assert_eq!(d.state(&d.old()), "running");
    d.wait_healthy(true);
    assert_eq!(d.inspect(&d.old(), "{{json .HostConfig.Binds}}"), binds0);
    assert_eq!(d.inspect(&d.old(), "{{json .Config.Env}}"), env0);
    assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.1.1");
    assert_eq!(mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'")), HA_CONFIG);
    assert_eq!(d.checksum(&rm), rm0, "rm content differs from before the upgrade");
    // cm: the server row is online again, and the 4.2.0 column is gone.
    let start = Instant::now();
    while d.checksum(&cm) != cm0 {
        assert!(start.elapsed() < Duration::from_secs(20), "cm content differs from before the upgrade: {}", mariadb(&format!("SHOW CREATE TABLE {cm}.host; SELECT * FROM {cm}.host")));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!mariadb(&format!("SHOW CREATE TABLE {hb}.heatbeat_sequence")).contains("v4_2_0_region"));
    // The heartbeat database came back as dumped: every restore verified its checksum.
    let runs = d.runs();
    let run = runs.as_array().unwrap().last().unwrap();
    let calls: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.dir.path().join("state/runs").join(run["id"].as_str().unwrap()).join("rollback-calls.json")).unwrap()).unwrap();
    let restores: Vec<&serde_json::Value> = calls.as_array().unwrap().iter().filter(|c| c["call"] == "sql.restore-database").collect();
    assert_eq!(restores.len(), 3);
    let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.dir.path().join("state/runs").join(run["id"].as_str().unwrap()).join("records.json")).unwrap()).unwrap();
    let (_, backups): (String, Vec<serde_json::Value>) = serde_json::from_str(records["metadb.backups"].as_str().unwrap()).unwrap();
    for r in restores {
        let db = r["args"]["database"].as_str().unwrap();
        let dumped = backups.iter().find(|b| b["database"] == db).unwrap();
        assert_eq!(r["outcome"]["ok"]["checksum"], dumped["checksum"], "{db}");
    }
    assert_eq!(run["status"], "rolled-back");
}

#[test]
fn upgrade_then_rollback_on_real_docker_and_mariadb() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();
    let d = Deployment::new("ok", &[], 18089);
    let (rm, cm, hb) = d.dbs();
    let rm0 = d.checksum(&rm);
    let cm0 = d.checksum(&cm);
    let binds0 = d.inspect(&d.old(), "{{json .HostConfig.Binds}}");
    let env0 = d.inspect(&d.old(), "{{json .Config.Env}}");

    let o = upgrade(&d);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("site policy deny_privileged") && t.contains("clear the browser cache"), "{t}");
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
    assert_eq!(mariadb(&format!("SELECT status FROM {cm}.host")), "online");
    // The vendor's trim left only rows from max(id) on; the new OMS writes heartbeats again.
    let min_id: u64 = mariadb(&format!("SELECT MIN(id) FROM {hb}.heatbeat_sequence")).parse().unwrap();
    assert!(min_id >= 5000, "heartbeat rows below the trim point survived: min id {min_id}");
    let ha: serde_json::Value = serde_json::from_str(&mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"))).unwrap();
    assert_eq!((ha["enable"].as_bool(), ha["refetchStoreIntervalMin"].as_u64()), (Some(true), Some(30)));
    // Each backup exists and is non-empty.
    let runs = d.runs();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "upgraded");
    for db in [&rm, &cm, &hb] {
        let f = d.dir.path().join("backups").join(&run_id).join(format!("{db}.sql"));
        assert!(std::fs::metadata(&f).map(|m| m.len() > 0).unwrap_or(false), "{}", f.display());
    }

    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(d.state(&d.new_name()), "exited");
    assert_restored(&d, &rm0, &cm0, &binds0, &env0);
    // A second rollback of the same run is refused.
    let o = rollback(&d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already rolled back"));
}

#[test]
fn a_failing_init_script_is_rolled_back_with_nothing_lost() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("fail", &["STANDIN_FAIL_INIT=4.2.0"], 18090);
    let (rm, cm, _) = d.dbs();
    let rm0 = d.checksum(&rm);
    let cm0 = d.checksum(&cm);
    let binds0 = d.inspect(&d.old(), "{{json .HostConfig.Binds}}");
    let env0 = d.inspect(&d.old(), "{{json .Config.Env}}");

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
    assert_restored(&d, &rm0, &cm0, &binds0, &env0);
}

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("bad", &[], 18091);
    let (rm, cm, hb) = d.dbs();
    let sums = |d: &Deployment| (d.checksum(&rm), d.checksum(&cm), mariadb(&format!("SELECT COUNT(*) >= 5000 FROM {hb}.heatbeat_sequence")));
    let before = sums(&d);
    let good = std::fs::read_to_string(&d.site).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong source version", good.replace("version = \"4.1.1\"", "version = \"4.1.0\""), "no plugin in"),
        ("missing container", good.replace(&format!("container = \"{}\"", d.old()), "container = \"oms_nowhere\""), "container oms_nowhere does not exist on node local"),
        ("MetaDB down", good.replace(&format!("port = {}", db_conn().port), "port = 1"), "cannot connect to MetaDB metadb"),
        ("unknown parameter", good.replace("poll_interval_s = \"1\"", "poll_intreval_s = \"1\""), "has no parameter poll_intreval_s"),
    ];
    for (what, config, message) in cases {
        std::fs::write(&d.site, config).unwrap();
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
}
