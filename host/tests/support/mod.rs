//! Shared by the tests that need the real MetaDB or Docker engine that tests/run-all.sh starts.
//! A missing service fails loudly: these tests never skip silently.
#![allow(dead_code)]

use opshost::capabilities::sql::mysql::config::ConnectionConfig;
use std::collections::BTreeMap;

/// The throwaway MariaDB from tests/run-all.sh (`OPSHOST_TEST_DB_URL=mysql://user@host:port`).
pub fn metadb() -> ConnectionConfig {
    let url = std::env::var("OPSHOST_TEST_DB_URL").expect("OPSHOST_TEST_DB_URL is not set: run the tests with `bash tests/run-all.sh`, which starts MariaDB");
    let rest = url.strip_prefix("mysql://").expect("OPSHOST_TEST_DB_URL must look like mysql://user@host:port");
    let (user, hostport) = rest.split_once('@').expect("user@host:port");
    let (host, port) = hostport.split_once(':').expect("host:port");
    ConnectionConfig {
        driver: Default::default(),
        host: host.into(),
        port: port.trim_end_matches('/').parse().unwrap(),
        user: user.into(),
        password_env: Some("OPSHOST_TEST_DB_PASSWORD".into()),
        password_file: None,
        max_connections: 4,
        load_data: true,
        bulk_reader: true,
    }
}

pub fn connections() -> BTreeMap<String, ConnectionConfig> {
    BTreeMap::from([("metadb".to_string(), metadb())])
}

/// mysql_async options for a connection of the test's own to the test MariaDB, in `database`.
pub fn mysql_opts(database: Option<&str>) -> mysql_async::OptsBuilder {
    let c = metadb();
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(c.host)
        .tcp_port(c.port)
        .user(Some(c.user))
        .pass(std::env::var("OPSHOST_TEST_DB_PASSWORD").ok())
        .db_name(database.map(str::to_string))
}

/// The stock client, pointed at the test MariaDB.
fn client() -> std::process::Command {
    let c = metadb();
    let mut command = std::process::Command::new("mariadb");
    command
        .args(["--default-character-set=utf8mb4", "-h", &c.host, "-P", &c.port.to_string(), "-u", &c.user])
        .env("MYSQL_PWD", std::env::var("OPSHOST_TEST_DB_PASSWORD").unwrap_or_default());
    command
}

/// Run the stock client against the test MariaDB.
pub fn mariadb_client(args: &[&str]) -> std::process::Output {
    client().args(args).output().expect("the mariadb client is installed (tests/run-all.sh installs it)")
}

/// The stock client replays a dump file fed on its standard input (`mariadb --comments -D db <
/// file`: comments inside routine bodies kept), as an operator restores one by hand.
pub fn stock_restore(db: &str, file: &std::path::Path) -> Result<(), String> {
    let o = client()
        .args(["--comments", "-D", db])
        .stdin(std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?)
        .output()
        .map_err(|e| format!("the mariadb client: {e}"))?;
    o.status.success().then_some(()).ok_or_else(|| format!("the stock client refused the dump: {}", String::from_utf8_lossy(&o.stderr)))
}

/// What the stock client prints for `query` in `db`, without column names, its lines joined by
/// commas.
pub fn value(db: &str, query: &str) -> String {
    let o = mariadb_client(&["-N", "-D", db, "-e", query]);
    assert!(o.status.success(), "{query}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().replace('\n', ",")
}

/// Run `statements` one by one on a connection of the test's own in `db`, each named if it fails.
pub async fn run_each(db: &str, statements: &[&str]) {
    use mysql_async::prelude::Queryable;
    let mut c = mysql_async::Conn::new(mysql_opts(Some(db))).await.unwrap();
    for s in statements {
        c.query_drop(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    c.disconnect().await.unwrap();
}

pub fn sql(statements: &str) {
    let o = mariadb_client(&["-e", statements]);
    assert!(o.status.success(), "mariadb -e failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// A database name unique to this test process and purpose.
pub fn unique_db(purpose: &str) -> String {
    format!("t_{}_{}", purpose, std::process::id())
}

/// The engine tests/run-all.sh starts, with the test images built (fails loudly otherwise).
pub fn require_docker() {
    assert!(
        std::env::var("OPSHOST_TEST_DOCKER").is_ok(),
        "OPSHOST_TEST_DOCKER is not set: run the tests with `bash tests/run-all.sh`, which starts dockerd and builds the test images"
    );
}

pub const BUSYBOX: &str = "opshost-test/busybox:1";

/// Tests of one binary that read the server's general log: one at a time (each turns it on and
/// off).
pub static GENERAL_LOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The server's general log, on (to its table) until dropped, then as it was; hold
/// [`GENERAL_LOG`] meanwhile.
pub struct GeneralLog {
    since: String,
    was_on: String,
    output: String,
}

impl GeneralLog {
    pub fn on() -> GeneralLog {
        let was = value("mysql", "SELECT CONCAT(@@GLOBAL.general_log, ',', @@GLOBAL.log_output, ',', NOW(6))");
        let mut parts = was.splitn(3, ',');
        let (was_on, output, since) = (parts.next().unwrap().to_string(), parts.next().unwrap().to_string(), parts.next().unwrap().to_string());
        sql("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1;");
        GeneralLog { since, was_on, output }
    }

    /// Statements of `kind` (Query, Prepare, …) logged since it was turned on that start `like`
    /// (a LIKE pattern).
    pub fn count(&self, kind: &str, like: &str) -> usize {
        let q = format!(
            "SELECT COUNT(*) FROM mysql.general_log WHERE event_time >= '{}' AND command_type = '{kind}' AND CONVERT(argument USING utf8mb4) LIKE '{like}%'",
            self.since
        );
        value("mysql", &q).parse().unwrap()
    }

    /// The first 200 bytes of each statement of `kind` logged since it was turned on that
    /// starts `like` (a LIKE pattern), for the caller to compare byte for byte (names that
    /// differ only in case told apart).
    pub fn heads(&self, kind: &str, like: &str) -> Vec<Vec<u8>> {
        let q = format!(
            "SELECT HEX(LEFT(CAST(argument AS BINARY), 200)) FROM mysql.general_log WHERE event_time >= '{}' AND command_type = '{kind}' AND CONVERT(argument USING utf8mb4) LIKE '{like}%'",
            self.since
        );
        let o = mariadb_client(&["-N", "-e", &q]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().map(|h| (0..h.len()).step_by(2).map(|k| u8::from_str_radix(&h[k..k + 2], 16).unwrap()).collect()).collect()
    }

    /// Different statements logged since it was turned on that match `like`.
    pub fn distinct(&self, like: &str) -> usize {
        let q = format!("SELECT COUNT(DISTINCT argument) FROM mysql.general_log WHERE event_time >= '{}' AND argument LIKE '{like}'", self.since);
        value("mysql", &q).parse().unwrap()
    }
}

impl Drop for GeneralLog {
    fn drop(&mut self) {
        sql(&format!("SET GLOBAL general_log = {}; SET GLOBAL log_output = '{}';", self.was_on, self.output));
        if self.was_on == "0" {
            sql("TRUNCATE mysql.general_log");
        }
    }
}

/// A MariaDB of the test's own, started with `args` on a free port, for a test that needs a
/// server set as the shared one is not (a binary log) or must set its globals without the other
/// tests beside it seeing them; stopped on drop.
pub struct OwnServer {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
    port: u16,
}

impl OwnServer {
    pub fn start(args: &[&str]) -> OwnServer {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        // A temporary directory of its own, for the server and for mariadb-install-db's: a
        // starting server deletes every `#sql*` file it may in its tmpdir, and under the default
        // /tmp those are the shared server's in-flight temporary tables (a query of a test beside
        // this one then fails with "Error on delete of '/tmp/#sql-...'").
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // The server runs as `mysql`, as tests/run-all.sh starts the shared one.
        let _ = Command::new("chown").args(["-R", "mysql:mysql"]).arg(dir.path()).status();
        let data = dir.path().join("data");
        let installed = Command::new("mariadb-install-db")
            .args(["--user=mysql", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("mariadb-install-db (tests/run-all.sh installs MariaDB)");
        assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("mariadbd")
            .args(["--user=mysql", "--bind-address=127.0.0.1", "--skip-name-resolve", "--innodb-buffer-pool-size=64M"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let server = OwnServer { child, dir, port };
        for _ in 0..120 {
            if server.client(&["-e", "SELECT 1"]).status.success() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("the MariaDB started with {args:?} did not start");
    }

    pub fn client(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("mariadb").arg(format!("--socket={}", self.dir.path().join("sock").display())).arg("-uroot").args(args).output().unwrap()
    }

    /// Run `statements` as root.
    pub fn root(&self, statements: &str) {
        let o = self.client(&["-e", statements]);
        assert!(o.status.success(), "{statements}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// opshost on this server as `user`, whose password is `password`.
    pub fn opshost(&self, user: &str, password: &str) -> opshost::capabilities::sql::mysql::MysqlSql {
        let file = self.dir.path().join(format!("{user}.password"));
        std::fs::write(&file, password).unwrap();
        let mut config = metadb();
        (config.host, config.port, config.user, config.password_env, config.password_file) = ("127.0.0.1".into(), self.port, user.into(), None, Some(file));
        let backups = self.dir.path().join("backups");
        opshost::capabilities::sql::mysql::MysqlSql::new(
            &std::collections::BTreeMap::from([("metadb".to_string(), config)]),
            backups,
            std::sync::Arc::new(opshost::report::Silent),
        )
        .unwrap()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
