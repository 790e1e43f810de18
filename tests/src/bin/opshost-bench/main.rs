//! `opshost-bench`: opshost's backup and restore against the tools operators would otherwise use,
//! on several MetaDB shapes, each tool timed in every round of the same run, printed as ratios
//! with the goals of issue 21 (tests/bench.sh runs it).
//!
//! - dump: opshost (three databases in one snapshot, as the plugin does, checksums on) vs
//!   `mydumper -t 2` (and with its files then fsynced, as opshost's are), vs the server's
//!   streaming floor (floor.rs), and on the `oms` shape vs `mariadb-dump` on each database (the
//!   seeds' way)
//! - restore: opshost (checksums verified) vs `myloader -t 2`, with the server's CPU for each,
//!   and on the `oms` shape vs the stock client's `source`
//! - opshost's peak memory (a child process reports its VmHWM)
//! - plugin start: cold compile, warm start (verify + cached load + instantiate + call)
//! - `--curve FILE`: the `oms` shape at 1x, 3x and 10x, drawn as an SVG (curve.rs)
//! - `--autoinc [--rows N] [--rounds N]`: one big AUTO_INCREMENT table loaded every way a client can, the
//!   bound behind the `heartbeat` shape's restore (autoinc.rs)

mod autoinc;
mod curve;
mod db;
mod floor;
mod shapes;

use db::{server_cpu_s, Db};
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use shapes::Shape;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DBS: [&str; 3] = ["bench_rm", "bench_cm", "bench_cm_hb"];

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

/// Every file in `dir`, and `dir`, written out to the disk (opshost's dump syncs its files as
/// they grow and before it returns; mydumper leaves them to the kernel).
fn fsync_all(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::File::open(entry.unwrap().path()).unwrap().sync_all().unwrap();
    }
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
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

/// One round's figures, seconds (the stock tools' only on the `oms` shape).
#[derive(Clone, Copy, Default)]
struct Round {
    ops_dump: f64,
    myd_dump: f64,
    /// mydumper, then its files fsynced: a backup on disk, as opshost's dump ends.
    myd_synced: f64,
    /// The faster of the two floors.
    floor: f64,
    floor_text: f64,
    floor_wire: f64,
    md_dump: Option<f64>,
    ops_restore: f64,
    ops_restore_cpu: Option<f64>,
    myl_restore: f64,
    myl_restore_cpu: Option<f64>,
    src_restore: Option<f64>,
    peak_dump_mb: f64,
    peak_restore_mb: f64,
}

/// Dirs the tools write to, emptied before each dump.
struct Dirs {
    ops: PathBuf,
    stock: PathBuf,
    myd: PathBuf,
}

fn mydumper_args(db: &Db) -> Vec<String> {
    ["-h", &db.host, "-P", &db.port.to_string(), "-u", &db.user, "-p", &db.password, "-t", "2"].map(String::from).to_vec()
}

/// One round on the data in place: every dump, then every restore into emptied databases (the
/// dumps' own data comes back each time, so the next round reads the same).
fn round(db: &Db, dirs: &Dirs, stock: bool) -> Round {
    let mut r = Round::default();
    // Dumps, the same data each time, each tool into an empty directory (as a run's backups go
    // to a directory of their own: replacing last round's files is not part of a dump).
    empty(&dirs.ops);
    db.settle();
    let (t, peak) = opshost_child("dump", &dirs.ops);
    (r.ops_dump, r.peak_dump_mb) = (t.as_secs_f64(), peak);
    empty(&dirs.myd);
    db.settle();
    r.myd_dump = time(|| run_ok(db.client("mydumper").args(mydumper_args(db)).args(["--regex", "^bench_", "-o", dirs.myd.to_str().unwrap()]))).1.as_secs_f64();
    r.myd_synced = r.myd_dump + time(|| fsync_all(&dirs.myd)).1.as_secs_f64();
    db.settle();
    r.floor_text = floor::measure(db, &DBS, floor::READERS).as_secs_f64();
    db.settle();
    r.floor_wire = floor::measure_wire(db, &DBS, floor::READERS).as_secs_f64();
    r.floor = r.floor_text.min(r.floor_wire);
    if stock {
        empty(&dirs.stock);
        db.settle();
        let (_, t) = time(|| {
            for name in DBS {
                let out = std::fs::File::create(dirs.stock.join(format!("{name}.sql"))).unwrap();
                run_ok(db.client("mariadb-dump").args(db.args()).args(["--triggers=false", name]).stdout(out));
            }
        });
        r.md_dump = Some(t.as_secs_f64());
    }

    // Restores into emptied databases, the server's CPU beside each.
    let timed = |f: &dyn Fn()| {
        db.reset();
        db.settle();
        let cpu = server_cpu_s();
        let (_, t) = time(f);
        (t.as_secs_f64(), cpu.zip(server_cpu_s()).map(|(a, b)| b - a))
    };
    let peak = std::cell::Cell::new(0.0);
    (r.ops_restore, r.ops_restore_cpu) = timed(&|| peak.set(opshost_child("restore", &dirs.ops).1));
    r.peak_restore_mb = peak.get();
    if stock {
        r.src_restore = Some(
            timed(&|| {
                for name in DBS {
                    run_ok(db.client("mariadb").args(db.args()).args([
                        "-e",
                        &format!("source {}", dirs.stock.join(format!("{name}.sql")).display()),
                        "-D",
                        name,
                    ]));
                }
            })
            .0,
        );
    }
    (r.myl_restore, r.myl_restore_cpu) = timed(&|| run_ok(db.client("myloader").args(mydumper_args(db)).args(["-o", "-d", dirs.myd.to_str().unwrap()])));
    r
}

pub fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The medians of each figure over the rounds (peaks: the highest).
fn medians(rounds: &[Round]) -> Round {
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f));
    let opt = |f: fn(&Round) -> Option<f64>| rounds.iter().all(|r| f(r).is_some()).then(|| median(rounds.iter().filter_map(f)));
    Round {
        ops_dump: m(|r| r.ops_dump),
        myd_dump: m(|r| r.myd_dump),
        myd_synced: m(|r| r.myd_synced),
        floor: m(|r| r.floor),
        floor_text: m(|r| r.floor_text),
        floor_wire: m(|r| r.floor_wire),
        md_dump: opt(|r| r.md_dump),
        ops_restore: m(|r| r.ops_restore),
        ops_restore_cpu: opt(|r| r.ops_restore_cpu),
        myl_restore: m(|r| r.myl_restore),
        myl_restore_cpu: opt(|r| r.myl_restore_cpu),
        src_restore: opt(|r| r.src_restore),
        peak_dump_mb: rounds.iter().map(|r| r.peak_dump_mb).fold(0.0, f64::max),
        peak_restore_mb: rounds.iter().map(|r| r.peak_restore_mb).fold(0.0, f64::max),
    }
}

/// A shape built and measured: its size and the medians of its rounds.
struct Measured {
    shape: Shape,
    scale: f64,
    size_mb: f64,
    figures: Round,
}

fn measure(db: &Db, dirs: &Dirs, shape: Shape, scale: f64, rounds: usize, stock: bool) -> Measured {
    let (_, t_build) = time(|| shape.build(db, scale));
    let size_mb = db.size_mb();
    let rows = db.query("SELECT SUM(TABLE_ROWS), COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'bench\\_%'");
    let (rows, tables) = rows.split_once('\t').unwrap_or(("?", "?"));
    println!("\n== shape {} (scale {scale}): {size_mb:.0} MB, about {rows} rows in {tables} tables, built in {:.0} s ==", shape.name(), t_build.as_secs_f64());
    let mut all = Vec::new();
    for i in 1..=rounds {
        let r = round(db, dirs, stock);
        println!(
            "  round {i}: dump {:.2} s ({:.2}x mydumper, {:.2}x the floor), restore {:.2} s ({:.2}x myloader)",
            r.ops_dump,
            r.ops_dump / r.myd_dump,
            r.ops_dump / r.floor,
            r.ops_restore,
            r.ops_restore / r.myl_restore
        );
        all.push(r);
    }
    let f = medians(&all);
    let heading = if rounds > 1 { format!("median of {rounds} rounds, s") } else { "seconds".to_string() };
    let cpu = |c: Option<f64>| c.map(|c| format!("  (server CPU {c:.1} s)")).unwrap_or_default();
    println!("  {:<52} {:>22} {:>12}", "", heading, "opshost / it");
    println!("  {:<52} {:>22.2}", "dump: opshost (3 databases, one snapshot, checksums)", f.ops_dump);
    println!("  {:<52} {:>22.2} {:>12.2}", "dump: mydumper -t 2", f.myd_dump, f.ops_dump / f.myd_dump);
    println!("  {:<52} {:>22.2} {:>12.2}", "dump: mydumper -t 2, then its files fsynced", f.myd_synced, f.ops_dump / f.myd_synced);
    let floors = [("mariadb --quick --raw", f.floor_text), ("a bare binary-protocol reader", f.floor_wire)];
    for (client, t) in floors {
        println!("  {:<52} {:>22.2} {:>12.2}", format!("dump floor: {} x {client}", floor::READERS), t, f.ops_dump / t);
    }
    if let Some(t) = f.md_dump {
        println!("  {:<52} {:>22.2} {:>12.2}", "dump: mariadb-dump, one db after another", t, f.ops_dump / t);
    }
    println!("  {:<52} {:>22.2}{}", "restore: opshost (checksums verified)", f.ops_restore, cpu(f.ops_restore_cpu));
    println!("  {:<52} {:>22.2} {:>12.2}{}", "restore: myloader -t 2", f.myl_restore, f.ops_restore / f.myl_restore, cpu(f.myl_restore_cpu));
    if let Some(t) = f.src_restore {
        println!("  {:<52} {:>22.2} {:>12.2}", "restore: mariadb -e source, one db after another", t, f.ops_restore / t);
    }
    println!("  opshost peak memory: dump {:.0} MB, restore {:.0} MB", f.peak_dump_mb, f.peak_restore_mb);
    Measured { shape, scale, size_mb, figures: f }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok())
}

fn main() {
    // As opshost's own main does. SAFETY: first thing in main, before any other thread starts.
    unsafe { opshost::capabilities::sql::mysql::cap_buffer_pool() };
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], Path::new(&args[3]));
    }
    let scale: f64 = arg(&args, "--scale").unwrap_or(1.0);
    // `--rounds N` repeats the dumps and restores and reports each figure's median (this
    // machine's speed moves between runs; every tool is timed in every round).
    let rounds: usize = arg::<usize>(&args, "--rounds").unwrap_or(1).max(1);
    // Every shape by default; above 3x only the `oms` one (ten times the heartbeat shape is a
    // hundred million rows): `--shapes a,b` chooses.
    let shapes: Vec<Shape> = match arg::<String>(&args, "--shapes") {
        Some(list) => list
            .split(',')
            .map(|n| Shape::parse(n).unwrap_or_else(|| panic!("unknown shape {n}: one of oms, autoinc, small-tables, wide, heartbeat")))
            .collect(),
        None if scale > 3.0 => vec![Shape::Oms],
        None => shapes::ALL.to_vec(),
    };
    let db = Db::from_env();
    // `--autoinc [--rows N] [--rounds N]`: one big AUTO_INCREMENT table loaded every way a
    // client can.
    if args.iter().any(|a| a == "--autoinc") {
        return autoinc::run(&db, arg(&args, "--rows").unwrap_or(3_000_000), rounds);
    }
    // `--build-only` leaves the data for profiling one side: `opshost-bench --child dump DIR`.
    if args.iter().any(|a| a == "--build-only") {
        shapes[0].build(&db, scale);
        println!("built shape {} (scale {scale}): {:.0} MB", shapes[0].name(), db.size_mb());
        return;
    }
    // What the figures depend on: where the restore of an AUTO_INCREMENT table is bound (see
    // `--autoinc`).
    println!("server: {}", db.query("SELECT CONCAT(VERSION(), ', innodb_autoinc_lock_mode = ', @@innodb_autoinc_lock_mode)"));
    let dirs = Dirs { ops: tempdir("bench-ops"), stock: tempdir("bench-mariadb-dump"), myd: tempdir("bench-mydumper") };

    let mut measured = Vec::new();
    if let Some(path) = arg::<String>(&args, "--curve") {
        // Time against size: the `oms` shape at each scale, without the slow stock client.
        let scales: Vec<f64> = arg::<String>(&args, "--curve-scales").unwrap_or("1,3,10".into()).split(',').map(|s| s.parse().expect("a scale")).collect();
        let points: Vec<Measured> = scales.iter().map(|&s| measure(&db, &dirs, Shape::Oms, s, rounds, false)).collect();
        let line = |label, colour, dashed, f: fn(&Round) -> f64| curve::Line {
            label,
            colour,
            dashed,
            points: points.iter().map(|m| (m.size_mb, f(&m.figures))).collect(),
        };
        let svg = curve::svg(
            "opshost dump and restore against size (oms shape, this machine)",
            &[
                line("opshost dump", "#1f77b4", false, |f| f.ops_dump),
                line("mydumper -t 2", "#1f77b4", true, |f| f.myd_dump),
                line("server floor", "#7f7f7f", true, |f| f.floor),
                line("opshost restore", "#d62728", false, |f| f.ops_restore),
                line("myloader -t 2", "#d62728", true, |f| f.myl_restore),
            ],
        );
        std::fs::write(&path, svg).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        println!("\nwrote the curve to {path}");
        measured.extend(points);
    } else {
        for &shape in &shapes {
            measured.push(measure(&db, &dirs, shape, scale, rounds, shape == Shape::Oms));
        }
    }

    let (cold, warm) = plugin_start();
    println!(
        "\nplugin start: cold compile {:.0} ms, warm start (verify + cached load + instantiate + call) {:.2} ms",
        cold.as_secs_f64() * 1000.0,
        warm.as_secs_f64() * 1000.0
    );

    // Every goal on every shape, in one table.
    let goal = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\ngoals (issue 21), {}:", if rounds > 1 { format!("medians of {rounds} rounds") } else { "one round".to_string() });
    let label = |m: &Measured| format!("{} {}x", m.shape.name(), m.scale);
    print!("  {:<34}", "");
    for m in &measured {
        print!(" {:>20}", label(m));
    }
    println!();
    let row = |name: &str, value: &dyn Fn(&Round) -> f64, ok: &dyn Fn(f64) -> bool| {
        print!("  {name:<34}");
        for m in &measured {
            let v = value(&m.figures);
            print!(" {:>20}", format!("{v:.2} {}", goal(ok(v))));
        }
        println!();
    };
    row("dump <= 0.7 x mydumper -t 2", &|f| f.ops_dump / f.myd_dump, &|v| v <= 0.7);
    row("dump <= 1.3 x the server's floor", &|f| f.ops_dump / f.floor, &|v| v <= 1.3);
    row("restore <= 0.6 x myloader -t 2", &|f| f.ops_restore / f.myl_restore, &|v| v <= 0.6);
    row("peak memory < 200 MB", &|f| f.peak_dump_mb.max(f.peak_restore_mb), &|v| v < 200.0);
    println!("  {:<34} {:>20}", "warm plugin start < 5 ms", format!("{:.2} {}", warm.as_secs_f64() * 1000.0, goal(warm < Duration::from_millis(5))));
    for d in [dirs.ops, dirs.stock, dirs.myd] {
        let _ = std::fs::remove_dir_all(d);
    }
    for name in DBS {
        db.sql(&format!("DROP DATABASE IF EXISTS {name}"));
    }
}
