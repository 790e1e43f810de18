//! `--autoinc`: what any client can do to load one big AUTO_INCREMENT table (the vendor's
//! `heatbeat_sequence`) on this server, measured side by side: the bound behind the `heartbeat`
//! shape's restore.
//!
//! Under `innodb_autoinc_lock_mode = 1` (MariaDB's default, not settable per session) a
//! `LOAD DATA` into a table with an AUTO_INCREMENT column holds the table's AUTO-INC lock until
//! the statement ends, even when every row brings its own id, so two loaders on one such table
//! take turns. Each way below loads the same narrow rows (as the `heartbeat` shape's) into one
//! empty table, with the session settings a dump's head sets, and prints the wall time and the
//! server's CPU; every way is checked to have loaded every row.

use crate::db::{server_cpu_s, Db};
use crate::median;
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Value};
use std::time::Instant;

/// Rows per statement: about 1 MB of LOAD DATA, as opshost's dump writes its INSERTs.
const ROWS_PER_LOAD: usize = 10_000;
/// Rows per prepared INSERT: five columns stay well under the 65 535 placeholders.
const ROWS_PER_PREPARED: usize = 2_000;

const TABLE: &str = "bench_cm_hb.autoinc_probe";

/// One heartbeat row: id, node, module, gmt_created, info.
fn row(i: u64) -> [String; 5] {
    let module = ["store", "connector", "writer", "supervisor"][(i % 4) as usize];
    let mix = (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    [i.to_string(), format!("10.0.0.{}", i % 8), module.to_string(), (1_767_225_600_000 + i).to_string(), format!("beat {i} ok {mix:032x}")]
}

fn create(db: &Db, auto_increment: bool) {
    let ai = if auto_increment { " AUTO_INCREMENT" } else { "" };
    db.sql(&format!(
        "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id BIGINT{ai} PRIMARY KEY, node VARCHAR(64), module VARCHAR(64), gmt_created BIGINT, info VARCHAR(255)) DEFAULT CHARSET=utf8mb4;"
    ));
}

async fn connect(db: &Db) -> Conn {
    let opts =
        OptsBuilder::from_opts(Opts::from_url(&format!("mysql://{}@{}:{}/bench_cm_hb", db.user, db.host, db.port)).unwrap()).pass(Some(db.password.clone()));
    let mut c = Conn::new(opts).await.expect("the probe connects");
    c.query_drop("SET NAMES utf8mb4, unique_checks = 0, foreign_key_checks = 0").await.unwrap();
    c
}

/// One stream's statements, built before the clock starts (so the figures are the server's,
/// not this probe's formatting).
enum Batches {
    /// Each statement's rows as LOAD DATA's tab-separated lines.
    Load(Vec<bytes::Bytes>),
    /// Multi-row INSERTs of SQL literals (myloader's way).
    Insert(Vec<String>),
    /// Each prepared INSERT's values, sent in the binary protocol.
    Prepared(Vec<Vec<Value>>),
}

fn batches(way: Way, from: u64, to: u64) -> Batches {
    let per = if matches!(way, Way::Load | Way::LoadInOneTransaction) { ROWS_PER_LOAD } else { ROWS_PER_PREPARED } as u64;
    let ranges = (from..to).step_by(per as usize).map(|at| at..(at + per).min(to));
    match way {
        Way::Load | Way::LoadInOneTransaction => Batches::Load(
            ranges
                .map(|r| {
                    let mut data = Vec::new();
                    for i in r {
                        data.extend_from_slice(row(i).join("\t").as_bytes());
                        data.push(b'\n');
                    }
                    bytes::Bytes::from(data)
                })
                .collect(),
        ),
        Way::Insert => Batches::Insert(
            ranges
                .map(|r| {
                    let values: Vec<String> = r.map(row).map(|v| format!("({},'{}','{}',{},'{}')", v[0], v[1], v[2], v[3], v[4])).collect();
                    format!("INSERT INTO {TABLE} VALUES {}", values.join(","))
                })
                .collect(),
        ),
        Way::Prepared => Batches::Prepared(ranges.map(|r| r.flat_map(row).map(|v| Value::Bytes(v.into_bytes())).collect()).collect()),
    }
}

/// Send one stream's statements on `c`; a deadlock victim is run again, as opshost's restore
/// does: how many were.
async fn send(c: &mut Conn, batches: Batches) -> u32 {
    let mut retried = 0;
    match batches {
        Batches::Load(chunks) => {
            for data in chunks {
                loop {
                    let d = data.clone();
                    c.set_infile_handler(async move { Ok(futures_util::stream::once(async move { Ok(d) }).boxed()) });
                    match c.query_drop(format!("LOAD DATA LOCAL INFILE 'probe' INTO TABLE {TABLE} CHARACTER SET utf8mb4")).await {
                        Ok(()) => break,
                        Err(mysql_async::Error::Server(s)) if [1213, 1205].contains(&s.code) => retried += 1,
                        Err(e) => panic!("LOAD DATA: {e}"),
                    }
                }
            }
        }
        Batches::Insert(statements) => {
            for s in statements {
                c.query_drop(s).await.expect("INSERT");
            }
        }
        Batches::Prepared(values) => {
            let mut prepared: Option<(usize, mysql_async::Statement)> = None;
            for params in values {
                let n = params.len() / 5;
                if prepared.as_ref().map(|p| p.0) != Some(n) {
                    let sql = format!("INSERT INTO {TABLE} VALUES {}", vec!["(?,?,?,?,?)"; n].join(","));
                    prepared = Some((n, c.prep(sql).await.expect("PREPARE")));
                }
                c.exec_drop(&prepared.as_ref().unwrap().1, Params::Positional(params)).await.expect("EXECUTE");
            }
        }
    }
    retried
}

#[derive(Clone, Copy)]
enum Way {
    Load,
    LoadInOneTransaction,
    Insert,
    Prepared,
}

/// Load `rows` rows the `way` on `streams` connections (each its own slice of the ids): wall
/// seconds, server CPU seconds, deadlock victims run again.
fn measure(db: &Db, rows: u64, way: Way, streams: u64) -> (f64, Option<f64>, u32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut streams_ready = Vec::new();
        for k in 0..streams {
            let (from, to) = (1 + rows * k / streams, 1 + rows * (k + 1) / streams);
            streams_ready.push((connect(db).await, batches(way, from, to)));
        }
        db.settle();
        let cpu = server_cpu_s();
        let started = Instant::now();
        let tasks: Vec<_> = streams_ready
            .into_iter()
            .map(|(mut c, batches)| {
                tokio::spawn(async move {
                    let one = matches!(way, Way::LoadInOneTransaction);
                    if one {
                        c.query_drop("START TRANSACTION").await.unwrap();
                    }
                    let retried = send(&mut c, batches).await;
                    if one {
                        c.query_drop("COMMIT").await.unwrap();
                    }
                    retried
                })
            })
            .collect();
        let mut retried = 0;
        for t in tasks {
            retried += t.await.unwrap();
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu.zip(server_cpu_s()).map(|(a, b)| b - a);
        (wall, cpu, retried)
    })
}

/// Every way, `rounds` times (each round every way in turn), printed as medians with their
/// ratio to one LOAD DATA stream into the AUTO_INCREMENT table.
pub fn run(db: &Db, rows: u64, rounds: usize) {
    println!(
        "== one AUTO_INCREMENT table of {rows} narrow rows, loaded every way a client can (innodb_autoinc_lock_mode = {}), {rounds} rounds ==",
        db.query("SELECT @@innodb_autoinc_lock_mode")
    );
    db.sql("CREATE DATABASE IF NOT EXISTS bench_cm_hb");
    let ways: [(&str, bool, Way, u64); 7] = [
        ("LOAD DATA, 1 stream (opshost's restore)", true, Way::Load, 1),
        ("LOAD DATA, 2 streams", true, Way::Load, 2),
        ("LOAD DATA, 1 stream, one transaction", true, Way::LoadInOneTransaction, 1),
        ("multi-row INSERTs, 2 streams (myloader's way)", true, Way::Insert, 2),
        ("prepared multi-row INSERTs, 1 stream", true, Way::Prepared, 1),
        ("prepared multi-row INSERTs, 2 streams", true, Way::Prepared, 2),
        ("LOAD DATA, 2 streams, the table without AUTO_INCREMENT", false, Way::Load, 2),
    ];
    // Per way: each round's wall, server CPU and deadlock victims; the ALTER after the last way.
    let mut walls = vec![Vec::new(); ways.len()];
    let mut cpus = vec![Vec::new(); ways.len()];
    let mut retried = vec![0u32; ways.len()];
    let mut alters = Vec::new();
    for round in 1..=rounds {
        let mut line = Vec::new();
        for (w, (name, auto_increment, way, streams)) in ways.iter().enumerate() {
            create(db, *auto_increment);
            let (wall, cpu, again) = measure(db, rows, *way, *streams);
            let loaded: u64 = db.query(&format!("SELECT COUNT(*) FROM {TABLE}")).parse().unwrap();
            assert_eq!(loaded, rows, "{name}: every row is loaded");
            walls[w].push(wall);
            cpus[w].extend(cpu);
            retried[w] += again;
            line.push(format!("{wall:.2}"));
            if !auto_increment {
                // What it takes to give the column its AUTO_INCREMENT back: only a table copy.
                let started = Instant::now();
                db.sql(&format!("ALTER TABLE {TABLE} MODIFY id BIGINT NOT NULL AUTO_INCREMENT"));
                alters.push(started.elapsed().as_secs_f64());
            }
        }
        println!("  round {round}: {} s", line.join(", "));
    }
    db.sql(&format!("DROP TABLE {TABLE}"));
    println!("  {:<62} {:>8} {:>14} {:>9}", "median of the rounds", "wall, s", "server CPU, s", "/ the 1st");
    let base = median(walls[0].iter().copied());
    for (w, (name, ..)) in ways.iter().enumerate() {
        let wall = median(walls[w].iter().copied());
        let cpu = if cpus[w].is_empty() { "-".to_string() } else { format!("{:.2}", median(cpus[w].iter().copied())) };
        let note = if retried[w] > 0 { format!("  ({} deadlock victims run again)", retried[w]) } else { String::new() };
        println!("  {name:<62} {wall:>8.2} {cpu:>14} {:>9.2}{note}", wall / base);
    }
    let (last, alter) = (median(walls[ways.len() - 1].iter().copied()), median(alters.into_iter()));
    println!("  {:<62} {alter:>8.2} {:>14} {:>9.2}", "  then ALTER TABLE … MODIFY id … AUTO_INCREMENT (a copy)", "", (last + alter) / base);
}
