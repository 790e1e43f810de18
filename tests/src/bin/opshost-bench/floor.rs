//! The server's own limit for a dump: the time for MariaDB to stream every row of the three
//! databases to clients that discard them, over as many connections as opshost's dump reads
//! with and the same key ranges (at most about 100 000 rows and 32 MB each, by a primary key's
//! first column when it is an integer). No dump can beat it; opshost's ratio to it shows what
//! is left. Two clients, the faster one counts:
//!
//! - [`measure`]: `mariadb --quick --raw` into /dev/null (the text protocol, as the issue
//!   names it). On two cores shared with the server the client's own formatting is most of
//!   its cost, so alone it is no floor;
//! - [`measure_wire`]: opshost's bulk reader (`sql/mysql/wire.rs`) reading each row's packet
//!   and locating its values, nothing else: no hashing, no literals, no file (the binary
//!   protocol, as opshost's dump reads).

use crate::db::Db;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// opshost's dump reads a snapshot over three connections (`READERS` in sql/mysql/dump.rs).
pub const READERS: usize = 3;

/// One SELECT of the floor, with its estimated bytes for sharing the work out.
struct Read {
    sql: String,
    bytes: u64,
}

/// The SELECTs that read every row of `databases`, by key range where a table has one integer
/// primary key column, else whole.
fn reads(db: &Db, databases: &[&str]) -> Vec<Read> {
    let list = databases.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(",");
    let keys = db.query(&format!(
        "SELECT s.TABLE_SCHEMA, s.TABLE_NAME, GROUP_CONCAT(c.COLUMN_NAME ORDER BY s.SEQ_IN_INDEX), GROUP_CONCAT(c.DATA_TYPE ORDER BY s.SEQ_IN_INDEX)
         FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c
           ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
         WHERE s.INDEX_NAME = 'PRIMARY' AND s.TABLE_SCHEMA IN ({list}) GROUP BY s.TABLE_SCHEMA, s.TABLE_NAME"
    ));
    let int_key = |schema: &str, table: &str| -> Option<String> {
        // The key's first column, as opshost's dump cuts it (sql/mysql/tables.rs).
        keys.lines().map(|l| l.split('\t').collect::<Vec<_>>()).find(|f| f[0] == schema && f[1] == table).and_then(|f| {
            let (column, ty) = (f[2].split(',').next()?, f[3].split(',').next()?);
            opshost::capabilities::sql::mysql::is_integer_type(ty).then(|| column.to_string())
        })
    };
    let tables = db.query(&format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({list}) AND TABLE_TYPE = 'BASE TABLE'"
    ));
    let mut reads = Vec::new();
    for line in tables.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (schema, table, bytes) = (f[0], f[1], f[2].parse::<u64>().unwrap_or(0));
        let name = format!("`{schema}`.`{table}`");
        let whole = || Read { sql: format!("SELECT * FROM {name};"), bytes };
        let Some(key) = int_key(schema, table) else {
            reads.push(whole());
            continue;
        };
        let span = db.query(&format!("SELECT COUNT(*), IFNULL(MIN(`{key}`), 0), IFNULL(MAX(`{key}`), 0) FROM {name}"));
        let n: Vec<i128> = span.split('\t').map(|v| v.parse().unwrap()).collect();
        let (rows, min, max) = (n[0] as u64, n[1], n[2]);
        // As many ranges as opshost's dump cuts the table into.
        let ranges = opshost::capabilities::sql::mysql::range_pieces(rows, bytes);
        if ranges == 1 {
            reads.push(whole());
            continue;
        }
        let width = ((max - min + 1) as u64).div_ceil(ranges) as i128;
        for r in 0..ranges as i128 {
            let (lo, hi) = (min + r * width, min + (r + 1) * width);
            let upper = if r + 1 == ranges as i128 { String::new() } else { format!(" AND `{key}` < {hi}") };
            reads.push(Read { sql: format!("SELECT * FROM {name} WHERE `{key}` >= {lo}{upper};"), bytes: bytes / ranges });
        }
    }
    reads
}

/// Every read of `databases` shared over `connections`: biggest first, each to the least loaded.
fn shares(db: &Db, databases: &[&str], connections: usize) -> Vec<Vec<String>> {
    let mut reads = reads(db, databases);
    reads.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    let mut shares: Vec<(u64, Vec<String>)> = vec![(0, Vec::new()); connections];
    for r in reads {
        let least = shares.iter_mut().min_by_key(|s| s.0).unwrap();
        least.0 += r.bytes;
        least.1.push(r.sql);
    }
    shares.into_iter().map(|s| s.1).filter(|s| !s.is_empty()).collect()
}

/// Stream every row of `databases` to `connections` stock clients that discard them; the wall
/// time until the last one has read its share.
pub fn measure(db: &Db, databases: &[&str], connections: usize) -> Duration {
    let scripts: Vec<String> = shares(db, databases, connections).into_iter().map(|s| s.join("\n") + "\n").collect();
    let started = Instant::now();
    let clients: Vec<_> = scripts
        .into_iter()
        .map(|sql| {
            let mut c = db
                .client("mariadb")
                .args(db.args())
                .args(["--quick", "--raw", "-N", "-B"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("mariadb client");
            let mut stdin = c.stdin.take().unwrap();
            std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
            c
        })
        .collect();
    for c in clients {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "the floor's client: {}", String::from_utf8_lossy(&o.stderr));
    }
    started.elapsed()
}

/// [`measure`] with opshost's bulk reader as the discarding client: each connection prepares
/// its SELECTs one after another and reads every row's packet, locating its values.
pub fn measure_wire(db: &Db, databases: &[&str], connections: usize) -> Duration {
    use opshost::capabilities::sql::mysql::wire::WireConn;
    let shares = shares(db, databases, connections);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conns = Vec::new();
        for _ in &shares {
            conns.push(WireConn::connect(&db.host, db.port, &db.user, Some(&db.password), databases[0]).await.expect("the floor's bulk reader connects"));
        }
        let started = Instant::now();
        let readers: Vec<_> = conns
            .into_iter()
            .zip(shares)
            .map(|(mut c, sqls)| {
                tokio::spawn(async move {
                    let mut rows = 0u64;
                    for sql in sqls {
                        c.select(sql.trim_end_matches(';')).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                        while c.next_row().await.expect("a row") {
                            rows += 1;
                        }
                    }
                    rows
                })
            })
            .collect();
        for r in readers {
            r.await.unwrap();
        }
        started.elapsed()
    })
}
