//! Parallel consistent reads of one MySQL/MariaDB database, for dumps and content checksums.
//!
//! - Several connections share one point in time: their snapshots start together under
//!   `FLUSH TABLES WITH READ LOCK`, held for milliseconds (the way mydumper and mysqldump do it).
//!   A user without the RELOAD privilege gets one connection and one snapshot, not an error.
//! - Big tables with a single-column integer primary key are cut into key ranges; the ranges of
//!   every table go to a shared queue the connections drain.
//! - Each range is hashed on its own and the partial digests merge by addition, so the result is
//!   the same whatever order the ranges finish in, and equal to a sequential read's.
//! - For a dump, each range is also encoded as INSERT statements sent to the one file writer.
//! - The readers are opshost's own row reader ([`super::wire`]) when it can connect, with the
//!   first (pooled) connection only planning the ranges; else pooled mysql_async connections.

use super::checksum::{RowHash, TableHasher};
use super::real::{column_kind, db_err, hash_raw, kind_of, literal, quote_ident, Kind, Raw, TableInfo, INSERT_BYTES};
use super::wire::{WireConn, WireError};
use crate::bindings::Error;
use crate::capabilities::failed;
use crate::runtime::report::Reporter;
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// About this many rows per key range.
pub const RANGE_ROWS: u64 = 100_000;

/// A connection that reads ranges: a pooled mysql_async one, or opshost's row reader.
pub enum Reader {
    Pooled(Conn),
    Wire(WireConn),
}

impl Reader {
    async fn query_drop(&mut self, sql: &str, database: &str) -> Result<(), Error> {
        match self {
            Reader::Pooled(c) => c.query_drop(sql).await.map_err(|e| db_err(database, e)),
            Reader::Wire(w) => w.query_drop(sql).await.map_err(|e| wire_err(database, e)),
        }
    }
    /// The pooled connection (the first reader always is one: it plans the ranges).
    pub fn pooled(&mut self) -> &mut Conn {
        match self {
            Reader::Pooled(c) => c,
            Reader::Wire(_) => unreachable!("the first reader is a pooled connection"),
        }
    }
}

pub(super) fn wire_err(database: &str, e: WireError) -> Error {
    match e {
        WireError::Server { code: 1049, .. } => crate::capabilities::not_found(format!("database {database} does not exist")),
        e => failed(format!("{database}: {e}")),
    }
}

/// Begin a repeatable-read snapshot on `c`.
async fn begin(c: &mut Reader, database: &str) -> Result<(), Error> {
    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", database).await?;
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT", database).await
}

/// `first` and `more` connections in one consistent snapshot. Without the privilege for the
/// global read lock only `first` is used. `first` comes first; when `more` are wire readers it
/// only plans, and [`readers`] leaves it out.
pub async fn start(first: Conn, more: Vec<Reader>, database: &str) -> Result<Vec<Reader>, Error> {
    let mut first = Reader::Pooled(first);
    if more.is_empty() {
        begin(&mut first, database).await?;
        return Ok(vec![first]);
    }
    match first.pooled().query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => {
            let mut conns = Vec::new();
            let mut result = Ok(());
            for mut c in more {
                if let Err(e) = begin(&mut c, database).await {
                    result = Err(e);
                    break;
                }
                conns.push(c);
            }
            if result.is_ok() {
                result = begin(&mut first, database).await;
            }
            // Whatever happened, the lock goes now.
            first.query_drop("UNLOCK TABLES", database).await?;
            result?;
            conns.insert(0, first);
            Ok(conns)
        }
        // 1227: access denied (no RELOAD): one connection, one snapshot.
        Err(mysql_async::Error::Server(s)) if s.code == 1227 => {
            begin(&mut first, database).await?;
            Ok(vec![first])
        }
        Err(e) => Err(db_err(database, e)),
    }
}

/// The connections that read: all of `started`, but the first when the others are wire readers.
pub fn readers(mut started: Vec<Reader>) -> Vec<Reader> {
    if started.len() > 1 && started[1..].iter().all(|r| matches!(r, Reader::Wire(_))) {
        started.remove(0);
    }
    started
}

/// A piece of a table for one reader: all of it, or the rows whose key is in `lo..=hi`.
pub struct Chunk {
    pub table: usize,
    pub range: Option<(String, i64, i64)>,
}

/// The single integer primary-key column of a table, quoted, if it has one.
async fn integer_key(c: &mut Conn, database: &str, table: &str) -> Result<Option<String>, Error> {
    let cols: Vec<(String, String)> = c
        .exec(
            "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c \
             ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.CONSTRAINT_NAME = 'PRIMARY'",
            (database, table),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    Ok(match cols.as_slice() {
        [(name, ty)] if ["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&ty.to_lowercase().as_str()) => Some(quote_ident(name)),
        _ => None,
    })
}

fn as_i64(v: &mysql_async::Value) -> Option<i64> {
    match v {
        mysql_async::Value::Int(i) => Some(*i),
        mysql_async::Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// The work for `readers` connections: big tables cut into key ranges of about [`RANGE_ROWS`]
/// (bounds read inside the snapshot, on `c`), everything else whole. With one reader nothing is cut.
pub async fn plan(c: &mut Conn, database: &str, tables: &[TableInfo], readers: usize) -> Result<Vec<Chunk>, Error> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let pieces = t.estimated_rows.div_ceil(RANGE_ROWS).min(256);
        let key = if readers > 1 && pieces > 1 && !t.columns.is_empty() { integer_key(c, database, &t.name).await? } else { None };
        let bounds = match &key {
            Some(k) => {
                let sql = format!("SELECT MIN({k}), MAX({k}) FROM {}.{}", quote_ident(database), quote_ident(&t.name));
                let row: Option<(mysql_async::Value, mysql_async::Value)> = c.exec_first(sql, ()).await.map_err(|e| db_err(database, e))?;
                row.and_then(|(lo, hi)| Some((as_i64(&lo)?, as_i64(&hi)?)))
            }
            None => None,
        };
        match (key, bounds) {
            (Some(k), Some((lo, hi))) => {
                let span = hi as i128 - lo as i128 + 1;
                let step = (span + pieces as i128 - 1) / pieces as i128;
                let mut from = lo as i128;
                while from <= hi as i128 {
                    let to = (from + step - 1).min(hi as i128);
                    out.push(Chunk { table: i, range: Some((k.clone(), from as i64, to as i64)) });
                    from = to + 1;
                }
            }
            _ => out.push(Chunk { table: i, range: None }),
        }
    }
    // Biggest first, so one long range does not start last.
    out.sort_by_key(|ch| std::cmp::Reverse(if ch.range.is_some() { RANGE_ROWS } else { tables[ch.table].estimated_rows }));
    Ok(out)
}

/// What the readers share.
pub struct Job {
    pub database: String,
    pub tables: Arc<Vec<TableInfo>>,
    pub queue: Mutex<VecDeque<Chunk>>,
    /// Where encoded INSERT statements go (a dump), or None (a checksum).
    pub out: Option<tokio::sync::mpsc::Sender<String>>,
    /// The row hash of the checksum being computed.
    pub hash: RowHash,
    pub rows: AtomicU64,
    pub total: u64,
    pub label: String,
    pub reporter: Arc<dyn Reporter>,
}

/// One chunk's rows on their way into a table hash and, for a dump, INSERT statements.
struct Encoder<'j> {
    kinds: Vec<Kind>,
    hasher: TableHasher,
    insert_head: String,
    stmt: String,
    dumping: bool,
    job: &'j Job,
    seen: u64,
}

impl Encoder<'_> {
    /// Take one row (value `i` from `get(i)`); true when the statement is full and must be sent.
    fn row<'v>(&mut self, get: impl Fn(usize) -> Raw<'v>) -> bool {
        let kinds = &self.kinds;
        self.hasher.row_with(|e| kinds.iter().enumerate().for_each(|(i, k)| hash_raw(e, get(i), *k)));
        self.seen += 1;
        if self.seen % 8192 == 0 {
            let done = self.job.rows.fetch_add(8192, Ordering::Relaxed) + 8192;
            self.job.reporter.progress(done.min(self.job.total), self.job.total, &self.job.label);
        }
        if !self.dumping {
            return false;
        }
        self.stmt.push_str(if self.stmt.is_empty() { &self.insert_head } else { "," });
        self.stmt.push('(');
        for (i, k) in kinds.iter().enumerate() {
            if i > 0 {
                self.stmt.push(',');
            }
            literal(get(i), *k, &mut self.stmt);
        }
        self.stmt.push(')');
        self.stmt.len() >= INSERT_BYTES
    }

    /// Send the statement so far to the file writer.
    async fn flush(&mut self) -> Result<(), Error> {
        if let (Some(out), false) = (&self.job.out, self.stmt.is_empty()) {
            self.stmt.push_str(";\n");
            let database = &self.job.database;
            out.send(std::mem::take(&mut self.stmt)).await.map_err(|_| failed(format!("dump of {database}: the file writer stopped")))?;
        }
        Ok(())
    }
}

/// One reader: drain the queue; for each chunk a partial digest (table index, hasher).
pub async fn read(mut reader: Reader, job: Arc<Job>) -> Result<(Reader, Vec<(usize, TableHasher)>), Error> {
    let database = job.database.clone();
    let mut partials = Vec::new();
    loop {
        let Some(chunk) = job.queue.lock().unwrap().pop_front() else { break };
        let t = &job.tables[chunk.table];
        if t.columns.is_empty() {
            partials.push((chunk.table, TableHasher::new(job.hash)));
            continue;
        }
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
        let filter = match &chunk.range {
            Some((k, lo, hi)) => format!(" WHERE {k} BETWEEN {lo} AND {hi}"),
            None => String::new(),
        };
        let sql = format!("SELECT {} FROM {}.{}{filter}", cols.join(","), quote_ident(&database), quote_ident(&t.name));
        let mut enc = Encoder {
            kinds: Vec::new(),
            hasher: TableHasher::new(job.hash),
            insert_head: format!("INSERT INTO {} ({}) VALUES ", quote_ident(&t.name), cols.join(",")),
            stmt: String::new(),
            dumping: job.out.is_some(),
            job: &job,
            seen: 0,
        };
        match &mut reader {
            Reader::Pooled(c) => {
                let mut result = c.exec_iter(sql, ()).await.map_err(|e| db_err(&database, e))?;
                enc.kinds = result.columns_ref().iter().map(column_kind).collect();
                let mut stream = result.stream::<Row>().await.map_err(|e| db_err(&database, e))?.ok_or_else(|| failed(format!("{database}.{}: no result set", t.name)))?;
                while let Some(row) = stream.next().await {
                    let values: Vec<mysql_async::Value> = row.map_err(|e| db_err(&database, e))?.unwrap();
                    if enc.row(|i| Raw::from(&values[i])) {
                        enc.flush().await?;
                    }
                }
            }
            Reader::Wire(w) => {
                let columns = w.select(&sql).await.map_err(|e| wire_err(&database, e))?;
                enc.kinds = columns.iter().map(|c| kind_of(c.column_type, c.charset)).collect();
                while w.next_row().await.map_err(|e| wire_err(&database, e))? {
                    let row = w.row();
                    if enc.row(|i| row.get(i)) {
                        enc.flush().await?;
                    }
                }
            }
        }
        job.rows.fetch_add(enc.seen % 8192, Ordering::Relaxed);
        enc.flush().await?;
        partials.push((chunk.table, enc.hasher));
    }
    Ok((reader, partials))
}

/// Run `conns.len()` readers over `chunks`; per table (in `tables` order) the merged hasher.
pub async fn read_all(conns: Vec<Reader>, chunks: Vec<Chunk>, job: Job) -> Result<Vec<TableHasher>, Error> {
    let (n_tables, hash) = (job.tables.len(), job.hash);
    *job.queue.lock().unwrap() = chunks.into();
    let job = Arc::new(job);
    let mut readers = Vec::new();
    for c in conns {
        readers.push(tokio::spawn(read(c, job.clone())));
    }
    drop(job);
    let mut merged: Vec<TableHasher> = (0..n_tables).map(|_| TableHasher::new(hash)).collect();
    let mut first_error = None;
    for r in readers {
        match r.await.map_err(|e| failed(format!("reader task: {e}")))? {
            Ok((mut c, partials)) => {
                for (t, h) in partials {
                    merged[t].merge(&h);
                }
                let _ = c.query_drop("COMMIT", "").await;
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(merged),
    }
}
