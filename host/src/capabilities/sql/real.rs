//! MysqlSql: the sql capability on a real MetaDB (MariaDB or MySQL) through mysql_async.
//!
//! - One pool per named connection from the site config; the password comes from an environment
//!   variable or a file and never reaches a plugin or a log.
//! - Values travel over the binary protocol (prepared statements), so FLOAT, DOUBLE, DATETIME(6)
//!   and friends are exact; the text protocol rounds floats.
//! - `dump-database` writes plain SQL that the stock client restores (`mariadb -e "source F" -D DB`):
//!   one consistent snapshot, streamed row by row (memory stays flat), one statement per line,
//!   binary columns as hex, generated columns left out; the content checksum is computed in the
//!   same pass and kept beside the dump.
//! - Reads for a dump or a checksum run on two connections in one snapshot when the database is
//!   big enough to split (`snapshot.rs`).
//! - `restore-database` streams such a file back and verifies the checksum.

use super::wire;
use super::checksum::{database_checksum, recorded_hash, RowEncoder, RowHash};
use super::{load, snapshot};
use super::{Backup, Rows, Sql, Value};
use crate::bindings::Error;
use crate::capabilities::{failed, invalid, not_found};
use crate::runtime::report::Reporter;
use async_trait::async_trait;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

/// A MetaDB connection in the site config (`[metadb.NAME]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_pool")]
    pub max_connections: usize,
    /// Restore rows with `LOAD DATA LOCAL INFILE`, sent from memory (much faster on text-heavy
    /// tables). `false` runs the dump's INSERT statements as they are. A server that refuses
    /// LOCAL INFILE gets the INSERTs either way.
    #[serde(default = "default_true")]
    pub load_data: bool,
    /// Read dumps and checksums with opshost's own row reader (about a third less CPU per row
    /// than mysql_async's). It falls back to mysql_async by itself when the server wants an
    /// authentication it does not speak; `false` never uses it.
    #[serde(default = "default_true")]
    pub bulk_reader: bool,
}

fn default_true() -> bool {
    true
}

fn default_port() -> u16 {
    3306
}
fn default_pool() -> usize {
    4
}

impl ConnectionConfig {
    /// The password, from the environment or a file; None means no password.
    pub fn password(&self, name: &str) -> anyhow::Result<Option<String>> {
        if let Some(var) = &self.password_env {
            let v = std::env::var(var).map_err(|_| anyhow::anyhow!("MetaDB connection {name}: environment variable {var} (password_env) is not set"))?;
            return Ok(Some(v));
        }
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("MetaDB connection {name}: reading password_file {}: {e}", f.display()))?;
            return Ok(Some(text.lines().next().unwrap_or("").to_string()));
        }
        Ok(None)
    }
}

pub struct MysqlSql {
    pools: BTreeMap<String, Metadb>,
    backup_dir: PathBuf,
    reporter: Arc<dyn Reporter>,
    /// Snapshots read by the bulk reader (for tests that must know it was used).
    wire_snapshots: std::sync::atomic::AtomicU64,
}

/// One configured MetaDB connection.
struct Metadb {
    pool: Pool,
    /// "user@host:port", for messages.
    addr: String,
    size: usize,
    load_data: bool,
    /// Where the bulk reader connects; None when it is off.
    wire: Option<WireTarget>,
}

/// The address and credentials the bulk reader connects with.
struct WireTarget {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

/// The last line of every complete dump.
const END_MARKER: &str = "-- opshost dump complete";

/// The second line of every dump whose TIMESTAMP values (and definitions) were read in UTC.
const UTC_MARKER: &str = "-- timestamps: UTC";

/// The header statement that makes a replay write TIMESTAMP values in UTC.
const SET_UTC: &str = "/*!40103 SET TIME_ZONE='+00:00' */;";

/// What a reading connection runs to read TIMESTAMP values in UTC.
const SET_SESSION_UTC: &str = "SET SESSION time_zone = '+00:00'";

/// A consistent snapshot ready to read: the tables, the connections that read them, the ranges
/// they read, and whether the bulk reader is among them.
struct Opened {
    tables: Arc<Vec<TableInfo>>,
    readers: Vec<snapshot::Reader>,
    chunks: Vec<snapshot::Chunk>,
    wired: bool,
}

/// The session time zone TIMESTAMP values are read (and replayed) in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// UTC, as mysqldump does: every dump and checksum of this version. The dump says so
    /// ([`UTC_MARKER`]) and its header replays in UTC, whatever the server's own time zone.
    Utc,
    /// The server's default zone. Dumps made before the marker were read in it (while their
    /// header said UTC): they are replayed and verified in it, which is right on the server and
    /// time-zone setting they were made on.
    Server,
}

/// Largest INSERT statement the dump writes (rows are batched up to this size).
pub(super) const INSERT_BYTES: usize = 1 << 20;

/// Connections that read one database in parallel (this is what the 2-core target machine and
/// the MetaDB server on it gain from; the pool size caps it).
const READERS: usize = 2;

impl MysqlSql {
    /// Pools for the named connections; backups are written under `backup_dir`.
    pub fn new(connections: &BTreeMap<String, ConnectionConfig>, backup_dir: PathBuf, reporter: Arc<dyn Reporter>) -> anyhow::Result<Self> {
        let mut pools = BTreeMap::new();
        for (name, c) in connections {
            let opts = OptsBuilder::default()
                .ip_or_hostname(c.host.clone())
                .tcp_port(c.port)
                .user(Some(c.user.clone()))
                .pass(c.password(name)?)
                .prefer_socket(false)
                .pool_opts(PoolOpts::default().with_constraints(PoolConstraints::new(0, c.max_connections.max(1)).expect("0 <= max")));
            let wire = c.bulk_reader.then(|| Ok::<_, anyhow::Error>(WireTarget { host: c.host.clone(), port: c.port, user: c.user.clone(), password: c.password(name)? })).transpose()?;
            let metadb = Metadb { pool: Pool::new(Opts::from(opts)), addr: format!("{}@{}:{}", c.user, c.host, c.port), size: c.max_connections.max(1), load_data: c.load_data, wire };
            pools.insert(name.clone(), metadb);
        }
        Ok(MysqlSql { pools, backup_dir, reporter, wire_snapshots: Default::default() })
    }

    async fn conn(&self, connection: &str) -> Result<Conn, Error> {
        let Metadb { pool, addr, .. } = self.pools.get(connection).ok_or_else(|| not_found(format!("no MetaDB connection named {connection} in the site config ([metadb.{connection}])")))?;
        pool.get_conn().await.map_err(|e| failed(format!("cannot connect to MetaDB {connection} ({addr}): {e}; check that it is up and the credentials in the site config")))
    }

    async fn conn_in(&self, connection: &str, database: &str) -> Result<Conn, Error> {
        let mut c = self.conn(connection).await?;
        c.query_drop(format!("USE {}", quote_ident(database))).await.map_err(|e| db_err(database, e))?;
        Ok(c)
    }

    /// A connection in `database` whose TIMESTAMP values read in `zone`. A pooled connection's
    /// session is reset when it goes back to the pool, so the zone does not leak to plugin queries.
    async fn conn_zoned(&self, connection: &str, database: &str, zone: Zone) -> Result<Conn, Error> {
        let mut c = self.conn_in(connection, database).await?;
        if zone == Zone::Utc {
            c.query_drop(SET_SESSION_UTC).await.map_err(|e| db_err(database, e))?;
        }
        Ok(c)
    }

    /// Connections in one consistent snapshot of `database` for reading `tables`: several when
    /// there is enough to split, else one.
    ///
    /// Big ones are read by [`READERS`] bulk-reader connections when they connect (and the
    /// configured `max_connections` leaves room for them next to `first`, which then only plans);
    /// otherwise by pooled connections, `first` among them.
    async fn snapshot(&self, connection: &str, database: &str, first: Conn, tables: &[TableInfo], zone: Zone, bulk: bool) -> Result<Vec<snapshot::Reader>, Error> {
        let metadb = self.pools.get(connection);
        let pool_size = metadb.map(|p| p.size).unwrap_or(1);
        let rows: u64 = tables.iter().map(|t| t.estimated_rows).sum();
        let want = if rows > snapshot::RANGE_ROWS { READERS.min(pool_size) } else { 1 };
        let mut more = Vec::new();
        if let Some(target) = metadb.and_then(|m| m.wire.as_ref()).filter(|_| bulk && want > 1 && pool_size > READERS) {
            for _ in 0..READERS {
                match self.wire_conn(target, database, zone).await {
                    Ok(w) => more.push(snapshot::Reader::Wire(w)),
                    Err(_) => {
                        // Whatever the bulk reader cannot do, mysql_async can: read through it.
                        more.clear();
                        break;
                    }
                }
            }
        }
        if more.is_empty() {
            for _ in 1..want {
                more.push(snapshot::Reader::Pooled(self.conn_zoned(connection, database, zone).await?));
            }
        }
        let started = snapshot::start(first, more, database).await?;
        if started.iter().any(|r| matches!(r, snapshot::Reader::Wire(_))) {
            self.wire_snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(started)
    }

    async fn wire_conn(&self, target: &WireTarget, database: &str, zone: Zone) -> Result<wire::WireConn, wire::WireError> {
        let mut w = wire::WireConn::connect(&target.host, target.port, &target.user, target.password.as_deref(), database).await?;
        if zone == Zone::Utc {
            w.query_drop(SET_SESSION_UTC).await?;
        }
        Ok(w)
    }

    /// How many snapshots the bulk reader has read.
    pub fn bulk_reader_snapshots(&self) -> u64 {
        self.wire_snapshots.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A consistent snapshot of `database` ready to read, TIMESTAMP values in `zone`, with the
    /// bulk reader when `bulk` (and it connects). An error after the bulk reader started says so.
    async fn open(&self, connection: &str, database: &str, zone: Zone, bulk: bool) -> Result<Opened, (Error, bool)> {
        let mut first = self.conn_zoned(connection, database, zone).await.map_err(|e| (e, false))?;
        let tables = Arc::new(tables(&mut first, database).await.map_err(|e| (e, false))?);
        let mut conns = self.snapshot(connection, database, first, &tables, zone, bulk).await.map_err(|e| (e, false))?;
        let wired = conns.iter().any(|c| matches!(c, snapshot::Reader::Wire(_)));
        let n = conns.len();
        let chunks = snapshot::plan(conns[0].pooled(), database, &tables, n).await.map_err(|e| (e, wired))?;
        Ok(Opened { tables, readers: snapshot::readers(conns), chunks, wired })
    }

    /// `read(true)`; when it failed after the bulk reader started, a warning and `read(false)`
    /// (through mysql_async).
    async fn bulk_or_pooled<T, F, Fut>(&self, database: &str, read: F) -> Result<T, Error>
    where
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<Output = Result<T, (Error, bool)>>,
    {
        match read(true).await {
            Err((e, true)) => {
                let why = e.message();
                self.reporter.log(crate::capabilities::services::Level::Warn, &format!("the bulk reader failed on {database} ({why}); reading it again through mysql_async (bulk_reader = false in [metadb.X] skips it)"));
                read(false).await.map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// Dump `database` to `backup_name`, with the bulk reader when `bulk`.
    async fn dump(&self, connection: &str, database: &str, backup_name: &str, bulk: bool) -> Result<Backup, (Error, bool)> {
        // Read in UTC, as the header replays it: TIMESTAMP values (and TIMESTAMP defaults in the
        // definitions) come back as the same instants whatever the server's time zone.
        let opened = self.open(connection, database, Zone::Utc, bulk).await?;
        let wired = opened.wired;
        self.write_dump(database, backup_name, opened).await.map_err(|e| (e, wired))
    }

    /// Read an opened snapshot into the backup `backup_name` and its metadata.
    async fn write_dump(&self, database: &str, backup_name: &str, opened: Opened) -> Result<Backup, Error> {
        let Opened { tables, readers: conns, chunks, .. } = opened;
        let (sql_path, meta_path) = self.backup_paths(backup_name);
        tokio::fs::create_dir_all(&self.backup_dir).await.map_err(|e| io_err(&self.backup_dir, e))?;
        // Dumps hold the MetaDB's content: owner only.
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&self.backup_dir, std::fs::Permissions::from_mode(0o700)).await.map_err(|e| io_err(&self.backup_dir, e))?;
        }
        let tmp = sql_path.with_extension("sql.partial");
        let file = tokio::fs::File::create(&tmp).await.map_err(|e| io_err(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        // Header and every table's definition first; then the rows, in whatever order the readers
        // produce them (each INSERT stands alone); then the footer and the end marker.
        let mut head = format!(
            "-- opshost dump of database {database}\n{UTC_MARKER}\n/*!40101 SET NAMES utf8mb4 */;\n{SET_UTC}\n/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
        );
        for t in tables.iter() {
            head.push_str(&format!("DROP TABLE IF EXISTS {};\n{};\n", quote_ident(&t.name), t.create.replace('\n', " ")));
        }
        w.write_all(head.as_bytes()).await.map_err(|e| io_err(&tmp, e))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(8);
        let job = snapshot::Job {
            database: database.into(),
            tables: tables.clone(),
            queue: Default::default(),
            out: Some(tx),
            hash: RowHash::default(),
            rows: Default::default(),
            total: tables.iter().map(|t| t.estimated_rows).sum::<u64>().max(1),
            label: format!("dump {database}"),
            reporter: self.reporter.clone(),
        };
        let writer = pump(&mut rx, &mut w, head.len() as u64);
        let (read, written) = tokio::join!(snapshot::read_all(conns, chunks, job), writer);
        let disk = |e: std::io::Error| failed(format!("writing backup {}: {e}: free space in {} (or point backup_dir at a bigger disk), then run again", tmp.display(), self.backup_dir.display()));
        let finished = async {
            // The writer's error (a full disk) is the cause; the readers then only saw it stop.
            written.map_err(disk)?;
            let hashers = read?;
            let footer = "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n";
            w.write_all(footer.as_bytes()).await.map_err(disk)?;
            w.write_all(format!("{END_MARKER}\n").as_bytes()).await.map_err(disk)?;
            w.flush().await.map_err(disk)?;
            w.get_ref().sync_all().await.map_err(disk)?;
            Ok::<_, Error>(hashers)
        }
        .await;
        drop(w);
        // A dump that did not finish leaves no partial file behind.
        let hashers = match finished {
            Ok(h) => h,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        tokio::fs::rename(&tmp, &sql_path).await.map_err(|e| io_err(&sql_path, e))?;
        let bytes = tokio::fs::metadata(&sql_path).await.map_err(|e| io_err(&sql_path, e))?.len();
        let digests: Vec<(String, [u8; 32])> = tables.iter().zip(&hashers).map(|(t, h)| (t.name.clone(), h.finish(&t.name, &definition_for_checksum(&t.create)))).collect();
        let rows_total: u64 = hashers.iter().map(|h| h.rows()).sum();
        let backup = Backup { name: backup_name.into(), database: database.into(), bytes, tables: tables.len() as u32, rows: rows_total, checksum: database_checksum(&digests, RowHash::default()) };
        let meta = serde_json::to_vec_pretty(&backup).expect("backup serialises");
        tokio::fs::write(&meta_path, meta).await.map_err(|e| io_err(&meta_path, e))?;
        Ok(backup)
    }

    /// The content checksum of `database` as it is now, rows hashed with `hash` and TIMESTAMP
    /// values read in `zone`: (checksum, tables, rows).
    pub async fn checksum(&self, connection: &str, database: &str, hash: RowHash, zone: Zone) -> Result<(String, u32, u64), Error> {
        self.bulk_or_pooled(database, |bulk| self.checksum_with(connection, database, hash, zone, bulk)).await
    }

    /// [`MysqlSql::checksum`], with the bulk reader when `bulk`.
    async fn checksum_with(&self, connection: &str, database: &str, hash: RowHash, zone: Zone, bulk: bool) -> Result<(String, u32, u64), (Error, bool)> {
        let Opened { tables, readers, chunks, wired } = self.open(connection, database, zone, bulk).await?;
        let job = snapshot::Job {
            database: database.into(),
            tables: tables.clone(),
            queue: Default::default(),
            out: None,
            hash,
            rows: Default::default(),
            total: tables.iter().map(|t| t.estimated_rows).sum::<u64>().max(1),
            label: format!("checksum {database}"),
            reporter: self.reporter.clone(),
        };
        let hashers = snapshot::read_all(readers, chunks, job).await.map_err(|e| (e, wired))?;
        let digests: Vec<(String, [u8; 32])> = tables.iter().zip(&hashers).map(|(t, h)| (t.name.clone(), h.finish(&t.name, &definition_for_checksum(&t.create)))).collect();
        Ok((database_checksum(&digests, hash), tables.len() as u32, hashers.iter().map(|h| h.rows()).sum()))
    }

    /// Where a backup's SQL and metadata live.
    pub fn backup_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.backup_dir.join(format!("{name}.sql")), self.backup_dir.join(format!("{name}.json")))
    }

    /// Replay a dump file into `database`. Session settings and DDL run in order on `main`; the
    /// INSERTs fan out to worker connections through a bounded channel (memory stays flat), each
    /// its own transaction touching one table: two workers never hold locks on two tables each
    /// other wants (InnoDB locks a whole empty table while it bulk-loads it). The first error
    /// stops everything. A pool of one connection replays everything on `main` (the workers would
    /// wait forever for a connection).
    async fn replay(&self, main: &mut Conn, connection: &str, database: &str, path: &Path, file: tokio::fs::File, total: u64, zone: Zone) -> Result<(), Error> {
        let metadb = self.pools.get(connection);
        let pool_size = metadb.map(|p| p.size).unwrap_or(1);
        let autoinc_lock_mode: Option<u64> = main.query_first("SELECT @@innodb_autoinc_lock_mode").await.ok().flatten();
        let policy = Arc::new(load::Policy::new(metadb.is_some_and(|p| p.load_data), autoinc_lock_mode));
        let n_workers = pool_size.saturating_sub(1).min(2);
        let fail = |e: mysql_async::Error| failed(format!("restoring {database} from {}: {e}", path.display()));
        let mut lines = BufReader::with_capacity(1 << 20, file).lines();
        let label = format!("restore {database}");
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut session: Vec<String> = Vec::new();
        let mut complete = false;
        let (tx, rx) = async_channel(n_workers.max(1) * 2);
        let mut rx = Some(rx);
        let mut workers = Vec::new();
        let mut started = false;
        let mut result: Result<(), Error> = Ok(());
        while let Some(line) = lines.next_line().await.map_err(|e| io_err(path, e))? {
            let n = line.len() as u64 + 1;
            if line == END_MARKER {
                complete = true;
            }
            // A dump read in the server's zone replays in it (its header's UTC was wrong).
            if line.is_empty() || line.starts_with("--") || (zone == Zone::Server && line == SET_UTC) {
                done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            if line.starts_with("INSERT INTO ") && n_workers == 0 {
                if let Err(e) = load::insert(main, line, &policy).await {
                    result = Err(fail(e));
                    break;
                }
                let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                self.reporter.progress(d.min(total), total, &label);
                continue;
            }
            if line.starts_with("INSERT INTO ") {
                if !started {
                    // Workers start with the session settings seen so far (the dump's header).
                    for _ in 0..n_workers {
                        let mut w = self.conn_in(connection, database).await?;
                        for s in &session {
                            w.query_drop(s.as_str()).await.map_err(fail)?;
                        }
                        let rx = rx.as_ref().expect("workers start once").clone();
                        let done = done.clone();
                        let reporter = self.reporter.clone();
                        let label = label.clone();
                        let path = path.to_path_buf();
                        let database = database.to_string();
                        let policy = policy.clone();
                        workers.push(tokio::spawn(async move {
                            let fail = |e: mysql_async::Error| failed(format!("restoring {database} from {}: {e}", path.display()));
                            while let Ok(stmt) = rx.recv().await {
                                let len = stmt.len() as u64 + 1;
                                load::insert(&mut w, stmt, &policy).await.map_err(fail)?;
                                let d = done.fetch_add(len, std::sync::atomic::Ordering::Relaxed) + len;
                                reporter.progress(d.min(total), total, &label);
                            }
                            Ok::<(), Error>(())
                        }));
                    }
                    started = true;
                    // Only the workers receive: if they all fail, sending fails instead of
                    // waiting forever on a full channel.
                    drop(rx.take());
                }
                if tx.send(line).await.is_err() {
                    break; // a worker failed: its error is reported below
                }
                continue;
            }
            // Session settings and DDL, in order, on the main connection. A table's CREATE runs
            // before any of its INSERTs is handed out.
            if line.starts_with("/*!") || line.starts_with("SET ") {
                session.push(line.clone());
            }
            policy.saw(&line);
            if let Err(e) = main.query_drop(line.as_str()).await {
                result = Err(fail(e));
                break;
            }
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        drop(tx);
        for w in workers {
            let r = w.await.map_err(|e| failed(format!("restore worker: {e}")))?;
            if result.is_ok() {
                result = r;
            }
        }
        result?;
        if !complete {
            return Err(failed(format!("backup {} is truncated (no end marker): restore it from another copy", path.display())));
        }
        Ok(())
    }

}

/// The zone a dump's TIMESTAMP values were read in: UTC when its second line says so (then
/// `file` is back at its start).
async fn zone_of(file: &mut tokio::fs::File, path: &Path) -> Result<Zone, Error> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut head = Vec::with_capacity(512);
    (&mut *file).take(512).read_to_end(&mut head).await.map_err(|e| io_err(path, e))?;
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| io_err(path, e))?;
    let second = head.split(|&b| b == b'\n').nth(1).unwrap_or_default();
    Ok(if second == UTC_MARKER.as_bytes() { Zone::Utc } else { Zone::Server })
}

pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(super) fn db_err(database: &str, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1049 => not_found(format!("database {database} does not exist")),
        _ => failed(format!("{database}: {e}")),
    }
}

fn to_mysql(v: &Value) -> mysql_async::Value {
    match v {
        Value::Null => mysql_async::Value::NULL,
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::Uint(u) => mysql_async::Value::UInt(*u),
        Value::Float(f) => mysql_async::Value::Double(*f),
        Value::Text(t) => mysql_async::Value::Bytes(t.as_bytes().to_vec()),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
    }
}

/// How a column's values are read and written.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Text,
    Binary,
    Other,
}

pub(super) fn column_kind(c: &mysql_async::Column) -> Kind {
    kind_of(c.column_type(), c.character_set())
}

/// [`Kind`] of a column of `column_type` in character set `charset`.
pub(super) fn kind_of(column_type: ColumnType, charset: u16) -> Kind {
    use ColumnType::*;
    match column_type {
        MYSQL_TYPE_BIT | MYSQL_TYPE_GEOMETRY => Kind::Binary,
        MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            // Character set 63 is "binary": BINARY, VARBINARY, BLOB.
            if charset == 63 {
                Kind::Binary
            } else {
                Kind::Text
            }
        }
        _ => Kind::Other,
    }
}

/// One binary-protocol value, borrowed: what both row readers (mysql_async's and the
/// [`super::wire`] reader) hand to the row hash and the literal writer, so they agree exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Raw<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bytes(&'a [u8]),
    /// Year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// Negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
}

impl<'a> From<&'a mysql_async::Value> for Raw<'a> {
    fn from(v: &'a mysql_async::Value) -> Raw<'a> {
        use mysql_async::Value as M;
        match *v {
            M::NULL => Raw::Null,
            M::Int(i) => Raw::Int(i),
            M::UInt(u) => Raw::UInt(u),
            M::Float(f) => Raw::Float(f),
            M::Double(d) => Raw::Double(d),
            M::Bytes(ref b) => Raw::Bytes(b),
            M::Date(y, mo, d, h, mi, s, us) => Raw::Date(y, mo, d, h, mi, s, us),
            M::Time(neg, days, h, mi, s, us) => Raw::Time(neg, days, h, mi, s, us),
        }
    }
}

/// A binary-protocol value as the WIT value every backend agrees on.
fn from_mysql(v: mysql_async::Value, kind: Kind) -> Value {
    use mysql_async::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Int(i) => Value::Int(i),
        M::UInt(u) => Value::Uint(u),
        M::Float(f) => Value::Float(f as f64),
        M::Double(d) => Value::Float(d),
        M::Bytes(b) => match kind {
            Kind::Binary => Value::Bytes(b),
            _ => match String::from_utf8(b) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            },
        },
        M::Date(..) | M::Time(..) => {
            let mut t = Vec::with_capacity(26);
            temporal_text(Raw::from(&v), kind, &mut t);
            Value::Text(String::from_utf8(t).expect("digits and punctuation"))
        }
    }
}

/// `n` in decimal, zero-padded to `width` digits (no formatter: this runs for every date of a dump).
fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = [0u8; 21];
    let digits = super::checksum::decimal(false, n.into(), &mut buf);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits.len())));
    out.extend_from_slice(digits);
}

/// `HH:MM:SS.ffffff` (at least two digits of hours).
fn push_clock(out: &mut Vec<u8>, hours: u32, minutes: u8, seconds: u8, micros: u32) {
    push_padded(out, hours, 2);
    out.push(b':');
    push_padded(out, minutes.into(), 2);
    out.push(b':');
    push_padded(out, seconds.into(), 2);
    out.push(b'.');
    push_padded(out, micros, 6);
}

/// A DATE, DATETIME, TIMESTAMP or TIME value as text the server reads back exactly:
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (a DATE, or a midnight without fraction in a date column, has
/// no fraction) and `[-]HHH:MM:SS.ffffff`. Other values append nothing.
fn temporal_text(v: Raw, kind: Kind, out: &mut Vec<u8>) {
    use Raw as M;
    match v {
        M::Date(y, mo, d, h, mi, s, us) => {
            push_padded(out, y.into(), 4);
            out.push(b'-');
            push_padded(out, mo.into(), 2);
            out.push(b'-');
            push_padded(out, d.into(), 2);
            if h == 0 && mi == 0 && s == 0 && us == 0 && kind == Kind::Other {
                out.extend_from_slice(b" 00:00:00");
            } else {
                out.push(b' ');
                push_clock(out, h.into(), mi, s, us);
            }
        }
        M::Time(neg, days, h, mi, s, us) => {
            if neg {
                out.push(b'-');
            }
            push_clock(out, days * 24 + h as u32, mi, s, us);
        }
        _ => {}
    }
}

/// Hash one raw protocol value exactly as `from_mysql` then the canonical encoding would.
pub(super) fn hash_raw(e: &mut RowEncoder, v: Raw, kind: Kind) {
    use Raw as M;
    match v {
        M::Null => e.null(),
        M::Int(i) => e.int(i),
        M::UInt(u) => e.uint(u),
        M::Float(f) => e.float(f as f64),
        M::Double(d) => e.float(d),
        M::Bytes(b) => e.text(b),
        M::Date(..) | M::Time(..) => e.text_with(|out| temporal_text(v, kind, out)),
    }
}

/// For each byte, the letter after the backslash that escapes it in a quoted SQL string (the
/// same escapes as `mysql_real_escape_string`), or 0 when it is copied as it is. A table lookup
/// per byte: this loop runs over every byte of every text column of a dump.
const ESCAPED: [u8; 256] = {
    let mut t = [0u8; 256];
    t[0] = b'0';
    t[b'\'' as usize] = b'\'';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[0x1a] = b'Z';
    t
};

/// The index of the first byte at or after `from` that needs escaping. Sixteen bytes a step
/// with SSE2 (part of every x86-64 CPU), the rest by table.
fn next_to_escape(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is always available on x86_64; loads are unaligned and stay in bounds.
        unsafe {
            let specials = [0u8, b'\'', b'\\', b'\n', b'\r', 0x1a].map(|c| _mm_set1_epi8(c as i8));
            while i + 16 <= b.len() {
                let chunk = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let mut hit = _mm_cmpeq_epi8(chunk, specials[0]);
                for s in &specials[1..] {
                    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(chunk, *s));
                }
                let mask = _mm_movemask_epi8(hit) as u32;
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
    }
    b[i..].iter().position(|&c| ESCAPED[c as usize] != 0).map(|p| i + p)
}

/// One value as a SQL literal for the dump. FLOAT columns arrive as f32 and are written with the
/// shortest text that parses back to the same f32; DOUBLE likewise for f64.
pub(super) fn literal(v: Raw, kind: Kind, out: &mut String) {
    use std::fmt::Write;
    use Raw as M;
    match v {
        M::Null => out.push_str("NULL"),
        M::Int(i) => out.push_str(std::str::from_utf8(super::checksum::decimal(i < 0, i.unsigned_abs(), &mut [0u8; 21])).unwrap()),
        M::UInt(u) => out.push_str(std::str::from_utf8(super::checksum::decimal(false, u, &mut [0u8; 21])).unwrap()),
        M::Float(f) => write!(out, "{f:?}").unwrap(),
        M::Double(d) => write!(out, "{d:?}").unwrap(),
        // Binary columns, and text that is not UTF-8, as hex: exact bytes whatever the charset.
        M::Bytes(b) if kind == Kind::Binary || std::str::from_utf8(b).is_err() => {
            if b.is_empty() {
                out.push_str("''");
            } else {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("0x");
                // SAFETY: only ASCII hex digits are appended.
                let v = unsafe { out.as_mut_vec() };
                let at = v.len();
                v.resize(at + b.len() * 2, 0);
                for (pair, &x) in v[at..].chunks_exact_mut(2).zip(b) {
                    pair[0] = HEX[(x >> 4) as usize];
                    pair[1] = HEX[(x & 15) as usize];
                }
            }
        }
        M::Bytes(b) => {
            out.push('\'');
            // SAFETY: `b` is valid UTF-8 (checked in the arm above) and is copied in runs between
            // ASCII escapes, so `out` stays valid UTF-8.
            let v = unsafe { out.as_mut_vec() };
            v.reserve(b.len() + 2);
            let mut start = 0;
            while let Some(i) = next_to_escape(b, start) {
                v.extend_from_slice(&b[start..i]);
                v.extend_from_slice(&[b'\\', ESCAPED[b[i] as usize]]);
                start = i + 1;
            }
            v.extend_from_slice(&b[start..]);
            out.push('\'');
        }
        M::Date(..) | M::Time(..) => {
            out.push('\'');
            // SAFETY: only ASCII digits and punctuation are appended.
            temporal_text(v, kind, unsafe { out.as_mut_vec() });
            out.push('\'');
        }
    }
}

/// A table to dump: its name, its definition, and the columns to read (generated ones are left out).
pub(super) struct TableInfo {
    pub name: String,
    pub create: String,
    pub columns: Vec<String>,
    pub estimated_rows: u64,
}

/// Normalise `SHOW CREATE TABLE` for the checksum: the AUTO_INCREMENT counter is not content.
fn definition_for_checksum(create: &str) -> String {
    create
        .split(' ')
        .filter(|w| !w.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn tables(c: &mut Conn, database: &str) -> Result<Vec<TableInfo>, Error> {
    let names: Vec<(String, Option<u64>)> = c
        .exec("SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    let mut out = Vec::new();
    for (name, rows) in names {
        let create: Option<(String, String)> = c.query_first(format!("SHOW CREATE TABLE {}.{}", quote_ident(database), quote_ident(&name))).await.map_err(|e| db_err(database, e))?;
        // Generated columns cannot be inserted into; they follow from the others and the definition.
        let columns: Vec<(String, String)> = c
            .exec("SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (database, &name))
            .await
            .map_err(|e| db_err(database, e))?;
        let columns = columns.into_iter().filter(|(_, extra)| !["GENERATED", "VIRTUAL", "STORED"].iter().any(|g| extra.to_uppercase().contains(g))).map(|(n, _)| n).collect();
        out.push(TableInfo { create: create.map(|(_, c)| c).unwrap_or_default(), columns, estimated_rows: rows.unwrap_or(0), name });
    }
    Ok(out)
}

/// Write the statements from `rx` to `w` (which holds `start` bytes already) until the readers
/// are done. On a write error the channel is closed at once, so readers blocked on a full channel
/// fail instead of waiting forever.
async fn pump(rx: &mut tokio::sync::mpsc::Receiver<String>, w: &mut BufWriter<tokio::fs::File>, start: u64) -> std::io::Result<()> {
    let (mut written, mut kicked) = (start, start);
    while let Some(stmt) = rx.recv().await {
        let wrote = async {
            w.write_all(stmt.as_bytes()).await?;
            written += stmt.len() as u64;
            if written - kicked >= WRITEBACK_BYTES {
                w.flush().await?;
                start_writeback(w.get_ref(), kicked, written - kicked);
                kicked = written;
            }
            Ok(())
        }
        .await;
        if let Err(e) = wrote {
            rx.close();
            return Err(e);
        }
    }
    Ok(())
}

/// How much of a dump is written before the disk is asked to start writing it out.
const WRITEBACK_BYTES: u64 = 16 << 20;

/// Start writing `len` bytes at `offset` of `file` to disk without waiting, so that the fsync
/// that ends a dump waits for the last few megabytes only, not for all of them (the kernel
/// would otherwise hold hundreds of megabytes dirty until then).
fn start_writeback(file: &tokio::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call only schedules I/O. A failure is harmless: the
    // final fsync writes everything either way.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as libc::off64_t, len as libc::off64_t, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// A small bounded multi-consumer channel (statements to restore workers).
fn async_channel(cap: usize) -> (AsyncSender, AsyncReceiver) {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(cap);
    (AsyncSender(tx), AsyncReceiver(Arc::new(tokio::sync::Mutex::new(rx))))
}

struct AsyncSender(tokio::sync::mpsc::Sender<String>);
impl AsyncSender {
    async fn send(&self, s: String) -> Result<(), ()> {
        self.0.send(s).await.map_err(|_| ())
    }
}

#[derive(Clone)]
struct AsyncReceiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<String>>>);
impl AsyncReceiver {
    async fn recv(&self) -> Result<String, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

fn io_err(what: &Path, e: std::io::Error) -> Error {
    failed(format!("{}: {e}", what.display()))
}

#[async_trait]
impl Sql for MysqlSql {
    async fn query(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<Rows, Error> {
        let mut c = self.conn_in(connection, database).await?;
        let params: Vec<mysql_async::Value> = params.iter().map(to_mysql).collect();
        let mut result = c.exec_iter(statement, params).await.map_err(|e| db_err(database, e))?;
        let columns: Vec<String> = result.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
        let kinds: Vec<Kind> = result.columns_ref().iter().map(column_kind).collect();
        let raw: Vec<Row> = result.collect().await.map_err(|e| db_err(database, e))?;
        let rows = raw.into_iter().map(|r| r.unwrap_raw().into_iter().zip(&kinds).map(|(v, k)| from_mysql(v.unwrap_or(mysql_async::Value::NULL), *k)).collect()).collect();
        Ok(Rows { columns, rows })
    }

    async fn execute(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<u64, Error> {
        let mut c = self.conn_in(connection, database).await?;
        let params: Vec<mysql_async::Value> = params.iter().map(to_mysql).collect();
        c.exec_drop(statement, params).await.map_err(|e| db_err(database, e))?;
        Ok(c.affected_rows())
    }

    async fn dump_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error> {
        self.bulk_or_pooled(database, |bulk| self.dump(connection, database, backup_name, bulk)).await
    }

    async fn restore_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error> {
        let (sql_path, meta_path) = self.backup_paths(backup_name);
        let meta = tokio::fs::read(&meta_path).await.map_err(|_| not_found(format!("no backup named {backup_name} in {}", self.backup_dir.display())))?;
        let recorded: Backup = serde_json::from_slice(&meta).map_err(|e| failed(format!("{}: {e}", meta_path.display())))?;
        let hash = recorded_hash(&recorded, &meta_path)?;
        let mut c = self.conn_in(connection, database).await?;
        let existing: Vec<String> = c
            .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (database,))
            .await
            .map_err(|e| db_err(database, e))?;
        if !existing.is_empty() {
            return Err(invalid(format!("database {database} is not empty ({} tables): drop and create it before restoring", existing.len())));
        }
        let mut file = tokio::fs::File::open(&sql_path).await.map_err(|e| io_err(&sql_path, e))?;
        let total = file.metadata().await.map_err(|e| io_err(&sql_path, e))?.len().max(1);
        // A truncated file is refused before anything is replayed.
        {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let tail_len = END_MARKER.len() as u64 + 1;
            let mut tail = vec![0u8; tail_len as usize];
            let ok = total >= tail_len
                && file.seek(std::io::SeekFrom::End(-(tail_len as i64))).await.is_ok()
                && file.read_exact(&mut tail).await.is_ok()
                && tail == format!("{END_MARKER}\n").as_bytes();
            if !ok || total != recorded.bytes {
                return Err(failed(format!(
                    "backup {} is truncated or changed ({total} bytes, {} recorded at dump time): restore it from another copy",
                    sql_path.display(),
                    recorded.bytes
                )));
            }
            file.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| io_err(&sql_path, e))?;
        }
        let zone = zone_of(&mut file, &sql_path).await?;
        self.replay(&mut c, connection, database, &sql_path, file, total, zone).await?;
        drop(c);
        let (sum, tables, rows) = self.checksum(connection, database, hash, zone).await?;
        if sum != recorded.checksum {
            return Err(failed(format!("restored {database} has checksum {sum}, but backup {backup_name} recorded {}", recorded.checksum)));
        }
        Ok(Backup { name: backup_name.into(), database: database.into(), bytes: total, tables, rows, checksum: sum })
    }

    async fn create_database(&self, connection: &str, database: &str) -> Result<(), Error> {
        let mut c = self.conn(connection).await?;
        c.query_drop(format!("CREATE DATABASE {} DEFAULT CHARACTER SET utf8mb4", quote_ident(database))).await.map_err(|e| match &e {
            mysql_async::Error::Server(s) if s.code == 1007 => invalid(format!("database {database} already exists")),
            _ => db_err(database, e),
        })
    }

    async fn drop_database(&self, connection: &str, database: &str) -> Result<(), Error> {
        let mut c = self.conn(connection).await?;
        c.query_drop(format!("DROP DATABASE {}", quote_ident(database))).await.map_err(|e| match &e {
            mysql_async::Error::Server(s) if s.code == 1008 => not_found(format!("database {database} does not exist")),
            _ => db_err(database, e),
        })
    }

    async fn database_exists(&self, connection: &str, database: &str) -> Result<bool, Error> {
        let mut c = self.conn(connection).await?;
        let n: Option<u64> = c.exec_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (database,)).await.map_err(|e| db_err(database, e))?;
        Ok(n.unwrap_or(0) > 0)
    }

    async fn database_checksum(&self, connection: &str, database: &str) -> Result<String, Error> {
        Ok(self.checksum(connection, database, RowHash::default(), Zone::Utc).await?.0)
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_read_as_the_formatter_wrote_them() {
        use mysql_async::Value as M;
        // The formatting of the version before: dumps and checksums must not change.
        let reference = |v: &M, kind: Kind| match *v {
            M::Date(y, mo, d, h, mi, s, us) => {
                if h == 0 && mi == 0 && s == 0 && us == 0 && kind == Kind::Other {
                    format!("{y:04}-{mo:02}-{d:02} 00:00:00")
                } else {
                    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
                }
            }
            M::Time(neg, days, h, mi, s, us) => format!("{}{:02}:{mi:02}:{s:02}.{us:06}", if neg { "-" } else { "" }, days * 24 + h as u32),
            _ => unreachable!(),
        };
        let values = [
            M::Date(2026, 11, 23, 0, 0, 0, 0),
            M::Date(1000, 1, 1, 0, 0, 0, 0),
            M::Date(0, 0, 0, 0, 0, 0, 0),
            M::Date(9999, 12, 31, 23, 59, 59, 999_999),
            M::Date(2026, 1, 2, 3, 4, 5, 6),
            M::Date(2026, 1, 2, 0, 0, 0, 1),
            M::Time(true, 34, 22, 59, 59, 0),
            M::Time(false, 0, 0, 0, 0, 0),
            M::Time(false, 0, 5, 1, 2, 30),
            M::Time(false, 4, 6, 7, 8, 999_999),
        ];
        for v in &values {
            for kind in [Kind::Other, Kind::Text] {
                let want = reference(v, kind);
                assert_eq!(from_mysql(v.clone(), kind), Value::Text(want.clone()), "{v:?}");
                let mut lit = String::new();
                literal(v.into(), kind, &mut lit);
                assert_eq!(lit, format!("'{want}'"));
                let (mut a, mut b) = (Vec::new(), Vec::new());
                hash_raw(&mut super::super::checksum::RowEncoder::new(&mut a), v.into(), kind);
                super::super::checksum::RowEncoder::new(&mut b).text(want.as_bytes());
                assert_eq!(a, b, "{v:?} hashes as its text");
            }
        }
    }

    #[test]
    fn text_literals_escape_what_mysql_real_escape_string_escapes() {
        let mut out = String::new();
        literal(Raw::Bytes(b"a'b\\c\nd\re\x1af\0g\t\"h \xc3\xbc"), Kind::Text, &mut out);
        assert_eq!(out, "'a\\'b\\\\c\\nd\\re\\Zf\\0g\t\"h \u{fc}'");
        out.clear();
        literal(Raw::Bytes(b"plain"), Kind::Text, &mut out);
        assert_eq!(out, "'plain'");
        // Specials at every position of a 16-byte step and in the tail.
        for at in 0..40 {
            let mut text = vec![b'x'; 40];
            text[at] = b'\n';
            out.clear();
            literal(Raw::Bytes(&text), Kind::Text, &mut out);
            let want = format!("'{}\\n{}'", "x".repeat(at), "x".repeat(39 - at));
            assert_eq!(out, want, "{at}");
        }
        // Not UTF-8: hex, exact bytes.
        out.clear();
        literal(Raw::Bytes(&[0xff, 0x27]), Kind::Text, &mut out);
        assert_eq!(out, "0xff27");
    }
}
