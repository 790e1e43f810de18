//! `opshost-bench`: opshost's backup and restore against the tools operators would otherwise use,
//! on the same synthetic OMS MetaDB in the same run, printed as ratios (tests/bench.sh runs it).
//!
//! - dump: opshost (three databases one after another, as the plugin does, checksum on) vs
//!   `mariadb-dump` on each database (the seeds' way) vs `mydumper -t 2`
//! - restore: opshost (checksum verified) vs the stock client's `source` vs `myloader -t 2`
//! - opshost's peak memory (a child process reports its VmHWM)
//! - plugin start: cold compile, warm start (verify + cached load + instantiate + call)

use opshost::capabilities::sql::mysql::config::ConnectionConfig;
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DBS: [&str; 3] = ["bench_rm", "bench_cm", "bench_cm_hb"];

struct Db {
    host: String,
    port: u16,
    user: String,
    password: String,
}

/// opshost's connections to the MetaDB: 4 (as the e2e tests' site config), or
/// `OPSHOST_BENCH_CONNECTIONS` for profiling.
fn connections() -> usize {
    std::env::var("OPSHOST_BENCH_CONNECTIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(4)
}

impl Db {
    fn from_env() -> Db {
        let url = std::env::var("OPSHOST_TEST_DB_URL").expect("OPSHOST_TEST_DB_URL (mysql://user@host:port): run tests/bench.sh");
        let (user, hp) = url.trim_start_matches("mysql://").split_once('@').unwrap();
        let (host, port) = hp.split_once(':').unwrap();
        Db { host: host.into(), port: port.parse().unwrap(), user: user.into(), password: std::env::var("OPSHOST_TEST_DB_PASSWORD").unwrap_or_default() }
    }
    fn conn(&self) -> BTreeMap<String, ConnectionConfig> {
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
                load_data: true,
                bulk_reader: true,
            },
        )])
    }
    fn client(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("MYSQL_PWD", &self.password);
        c
    }
    fn args(&self) -> Vec<String> {
        vec!["-h".into(), self.host.clone(), "-P".into(), self.port.to_string(), "-u".into(), self.user.clone()]
    }
    fn sql(&self, sql: &str) {
        let o = self.client("mariadb").args(self.args()).args(["--default-character-set=utf8mb4", "-e", sql]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    fn reset(&self) {
        for db in DBS {
            self.sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
        }
    }
    /// Wait until InnoDB has written out what the last step left dirty (its page cleaner works
    /// on when the server is idle), so that no tool is timed while the one before it is still
    /// being flushed: until the dirty page count stops falling for two seconds, at most 90 s.
    fn settle(&self) {
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
    fn size_mb(&self) -> f64 {
        let o = self
            .client("mariadb")
            .args(self.args())
            .args(["-N", "-e", "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576 FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'bench\\_%'"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0.0)
    }
}

/// A synthetic OMS MetaDB: rm with JSON config and project rows, cm with hosts and tasks, and
/// a large heartbeat table in cm_hb. `scale` 1.0 is about 320 MB on disk.
fn build(db: &Db, scale: f64) {
    db.reset();
    let n = |base: f64| ((base * scale) as u64).max(10);
    db.sql(&format!(
        "USE bench_rm;
         CREATE TABLE oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, cfg_name VARCHAR(128) NOT NULL UNIQUE, cfg_value LONGTEXT, gmt_modified DATETIME(6));
         INSERT INTO oms_normal_config (cfg_name, cfg_value, gmt_modified) SELECT CONCAT('cfg.', seq), CONCAT('{{\"enable\":', IF(seq % 2, 'true', 'false'), ',\"n\":', seq, ',\"list\":[1,2,3]}}'), NOW(6) FROM seq_1_to_2000;
         CREATE TABLE oms_project (id BIGINT PRIMARY KEY, name VARCHAR(128), config JSON, description TEXT, cost DOUBLE, weight FLOAT, created DATETIME(6), KEY (name));
         INSERT INTO oms_project SELECT seq, CONCAT('project-', seq), CONCAT('{{\"source\":\"ob\",\"tables\":[', seq, ',', seq + 1, '],\"opts\":{{\"batch\":', seq % 1000, '}}}}'), REPEAT(CONCAT('line ', seq, ' it''s \"quoted\" \\\\ text; '), 12), seq / 7, seq / 3, NOW(6) - INTERVAL seq SECOND FROM seq_1_to_{};
         USE bench_cm;
         CREATE TABLE host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), host_status VARCHAR(16));
         INSERT INTO host (resource_group_id, ip, host_status) SELECT 1, CONCAT('10.0.', seq DIV 256, '.', seq % 256), 'ONLINE' FROM seq_1_to_200;
         CREATE TABLE task (id BIGINT PRIMARY KEY, host_id INT, payload BLOB, state VARCHAR(32), updated TIMESTAMP(6) NULL, KEY (host_id));
         INSERT INTO task SELECT seq, seq % 200, UNHEX(REPEAT(SHA2(seq, 256), 4)), ELT(seq % 3 + 1, 'RUNNING', 'PAUSED', 'FAILED'), NOW(6) FROM seq_1_to_{};
         USE bench_cm_hb;
         CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), module VARCHAR(64), gmt_created BIGINT, info VARCHAR(255));
         INSERT INTO heatbeat_sequence (node, module, gmt_created, info) SELECT CONCAT('10.0.0.', seq % 8), ELT(seq % 4 + 1, 'store', 'connector', 'writer', 'supervisor'), 1767225600000 + seq, CONCAT('beat ', seq, ' ok ', MD5(seq)) FROM seq_1_to_{};",
        n(340_000.0),
        n(500_000.0),
        n(2_600_000.0)
    ));
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn run_ok(c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(o.status.success(), "{c:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

/// Child process: opshost dump, restore or checksum of the three databases; prints `peak_mb=…`.
fn child(op: &str, dir: &Path) {
    let db = Db::from_env();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sql = MysqlSql::new(&db.conn(), dir.to_path_buf(), Arc::new(Silent)).unwrap();
    // `OPSHOST_BENCH_ONLY=bench_cm_hb` limits a child to one database (for profiling).
    let only = std::env::var("OPSHOST_BENCH_ONLY").ok();
    let names: Vec<&str> = DBS.into_iter().filter(|n| only.as_deref().is_none_or(|o| o == *n)).collect();
    rt.block_on(async {
        // A dump is the OMS plugins' backup, a restore their rollback of the data: the three
        // databases in one call, side by side.
        if op == "dump" || op == "restore" {
            let t = Instant::now();
            let set: Vec<(String, String)> = names.iter().map(|n| (n.to_string(), n.to_string())).collect();
            let done = if op == "dump" { sql.dump_databases("metadb", &set).await } else { sql.restore_databases("metadb", &set).await };
            done.unwrap();
            eprintln!("{op} {}: {:.2} s", names.join(", "), t.elapsed().as_secs_f64());
            return;
        }
        for name in names {
            let t = Instant::now();
            match op {
                // The verifying read a restore ends with, on its own (for profiling).
                "checksum" => {
                    sql.database_checksum("metadb", name).await.unwrap();
                }
                // One database after another (for comparison).
                "restore-each" => {
                    sql.restore_database("metadb", name, name).await.unwrap();
                }
                other => panic!("unknown child operation {other}"),
            }
            eprintln!("{op} {name}: {:.2} s", t.elapsed().as_secs_f64());
        }
    });
    println!("peak_mb={:.1}", vm_hwm_mb());
}

fn opshost_child(op: &str, dir: &Path) -> (Duration, f64) {
    let exe = std::env::current_exe().unwrap();
    let (o, t) = time(|| Command::new(&exe).args(["--child", op, dir.to_str().unwrap()]).output().unwrap());
    assert!(o.status.success(), "opshost {op}: {}", String::from_utf8_lossy(&o.stderr));
    let peak = String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("peak_mb=").and_then(|v| v.parse().ok())).unwrap_or(0.0);
    (t, peak)
}

fn plugin_start() -> (Duration, Duration) {
    use opshost::registry::signature::{Policy, TrustStore};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let exe_dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let wasm = std::fs::read(exe_dir.join("plugins/oms_4_2_0.wasm")).expect("the bundled plugin next to the binary");
    let policy = Policy { trust: TrustStore::load(&[root.join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    let cache = tempdir("bench-cache");
    rt.block_on(async {
        let runtime = opshost::runtime::engine::Runtime::new(Some(cache.clone())).unwrap();
        let (_, cold) = time(|| runtime.load(&wasm).unwrap());
        let env = opshost::fakehost::inert_env();
        let mut warm = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            policy.check(&wasm, "oms").unwrap();
            let p = runtime.load(&wasm).unwrap();
            assert!(p.cached);
            p.manifest(&env).await.unwrap();
            warm.push(t.elapsed());
        }
        warm.sort();
        (cold, warm[warm.len() / 2])
    })
}

/// Remove what `dir` holds, and wait until the freed blocks are written out.
fn empty(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    run_ok(&mut Command::new("sync"));
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("opshost-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], Path::new(&args[3]));
    }
    let scale: f64 = args.iter().position(|a| a == "--scale").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let db = Db::from_env();
    println!("building the synthetic OMS MetaDB (scale {scale}) …");
    let (_, t_build) = time(|| build(&db, scale));
    let rows = |q: &str| -> String {
        String::from_utf8_lossy(&db.client("mariadb").args(db.args()).args(["-N", "-e", q]).output().unwrap().stdout).trim().to_string()
    };
    let hb_rows = rows("SELECT COUNT(*) FROM bench_cm_hb.heatbeat_sequence");
    println!("  {:.0} MB in rm, cm, cm_hb ({hb_rows} heartbeat rows), built in {:.0} s", db.size_mb(), t_build.as_secs_f64());
    // `--build-only` leaves the data for profiling one side: `opshost-bench --child dump DIR`.
    if args.iter().any(|a| a == "--build-only") {
        return;
    }

    // `--rounds N` repeats the dumps and restores and reports each tool's median (this machine's
    // speed moves between runs; every tool is timed in every round).
    let rounds: usize = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let ops_dir = tempdir("bench-ops");
    let dump_dir = tempdir("bench-mariadb-dump");
    let myd_dir = tempdir("bench-mydumper");
    let mut times: Vec<[Duration; 6]> = Vec::new();
    let (mut peak_dump, mut peak_restore) = (0f64, 0f64);
    for round in 1..=rounds {
        // Dumps, the same data each time, each tool into an empty directory (as a run's backups
        // go to a directory of their own: replacing last round's files is not part of a dump).
        empty(&ops_dir);
        db.settle();
        let (t_ops_dump, peak) = opshost_child("dump", &ops_dir);
        peak_dump = peak_dump.max(peak);
        empty(&dump_dir);
        db.settle();
        let (_, t_md_dump) = time(|| {
            for name in DBS {
                let out = std::fs::File::create(dump_dir.join(format!("{name}.sql"))).unwrap();
                run_ok(db.client("mariadb-dump").args(db.args()).args(["--triggers=false", name]).stdout(out));
            }
        });
        empty(&myd_dir);
        db.settle();
        let (_, t_myd_dump) = time(|| {
            run_ok(db.client("mydumper").args([
                "-h",
                &db.host,
                "-P",
                &db.port.to_string(),
                "-u",
                &db.user,
                "-p",
                &db.password,
                "-t",
                "2",
                "--regex",
                "^bench_",
                "-o",
                myd_dir.to_str().unwrap(),
            ]))
        });

        // Restores into emptied databases.
        db.reset();
        db.settle();
        let (t_ops_restore, peak) = opshost_child("restore", &ops_dir);
        peak_restore = peak_restore.max(peak);
        db.reset();
        db.settle();
        let (_, t_src_restore) = time(|| {
            for name in DBS {
                run_ok(db.client("mariadb").args(db.args()).args(["-e", &format!("source {}", dump_dir.join(format!("{name}.sql")).display()), "-D", name]));
            }
        });
        db.reset();
        db.settle();
        let (_, t_myl_restore) = time(|| {
            run_ok(db.client("myloader").args([
                "-h",
                &db.host,
                "-P",
                &db.port.to_string(),
                "-u",
                &db.user,
                "-p",
                &db.password,
                "-t",
                "2",
                "-o",
                "-d",
                myd_dir.to_str().unwrap(),
            ]))
        });
        let t = [t_ops_dump, t_md_dump, t_myd_dump, t_ops_restore, t_src_restore, t_myl_restore];
        if rounds > 1 {
            println!(
                "  round {round}: dump {:.2} s ({:.2}x mydumper), restore {:.2} s ({:.2}x myloader)",
                t[0].as_secs_f64(),
                t[0].as_secs_f64() / t[2].as_secs_f64(),
                t[3].as_secs_f64(),
                t[3].as_secs_f64() / t[5].as_secs_f64()
            );
        }
        times.push(t);
    }
    let median = |i: usize| {
        let mut v: Vec<Duration> = times.iter().map(|t| t[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    let [t_ops_dump, t_md_dump, t_myd_dump, t_ops_restore, t_src_restore, t_myl_restore] = std::array::from_fn(median);

    let (cold, warm) = plugin_start();

    let s = |d: Duration| d.as_secs_f64();
    let ratio = |a: Duration, b: Duration| s(a) / s(b);
    let heading = if rounds > 1 { format!("median of {rounds} rounds, s") } else { "seconds".to_string() };
    println!("\n{:<50} {:>22} {:>14}", "", heading, "opshost / it");
    println!("{:<50} {:>22.2}", "dump: opshost (3 databases, checksums)", s(t_ops_dump));
    println!("{:<50} {:>22.2} {:>14.2}", "dump: mariadb-dump, one db after another", s(t_md_dump), ratio(t_ops_dump, t_md_dump));
    println!("{:<50} {:>22.2} {:>14.2}", "dump: mydumper -t 2", s(t_myd_dump), ratio(t_ops_dump, t_myd_dump));
    println!("{:<50} {:>22.2}", "restore: opshost (checksums verified)", s(t_ops_restore));
    println!("{:<50} {:>22.2} {:>14.2}", "restore: mariadb -e source, one db after another", s(t_src_restore), ratio(t_ops_restore, t_src_restore));
    println!("{:<50} {:>22.2} {:>14.2}", "restore: myloader -t 2", s(t_myl_restore), ratio(t_ops_restore, t_myl_restore));
    println!("\nopshost peak memory: dump {peak_dump:.0} MB, restore {peak_restore:.0} MB");
    println!(
        "plugin start: cold compile {:.0} ms, warm start (verify + cached load + instantiate + call) {:.2} ms",
        cold.as_secs_f64() * 1000.0,
        warm.as_secs_f64() * 1000.0
    );
    let goal = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\ngoals (issue 7):");
    println!("  dump <= 0.9 x mydumper -t 2:     {:.2}  {}", ratio(t_ops_dump, t_myd_dump), goal(ratio(t_ops_dump, t_myd_dump) <= 0.9));
    println!("  restore <= 0.8 x myloader -t 2:  {:.2}  {}", ratio(t_ops_restore, t_myl_restore), goal(ratio(t_ops_restore, t_myl_restore) <= 0.8));
    println!("  peak memory < 200 MB:           {:.0}  {}", peak_dump.max(peak_restore), goal(peak_dump.max(peak_restore) < 200.0));
    println!("  warm plugin start < 5 ms:       {:.2}  {}", warm.as_secs_f64() * 1000.0, goal(warm < Duration::from_millis(5)));
    for d in [ops_dir, dump_dir, myd_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
    for name in DBS {
        db.sql(&format!("DROP DATABASE IF EXISTS {name}"));
    }
}
