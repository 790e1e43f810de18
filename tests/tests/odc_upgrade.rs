//! End to end on a real Docker engine and a real MariaDB: a stand-in ODC 4.2.2 (single node, and
//! HA: two nodes on the one local engine with their own container names and ports, behind a
//! stand-in nginx) is upgraded to 4.3.0 by the `opshost` binary and rolled back, with the MetaDB
//! exactly as before. The stand-in ODC migrates its schema on start and refuses a newer one, so
//! the rollback only works because it restores the MetaDB first. Needs what tests/run-all.sh
//! starts and builds (it fails loudly without it). Ports 2898x/2899x, names *_odc*_<pid>: apart
//! from the OMS tests.

mod common;

use common::*;
use opshost::capabilities::console::http::{HttpClient, TlsTrust};
use opshost::capabilities::console::real::{healthy_body, http_get};
use opshost::capabilities::sql::real::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::runtime::report::Silent;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ODC_OLD: &str = "reg.example.com/oceanbase/odc-server:4.2.2";
const ODC_NEW: &str = "reg.example.com/oceanbase/odc-server:4.3.0";
const NGINX_OLD: &str = "reg.example.com/oceanbase/odc-nginx:1.24.0";
const NGINX_NEW: &str = "reg.example.com/oceanbase/odc-nginx:1.26.2";
const ADMIN_PASSWORD: &str = "Adm1n@odc";

/// One ODC node of a test deployment: its site-config node name, container and port.
struct OdcNode {
    node: String,
    container: String,
    port: u16,
}

/// A stand-in ODC 4.2.2 deployment: its MetaDB (migrated by the old ODC itself, then given some
/// user data), one or two running ODC containers, optionally an nginx in front.
struct OdcDeployment {
    id: String,
    db: String,
    dir: tempfile::TempDir,
    site: std::path::PathBuf,
    nodes: Vec<OdcNode>,
    /// (container, port)
    nginx: Option<(String, u16)>,
    /// More `KEY=value` for the ODC containers (fault injection).
    extra_env: Vec<String>,
    /// `docker run --restart unless-stopped` for the ODC nodes (the HA site and the crash-loop
    /// test), else no restart policy.
    restart: bool,
    rt: tokio::runtime::Runtime,
    sql: MysqlSql,
}

fn odc_env(db: &str, port: u16) -> Vec<String> {
    let c = db_conn();
    vec![
        format!("DATABASE_HOST={}", c.host),
        format!("DATABASE_PORT={}", c.port),
        format!("DATABASE_USERNAME={}", c.user),
        format!("DATABASE_PASSWORD={}", env("OPSHOST_TEST_DB_PASSWORD")),
        format!("DATABASE_NAME={db}"),
        "ODC_PROFILE_MODE=alipay".to_string(),
        format!("ODC_ADMIN_INITIAL_PASSWORD={ADMIN_PASSWORD}"),
        format!("ODC_SERVER_PORT={port}"),
    ]
}

impl OdcDeployment {
    /// `ports`: one per ODC node (node names `odc-a`, `odc-b`, … when several, else `local`).
    fn new(tag: &str, ports: &[u16], nginx_port: Option<u16>) -> OdcDeployment {
        Self::with_env(tag, ports, nginx_port, &[], ports.len() > 1)
    }

    fn with_env(tag: &str, ports: &[u16], nginx_port: Option<u16>, extra_env: &[&str], restart: bool) -> OdcDeployment {
        let id = format!("{tag}{}", std::process::id() % 100000);
        let dir = tempfile::tempdir().unwrap();
        let names = ["odc-a", "odc-b", "odc-c"];
        let nodes: Vec<OdcNode> = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| OdcNode {
                node: if ports.len() == 1 { "local".into() } else { names[i].into() },
                container: if ports.len() == 1 { format!("obodc_{id}") } else { format!("obodc_{}_{id}", (b'a' + i as u8) as char) },
                port,
            })
            .collect();
        let d = OdcDeployment {
            db: format!("odc_meta_{id}"),
            site: dir.path().join("site.toml"),
            nginx: nginx_port.map(|p| (format!("odc_nginx_{id}"), p)),
            extra_env: extra_env.iter().map(|e| e.to_string()).collect(),
            restart,
            id,
            dir,
            nodes,
            rt: tokio::runtime::Runtime::new().unwrap(),
            sql: MysqlSql::new(&BTreeMap::from([("metadb".to_string(), db_conn())]), std::env::temp_dir(), Arc::new(Silent)).unwrap(),
        };
        d.cleanup();
        mariadb(&format!("CREATE DATABASE {}", d.db));
        for sub in ["log", "data"] {
            std::fs::create_dir_all(d.dir.path().join(sub)).unwrap();
        }
        for n in &d.nodes {
            d.run_odc(n, ODC_OLD);
        }
        for n in &d.nodes {
            d.wait_healthy(n.port, true);
        }
        // User data of ODC 4.2.2's shape, as a site has it.
        mariadb(&format!(
            "INSERT INTO {db}.iam_user (account_name, name, password) VALUES ('dev', 'Developer', SHA2('dev-pass', 256));
             INSERT INTO {db}.connect_connection (name, host, port, username, cluster_name, tenant_name, creator_id, ssl_enabled) VALUES
               ('orders', '10.0.0.21', 2881, 'app', 'ob_cluster', 'orders_tenant', 2, 0), ('users', '10.0.0.22', 2881, 'app', 'ob_cluster', 'users_tenant', 2, 1);",
            db = d.db
        ));
        if let Some((name, port)) = &d.nginx {
            // nginx on Docker's bridge with its port published and a restart policy, as a site
            // may run it: the upgrade and the rollback must bring both back. It reaches the ODC
            // nodes (host network) through the bridge's gateway.
            let gateway = text(&docker(&["network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"])).trim().to_string();
            let upstreams: String = d.nodes.iter().map(|n| format!("  server {gateway}:{};\n", n.port)).collect();
            let conf = d.dir.path().join("nginx.conf");
            // HTTPS with the certificate in /etc/pki/nginx/, as the vendor's HA setup has it.
            std::fs::write(
                &conf,
                format!("upstream odc {{\n  ip_hash;\n{upstreams}}}\nserver {{\n  listen {port} ssl;\n  ssl_certificate /etc/pki/nginx/server.crt;\n  ssl_certificate_key /etc/pki/nginx/server.key;\n  location / {{ proxy_pass http://odc; }}\n}}\n"),
            )
            .unwrap();
            let bind = format!("{}:/etc/nginx/conf.d/default.conf:ro", conf.display());
            let (crt, key) = (
                format!("{}:/etc/pki/nginx/server.crt:ro", tls_dir().join("server.pem").display()),
                format!("{}:/etc/pki/nginx/server.key:ro", tls_dir().join("server.key").display()),
            );
            let publish = format!("{port}:{port}");
            let o = docker(&["run", "-d", "--restart", "unless-stopped", "-p", &publish, "--name", name, "-v", &bind, "-v", &crt, "-v", &key, NGINX_OLD]);
            assert!(o.status.success(), "docker run nginx: {}", text(&o));
            d.wait_healthy(*port, true);
        }
        d.write_site();
        d
    }

    /// `docker run` the vendor's way (seed odc-rollback-after-failed-upgrade.md), with the log
    /// and data volumes.
    fn run_odc(&self, n: &OdcNode, image: &str) {
        let p = self.dir.path().display();
        let (log, data) = (format!("{p}/log:/opt/odc/log"), format!("{p}/data:/opt/odc/data"));
        let mut args: Vec<String> = [
            "run",
            "-d",
            "-i",
            "--net",
            "host",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "400000",
            "--memory",
            "8G",
            "--restart",
            if self.restart { "unless-stopped" } else { "no" },
            "--name",
            &n.container,
            "-v",
            &log,
            "-v",
            &data,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for e in odc_env(&self.db, n.port).into_iter().chain(self.extra_env.iter().cloned()) {
            args.push("-e".into());
            args.push(e);
        }
        args.push(image.into());
        let o = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "docker run {}: {}", n.container, text(&o));
    }

    fn write_site(&self) {
        let p = self.dir.path().display();
        let c = db_conn();
        let images = env("OPSHOST_TEST_IMAGES");
        let ha = self.nodes.len() > 1;
        let node_sections: String = self.nodes.iter().map(|n| format!("[nodes.{}]\n", n.node)).collect();
        let node_list = self.nodes.iter().map(|n| format!("\"{}\"", n.node)).collect::<Vec<_>>().join(", ");
        let mut health: Vec<String> =
            self.nodes.iter().map(|n| format!("\"{}\" = \"http://127.0.0.1:{}/api/v1/heartbeat/isHealthy\"", n.node, n.port)).collect();
        let mut docker_grants: Vec<String> = self.nodes.iter().map(|n| format!("\"{}\"", n.container)).collect();
        let mut params = if ha {
            format!("node_containers = \"{}\"\n", self.nodes.iter().map(|n| format!("{}={}", n.node, n.container)).collect::<Vec<_>>().join(","))
        } else {
            format!("container = \"{}\"\n", self.nodes[0].container)
        };
        let mut archives = vec![format!("\"{images}/odc-server-4.3.0.tar.gz\"")];
        if let Some((name, port)) = &self.nginx {
            params.push_str(&format!(
                "nginx_container = \"{name}\"\nnginx_node = \"{}\"\nnginx_image = \"{NGINX_NEW}\"\nnginx_image_archive = \"{images}/odc-nginx-1.26.2.tar.gz\"\nnginx_health = \"nginx\"\n",
                self.nodes[0].node
            ));
            health.push(format!("nginx = \"https://127.0.0.1:{port}/api/v1/heartbeat/isHealthy\""));
            docker_grants.push(format!("\"{name}\""));
            archives.push(format!("\"{images}/odc-nginx-1.26.2.tar.gz\""));
        }
        let text = format!(
            r#"{preamble}
{node_sections}
{metadb}
[products.odc]
version = "4.2.2"
nodes = [{node_list}]

[products.odc.parameters]
{params}image_archive = "{images}/odc-server-4.3.0.tar.gz"
healthy_timeout_s = "60"
poll_interval_s = "1"
stop_timeout_s = "5"

# ODC keeps no OMS tables: the console's MetaDB settings are unused, its health URLs are what counts.
[products.odc.console]
rm_db = "{db}"
cm_db = "{db}"
health_urls = {{ {health} }}
health_ca_file = "{ca}"

[grants."odc-4.3.0"]
docker = [{docker_grants}]
image-archive = [{archives}]
sql = ["metadb/{db}"]
console = ["servers"]
"#,
            preamble = site_preamble(&p.to_string(), &format!("archives = [{}]\n", archives.join(", "))),
            archives = archives.join(", "),
            ca = tls_dir().join("ca.pem").display(),
            metadb = metadb_toml(c.port),
            db = self.db,
            health = health.join(", "),
            docker_grants = docker_grants.join(", "),
        );
        std::fs::write(&self.site, text).unwrap();
    }

    fn opshost(&self, args: &[&str]) -> Output {
        run(Command::new(target_dir().join("opshost")).args(args).env("OPSHOST_CACHE_DIR", self.dir.path().join("cache")))
    }
    fn cli(&self, verb: &str, extra: &[&str]) -> Output {
        let site = self.site.display().to_string();
        let mut a = vec![verb, "--config", &site, "--product", "odc"];
        a.extend(extra);
        self.opshost(&a)
    }

    /// The nginx in front answers HTTPS (the test CA), the ODC nodes HTTP.
    fn get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        if self.nginx.as_ref().is_some_and(|(_, p)| *p == port) {
            let client = HttpClient::new(&TlsTrust::CaFile(tls_dir().join("ca.pem"))).unwrap();
            return self.rt.block_on(client.get(&format!("https://127.0.0.1:{port}{path}"), Duration::from_secs(2))).ok();
        }
        self.rt.block_on(http_get(&format!("http://127.0.0.1:{port}{path}"), Duration::from_secs(2))).ok()
    }
    fn healthy(&self, port: u16) -> bool {
        matches!(self.get(port, "/api/v1/heartbeat/isHealthy"), Some((200, b)) if healthy_body(&b))
    }
    fn version_on(&self, port: u16) -> String {
        let (_, body) = self.get(port, "/api/v1/info").unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["data"]["version"].as_str().map(str::to_string)).unwrap_or_default()
    }
    fn wait_healthy(&self, port: u16, want: bool) {
        let start = Instant::now();
        while self.healthy(port) != want {
            let logs: Vec<String> = self.nodes.iter().map(|n| format!("{}: {}", n.container, text(&docker(&["logs", &n.container])))).collect();
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "port {port} never became {}; logs:\n{}",
                if want { "healthy" } else { "unhealthy" },
                logs.join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn checksum(&self) -> String {
        self.rt.block_on(self.sql.database_checksum("metadb", &self.db)).unwrap()
    }
    fn schema(&self) -> String {
        mariadb(&format!("SELECT GROUP_CONCAT(version ORDER BY installed_rank) FROM {}.migrate_schema_history WHERE success = 1", self.db))
    }
    fn state(&self, container: &str) -> String {
        let o = docker(&["inspect", "-f", "{{.State.Status}}", container]);
        if o.status.success() {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        } else {
            "absent".into()
        }
    }
    fn inspect(&self, container: &str, format: &str) -> String {
        String::from_utf8_lossy(&docker(&["inspect", "-f", format, container]).stdout).trim().to_string()
    }
    /// What a container was run with, as the tests compare it before and after.
    fn options(&self, container: &str) -> String {
        self.inspect(
            container,
            "{{.HostConfig.NetworkMode}} cpu-period={{.HostConfig.CpuPeriod}} cpu-quota={{.HostConfig.CpuQuota}} memory={{.HostConfig.Memory}} binds={{json .HostConfig.Binds}} stdin={{.Config.OpenStdin}} restart={{json .HostConfig.RestartPolicy}} ports={{json .HostConfig.PortBindings}}",
        )
    }
    fn env_of(&self, container: &str) -> Vec<String> {
        let mut v: Vec<String> = serde_json::from_str(&self.inspect(container, "{{json .Config.Env}}")).unwrap_or_default();
        v.sort();
        v
    }

    /// The latest run's directory under the state dir, and its status.
    fn last_run(&self) -> (std::path::PathBuf, serde_json::Value) {
        let site = self.site.display().to_string();
        let runs: serde_json::Value = serde_json::from_slice(&self.opshost(&["runs", "list", "--config", &site, "--json"]).stdout).unwrap();
        let run = runs.as_array().and_then(|a| a.last()).cloned().unwrap_or_else(|| panic!("no run recorded: {runs}"));
        (self.dir.path().join("state/runs").join(run["id"].as_str().unwrap()), run)
    }

    fn cleanup(&self) {
        let mut names: Vec<&str> = self.nodes.iter().map(|n| n.container.as_str()).collect();
        if let Some((n, _)) = &self.nginx {
            names.push(n);
        }
        let mut args = vec!["rm", "-f"];
        args.extend(names);
        let _ = docker(&args);
        mariadb(&format!("DROP DATABASE IF EXISTS {}", self.db));
    }
}

impl Drop for OdcDeployment {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The new images must come from their archives, as on a real site.
fn remove_new_images() {
    let _ = docker(&["rmi", "-f", ODC_NEW, NGINX_NEW]);
}

/// What must come back after a rollback: the MetaDB content and every container's image, env and
/// options.
struct OdcBaseline {
    checksum: String,
    schema: String,
    containers: Vec<(String, String, Vec<String>, String)>,
}

impl OdcDeployment {
    fn baseline(&self) -> OdcBaseline {
        let mut names: Vec<String> = self.nodes.iter().map(|n| n.container.clone()).collect();
        names.extend(self.nginx.iter().map(|(n, _)| n.clone()));
        OdcBaseline {
            checksum: self.checksum(),
            schema: self.schema(),
            containers: names
                .into_iter()
                .map(|n| (self.inspect(&n, "{{.Config.Image}}"), self.env_of(&n), self.options(&n), n))
                .map(|(i, e, o, n)| (n, i, e, o))
                .collect(),
        }
    }

    /// After rollback: every container as before and healthy, the MetaDB content as before, the
    /// restore verified against the dump's checksum.
    fn assert_restored(&self, b: &OdcBaseline) {
        for (name, image, env, options) in &b.containers {
            assert_eq!(self.state(name), "running", "{name}");
            assert_eq!(&self.inspect(name, "{{.Config.Image}}"), image, "{name}");
            assert_eq!(&self.env_of(name), env, "{name}");
            assert_eq!(&self.options(name), options, "{name}");
        }
        for n in &self.nodes {
            self.wait_healthy(n.port, true);
            assert_eq!(self.version_on(n.port), "4.2.2", "{}", n.container);
        }
        assert_eq!(self.schema(), b.schema);
        assert_eq!(self.checksum(), b.checksum, "the MetaDB differs from before the upgrade");
        let (dir, run) = self.last_run();
        assert_eq!(run["status"], "rolled-back");
        let calls: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("rollback-calls.json")).unwrap()).unwrap();
        let restores: Vec<&serde_json::Value> = calls.as_array().unwrap().iter().filter(|c| c["call"] == "sql.restore-databases").collect();
        assert_eq!(restores.len(), 1);
        assert_eq!(restores[0]["outcome"]["ok"][0]["checksum"].as_str(), Some(b.checksum.as_str()), "the restore matches the MetaDB before the upgrade");
        // The old ODC starts only after the restore (it would refuse the migrated schema).
        let names: Vec<&str> = calls.as_array().unwrap().iter().filter_map(|c| c["call"].as_str()).collect();
        let restore_at = names.iter().position(|c| *c == "sql.restore-databases").unwrap();
        assert!(names.iter().position(|c| *c == "docker.run").unwrap() > restore_at, "{names:?}");
    }
}

/// The old ODC image on the MetaDB the new one migrated: what the vendor's rollback page leads
/// to. It must refuse to start, saying why.
fn old_odc_refuses_migrated_schema(d: &OdcDeployment) {
    let name = format!("obodc_probe_{}", d.id);
    let mut args: Vec<String> = vec!["run".into(), "--net".into(), "host".into(), "--name".into(), name.clone()];
    for e in odc_env(&d.db, 28999) {
        args.push("-e".into());
        args.push(e);
    }
    args.push(ODC_OLD.into());
    let o = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let _ = docker(&["rm", "-f", &name]);
    assert_ne!(o.status.code(), Some(0), "ODC 4.2.2 started on a 4.3.0 schema: {}", text(&o));
    assert!(text(&o).contains("REFUSING TO START") && text(&o).contains("newer than this ODC 4.2.2"), "{}", text(&o));
}

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
    let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("records.json")).unwrap()).unwrap();
    let old: serde_json::Value = serde_json::from_str(records["odc.old"].as_str().unwrap()).unwrap();
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
