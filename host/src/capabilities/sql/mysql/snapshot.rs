//! Parallel consistent reads of MySQL/MariaDB databases, for dumps and content checksums.
//!
//! - Several connections share one point in time: their snapshots start together under
//!   `FLUSH TABLES WITH READ LOCK`, held for milliseconds (the way mydumper and mysqldump do it).
//!   A user without the RELOAD privilege gets one connection and one snapshot, not an error.
//! - Big tables (by rows or bytes) whose primary key is, or begins with, an integer column are
//!   cut into ranges of it; the ranges of every table go to a shared queue the connections
//!   drain. Several databases read in one snapshot share the queue (a database's chunks one
//!   after another, so each finishes early and its dump file is written out while the next is
//!   read).
//! - Each range is hashed on its own and the partial digests merge by addition, so the result is
//!   the same whatever order the ranges finish in, and equal to a sequential read's.
//! - For a dump, each range is also encoded as INSERT statements sent to the one file writer.
//! - The readers are opshost's own row reader ([`super::wire`]) when it can connect, with the
//!   first (pooled) connection only planning the ranges; else pooled mysql_async connections.

use super::codec::{column_kind, db_err, hash_and_literal, hash_raw, kind_of, quote_ident, Kind, Raw};
use super::format::INSERT_BYTES;
use super::tables::TableInfo;
use super::wire::{WireConn, WireError};
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use crate::capabilities::sql::checksum::{RowHash, TableHasher};
use crate::report::Reporter;
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// At most about this many rows per key range.
pub const RANGE_ROWS: u64 = 100_000;
/// At most about this many bytes (as the server stores them) per key range: a table of a few
/// thousand rows of documents or BLOBs is read on several connections too.
pub const RANGE_BYTES: u64 = 32 << 20;

/// Into how many key ranges a table (or a snapshot's tables) of `rows` rows and `bytes` bytes
/// would be cut: one when it is small by both measures.
pub fn pieces(rows: u64, bytes: u64) -> u64 {
    rows.div_ceil(RANGE_ROWS).max(bytes.div_ceil(RANGE_BYTES)).clamp(1, 256)
}

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
        WireError::Server { code: 1049, .. } => crate::capabilities::errors::not_found(format!("database {database} does not exist")),
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
        // 1227: access denied (no RELOAD); 1235: not supported by this server (a flavour that
        // flavour.rs does not know lacks the lock): one connection, one snapshot.
        Err(mysql_async::Error::Server(s)) if s.code == 1227 || s.code == 1235 => {
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

/// A piece of a table for one reader: all of it, or the rows whose key is in `lo..=hi`; of
/// table `table` of the snapshot's database `db` (indexes into [`Work::jobs`] and its tables).
pub struct Chunk {
    pub db: usize,
    pub table: usize,
    pub range: Option<(String, i64, i64)>,
    /// Its estimated share of the table's (bytes, rows), to start the biggest first (by rows
    /// where the server does not tell the bytes).
    size: (u64, u64),
}

fn as_i64(v: &mysql_async::Value) -> Option<i64> {
    match v {
        mysql_async::Value::Int(i) => Some(*i),
        mysql_async::Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// The work on database `db` (number `db` of the snapshot's) for `readers` connections: big
/// tables cut into key ranges of at most about [`RANGE_ROWS`] rows and [`RANGE_BYTES`] bytes
/// (bounds read inside the snapshot, on `c`), everything else whole. With one reader nothing is
/// cut. Biggest first, so that one long range does not start last. A table whose rows live
/// elsewhere (MERGE, FEDERATED …) has no chunk: nothing of it is read.
pub async fn plan(c: &mut Conn, db: usize, database: &str, tables: &[TableInfo], readers: usize) -> Result<Vec<Chunk>, Error> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate().filter(|(_, t)| !t.rows_elsewhere) {
        let pieces = pieces(t.estimated_rows, t.estimated_bytes);
        let key = if readers > 1 && pieces > 1 && !t.columns.is_empty() { t.integer_key.clone() } else { None };
        let bounds = match &key {
            Some(k) => {
                let sql = format!("SELECT MIN({k}), MAX({k}) FROM {}", t.source(database));
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
                    out.push(Chunk {
                        db,
                        table: i,
                        range: Some((k.clone(), from as i64, to as i64)),
                        size: (t.estimated_bytes / pieces, t.estimated_rows / pieces),
                    });
                    from = to + 1;
                }
            }
            _ => out.push(Chunk { db, table: i, range: None, size: (t.estimated_bytes, t.estimated_rows) }),
        }
    }
    out.sort_by_key(|ch| std::cmp::Reverse(ch.size));
    Ok(out)
}

/// One database of a read: its tables, where its dump goes, its hash.
pub struct Job {
    pub database: String,
    pub tables: Arc<Vec<TableInfo>>,
    /// Where encoded INSERT statements go (a dump), or None (a checksum). Dropped when the
    /// database's last chunk is read, so that its file writer can finish while others are read.
    pub out: Mutex<Option<tokio::sync::mpsc::Sender<Vec<u8>>>>,
    /// The row hash of the checksum being computed.
    pub hash: RowHash,
    /// Chunks not yet read.
    left: AtomicUsize,
}

impl Job {
    pub fn new(database: &str, tables: Arc<Vec<TableInfo>>, out: Option<tokio::sync::mpsc::Sender<Vec<u8>>>, hash: RowHash) -> Job {
        Job { database: database.into(), tables, out: Mutex::new(out), hash, left: AtomicUsize::new(0) }
    }
}

/// Statement buffers the file writers have written out, for the readers to fill again (a fresh
/// megabyte per statement costs a page fault per 4 KiB). At most [`SPARE_MAX`] are kept.
pub type Spare = Arc<Mutex<Vec<Vec<u8>>>>;
pub const SPARE_MAX: usize = 16;

/// What the readers share: the databases of one snapshot, the queue of their chunks, progress.
pub struct Work {
    pub jobs: Vec<Job>,
    /// Where a dump's statement buffers come back from its file writers.
    pub spare: Spare,
    queue: Mutex<VecDeque<Chunk>>,
    rows: AtomicU64,
    total: u64,
    label: String,
    reporter: Arc<dyn Reporter>,
}

impl Work {
    /// Progress is reported under `label`.
    pub fn new(jobs: Vec<Job>, label: String, reporter: Arc<dyn Reporter>) -> Work {
        let total = jobs.iter().flat_map(|j| j.tables.iter()).map(|t| t.estimated_rows).sum::<u64>().max(1);
        Work { jobs, spare: Default::default(), queue: Default::default(), rows: Default::default(), total, label, reporter }
    }
}

/// One chunk's rows on their way into a table hash and, for a dump, INSERT statements.
struct Encoder<'j> {
    kinds: Vec<Kind>,
    hasher: TableHasher,
    insert_head: String,
    stmt: Vec<u8>,
    out: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    database: &'j str,
    work: &'j Work,
    seen: u64,
}

impl Encoder<'_> {
    /// Take one row (value `i` from `get(i)`); true when the statement is full and must be sent.
    /// For a dump each value is read once, hashed and written as a literal in one pass.
    fn row<'v>(&mut self, get: impl Fn(usize) -> Raw<'v>) -> bool {
        self.seen += 1;
        if self.seen.is_multiple_of(8192) {
            let done = self.work.rows.fetch_add(8192, Ordering::Relaxed) + 8192;
            self.work.reporter.progress(done.min(self.work.total), self.work.total, crate::report::Unit::Rows, &self.work.label);
        }
        let kinds = &self.kinds;
        if self.out.is_none() {
            self.hasher.row_with(|e| kinds.iter().enumerate().for_each(|(i, k)| hash_raw(e, get(i), *k)));
            return false;
        }
        let stmt = &mut self.stmt;
        if stmt.is_empty() {
            // A statement grows to about INSERT_BYTES: room for it at once, not by doubling
            // (each doubling copies what is there).
            stmt.reserve(INSERT_BYTES + INSERT_BYTES / 8);
            stmt.extend_from_slice(self.insert_head.as_bytes());
        } else {
            stmt.push(b',');
        }
        stmt.push(b'(');
        self.hasher.row_with(|e| {
            for (i, k) in kinds.iter().enumerate() {
                if i > 0 {
                    stmt.push(b',');
                }
                hash_and_literal(e, get(i), *k, stmt);
            }
        });
        stmt.push(b')');
        stmt.len() >= INSERT_BYTES
    }

    /// Send the statement so far to the file writer.
    async fn flush(&mut self) -> Result<(), Error> {
        if let (Some(out), false) = (&self.out, self.stmt.is_empty()) {
            self.stmt.extend_from_slice(b";\n");
            let database = self.database;
            let next = self.work.spare.lock().unwrap().pop().unwrap_or_default();
            out.send(std::mem::replace(&mut self.stmt, next)).await.map_err(|_| failed(format!("dump of {database}: the file writer stopped")))?;
        }
        Ok(())
    }
}

/// One reader: drain the queue; for each chunk a partial digest (database, table, hasher).
pub async fn read(mut reader: Reader, work: Arc<Work>) -> Result<(Reader, Vec<(usize, usize, TableHasher)>), Error> {
    let mut partials = Vec::new();
    loop {
        let Some(chunk) = work.queue.lock().unwrap().pop_front() else { break };
        let job = &work.jobs[chunk.db];
        let hasher = read_chunk(&mut reader, &work, job, &chunk).await?;
        partials.push((chunk.db, chunk.table, hasher));
        // The database's last chunk: its file writer may finish.
        if job.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            job.out.lock().unwrap().take();
        }
    }
    Ok((reader, partials))
}

/// Read one chunk: its hash, and its INSERT statements sent on for a dump.
async fn read_chunk(reader: &mut Reader, work: &Work, job: &Job, chunk: &Chunk) -> Result<TableHasher, Error> {
    let database = job.database.as_str();
    let t = &job.tables[chunk.table];
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
    let filter = match &chunk.range {
        Some((k, lo, hi)) => format!(" WHERE {k} BETWEEN {lo} AND {hi}"),
        None => String::new(),
    };
    // A table of generated columns only still has rows: each is read (as a constant nothing
    // is kept of), hashed as an empty row and dumped as `()`, which the server fills in again.
    let select = if t.columns.is_empty() { "1".to_string() } else { t.select_list(job.hash.reads_stored_text()) };
    let sql = format!("SELECT {select} FROM {}{filter}", t.source(database));
    let mut enc = Encoder {
        kinds: Vec::new(),
        hasher: TableHasher::new(job.hash),
        insert_head: format!("INSERT INTO {} ({}) VALUES ", quote_ident(&t.name), cols.join(",")),
        stmt: Vec::new(),
        out: job.out.lock().unwrap().clone(),
        database,
        work,
        seen: 0,
    };
    match reader {
        Reader::Pooled(c) => {
            let mut result = c.exec_iter(sql, ()).await.map_err(|e| db_err(database, e))?;
            enc.kinds = result.columns_ref().iter().map(column_kind).take(t.columns.len()).collect();
            let mut stream =
                result.stream::<Row>().await.map_err(|e| db_err(database, e))?.ok_or_else(|| failed(format!("{database}.{}: no result set", t.name)))?;
            while let Some(row) = stream.next().await {
                let values: Vec<mysql_async::Value> = row.map_err(|e| db_err(database, e))?.unwrap();
                if enc.row(|i| Raw::from(&values[i])) {
                    enc.flush().await?;
                }
            }
        }
        Reader::Wire(w) => {
            let columns = w.select(&sql).await.map_err(|e| wire_err(database, e))?;
            enc.kinds = columns.iter().map(|c| kind_of(c.column_type, c.charset)).take(t.columns.len()).collect();
            while w.next_row().await.map_err(|e| wire_err(database, e))? {
                let row = w.row();
                if enc.row(|i| row.get(i)) {
                    enc.flush().await?;
                }
            }
        }
    }
    work.rows.fetch_add(enc.seen % 8192, Ordering::Relaxed);
    enc.flush().await?;
    Ok(enc.hasher)
}

/// Run `conns.len()` readers over `chunks` (the databases one after another, as given); per
/// database (in `work.jobs` order) and per table the merged hasher.
pub async fn read_all(conns: Vec<Reader>, chunks: Vec<Chunk>, work: Work) -> Result<Vec<Vec<TableHasher>>, Error> {
    for chunk in &chunks {
        work.jobs[chunk.db].left.fetch_add(1, Ordering::Relaxed);
    }
    // A database without chunks (no tables) is done already.
    for job in work.jobs.iter().filter(|j| j.left.load(Ordering::Relaxed) == 0) {
        job.out.lock().unwrap().take();
    }
    let mut merged: Vec<Vec<TableHasher>> = work.jobs.iter().map(|j| (0..j.tables.len()).map(|_| TableHasher::new(j.hash)).collect()).collect();
    *work.queue.lock().unwrap() = chunks.into();
    let work = Arc::new(work);
    let mut readers = Vec::new();
    for c in conns {
        readers.push(tokio::spawn(read(c, work.clone())));
    }
    drop(work);
    let mut first_error = None;
    for r in readers {
        match r.await.map_err(|e| failed(format!("reader task: {e}")))? {
            Ok((mut c, partials)) => {
                for (db, t, h) in partials {
                    merged[db][t].merge(&h);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_cut_by_its_rows_or_its_bytes_whichever_needs_more_ranges() {
        assert_eq!(pieces(0, 0), 1);
        assert_eq!(pieces(90_000, 10 << 20), 1, "small by both measures");
        assert_eq!(pieces(1_000_000, 50 << 20), 10, "many narrow rows");
        assert_eq!(pieces(5_000, 160 << 20), 5, "a few thousand 32 KB BLOBs");
        assert_eq!(pieces(u64::MAX / 2, 0), 256, "at most 256 ranges");
    }
}
