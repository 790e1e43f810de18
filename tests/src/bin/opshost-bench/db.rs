//! The bench's MetaDB: the server tests/bench.sh started, reached with the stock client for
//! setup and timing helpers, and with opshost's engine config for opshost's side.

use opshost::capabilities::sql::mysql::config::ConnectionConfig;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Db {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// opshost's connections to the MetaDB: 4 (as the e2e tests' site config), or
/// `OPSHOST_BENCH_CONNECTIONS` for profiling.
pub fn connections() -> usize {
    std::env::var("OPSHOST_BENCH_CONNECTIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(4)
}

impl Db {
    pub fn from_env() -> Db {
        let url = std::env::var("OPSHOST_TEST_DB_URL").expect("OPSHOST_TEST_DB_URL (mysql://user@host:port): run tests/bench.sh");
        let (user, hp) = url.trim_start_matches("mysql://").split_once('@').unwrap();
        let (host, port) = hp.split_once(':').unwrap();
        Db { host: host.into(), port: port.parse().unwrap(), user: user.into(), password: std::env::var("OPSHOST_TEST_DB_PASSWORD").unwrap_or_default() }
    }
    pub fn conn(&self) -> BTreeMap<String, ConnectionConfig> {
        BTreeMap::from([(
            "metadb".to_string(),
            ConnectionConfig {
                driver: Default::default(),
                host: self.host.clone(),
                port: self.port,
                user: self.user.clone(),
                password_env: Some("OPSHOST_TEST_DB_PASSWORD".into()),
                password_file: None,
                max_connections: connections(),
                // `OPSHOST_BENCH_LOAD_DATA=0` restores with the INSERTs (for profiling).
                load_data: std::env::var("OPSHOST_BENCH_LOAD_DATA").map_or(true, |v| v != "0"),
                bulk_reader: true,
            },
        )])
    }
    pub fn client(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("MYSQL_PWD", &self.password);
        c
    }
    pub fn args(&self) -> Vec<String> {
        vec!["-h".into(), self.host.clone(), "-P".into(), self.port.to_string(), "-u".into(), self.user.clone()]
    }
    pub fn sql(&self, sql: &str) {
        let o = self.client("mariadb").args(self.args()).args(["--default-character-set=utf8mb4", "-e", sql]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    pub fn reset(&self) {
        for db in crate::DBS {
            self.sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
        }
    }
    /// Wait until InnoDB has written out what the last step left dirty (its page cleaner works
    /// on when the server is idle), so that no tool is timed while the one before it is still
    /// being flushed: until the dirty page count stops falling for two seconds, at most 90 s.
    pub fn settle(&self) {
        let dirty = || -> u64 {
            let o = self.client("mariadb").args(self.args()).args(["-N", "-e", "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'"]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        let start = Instant::now();
        let (mut low, mut since) = (dirty(), Instant::now());
        while since.elapsed() < Duration::from_secs(2) && start.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(250));
            let now = dirty();
            if now < low {
                (low, since) = (now, Instant::now());
            }
        }
    }
    pub fn size_mb(&self) -> f64 {
        let o = self
            .client("mariadb")
            .args(self.args())
            .args(["-N", "-e", "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576 FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'bench\\_%'"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0.0)
    }
    /// One query's tab-separated answer, trimmed.
    pub fn query(&self, q: &str) -> String {
        let o = self.client("mariadb").args(self.args()).args(["-N", "-B", "-e", q]).output().unwrap();
        assert!(o.status.success(), "{q}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

/// CPU seconds the MariaDB server has used so far (user + system), when tests/bench.sh told us
/// its process (`OPSHOST_BENCH_SERVER_PID`).
pub fn server_cpu_s() -> Option<f64> {
    let pid = std::env::var("OPSHOST_BENCH_SERVER_PID").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}
