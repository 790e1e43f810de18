//! A stand-in ODC deployment (one node or two behind nginx) on the real Docker engine and
//! MariaDB, its baseline, and the checks the ODC end-to-end tests share.

use super::*;
use opshost::capabilities::console::http::{HttpClient, TlsTrust};
use opshost::capabilities::console::real::{healthy_body, http_get};
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ODC_OLD: &str = "reg.example.com/oceanbase/odc-server:4.2.2";
pub const ODC_NEW: &str = "reg.example.com/oceanbase/odc-server:4.3.0";
pub const NGINX_OLD: &str = "reg.example.com/oceanbase/odc-nginx:1.24.0";
pub const NGINX_NEW: &str = "reg.example.com/oceanbase/odc-nginx:1.26.2";
pub const ADMIN_PASSWORD: &str = "Adm1n@odc";
/// ODC's health endpoint, as the vendor's HA guide polls it.
const HEALTH: &str = "/api/v1/heartbeat/isHealthy";

/// One ODC node of a test deployment: its site-config node name, container and port.
pub struct OdcNode {
    pub node: String,
    pub container: String,
    pub port: u16,
}

/// A stand-in ODC 4.2.2 deployment: its MetaDB (migrated by the old ODC itself, then given some
/// user data), one or two running ODC containers, optionally an nginx in front.
pub struct OdcDeployment {
    pub id: String,
    pub db: String,
    pub dir: tempfile::TempDir,
    pub site: std::path::PathBuf,
    pub nodes: Vec<OdcNode>,
    /// (container, port)
    pub nginx: Option<(String, u16)>,
    /// More `KEY=value` for the ODC containers (fault injection).
    pub extra_env: Vec<String>,
    /// `docker run --restart unless-stopped` for the ODC nodes (the HA site and the crash-loop
    /// test), else no restart policy.
    pub restart: bool,
    pub rt: tokio::runtime::Runtime,
    pub sql: MysqlSql,
}

pub fn odc_env(db: &str, port: u16) -> Vec<String> {
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
    pub fn new(tag: &str, ports: &[u16], nginx_port: Option<u16>) -> OdcDeployment {
        Self::with_env(tag, ports, nginx_port, &[], ports.len() > 1)
    }

    pub fn with_env(tag: &str, ports: &[u16], nginx_port: Option<u16>, extra_env: &[&str], restart: bool) -> OdcDeployment {
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
            let gateway = bridge_gateway();
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
    pub fn run_odc(&self, n: &OdcNode, image: &str) {
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

    pub fn write_site(&self) {
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

    pub fn opshost(&self, args: &[&str]) -> Output {
        run(Command::new(target_dir().join("opshost")).args(args).env("OPSHOST_CACHE_DIR", self.dir.path().join("cache")))
    }
    pub fn cli(&self, verb: &str, extra: &[&str]) -> Output {
        let site = self.site.display().to_string();
        let mut a = vec![verb, "--config", &site, "--product", "odc"];
        a.extend(extra);
        self.opshost(&a)
    }

    /// The nginx in front answers HTTPS (the test CA), the ODC nodes HTTP.
    pub fn get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        self.fetch(port, path).ok()
    }
    /// As [`Self::get`], with what went wrong.
    fn fetch(&self, port: u16, path: &str) -> Result<(u16, String), String> {
        if self.nginx.as_ref().is_some_and(|(_, p)| *p == port) {
            let client = HttpClient::new(&TlsTrust::CaFile(tls_dir().join("ca.pem"))).unwrap();
            return self.rt.block_on(client.get(&format!("https://127.0.0.1:{port}{path}"), Duration::from_secs(2))).map_err(|e| e.to_string());
        }
        self.rt.block_on(http_get(&format!("http://127.0.0.1:{port}{path}"), Duration::from_secs(2))).map_err(|e| e.to_string())
    }
    pub fn healthy(&self, port: u16) -> bool {
        matches!(self.get(port, HEALTH), Some((200, b)) if healthy_body(&b))
    }
    pub fn version_on(&self, port: u16) -> String {
        let (_, body) = self.get(port, "/api/v1/info").unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["data"]["version"].as_str().map(str::to_string)).unwrap_or_default()
    }
    pub fn wait_healthy(&self, port: u16, want: bool) {
        let start = Instant::now();
        loop {
            let last = self.fetch(port, HEALTH);
            if matches!(&last, Ok((200, b)) if healthy_body(b)) == want {
                break;
            }
            if start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let mut containers: Vec<&str> = self.nodes.iter().map(|n| n.container.as_str()).collect();
            containers.extend(self.nginx.as_ref().map(|(name, _)| name.as_str()));
            let logs: Vec<String> = containers.iter().map(|c| format!("{c}: {}", text(&docker(&["logs", c])))).collect();
            let published: Vec<String> = self.nginx.iter().map(|(name, _)| format!("{name} publishes {}", text(&docker(&["port", name])).trim())).collect();
            panic!(
                "port {port} never became {}; its last answer: {last:?}; {}; logs:\n{}",
                if want { "healthy" } else { "unhealthy" },
                published.join(", "),
                logs.join("\n")
            );
        }
    }

    pub fn checksum(&self) -> String {
        self.rt.block_on(self.sql.database_checksum("metadb", &self.db)).unwrap()
    }
    pub fn schema(&self) -> String {
        mariadb(&format!("SELECT GROUP_CONCAT(version ORDER BY installed_rank) FROM {}.migrate_schema_history WHERE success = 1", self.db))
    }
    pub fn state(&self, container: &str) -> String {
        container_state(container)
    }
    pub fn inspect(&self, container: &str, format: &str) -> String {
        container_inspect(container, format)
    }
    /// What a container was run with, as the tests compare it before and after.
    pub fn options(&self, container: &str) -> String {
        self.inspect(
            container,
            "{{.HostConfig.NetworkMode}} cpu-period={{.HostConfig.CpuPeriod}} cpu-quota={{.HostConfig.CpuQuota}} memory={{.HostConfig.Memory}} binds={{json .HostConfig.Binds}} stdin={{.Config.OpenStdin}} restart={{json .HostConfig.RestartPolicy}} ports={{json .HostConfig.PortBindings}}",
        )
    }
    pub fn env_of(&self, container: &str) -> Vec<String> {
        let mut v: Vec<String> = serde_json::from_str(&self.inspect(container, "{{json .Config.Env}}")).unwrap_or_default();
        v.sort();
        v
    }

    /// The latest run's directory under the state dir, and its status.
    pub fn last_run(&self) -> (std::path::PathBuf, serde_json::Value) {
        let site = self.site.display().to_string();
        let runs: serde_json::Value = serde_json::from_slice(&self.opshost(&["runs", "list", "--config", &site, "--json"]).stdout).unwrap();
        let run = runs.as_array().and_then(|a| a.last()).cloned().unwrap_or_else(|| panic!("no run recorded: {runs}"));
        (self.dir.path().join("state/runs").join(run["id"].as_str().unwrap()), run)
    }

    pub fn cleanup(&self) {
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
pub fn remove_new_images() {
    let _ = docker(&["rmi", "-f", ODC_NEW, NGINX_NEW]);
}

/// What must come back after a rollback: the MetaDB content and every container's image, env and
/// options.
pub struct OdcBaseline {
    pub checksum: String,
    pub schema: String,
    pub containers: Vec<(String, String, Vec<String>, String)>,
}

impl OdcDeployment {
    pub fn baseline(&self) -> OdcBaseline {
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
    pub fn assert_restored(&self, b: &OdcBaseline) {
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
pub fn old_odc_refuses_migrated_schema(d: &OdcDeployment) {
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

/// The address of Docker's default bridge on this host. `docker network inspect` names it as the
/// IPAM gateway, but a Docker 20.10 that has just created the bridge leaves that out (seen on a
/// fresh machine: the nginx upstreams read `:28991`); the bridge interface has it either way.
fn bridge_gateway() -> String {
    let named = text(&docker(&["network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"])).trim().to_string();
    if named.parse::<std::net::Ipv4Addr>().is_ok() {
        return named;
    }
    let bridge = text(&docker(&["network", "inspect", "bridge", "-f", "{{index .Options \"com.docker.network.bridge.name\"}}"])).trim().to_string();
    let bridge = if bridge.is_empty() { "docker0".to_string() } else { bridge };
    let shown = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", &bridge]).output().expect("ip (iproute2)");
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    // `5: docker0    inet 172.17.0.1/16 brd … scope global docker0`
    let address = shown.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next()).unwrap_or_default().to_string();
    assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "no address for Docker's bridge: inspect gave {named:?}, `ip addr show {bridge}` {shown:?}");
    address
}
