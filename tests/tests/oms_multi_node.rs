//! A three-node, two-region OMS on real Docker and MariaDB (#16). Nodes are Docker engines: hz-1
//! is this machine's engine, hz-2 and sh-1 are two more engines (dockerd processes of their own)
//! the test starts. Region hangzhou's two nodes mount one shared config.yaml, as over NFS;
//! shanghai's node has its own, which names another heartbeat database (the vendor's cm_hb1,
//! cm_hb2), and it answers HTTPS with the vendor's certificate mount (health_ca_file names the
//! test CA); every stand-in sends its health reply in chunks. HA is on. Upgraded 4.1.1 -> 4.2.0
//! (a hop before 4.2.2) and rolled back.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A Docker engine of its own: one more node. It gets a bridge of its own: an engine without one
/// (`--bridge none`) deletes the host's docker0, which the main engine uses.
struct Engine {
    dir: PathBuf,
    bridge: String,
    dockerd: Child,
}

fn ip(args: &[&str]) -> std::process::Output {
    run(Command::new("ip").args(args))
}

impl Engine {
    fn start(dir: PathBuf, n: u8) -> Engine {
        std::fs::create_dir_all(&dir).unwrap();
        let bridge = format!("opsh-e2e-br{n}");
        let _ = ip(&["link", "del", &bridge]);
        for args in [
            vec!["link", "add", "name", &bridge, "type", "bridge"],
            vec!["addr", "add", &format!("172.31.{n}.1/24"), "dev", &bridge],
            vec!["link", "set", &bridge, "up"],
        ] {
            let o = ip(&args.iter().map(|a| a.as_ref()).collect::<Vec<&str>>());
            assert!(o.status.success(), "ip {args:?}: {}", text(&o));
        }
        let dockerd = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}/docker.sock", dir.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["--bridge", &bridge, "--iptables=false", "--ip6tables=false"])
            .stdout(std::fs::File::create(dir.join("dockerd.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("dockerd.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting a second Docker engine (dockerd): {e}; this test needs dockerd and root, as tests/run-all.sh has"));
        let e = Engine { dir, bridge, dockerd };
        let start = Instant::now();
        while !e.docker(&["info", "--format", "{{.ServerVersion}}"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the Docker engine at {} did not start: {}",
                e.url(),
                std::fs::read_to_string(e.dir.join("dockerd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        e
    }
    fn url(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }
    fn docker(&self, args: &[&str]) -> std::process::Output {
        run(Command::new("docker").arg("-H").arg(self.url()).args(args))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SIGTERM: dockerd stops, unmounting what it mounted; then its files go.
        unsafe { libc::kill(self.dockerd.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while self.dockerd.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        // What it left mounted (its network namespace file) before its files go.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.dir.display().to_string();
        for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|m| m.starts_with(&root)) {
            let _ = run(Command::new("umount").args(["-l", m]));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// One OMS node: its engine (None: this machine's), OMS_HOST_IP, health port, region's config dir,
/// and whether it answers HTTPS.
struct Node {
    name: &'static str,
    engine: Option<Engine>,
    ip: &'static str,
    port: u16,
    config_dir: &'static str,
    https: bool,
}

impl Node {
    fn docker(&self, args: &[&str]) -> std::process::Output {
        match &self.engine {
            Some(e) => e.docker(args),
            None => docker(args),
        }
    }
    fn state(&self, container: &str) -> String {
        let o = self.docker(&["inspect", "-f", "{{.State.Status}}", container]);
        if o.status.success() {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        } else {
            "absent".into()
        }
    }
    fn inspect(&self, container: &str, format: &str) -> String {
        String::from_utf8_lossy(&self.docker(&["inspect", "-f", format, container]).stdout).trim().to_string()
    }
    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/oms/health", if self.https { "https" } else { "http" }, self.port)
    }
    fn healthy(&self, rt: &tokio::runtime::Runtime) -> bool {
        use opshost::capabilities::console::http::{HttpClient, TlsTrust};
        let client = HttpClient::new(&TlsTrust::CaFile(tls_dir().join("ca.pem"))).unwrap();
        rt.block_on(client.get(&self.url(), Duration::from_secs(2)))
            .map(|(s, b)| s == 200 && opshost::capabilities::console::real::healthy_body(&b))
            .unwrap_or(false)
    }
}

/// The docker_init.sh runs a node's log directory shows (the stand-in's script appends there).
fn init_runs(dir: &Path, node: &str) -> usize {
    std::fs::read_to_string(dir.join(node).join("logs/docker_init.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("MetaDB already at") || l.starts_with("upgrading MetaDB "))
        .count()
}

#[test]
fn three_nodes_in_two_regions_upgrade_and_roll_back_on_every_node() {
    if std::env::var("OPSHOST_TEST_DOCKER").is_err() {
        eprintln!("skipped: needs Docker and MariaDB (run tests/run-all.sh)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remove_new_image();
    let id = format!("mn{}", std::process::id() % 100000);
    let work = tempfile::Builder::new().prefix("opshost-mn-").tempdir_in("/tmp").unwrap();
    let dir = work.path();
    let (rm, cm, hb1, hb2) = (format!("rm_{id}"), format!("cm_{id}"), format!("cm_hb1_{id}"), format!("cm_hb2_{id}"));
    let drop_dbs =
        || mariadb(&format!("DROP DATABASE IF EXISTS {rm}; DROP DATABASE IF EXISTS {cm}; DROP DATABASE IF EXISTS {hb1}; DROP DATABASE IF EXISTS {hb2};"));
    drop_dbs();
    let nodes = [
        Node { name: "hz-1", engine: None, ip: "127.0.0.1", port: 18190, config_dir: "hangzhou", https: false },
        Node { name: "hz-2", engine: Some(Engine::start(dir.join("engine-hz-2"), 1)), ip: "127.0.0.2", port: 18191, config_dir: "hangzhou", https: false },
        Node { name: "sh-1", engine: Some(Engine::start(dir.join("engine-sh-1"), 2)), ip: "127.0.0.3", port: 18192, config_dir: "shanghai", https: true },
    ];
    let (old, new) = (format!("oms_411_{id}"), format!("oms_420_{id}"));
    let archives = env("OPSHOST_TEST_IMAGES");
    for n in nodes.iter().filter(|n| n.engine.is_some()) {
        let o = n.docker(&["load", "-i", &format!("{archives}/oms-feature_4.1.1-ce.tar.gz")]);
        assert!(o.status.success(), "loading the old image on {}: {}", n.name, text(&o));
    }

    // The MetaDB: rm, cm, and a heartbeat database per region, named in that region's config.yaml.
    let identity = format!("deployment-{id}");
    mariadb(&format!(
        "CREATE DATABASE {rm}; CREATE DATABASE {cm}; CREATE DATABASE {hb1}; CREATE DATABASE {hb2};
         CREATE TABLE {rm}.oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, cfg_name VARCHAR(128) NOT NULL UNIQUE, cfg_value LONGTEXT, description VARCHAR(512), gmt_modified DATETIME(6));
         INSERT INTO {rm}.oms_normal_config (cfg_name, cfg_value, description, gmt_modified) VALUES ('ha.config', '{HA_CONFIG}', 'HA', '2026-11-01 10:00:00.123456');
         CREATE TABLE {rm}.oms_version (version VARCHAR(32) NOT NULL); INSERT INTO {rm}.oms_version VALUES ('4.1.1');
         CREATE TABLE {rm}.standin_identity (identity VARCHAR(128)); INSERT INTO {rm}.standin_identity VALUES ('{identity}');
         CREATE TABLE {rm}.cluster_info (region VARCHAR(64), cm_url VARCHAR(256), code VARCHAR(64), is_default_cm TINYINT);
         INSERT INTO {rm}.cluster_info VALUES ('hangzhou', 'http://127.0.0.1:8088', 'cn-hangzhou', 1), ('shanghai', 'http://127.0.0.3:8088', 'cn-shanghai', 0);
         CREATE TABLE {rm}.oms_project (id BIGINT PRIMARY KEY, name VARCHAR(128), config JSON);
         INSERT INTO {rm}.oms_project SELECT seq, CONCAT('project-', seq), CONCAT('{{\"tables\":', seq, '}}') FROM {rm}.seq_1_to_500;
         CREATE TABLE {cm}.resource_group (id INT PRIMARY KEY, name VARCHAR(64)); INSERT INTO {cm}.resource_group VALUES (1, 'hangzhou'), (2, 'shanghai');
         CREATE TABLE {cm}.host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), host_status VARCHAR(16));
         INSERT INTO {cm}.host (resource_group_id, ip, host_status) VALUES (1, '127.0.0.1', 'OFFLINE'), (1, '127.0.0.2', 'OFFLINE'), (2, '127.0.0.3', 'OFFLINE');
         CREATE TABLE {hb1}.heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT);
         INSERT INTO {hb1}.heatbeat_sequence (node, gmt_created) SELECT '127.0.0.1', 1767225600000 + seq FROM {hb1}.seq_1_to_3000;
         CREATE TABLE {hb2}.heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT);
         INSERT INTO {hb2}.heatbeat_sequence (node, gmt_created) SELECT '127.0.0.3', 1767225600000 + seq FROM {hb2}.seq_1_to_2000;"
    ));
    let c = db_conn();
    let password = env("OPSHOST_TEST_DB_PASSWORD");
    for (region, code, hb, ips) in [("hangzhou", "cn-hangzhou", &hb1, "[127.0.0.1, 127.0.0.2]"), ("shanghai", "cn-shanghai", &hb2, "\n - 127.0.0.3")] {
        std::fs::create_dir_all(dir.join(region)).unwrap();
        std::fs::write(
            dir.join(region).join("config.yaml"),
            format!(
                "oms_meta_host: {}\noms_meta_port: {}\noms_meta_user: {}\noms_meta_password: {password}\ndrc_rm_db: {rm}\ndrc_cm_db: {cm}\ndrc_cm_heartbeat_db: {hb}\ncm_location: {region}\ncm_region: {code}\ncm_nodes: {ips}\nstandin_heartbeat_ms: 300\n",
                c.host, c.port, c.user
            ),
        )
        .unwrap();
    }
    let mounts = |n: &Node| {
        let p = dir.join(n.name);
        for sub in ["logs", "store", "run"] {
            std::fs::create_dir_all(p.join(sub)).unwrap();
        }
        std::fs::write(p.join("store/standin-identity"), &identity).unwrap();
        let mut m = vec![
            format!("{}/config.yaml:/home/admin/conf/config.yaml", dir.join(n.config_dir).display()),
            format!("{}/logs:/home/admin/logs", p.display()),
            format!("{}/store:/home/ds/store", p.display()),
            format!("{}/run:/home/ds/run", p.display()),
        ];
        if n.https {
            // The vendor's HTTPS mounts: OMS's nginx serves with this certificate and key.
            m.push(format!("{}:/etc/pki/nginx/oms_server.crt:ro", tls_dir().join("server.pem").display()));
            m.push(format!("{}:/etc/pki/nginx/oms_server.key:ro", tls_dir().join("server.key").display()));
        }
        m
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cleanup_main = || {
        let _ = docker(&["rm", "-f", &old, &new]);
    };
    cleanup_main();
    for n in &nodes {
        let (ip, port) = (format!("OMS_HOST_IP={}", n.ip), format!("STANDIN_HTTP_PORT={}", n.port));
        let mut args = vec!["run", "-dit", "--net", "host", "--pids-limit", "-1", "--ulimit", "nproc=65535:65535", "--restart", "on-failure:3", "--name", &old];
        let m = mounts(n);
        for v in &m {
            args.extend(["-v", v]);
        }
        args.extend(["-e", &ip, "-e", &port, OLD_IMAGE]);
        let o = n.docker(&args);
        assert!(o.status.success(), "docker run on {}: {}", n.name, text(&o));
    }
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < Duration::from_secs(90), "{what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for n in &nodes {
        wait(&format!("the old OMS on {} never answered healthy: {}", n.name, text(&n.docker(&["logs", &old]))), &|| n.healthy(&rt));
    }

    // The site: three nodes, two of them engines of their own.
    let site = dir.join("site.toml");
    let archive = format!("{archives}/oms-feature_4.2.0-ce.tar.gz");
    let engines: String = nodes
        .iter()
        .map(|n| match &n.engine {
            Some(e) => format!("[nodes.{}]\ndocker = \"{}\"\n", n.name, e.url()),
            None => format!("[nodes.{}]\n", n.name),
        })
        .collect();
    let health: Vec<String> = nodes.iter().map(|n| format!("\"{}\" = \"{}\"", n.name, n.url())).collect();
    std::fs::write(
        &site,
        format!(
            r#"{preamble}
{engines}
{metadb}
[products.oms]
version = "4.1.1"
nodes = ["hz-1", "hz-2", "sh-1"]

[products.oms.parameters]
container = "{old}"
new_container = "{new}"
image_archive = "{archive}"
region_nodes = "hangzhou=hz-1,hz-2;shanghai=sh-1"
regions_sharing_config = "hangzhou"
trim_heartbeat = "false"
online_timeout_s = "120"
poll_interval_s = "1"
stop_timeout_s = "5"

[grants."oms-4.2.0"]
docker = ["{old}", "{new}"]
image-archive = ["{archive}"]
sql = ["metadb/{rm}", "metadb/{cm}", "metadb/{hb1}", "metadb/{hb2}"]
console = ["ha.config", "servers"]

[products.oms.console]
rm_db = "{rm}"
cm_db = "{cm}"
health_urls = {{ {health} }}
health_ca_file = "{ca}"
"#,
            preamble = site_preamble(&dir.display().to_string(), ""),
            metadb = metadb_toml(c.port),
            health = health.join(", "),
            ca = tls_dir().join("ca.pem").display(),
        ),
    )
    .unwrap();
    let opshost = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", site.to_str().unwrap()]);
        run(Command::new(target_dir().join("opshost")).args(&all).env("OPSHOST_CACHE_DIR", dir.join("cache")))
    };
    let sql = opshost::capabilities::sql::mysql::MysqlSql::new(
        &std::collections::BTreeMap::from([("metadb".to_string(), db_conn())]),
        std::env::temp_dir(),
        std::sync::Arc::new(opshost::report::Silent),
    )
    .unwrap();
    let checksum = |db: &str| rt.block_on(opshost::capabilities::sql::Sql::database_checksum(&sql, "metadb", db)).unwrap();
    let cm_before = checksum(&cm);
    let binds: Vec<String> = nodes.iter().map(|n| n.inspect(&old, "{{json .HostConfig.Binds}}")).collect();
    let restart_policy = nodes[0].inspect(&old, "{{json .HostConfig.RestartPolicy}}");

    // The plan says what the deployment's files say, and where docker_init.sh runs.
    let o = opshost(&["plan", "--product", "oms", "--to", "4.2.0"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for must in [
        format!("config.yaml on nodes hz-1, hz-2: drc_rm_db {rm}, drc_cm_db {cm}, drc_cm_heartbeat_db {hb1}, cm_location hangzhou, cm_region cn-hangzhou, cm_nodes 127.0.0.1, 127.0.0.2"),
        format!("config.yaml on node sh-1: drc_rm_db {rm}, drc_cm_db {cm}, drc_cm_heartbeat_db {hb2}, cm_location shanghai"),
        "share one config.yaml: docker_init.sh runs once, on hz-1".to_string(),
        format!("heartbeat database {hb2}"),
        "HA is on".to_string(),
    ] {
        assert!(t.contains(&must), "the plan lacks {must:?}:\n{t}");
    }

    let o = opshost(&["upgrade", "--product", "oms", "--to", "4.2.0", "--yes"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!((n.state(&old), n.state(&new)), ("exited".to_string(), "running".to_string()), "node {}", n.name);
        assert_eq!(n.inspect(&new, "{{.Config.Image}}"), NEW_IMAGE, "node {}", n.name);
        assert_eq!(n.inspect(&new, "{{json .HostConfig.Binds}}"), binds[i], "node {}: mounts", n.name);
        let env_new = n.inspect(&new, "{{json .Config.Env}}");
        assert!(env_new.contains(&format!("OMS_HOST_IP={}", n.ip)) && env_new.contains("IS_UPGRADE=true"), "node {}: {env_new}", n.name);
        assert_eq!(n.inspect(&new, "{{json .HostConfig.RestartPolicy}}"), restart_policy, "node {}: the restart policy is carried over", n.name);
        assert!(n.healthy(&rt), "node {}: the new OMS is not healthy", n.name);
    }
    // sh-1's new OMS answers HTTPS, as its old one did (the certificate mounts carried over).
    assert!(text(&nodes[2].docker(&["logs", &new])).contains("health on HTTPS port 18192"), "{}", text(&nodes[2].docker(&["logs", &new])));
    assert!(text(&nodes[0].docker(&["logs", &new])).contains("health on HTTP port 18190"));
    // docker_init.sh ran once for hangzhou (on hz-1, the shared file) and once on sh-1.
    let runs: Vec<usize> = nodes.iter().map(|n| init_runs(dir, n.name)).collect();
    assert_eq!(runs, vec![1, 0, 1], "docker_init.sh runs on hz-1, hz-2, sh-1");
    assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.2.0");
    for hb in [&hb1, &hb2] {
        assert!(mariadb(&format!("SHOW CREATE TABLE {hb}.heatbeat_sequence")).contains("v4_2_0_region"), "{hb} was not upgraded");
    }
    assert_eq!(mariadb(&format!("SELECT GROUP_CONCAT(host_status ORDER BY ip) FROM {cm}.host")), "ONLINE,ONLINE,ONLINE");
    let ha: serde_json::Value = serde_json::from_str(&mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"))).unwrap();
    assert_eq!(ha["enable"].as_bool(), Some(true), "HA is back on");
    assert!(ha["refetchStoreIntervalMin"].as_u64().unwrap_or(0) >= 31, "{ha}");

    // Rollback: every node's old container back, every database as it was (the heartbeat
    // databases as dumped: the old OMS writes heartbeats again at once).
    let o = opshost(&["rollback", "--product", "oms", "--yes"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for n in &nodes {
        assert_eq!((n.state(&old), n.state(&new)), ("running".to_string(), "exited".to_string()), "node {}", n.name);
        wait(&format!("the old OMS on {} is not healthy after the rollback", n.name), &|| n.healthy(&rt));
    }
    assert_eq!(mariadb(&format!("SELECT version FROM {rm}.oms_version")), "4.1.1");
    for hb in [&hb1, &hb2] {
        assert!(!mariadb(&format!("SHOW CREATE TABLE {hb}.heatbeat_sequence")).contains("v4_2_0_region"), "{hb} was not restored");
    }
    wait(&format!("cm differs from before the upgrade: {}", mariadb(&format!("SELECT * FROM {cm}.host"))), &|| checksum(&cm) == cm_before);
    let ha: serde_json::Value = serde_json::from_str(&mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"))).unwrap();
    assert_eq!(ha["enable"].as_bool(), Some(true), "HA is on after the rollback");
    // Four databases restored in the rollback, each verified against its backup's checksum.
    let runs: serde_json::Value = serde_json::from_slice(&opshost(&["runs", "list", "--json"]).stdout).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "rolled-back");
    let calls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/runs").join(&run_id).join("rollback-calls.json")).unwrap()).unwrap();
    let restored: Vec<String> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["call"] == "sql.restore-databases")
        .flat_map(|c| c["outcome"]["ok"].as_array().cloned().unwrap_or_default())
        .map(|r| r["database"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec![rm.clone(), cm.clone(), hb1.clone(), hb2.clone()];
    want.sort();
    let mut got = restored.clone();
    got.sort();
    assert_eq!(got, want, "every database, each region's heartbeat database included, is restored");

    cleanup_main();
    drop(nodes);
    drop_dbs();
}
