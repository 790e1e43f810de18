//! A stand-in OMS 4.1.1 deployment on the real Docker engine and MariaDB that tests/run-all.sh
//! starts, and the `opshost` binary to drive it. Shared by the end-to-end tests.
#![allow(dead_code)]

pub mod odc;

use opshost::capabilities::sql::mysql::config::ConnectionConfig;
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A container's state as `docker inspect` reports it, or `absent`.
pub fn container_state(container: &str) -> String {
    let o = docker(&["inspect", "-f", "{{.State.Status}}", container]);
    if o.status.success() {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    } else {
        "absent".into()
    }
}

/// One `docker inspect -f FORMAT` of a container, trimmed.
pub fn container_inspect(container: &str, format: &str) -> String {
    String::from_utf8_lossy(&docker(&["inspect", "-f", format, container]).stdout).trim().to_string()
}

/// The tests share one Docker engine and image tags: one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const OLD_IMAGE: &str = "reg.example.com/oceanbase/oms:feature_4.1.1-ce";
pub const NEW_IMAGE: &str = "reg.example.com/oceanbase/oms:feature_4.2.0-ce";

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `bash tests/run-all.sh`, which starts Docker and MariaDB and builds the stand-in images")
    })
}

/// The committed test CA (`ca.pem`) and the server certificate it signed for localhost and
/// 127.0.0.1 (`server.pem`, `server.key`): what the stand-ins answer HTTPS with.
pub fn tls_dir() -> PathBuf {
    // Clean (no `..`): the host refuses a mount source that is not a clean absolute path.
    std::fs::canonicalize(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/tests/data/tls")).unwrap()
}

pub fn target_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn db_conn() -> ConnectionConfig {
    let url = env("OPSHOST_TEST_DB_URL");
    let (user, hostport) = url.trim_start_matches("mysql://").split_once('@').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    ConnectionConfig {
        driver: Default::default(),
        host: host.into(),
        port: port.parse().unwrap(),
        user: user.into(),
        password_env: Some("OPSHOST_TEST_DB_PASSWORD".into()),
        password_file: None,
        max_connections: 4,
        load_data: true,
        bulk_reader: true,
    }
}

pub fn mariadb(sql: &str) -> String {
    let c = db_conn();
    let o = run(Command::new("mariadb")
        .args(["--default-character-set=utf8mb4", "-N", "-h", &c.host, "-P", &c.port.to_string(), "-u", &c.user, "-e", sql])
        .env("MYSQL_PWD", env("OPSHOST_TEST_DB_PASSWORD")));
    assert!(o.status.success(), "mariadb -e {sql}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A stand-in OMS 4.1.1 deployment: MetaDB of realistic shape, mounted dirs, a running container.
pub struct Deployment {
    pub id: String,
    /// The OMS version it starts at (4.1.1 unless made with [`Deployment::at`]).
    pub version: &'static str,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub site: PathBuf,
    pub rt: tokio::runtime::Runtime,
    pub sql: MysqlSql,
}

pub const HA_CONFIG: &str = r#"{"enable":true,"enableHost":false,"enableStore":true,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72}"#;

/// Stand-in OMS versions with an image (tests/images/build.sh).
pub const OMS_VERSIONS: &[&str] = &["3.2.2", "3.3.0", "3.3.1", "4.1.1", "4.2.0"];

/// The stand-in image of an OMS version: tags are `feature_X.Y.Z_ce` before 4.0, `-ce` after.
pub fn oms_image(version: &str) -> String {
    if version.starts_with('3') {
        format!("reg.example.com/oceanbase/oms:feature_{version}_ce")
    } else {
        format!("reg.example.com/oceanbase/oms:feature_{version}-ce")
    }
}

pub fn digits(version: &str) -> String {
    version.replace('.', "")
}

impl Deployment {
    pub fn new(tag: &str, extra_env: &[&str], port: u16) -> Deployment {
        Self::at("4.1.1", tag, extra_env, port)
    }

    /// A deployment at `version`; its site config is written for 4.1.1 -> 4.2.0, or, at another
    /// version, by [`Deployment::write_route_site`].
    pub fn at(version: &'static str, tag: &str, extra_env: &[&str], port: u16) -> Deployment {
        let id = format!("{tag}{}", std::process::id() % 100000);
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site.toml");
        let d = Deployment {
            id,
            version,
            dir,
            port,
            site,
            rt: tokio::runtime::Runtime::new().unwrap(),
            sql: MysqlSql::new(&BTreeMap::from([("metadb".to_string(), db_conn())]), std::env::temp_dir(), Arc::new(Silent)).unwrap(),
        };
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
             CREATE TABLE {rm}.oms_version (version VARCHAR(32) NOT NULL); INSERT INTO {rm}.oms_version VALUES ('{version}');
             CREATE TABLE {rm}.standin_identity (identity VARCHAR(128)); INSERT INTO {rm}.standin_identity VALUES ('{identity}');
             CREATE TABLE {rm}.cluster_info (region VARCHAR(64), cm_url VARCHAR(256), code VARCHAR(64), is_default_cm TINYINT); INSERT INTO {rm}.cluster_info VALUES ('hangzhou', 'http://127.0.0.1:8088', 'cn-hangzhou', 1);
             CREATE TABLE {rm}.oms_project (id BIGINT PRIMARY KEY, name VARCHAR(128), config JSON, cost DOUBLE, weight FLOAT, blob_cfg BLOB);
             INSERT INTO {rm}.oms_project SELECT seq, CONCAT('project-', seq), CONCAT('{{\"tables\":', seq, '}}'), seq / 7, seq / 3, UNHEX(SHA2(seq, 256)) FROM seq_1_to_2000;
             CREATE TABLE {cm}.resource_group (id INT PRIMARY KEY, name VARCHAR(64)); INSERT INTO {cm}.resource_group VALUES (1, 'default');
             CREATE TABLE {cm}.host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), host_status VARCHAR(16)); INSERT INTO {cm}.host (resource_group_id, ip, host_status) VALUES (1, '127.0.0.1', 'OFFLINE');
             CREATE TABLE {hb}.heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT);
             INSERT INTO {hb}.heatbeat_sequence (node, gmt_created) SELECT '127.0.0.1', 1767225600000 + seq FROM seq_1_to_5000;"
        ));
        let mut args = vec!["run", "-dit", "--net", "host", "--pids-limit", "-1", "--ulimit", "nproc=65535:65535", "--name"];
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
        let image = oms_image(version);
        args.push(&image);
        let o = docker(&args);
        assert!(o.status.success(), "docker run: {}", text(&o));
        d.wait_healthy(true);
        if version == "4.1.1" {
            std::fs::write(&d.site, d.site_toml("4.1.1", c.port)).unwrap();
        }
        d
    }

    pub fn dbs(&self) -> (String, String, String) {
        (format!("rm_{}", self.id), format!("cm_{}", self.id), format!("cm_hb_{}", self.id))
    }
    pub fn old(&self) -> String {
        self.container_at(self.version)
    }
    /// This deployment's container name for an OMS version, e.g. oms_330_<id>.
    pub fn container_at(&self, version: &str) -> String {
        format!("oms_{}_{}", digits(version), self.id)
    }
    pub fn new_name(&self) -> String {
        format!("oms_420_{}", self.id)
    }
    pub fn mounts(&self) -> Vec<String> {
        let p = self.dir.path().display();
        vec![
            format!("{p}/config.yaml:/home/admin/conf/config.yaml"),
            format!("{p}/logs:/home/admin/logs"),
            format!("{p}/store:/home/ds/store"),
            format!("{p}/run:/home/ds/run"),
        ]
    }
    pub fn site_toml(&self, version: &str, db_port: u16) -> String {
        let (rm, cm, hb) = self.dbs();
        let p = self.dir.path().display();
        format!(
            r#"{preamble}
[nodes.local]

{metadb}
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

[grants."oms-4.2.0"]
docker = ["{old}", "{new}"]
image-archive = ["{archives}/oms-feature_4.2.0-ce.tar.gz"]
sql = ["metadb/{rm}", "metadb/{cm}", "metadb/{hb}"]
console = ["ha.config", "servers"]

[products.oms.console]
rm_db = "{rm}"
cm_db = "{cm}"
health_urls = {{ local = "http://127.0.0.1:{port}/oms/health" }}
"#,
            preamble = site_preamble(&p.to_string(), ""),
            metadb = metadb_toml(db_port),
            old = self.old(),
            new = self.new_name(),
            archives = env("OPSHOST_TEST_IMAGES"),
            port = self.port,
        )
    }

    /// A site config for upgrading along `targets` (e.g. ["3.3.0", "3.3.1"]): the shared
    /// parameters once, and per hop its containers and image archive under
    /// `[products.oms.hops."<target>"]`, with each hop's plugin granted what it touches.
    pub fn write_route_site(&self, targets: &[&str]) {
        let (rm, cm, hb) = self.dbs();
        let p = self.dir.path().display();
        let c = db_conn();
        let archives = env("OPSHOST_TEST_IMAGES");
        let mut hops = String::new();
        let mut grants = String::new();
        let mut source = self.version;
        for target in targets {
            let archive = format!("{archives}/oms-{}.tar.gz", oms_image(target).rsplit(':').next().unwrap());
            let (old, new) = (self.container_at(source), self.container_at(target));
            hops.push_str(&format!("\n[products.oms.hops.\"{target}\"]\ncontainer = \"{old}\"\nnew_container = \"{new}\"\nimage_archive = \"{archive}\"\n"));
            grants.push_str(&format!(
                "\n[grants.\"oms-{target}\"]\ndocker = [\"{old}\", \"{new}\"]\nimage-archive = [\"{archive}\"]\nsql = [\"metadb/{rm}\", \"metadb/{cm}\", \"metadb/{hb}\"]\nconsole = [\"ha.config\", \"servers\"]\n"
            ));
            source = target;
        }
        let text = format!(
            r#"{preamble}
[nodes.local]

{metadb}
[products.oms]
version = "{version}"
nodes = ["local"]

[products.oms.parameters]
rm_db = "{rm}"
cm_db = "{cm}"
cm_hb_db = "{hb}"
online_timeout_s = "90"
poll_interval_s = "1"
stop_timeout_s = "5"

[products.oms.console]
rm_db = "{rm}"
cm_db = "{cm}"
health_urls = {{ local = "http://127.0.0.1:{health}/oms/health" }}
{hops}{grants}"#,
            preamble = site_preamble(&p.to_string(), ""),
            metadb = metadb_toml(c.port),
            version = self.version,
            health = self.port,
        );
        std::fs::write(&self.site, text).unwrap();
    }

    pub fn opshost(&self, args: &[&str]) -> Output {
        run(Command::new(target_dir().join("opshost")).args(args).env("OPSHOST_CACHE_DIR", self.dir.path().join("cache")))
    }

    pub fn healthy(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/oms/health", self.port);
        self.rt
            .block_on(opshost::capabilities::console::real::http_get(&url, Duration::from_secs(2)))
            .map(|(s, b)| s == 200 && opshost::capabilities::console::real::healthy_body(&b))
            .unwrap_or(false)
    }

    pub fn wait_healthy(&self, want: bool) {
        let start = Instant::now();
        while self.healthy() != want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "OMS on port {} never became {}; logs: {}",
                self.port,
                if want { "healthy" } else { "unhealthy" },
                text(&docker(&["logs", &self.old()]))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn checksum(&self, db: &str) -> String {
        self.rt.block_on(self.sql.database_checksum("metadb", db)).unwrap()
    }

    /// `ha.config` in `rm` after a rollback, checked: as before ([`HA_CONFIG`]) but for
    /// `refetchStoreIntervalMin`, which the vendor's rollback sets once an OMS was stopped (the
    /// time since T1, at least one minute, and the 30-minute margin). Returns that value, if set.
    pub fn ha_config_after_rollback(&self, rm: &str) -> Option<u64> {
        let now = mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"));
        let mut now: serde_json::Value = serde_json::from_str(&now).unwrap_or_else(|e| panic!("ha.config {now:?}: {e}"));
        let refetch = now.as_object_mut().unwrap().remove("refetchStoreIntervalMin").map(|v| v.as_u64().unwrap());
        assert_eq!(
            now,
            serde_json::from_str::<serde_json::Value>(HA_CONFIG).unwrap(),
            "ha.config differs from before the upgrade in more than refetchStoreIntervalMin"
        );
        if let Some(minutes) = refetch {
            assert!(minutes >= 31, "refetchStoreIntervalMin = {minutes}: below the time since T1 and the 30-minute margin");
        }
        refetch
    }

    /// The checksum of `rm` with `ha.config` as it was before the upgrade: the one value the
    /// vendor's rollback sets anew (refetchStoreIntervalMin). The row is put back afterwards.
    pub fn rm_checksum_but_ha_config(&self, rm: &str) -> String {
        let now = mariadb(&format!("SELECT cfg_value FROM {rm}.oms_normal_config WHERE cfg_name = 'ha.config'"));
        let set = |v: &str| mariadb(&format!("UPDATE {rm}.oms_normal_config SET cfg_value = '{}' WHERE cfg_name = 'ha.config'", v.replace('\'', "''")));
        set(HA_CONFIG);
        let sum = self.checksum(rm);
        set(&now);
        sum
    }

    pub fn state(&self, container: &str) -> String {
        container_state(container)
    }

    pub fn inspect(&self, container: &str, format: &str) -> String {
        container_inspect(container, format)
    }

    pub fn runs(&self) -> serde_json::Value {
        serde_json::from_slice(&self.opshost(&["runs", "list", "--config", self.site.to_str().unwrap(), "--json"]).stdout).unwrap()
    }

    pub fn cleanup(&self) {
        let mut names: Vec<String> = OMS_VERSIONS.iter().map(|v| self.container_at(v)).collect();
        names.push(self.new_name());
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        let _ = docker(&args);
        let (rm, cm, hb) = self.dbs();
        mariadb(&format!("DROP DATABASE IF EXISTS {rm}; DROP DATABASE IF EXISTS {cm}; DROP DATABASE IF EXISTS {hb};"));
    }
}

/// What must come back after a rollback: rm and cm content, the old container's mounts and env.
pub struct Baseline {
    pub rm: String,
    pub cm: String,
    pub binds: String,
    pub env: String,
}

impl Deployment {
    pub fn baseline(&self) -> Baseline {
        let (rm, cm, _) = self.dbs();
        Baseline {
            rm: self.checksum(&rm),
            cm: self.checksum(&cm),
            binds: self.inspect(&self.old(), "{{json .HostConfig.Binds}}"),
            env: self.inspect(&self.old(), "{{json .Config.Env}}"),
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The new image must come from its archive, as on a real site.
pub fn remove_new_image() {
    let _ = docker(&["rmi", "-f", NEW_IMAGE]);
}

pub fn site_args(d: &Deployment) -> Vec<String> {
    vec!["--config".into(), d.site.display().to_string(), "--product".into(), "oms".into()]
}

pub fn upgrade(d: &Deployment) -> Output {
    let mut a = vec!["upgrade".to_string()];
    a.extend(site_args(d));
    a.extend(["--to".into(), "4.2.0".into(), "--yes".into()]);
    d.opshost(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

pub fn rollback(d: &Deployment) -> Output {
    let mut a = vec!["rollback".to_string()];
    a.extend(site_args(d));
    a.push("--yes".into());
    d.opshost(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

/// mysql_async options for a connection of the test's own to the test MariaDB, in `database`.
pub fn mysql_opts_for(database: &str) -> mysql_async::Opts {
    let c = db_conn();
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(c.host)
        .tcp_port(c.port)
        .user(Some(c.user))
        .pass(Some(env("OPSHOST_TEST_DB_PASSWORD")))
        .db_name(Some(database))
        .into()
}

/// The site config's `[metadb.metadb]` section for the test MariaDB on `port`.
/// The top of every test site config: its state, backups, the built plugins, the test vendor's
/// key, `top` (more top-level keys), and the docker policy this sandbox needs.
pub fn site_preamble(dir: &str, top: &str) -> String {
    format!(
        "state_dir = \"{dir}/state\"\nbackup_dir = \"{dir}/backups\"\nplugins_dir = \"{}\"\ntrust = [\"{}\"]\n{top}\n[docker_policy]\ndeny_privileged = true   # this sandbox refuses --privileged\n",
        target_dir().join("plugins").display(),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/keys/test-vendor.pub").display()
    )
}

pub fn metadb_toml(port: u16) -> String {
    let c = db_conn();
    format!("[metadb.metadb]\nhost = \"{}\"\nport = {port}\nuser = \"{}\"\npassword_env = \"OPSHOST_TEST_DB_PASSWORD\"\n", c.host, c.user)
}

/// Debian's Chromium, headless, on `page` (a file): `--dump-dom` gives the page as the browser
/// built it, `--screenshot=FILE` what it drew. tests/run-all.sh installs it.
pub fn chromium(page: &std::path::Path, what: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1400"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium: install Debian's chromium package (tests/run-all.sh does)");
    assert!(o.status.success(), "chromium failed: {}", text(&o));
    o
}

/// The pixels of a PNG as RGB triples, with its width.
pub fn png_pixels(path: &std::path::Path) -> (usize, Vec<(u8, u8, u8)>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("screenshot colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()].chunks(step).map(|p| (p[0], p[1], p[2])).collect();
    (info.width as usize, pixels)
}
