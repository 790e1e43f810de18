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
//!   big enough to split (`snapshot.rs`). `dump-databases` reads several databases in one
//!   snapshot on the same connections, each into its own file, each file synced to disk as it
//!   grows and finished as soon as its database is read.
//! - `restore-database` and `restore-databases` check every backup and database first, stream
//!   the files back side by side on two connections (`restore.rs`), then verify every checksum.

use super::checksum::{database_checksum, recorded_hash, RowEncoder, RowHash, TableHasher};
use super::wire;
use super::{objects, restore, snapshot};
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
    /// The server stops a plugin's statement after this (`max_statement_time`), and a statement
    /// whose host call was abandoned is killed (`KILL QUERY`).
    statement_timeout: std::time::Duration,
    backup_dir: PathBuf,
    reporter: Arc<dyn Reporter>,
    /// Snapshots read by the bulk reader (for tests that must know it was used).
    wire_snapshots: std::sync::atomic::AtomicU64,
}

/// One configured MetaDB connection.
struct Metadb {
    pool: Pool,
    /// For a plugin's statements: a connection of their own, closed after each.
    opts: Opts,
    /// "user@host:port", for messages.
    addr: String,
    /// Where the password comes from, for messages ("the environment variable X", "the file Y").
    password_from: String,
    size: usize,
    load_data: bool,
    /// Where the bulk reader connects; None when it is off.
    wire: Option<WireTarget>,
    /// Which server it is, asked once (flavour.rs: what differs on each).
    flavour: tokio::sync::OnceCell<super::flavour::Flavour>,
}

/// The address and credentials the bulk reader connects with.
struct WireTarget {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

/// The last line of every complete dump.
pub(super) const END_MARKER: &str = "-- opshost dump complete";

/// The second line of every dump whose TIMESTAMP values (and definitions) were read in UTC.
const UTC_MARKER: &str = "-- timestamps: UTC";

/// The header statement that makes a replay write TIMESTAMP values in UTC.
pub(super) const SET_UTC: &str = "/*!40103 SET TIME_ZONE='+00:00' */;";

/// What a reading connection runs to read TIMESTAMP values in UTC.
const SET_SESSION_UTC: &str = "SET SESSION time_zone = '+00:00'";

/// A consistent snapshot of one or more databases ready to read: each database's tables, the
/// connections that read them, the ranges they read, and whether the bulk reader is among them.
struct Opened {
    tables: Vec<Arc<Vec<TableInfo>>>,
    /// Each database's views, triggers, routines and events.
    objects: Vec<Vec<objects::DbObject>>,
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

/// Connections that insert a restore's rows (two keep the 2-core bench machine's MetaDB busy;
/// more contend for the same tables' pages).
const RESTORE_WORKERS: usize = 2;

/// Connections that read a snapshot in parallel; the pool size caps it. On the 2-core bench
/// machine (MetaDB on the same cores) three keep both cores busier than two: while one waits for
/// the server or for the client, the others work (1.62 s against 1.75 s; four gain nothing more).
const READERS: usize = 3;

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
            let wire = c
                .bulk_reader
                .then(|| Ok::<_, anyhow::Error>(WireTarget { host: c.host.clone(), port: c.port, user: c.user.clone(), password: c.password(name)? }))
                .transpose()?;
            let opts = Opts::from(opts);
            let metadb = Metadb {
                pool: Pool::new(opts.clone()),
                opts,
                addr: format!("{}@{}:{}", c.user, c.host, c.port),
                password_from: match (&c.password_env, &c.password_file) {
                    (Some(var), _) => format!("the password in the environment variable {var}"),
                    (None, Some(file)) => format!("the password in {}", file.display()),
                    (None, None) => "the user (no password is configured)".to_string(),
                },
                size: c.max_connections.max(1),
                load_data: c.load_data,
                wire,
                flavour: Default::default(),
            };
            pools.insert(name.clone(), metadb);
        }
        Ok(MysqlSql { pools, statement_timeout: std::time::Duration::from_secs(300), backup_dir, reporter, wire_snapshots: Default::default() })
    }

    /// The server-side limit of a plugin's statements (`call_timeout_s`).
    pub fn with_statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Run a plugin's statement on a connection of its own in `database`: the server stops it
    /// after the statement timeout (MariaDB `max_statement_time`; MySQL `max_execution_time`,
    /// which bounds SELECTs), and if the host call is abandoned first (its deadline, the run
    /// stopping) the statement is killed on the server instead of running on.
    async fn plugin_statement<T, F>(&self, connection: &str, database: &str, run: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, mysql_async::Error>> + Send + 'c>>,
    {
        let started = std::time::Instant::now();
        let m = self.metadb(connection)?;
        let mut c = Conn::new(m.opts.clone())
            .await
            .map_err(|e| failed(format!("cannot connect to MetaDB {connection} ({}): {e}; check that it is up and its credentials", m.addr)))?;
        // The host's deadline comes first and kills the statement; the server's own limit, a
        // little later, stops it even if the host is gone.
        let secs = self.statement_timeout.as_secs().max(1) + 5;
        if c.query_drop(format!("SET SESSION max_statement_time = {secs}")).await.is_err() {
            let _ = c.query_drop(format!("SET SESSION max_execution_time = {}", secs * 1000)).await;
        }
        c.query_drop(format!("USE {}", quote_ident(database))).await.map_err(|e| db_err(database, e))?;
        let id = c.id();
        let guard = KillOnDrop { pool: m.pool.clone(), id: Some(id) };
        // Stop it a little before the host call's own deadline, so the kill is awaited here
        // rather than left to a task the ending process may never run.
        let deadline = started + self.statement_timeout.saturating_sub(std::time::Duration::from_millis(250));
        let r = match tokio::time::timeout_at(deadline.into(), run(&mut c)).await {
            Ok(r) => r.map_err(|e| db_err(database, e)),
            Err(_) => {
                guard.disarm();
                if let Ok(mut k) = m.pool.get_conn().await {
                    let _ = k.query_drop(format!("KILL QUERY {id}")).await;
                }
                return Err(Error::Timeout(format!(
                    "{database}: the statement did not finish within {} s (call_timeout_s in [limits]); it was stopped on the server",
                    self.statement_timeout.as_secs()
                )));
            }
        };
        guard.disarm();
        let _ = c.disconnect().await;
        r
    }

    fn metadb(&self, connection: &str) -> Result<&Metadb, Error> {
        self.pools.get(connection).ok_or_else(|| not_found(format!("no MetaDB connection named {connection} in the site config ([metadb.{connection}])")))
    }

    async fn conn(&self, connection: &str) -> Result<Conn, Error> {
        let Metadb { pool, addr, password_from, .. } = self
            .pools
            .get(connection)
            .ok_or_else(|| not_found(format!("no MetaDB connection named {connection} in the site config ([metadb.{connection}])")))?;
        pool.get_conn().await.map_err(|e| {
            let check = if e.to_string().contains("Access denied") {
                format!("check the user in [metadb.{connection}] and {password_from}")
            } else {
                format!("check that it is up and reachable at host/port in [metadb.{connection}]")
            };
            failed(format!("cannot connect to MetaDB {connection} ({addr}): {e}; {check}"))
        })
    }

    /// The lock of a whole run on the MetaDB itself (`GET_LOCK(name, 0)` on a connection of its
    /// own): held while the returned connection is open, so that two opshosts on two hosts cannot
    /// work on one product at once; the server drops it when that connection closes, however the
    /// process ends. `Err` says who holds it.
    pub async fn take_run_lock(&self, connection: &str, name: &str) -> Result<Result<Conn, String>, Error> {
        let mut c = self.conn(connection).await?;
        let got: Option<Option<i64>> =
            c.exec_first("SELECT GET_LOCK(?, 0)", (name,)).await.map_err(|e| failed(format!("MetaDB {connection}: GET_LOCK: {e}")))?;
        if got.flatten() == Some(1) {
            return Ok(Ok(c));
        }
        drop(c);
        Ok(Err(self.run_lock_holder(connection, name).await?.unwrap_or_else(|| "a connection that has just let it go".into())))
    }

    /// Who holds the run lock `name`, if anyone: its connection id, account and client host.
    /// What `opshost check` says of the connection's account on `databases`: who it is,
    /// whether it holds RELOAD (a dump's snapshot taken side by side), and per database the
    /// privileges it lacks for what opshost does there (the objects it holds included).
    pub async fn account_check(&self, connection: &str, databases: &[String]) -> Result<AccountCheck, Error> {
        let mut c = self.conn(connection).await?;
        let account: String = c.query_first("SELECT CURRENT_USER()").await.map_err(|e| failed(format!("MetaDB {connection}: {e}")))?.unwrap_or_default();
        let grants: Vec<String> = c.query("SHOW GRANTS").await.map_err(|e| failed(format!("MetaDB {connection}: SHOW GRANTS: {e}")))?;
        let (global, roles) = super::privileges_on(&grants, "");
        let mut missing = Vec::new();
        for db in databases {
            let (held, _) = super::privileges_on(&grants, db);
            let mut need: Vec<&str> = super::NEEDED_ON_DATABASE.to_vec();
            let exists: Option<String> =
                c.exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,)).await.map_err(|e| db_err(db, e))?;
            if exists.is_some() {
                for o in objects::read(&mut c, db).await.unwrap_or_default() {
                    need.extend(match o.kind {
                        objects::ObjectKind::View => &["CREATE VIEW", "SHOW VIEW"][..],
                        objects::ObjectKind::Trigger => &["TRIGGER"][..],
                        objects::ObjectKind::Procedure | objects::ObjectKind::Function => &["CREATE ROUTINE", "ALTER ROUTINE"][..],
                        objects::ObjectKind::Event => &["EVENT"][..],
                    });
                }
            }
            let mut lacking: Vec<String> = need.iter().filter(|p| !held.contains(**p)).map(|p| p.to_string()).collect();
            lacking.sort();
            lacking.dedup();
            missing.push((db.clone(), lacking));
        }
        Ok(AccountCheck { account, reload: global.contains("RELOAD"), roles, missing, excess: super::excess_privileges_in(&grants) })
    }

    pub async fn run_lock_holder(&self, connection: &str, name: &str) -> Result<Option<String>, Error> {
        let mut c = self.conn(connection).await?;
        let id: Option<Option<u64>> =
            c.exec_first("SELECT IS_USED_LOCK(?)", (name,)).await.map_err(|e| failed(format!("MetaDB {connection}: IS_USED_LOCK: {e}")))?;
        let Some(id) = id.flatten() else { return Ok(None) };
        // PROCESSLIST shows another account's session only with PROCESS; the id is enough then.
        let who: Option<(String, String)> = c.exec_first("SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID = ?", (id,)).await.ok().flatten();
        Ok(Some(match who {
            Some((user, host)) => format!("connection {id} of {user}@{host}"),
            None => format!("connection {id}"),
        }))
    }

    /// The server's flavour, from `VERSION()` and `@@version_comment`, asked once per connection
    /// on `c`, one the caller holds (a pool of one connection has no other to give).
    async fn flavour(&self, connection: &str, c: &mut Conn) -> Result<super::flavour::Flavour, Error> {
        let m = self.metadb(connection)?;
        m.flavour
            .get_or_try_init(|| async {
                let (version, comment): (String, String) = c
                    .query_first("SELECT VERSION(), @@version_comment")
                    .await
                    .map_err(|e| failed(format!("MetaDB {connection}: reading its version: {e}")))?
                    .unwrap_or_default();
                Ok(super::flavour::Flavour::of(&version, &comment))
            })
            .await
            .copied()
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

    /// Connections in one consistent snapshot for reading `rows` rows (of `database` and maybe
    /// others; readers name every table in full): several when there is enough to split, else one.
    ///
    /// Big ones are read by [`READERS`] bulk-reader connections when they connect (and the
    /// configured `max_connections` leaves room for them next to `first`, which then only plans);
    /// otherwise by pooled connections, `first` among them.
    async fn snapshot(&self, connection: &str, database: &str, mut first: Conn, rows: u64, zone: Zone, bulk: bool) -> Result<Vec<snapshot::Reader>, Error> {
        let metadb = self.pools.get(connection);
        let pool_size = metadb.map(|p| p.size).unwrap_or(1);
        let flavour = self.flavour(connection, &mut first).await?;
        let want = if rows > snapshot::RANGE_ROWS && flavour.shared_snapshot() { READERS.min(pool_size) } else { 1 };
        let mut more = Vec::new();
        if let Some(target) = metadb.and_then(|m| m.wire.as_ref()).filter(|_| bulk && flavour.bulk_reader() && want > 1 && pool_size > READERS) {
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

    /// One consistent snapshot of `databases` (at least one) ready to read, TIMESTAMP values in
    /// `zone`, with the bulk reader when `bulk` (and it connects). Their chunks queue one database
    /// after another. An error after the bulk reader started says so.
    async fn open(&self, connection: &str, databases: &[&str], zone: Zone, bulk: bool) -> Result<Opened, (Error, bool)> {
        let mut first = self.conn_zoned(connection, databases[0], zone).await.map_err(|e| (e, false))?;
        let mut tables = Vec::new();
        let mut objects = Vec::new();
        for (i, database) in databases.iter().enumerate() {
            // The first was checked by `USE`; a missing other is an error, not an empty database.
            if i > 0 {
                let found: Option<String> = first
                    .exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (database,))
                    .await
                    .map_err(|e| (db_err(database, e), false))?;
                if found.is_none() {
                    return Err((not_found(format!("database {database} does not exist")), false));
                }
            }
            tables.push(Arc::new(self::tables(&mut first, database).await.map_err(|e| (e, false))?));
            objects.push(objects::read(&mut first, database).await.map_err(|e| (e, false))?);
        }
        let rows = tables.iter().flat_map(|t| t.iter()).map(|t| t.estimated_rows).sum();
        let mut conns = self.snapshot(connection, databases[0], first, rows, zone, bulk).await.map_err(|e| (e, false))?;
        let wired = conns.iter().any(|c| matches!(c, snapshot::Reader::Wire(_)));
        let n = conns.len();
        let mut chunks = Vec::new();
        for (db, database) in databases.iter().enumerate() {
            chunks.extend(snapshot::plan(conns[0].pooled(), db, database, &tables[db], n).await.map_err(|e| (e, wired))?);
        }
        Ok(Opened { tables, objects, readers: snapshot::readers(conns), chunks, wired })
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
                self.reporter.log(
                    crate::capabilities::services::Level::Warn,
                    &format!("the bulk reader failed on {database} ({why}); reading it again through mysql_async (bulk_reader = false in [metadb.X] skips it)"),
                );
                read(false).await.map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// Dump each `(database, backup name)` of `dumps` in one snapshot, with the bulk reader when
    /// `bulk`.
    async fn dump(&self, connection: &str, dumps: &[(&str, &str)], bulk: bool) -> Result<Vec<Backup>, (Error, bool)> {
        // Read in UTC, as the header replays it: TIMESTAMP values (and TIMESTAMP defaults in the
        // definitions) come back as the same instants whatever the server's time zone.
        let databases: Vec<&str> = dumps.iter().map(|(d, _)| *d).collect();
        let opened = self.open(connection, &databases, Zone::Utc, bulk).await?;
        let wired = opened.wired;
        self.write_dumps(dumps, opened).await.map_err(|e| (e, wired))
    }

    /// Read an opened snapshot into the backups of `dumps` (one file and its metadata each). The
    /// databases' files are written side by side, each made durable as soon as its last rows are
    /// read; a backup is only renamed into place when every one of them was read and written.
    async fn write_dumps(&self, dumps: &[(&str, &str)], opened: Opened) -> Result<Vec<Backup>, Error> {
        let Opened { tables, objects, readers: conns, chunks, .. } = opened;
        tokio::fs::create_dir_all(&self.backup_dir).await.map_err(|e| io_err(&self.backup_dir, e))?;
        // Dumps hold the MetaDB's content: owner only.
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&self.backup_dir, std::fs::Permissions::from_mode(0o700)).await.map_err(|e| io_err(&self.backup_dir, e))?;
        }
        let mut jobs = Vec::new();
        let mut writers = Vec::new();
        let spare = snapshot::Spare::default();
        for (((database, backup_name), tables), objects) in dumps.iter().zip(&tables).zip(&objects) {
            let (tx, rx) = tokio::sync::mpsc::channel::<String>(8);
            jobs.push(snapshot::Job::new(database, tables.clone(), Some(tx), RowHash::default()));
            writers.push(self.write_file(database, backup_name, tables, objects, rx, spare.clone()));
        }
        let label = format!("dump {}", dumps.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", "));
        let mut work = snapshot::Work::new(jobs, label, self.reporter.clone());
        work.spare = spare;
        let (read, written) = tokio::join!(snapshot::read_all(conns, chunks, work), futures_util::future::join_all(writers));
        // A dump that did not finish leaves no partial file behind. The writer's error (a full
        // disk) is the cause; the readers then only saw it stop.
        let mut first_error = written.iter().find_map(|w| w.as_ref().err().cloned());
        let hashers = match read {
            Ok(h) if first_error.is_none() => h,
            Ok(_) => Vec::new(),
            Err(e) => {
                first_error = first_error.or(Some(e));
                Vec::new()
            }
        };
        if let Some(e) = first_error {
            // The finished ones too: every partial file.
            for (_, backup_name) in dumps {
                let _ = tokio::fs::remove_file(self.backup_paths(backup_name).0.with_extension("sql.partial")).await;
            }
            return Err(e);
        }
        let mut backups = Vec::new();
        for ((((database, backup_name), tables), objects), (hashers, tmp)) in dumps.iter().zip(&tables).zip(&objects).zip(hashers.iter().zip(written)) {
            let tmp = tmp.expect("checked above");
            let (sql_path, meta_path) = self.backup_paths(backup_name);
            tokio::fs::rename(&tmp, &sql_path).await.map_err(|e| io_err(&sql_path, e))?;
            let bytes = tokio::fs::metadata(&sql_path).await.map_err(|e| io_err(&sql_path, e))?.len();
            let (checksum, n_tables, rows) = summary(tables, objects, hashers, RowHash::default());
            let backup = Backup { name: backup_name.to_string(), database: database.to_string(), bytes, tables: n_tables, rows, checksum };
            let meta = serde_json::to_vec_pretty(&backup).expect("backup serialises");
            tokio::fs::write(&meta_path, meta).await.map_err(|e| io_err(&meta_path, e))?;
            backups.push(backup);
        }
        Ok(backups)
    }

    /// Write one database's dump file as `backup_name` with a `.partial` suffix (see
    /// [`write_file`]). The partial file's path; on an error it is removed.
    async fn write_file(
        &self,
        database: &str,
        backup_name: &str,
        tables: &[TableInfo],
        objects: &[objects::DbObject],
        rx: tokio::sync::mpsc::Receiver<String>,
        spare: snapshot::Spare,
    ) -> Result<PathBuf, Error> {
        let tmp = self.backup_paths(backup_name).0.with_extension("sql.partial");
        let mut head = format!(
            "-- opshost dump of database {database}\n{UTC_MARKER}\n/*!40101 SET NAMES utf8mb4 */;\n{SET_UTC}\n/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
        );
        for t in tables.iter() {
            head.push_str(&format!("DROP TABLE IF EXISTS {};\n{};\n", quote_ident(&t.name), t.create.replace('\n', " ")));
        }
        let path = tmp.clone();
        let tail = objects::section(objects);
        let written =
            tokio::task::spawn_blocking(move || write_file(&path, &head, &tail, rx, &spare)).await.map_err(|e| failed(format!("dump file writer: {e}")))?;
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(failed(format!(
                    "writing backup {}: {e}: free space in {} (or point backup_dir at a bigger disk), then run again",
                    tmp.display(),
                    self.backup_dir.display()
                )))
            }
        }
    }

    /// The content checksum of `database` as it is now, rows hashed with `hash` and TIMESTAMP
    /// values read in `zone`: (checksum, tables, rows).
    pub async fn checksum(&self, connection: &str, database: &str, hash: RowHash, zone: Zone) -> Result<(String, u32, u64), Error> {
        let mut sums = self.checksums(connection, &[(database, hash)], zone).await?;
        Ok(sums.remove(0))
    }

    /// [`MysqlSql::checksum`] of each `(database, hash)` of `databases`, read in one snapshot.
    pub async fn checksums(&self, connection: &str, databases: &[(&str, RowHash)], zone: Zone) -> Result<Vec<(String, u32, u64)>, Error> {
        let label = databases.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ");
        self.bulk_or_pooled(&label, |bulk| self.checksum_with(connection, databases, zone, bulk)).await
    }

    /// [`MysqlSql::checksums`], with the bulk reader when `bulk`.
    async fn checksum_with(&self, connection: &str, databases: &[(&str, RowHash)], zone: Zone, bulk: bool) -> Result<Vec<(String, u32, u64)>, (Error, bool)> {
        let names: Vec<&str> = databases.iter().map(|(d, _)| *d).collect();
        let Opened { tables, objects, readers, chunks, wired } = self.open(connection, &names, zone, bulk).await?;
        let jobs = databases.iter().zip(&tables).map(|((database, hash), tables)| snapshot::Job::new(database, tables.clone(), None, *hash)).collect();
        let work = snapshot::Work::new(jobs, format!("checksum {}", names.join(", ")), self.reporter.clone());
        let hashers = snapshot::read_all(readers, chunks, work).await.map_err(|e| (e, wired))?;
        Ok(databases
            .iter()
            .zip(tables.iter().zip(&objects).zip(&hashers))
            .map(|((_, hash), ((tables, objects), hashers))| summary(tables, objects, hashers, *hash))
            .collect())
    }

    /// Where a backup's SQL and metadata live.
    pub fn backup_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.backup_dir.join(format!("{name}.sql")), self.backup_dir.join(format!("{name}.json")))
    }
}

/// A dump file is whole: the size recorded at dump time, and its last line the end marker. Else
/// why not, naming the file and what to do.
pub fn check_backup_file(path: &Path, recorded_bytes: u64) -> Result<(), String> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| format!("backup {}: {e}: restore it from another copy", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let tail_len = END_MARKER.len() as u64 + 1;
    let mut tail = vec![0u8; tail_len as usize];
    let ok = total >= tail_len
        && file.seek(std::io::SeekFrom::End(-(tail_len as i64))).is_ok()
        && file.read_exact(&mut tail).is_ok()
        && tail == format!("{END_MARKER}\n").as_bytes();
    if !ok || total != recorded_bytes {
        return Err(format!(
            "backup {} is truncated or changed ({total} bytes, {recorded_bytes} recorded at dump time): restore it from another copy",
            path.display()
        ));
    }
    Ok(())
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

/// [`MysqlSql::account_check`]'s answer.
pub struct AccountCheck {
    /// `user@host` as the server matched the login.
    pub account: String,
    pub reload: bool,
    /// The account has roles, whose privileges SHOW GRANTS of the account does not show.
    pub roles: bool,
    /// Per database, the privileges it lacks (empty: none).
    pub missing: Vec<(String, Vec<String>)>,
    /// What it holds on `*.*` that opshost never needs ([`super::excess_privileges_in`]).
    pub excess: Vec<String>,
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
    /// YEAR: its zero is written `0000`, which LOAD DATA reads as 0000 (a bare `0` it reads as 2000).
    Year,
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
        MYSQL_TYPE_YEAR => Kind::Year,
        // MySQL 5.7/8's JSON arrives as its text (UTF-8, though the column reports charset
        // binary) and is written back as a string, as mysqldump writes it: a hex literal would
        // be refused ("Cannot create a JSON value from a string with CHARACTER SET 'binary'").
        MYSQL_TYPE_JSON => Kind::Text,
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => {
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
/// Each byte's two lowercase hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

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
            // The tail, as the last 16 bytes (overlapping what was scanned; those bits masked).
            if i < b.len() && b.len() >= 16 {
                let last = b.len() - 16;
                let chunk = _mm_loadu_si128(b.as_ptr().add(last) as *const __m128i);
                let mut hit = _mm_cmpeq_epi8(chunk, specials[0]);
                for s in &specials[1..] {
                    hit = _mm_or_si128(hit, _mm_cmpeq_epi8(chunk, *s));
                }
                let mask = (_mm_movemask_epi8(hit) as u32) >> (i - last);
                return (mask != 0).then(|| i + mask.trailing_zeros() as usize);
            }
        }
    }
    b[i..].iter().position(|&c| ESCAPED[c as usize] != 0).map(|p| i + p)
}

/// One value as a SQL literal for the dump. FLOAT columns arrive as f32 and are written with the
/// shortest text that parses back to the same f32; DOUBLE likewise for f64.
/// [`hash_raw`] and then [`literal`] of one value, in one pass: integers and dates and times
/// are put into text once for both.
pub(super) fn hash_and_literal(e: &mut RowEncoder, v: Raw, kind: Kind, out: &mut String) {
    use Raw as M;
    let mut buf = [0u8; 21];
    let digits = match v {
        M::Int(i) => super::checksum::decimal(i < 0, i.unsigned_abs(), &mut buf),
        M::UInt(u) => super::checksum::decimal(false, u, &mut buf),
        M::Date(..) | M::Time(..) => {
            out.push('\'');
            let at = out.len();
            // SAFETY: only ASCII digits and punctuation are appended.
            temporal_text(v, kind, unsafe { out.as_mut_vec() });
            e.text(&out.as_bytes()[at..]);
            out.push('\'');
            return;
        }
        _ => {
            hash_raw(e, v, kind);
            literal(v, kind, out);
            return;
        }
    };
    e.decimal(digits);
    if kind == Kind::Year && digits == b"0" {
        out.push_str("0000");
        return;
    }
    // SAFETY: `decimal` writes ASCII digits and a minus sign only.
    out.push_str(unsafe { std::str::from_utf8_unchecked(digits) });
}

pub(super) fn literal(v: Raw, kind: Kind, out: &mut String) {
    use std::fmt::Write;
    use Raw as M;
    match v {
        M::Null => out.push_str("NULL"),
        M::Int(0) | M::UInt(0) if kind == Kind::Year => out.push_str("0000"),
        M::Int(i) => out.push_str(std::str::from_utf8(super::checksum::decimal(i < 0, i.unsigned_abs(), &mut [0u8; 21])).unwrap()),
        M::UInt(u) => out.push_str(std::str::from_utf8(super::checksum::decimal(false, u, &mut [0u8; 21])).unwrap()),
        M::Float(f) => write!(out, "{f:?}").unwrap(),
        M::Double(d) => write!(out, "{d:?}").unwrap(),
        // Binary columns, and text that is not UTF-8, as hex: exact bytes whatever the charset.
        M::Bytes(b) if kind == Kind::Binary || (!b.is_ascii() && std::str::from_utf8(b).is_err()) => {
            if b.is_empty() {
                out.push_str("''");
            } else {
                out.push_str("0x");
                // SAFETY: only ASCII hex digits are appended.
                let v = unsafe { out.as_mut_vec() };
                let at = v.len();
                v.resize(at + b.len() * 2, 0);
                for (pair, &x) in v[at..].chunks_exact_mut(2).zip(b) {
                    pair.copy_from_slice(&HEX_PAIRS[x as usize]);
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
    /// The table's primary key when it is a single integer column (quoted): big tables are read
    /// in ranges of it.
    pub integer_key: Option<String>,
}

/// A database's (checksum, tables, rows) from its tables and their merged row hashers, and its
/// other objects (a database without any has the checksum earlier versions recorded).
fn summary(tables: &[TableInfo], objects: &[objects::DbObject], hashers: &[TableHasher], hash: RowHash) -> (String, u32, u64) {
    let mut digests: Vec<(String, [u8; 32])> =
        tables.iter().zip(hashers).map(|(t, h)| (t.name.clone(), h.finish(&t.name, &definition_for_checksum(&t.create)))).collect();
    digests.extend(objects::digests(objects, hash));
    (database_checksum(&digests, hash), tables.len() as u32, hashers.iter().map(|h| h.rows()).sum())
}

/// Normalise `SHOW CREATE TABLE` for the checksum: the AUTO_INCREMENT counter is not content.
fn definition_for_checksum(create: &str) -> String {
    create.split(' ').filter(|w| !w.starts_with("AUTO_INCREMENT=")).collect::<Vec<_>>().join(" ")
}

async fn tables(c: &mut Conn, database: &str) -> Result<Vec<TableInfo>, Error> {
    let names: Vec<(String, Option<u64>)> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    let mut out = Vec::new();
    for (name, rows) in names {
        let create: Option<(String, String)> =
            c.query_first(format!("SHOW CREATE TABLE {}.{}", quote_ident(database), quote_ident(&name))).await.map_err(|e| db_err(database, e))?;
        let columns: Vec<(String, String, String, String)> = c
            .exec("SELECT COLUMN_NAME, EXTRA, COLUMN_KEY, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (database, &name))
            .await
            .map_err(|e| db_err(database, e))?;
        // `PRI` marks the primary key's columns (or, in a table without one, a unique index's
        // whose columns are NOT NULL: as good for cutting into ranges, as no row's key is NULL).
        let key: Vec<&(String, String, String, String)> = columns.iter().filter(|(_, _, k, _)| k == "PRI").collect();
        let integer_key = match key.as_slice() {
            [(name, _, _, ty)] if ["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&ty.to_lowercase().as_str()) => Some(quote_ident(name)),
            _ => None,
        };
        // Generated columns cannot be inserted into; they follow from the others and the definition.
        let columns = columns
            .into_iter()
            .filter(|(_, extra, _, _)| !["GENERATED", "VIRTUAL", "STORED"].iter().any(|g| extra.to_uppercase().contains(g)))
            .map(|(n, ..)| n)
            .collect();
        out.push(TableInfo { create: create.map(|(_, c)| c).unwrap_or_default(), columns, estimated_rows: rows.unwrap_or(0), name, integer_key });
    }
    Ok(out)
}

/// Write a dump file at `path` (on a blocking thread): `head` (the header and every table's
/// definition), then the statements from `rx` in whatever order the readers produce them (each
/// INSERT stands alone) until the database's last chunk is read, then `tail` (the database's
/// views, triggers, routines and events), the footer and the end marker, on disk (fsync). Statements go to the file as they come, without another copy, and
/// their buffers back to `spare`.
///
/// Every [`SYNC_BYTES`] the file is made durable so far on a thread of its own, one such sync at
/// a time, so the closing fsync has little left to wait for; a failed one fails the dump. On any
/// error the channel is closed at once, so readers blocked on a full channel fail instead of
/// waiting forever.
fn write_file(path: &Path, head: &str, tail: &str, mut rx: tokio::sync::mpsc::Receiver<String>, spare: &snapshot::Spare) -> std::io::Result<()> {
    use std::io::Write;
    let join = |h: std::thread::JoinHandle<std::io::Result<()>>| h.join().map_err(|_| std::io::Error::other("background sync panicked"))?;
    let mut in_flight = None;
    let result = (|| {
        let mut f = std::fs::File::create(path)?;
        f.write_all(head.as_bytes())?;
        let (mut written, mut synced) = (head.len() as u64, head.len() as u64);
        while let Some(mut stmt) = rx.blocking_recv() {
            f.write_all(stmt.as_bytes())?;
            written += stmt.len() as u64;
            // The buffer goes back to the readers.
            stmt.clear();
            let mut spare = spare.lock().unwrap();
            if spare.len() < snapshot::SPARE_MAX {
                spare.push(stmt);
            }
            drop(spare);
            if written - synced >= SYNC_BYTES && in_flight.as_ref().is_none_or(|h: &std::thread::JoinHandle<_>| h.is_finished()) {
                if let Some(h) = in_flight.take() {
                    join(h)?;
                }
                let syncer = f.try_clone()?;
                in_flight = Some(std::thread::spawn(move || syncer.sync_data()));
                synced = written;
            }
        }
        if let Some(h) = in_flight.take() {
            join(h)?;
        }
        // Views, triggers, routines and events after every row.
        f.write_all(tail.as_bytes())?;
        f.write_all(b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n")?;
        f.write_all(format!("{END_MARKER}\n").as_bytes())?;
        f.sync_all()
    })();
    if result.is_err() {
        rx.close();
        if let Some(h) = in_flight {
            let _ = join(h);
        }
    }
    result
}

/// How much of a dump is written between background syncs. Syncing as it goes costs no time
/// (it runs beside the writing) and saves most of the closing fsync, which on a virtual disk
/// waits for the device cache to take everything not yet synced: about 0.2 s per 250 MB here.
const SYNC_BYTES: u64 = 32 << 20;

/// Kills the statement of connection `id` on the server unless disarmed: dropped with the future
/// of a host call that was abandoned, it stops what the server would otherwise go on running.
struct KillOnDrop {
    pool: Pool,
    id: Option<u32>,
}

impl KillOnDrop {
    fn disarm(mut self) {
        self.id = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let (Some(id), Ok(rt)) = (self.id, tokio::runtime::Handle::try_current()) else { return };
        let pool = self.pool.clone();
        rt.spawn(async move {
            if let Ok(mut c) = pool.get_conn().await {
                let _ = c.query_drop(format!("KILL QUERY {id}")).await;
            }
        });
    }
}

fn io_err(what: &Path, e: std::io::Error) -> Error {
    failed(format!("{}: {e}", what.display()))
}

#[async_trait]
impl Sql for MysqlSql {
    async fn describe_backup(&self, connection: &str, databases: &[String]) -> Result<Vec<String>, Error> {
        let m = self.metadb(connection)?;
        let mut c = self.conn(connection).await?;
        // The flavour first: what else to ask, and which paths run, depend on it (flavour.rs).
        let flavour = self.flavour(connection, &mut c).await.ok();
        let facts: Option<(String, String, String, String, u64)> =
            c.query_first("SELECT VERSION(), @@global.time_zone, @@system_time_zone, @@global.sql_mode, @@global.local_infile").await.ok().flatten();
        let mut out = Vec::new();
        if let (Some(flavour), Some((version, tz, system_tz, sql_mode, local_infile))) = (flavour, facts) {
            let autoinc: u64 = match flavour {
                super::flavour::Flavour::OceanBase => 0,
                _ => c.query_first("SELECT @@innodb_autoinc_lock_mode").await.ok().flatten().unwrap_or(1),
            };
            let zone = if tz == "SYSTEM" { format!("SYSTEM ({system_tz})") } else { tz };
            let rows = match (m.load_data, flavour.load_data(), local_infile == 1) {
                (false, _, _) => "restores replay the dump's INSERTs (load_data = false)".to_string(),
                (true, false, _) => "restores replay the dump's INSERTs".to_string(),
                (true, true, false) => "restores replay the dump's INSERTs (the server has local_infile off)".to_string(),
                (true, true, true) if autoinc < 2 => format!(
                    "restores load rows with LOAD DATA LOCAL INFILE, INSERTs for tables with an AUTO_INCREMENT column (innodb_autoinc_lock_mode = {autoinc})"
                ),
                (true, true, true) => "restores load rows with LOAD DATA LOCAL INFILE".to_string(),
            };
            let reader = if m.wire.is_some() && flavour.bulk_reader() { "with opshost's row reader" } else { "through mysql_async" };
            out.push(format!(
                "MetaDB {connection}: {} {version}, time zone {zone}, sql_mode '{sql_mode}'; {} {reader}, TIMESTAMPs in UTC; {rows}; every restore is verified by checksum",
                flavour.name(),
                flavour.paths()
            ));
        }
        for db in databases {
            let exists: Option<String> =
                c.exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,)).await.map_err(|e| db_err(db, e))?;
            if exists.is_none() {
                continue;
            }
            let tables: Vec<String> = c
                .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", (db,))
                .await
                .map_err(|e| db_err(db, e))?;
            // Every object must be readable now, not discovered unreadable during the backup.
            let objects = objects::read(&mut c, db).await?;
            // And re-creatable by this account, not discovered otherwise by a rollback's restore.
            if !objects.is_empty() {
                let (account, foreign) = objects::definers_it_cannot_restore(&mut c, db).await?;
                if let Some((object, definer)) = foreign.first() {
                    let more = if foreign.len() > 1 { format!(" (and {} more objects of other definers)", foreign.len() - 1) } else { String::new() };
                    let (user, host) = account.rsplit_once('@').unwrap_or((account.as_str(), "%"));
                    return Err(failed(format!(
                        "{db}: {object} has DEFINER {definer}{more}, and the MetaDB account {account} may not create objects for another account, so the restore a rollback runs would fail on it in the middle of the outage: grant it (MariaDB: GRANT SET USER ON *.* TO '{user}'@'{host}'; MySQL 8: SET_USER_ID) or SUPER, or connect as {definer}"
                    )));
                }
            }
            let count = |k: objects::ObjectKind| objects.iter().filter(|o| o.kind == k).count();
            out.push(format!(
                "backup of {db}: {} tables, {} views, {} triggers, {} procedures, {} functions, {} events{}",
                tables.len(),
                count(objects::ObjectKind::View),
                count(objects::ObjectKind::Trigger),
                count(objects::ObjectKind::Procedure),
                count(objects::ObjectKind::Function),
                count(objects::ObjectKind::Event),
                if objects.is_empty() { String::new() } else { " (each with its DEFINER, re-created after every row; this account may)".to_string() }
            ));
        }
        Ok(out)
    }

    async fn database_bytes(&self, connection: &str, database: &str) -> Result<u64, Error> {
        let mut c = self.conn(connection).await?;
        let bytes: Option<u64> = c
            .exec_first(
                "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                (database,),
            )
            .await
            .map_err(|e| db_err(database, e))?;
        Ok(bytes.unwrap_or(0))
    }

    async fn excess_privileges(&self, connection: &str) -> Result<Vec<String>, Error> {
        let mut c = self.conn(connection).await?;
        let lines: Vec<String> = c.query("SHOW GRANTS").await.map_err(|e| failed(format!("MetaDB {connection}: SHOW GRANTS: {e}")))?;
        Ok(super::excess_privileges_in(&lines))
    }

    async fn query(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<Rows, Error> {
        let params: Vec<mysql_async::Value> = params.iter().map(to_mysql).collect();
        let statement = statement.to_string();
        self.plugin_statement(connection, database, move |c| {
            Box::pin(async move {
                let mut result = c.exec_iter(statement, params).await?;
                let columns: Vec<String> = result.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
                let kinds: Vec<Kind> = result.columns_ref().iter().map(column_kind).collect();
                let raw: Vec<Row> = result.collect().await?;
                let rows = raw
                    .into_iter()
                    .map(|r| r.unwrap_raw().into_iter().zip(&kinds).map(|(v, k)| from_mysql(v.unwrap_or(mysql_async::Value::NULL), *k)).collect())
                    .collect();
                Ok(Rows { columns, rows })
            })
        })
        .await
    }

    async fn execute(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<u64, Error> {
        let params: Vec<mysql_async::Value> = params.iter().map(to_mysql).collect();
        let statement = statement.to_string();
        self.plugin_statement(connection, database, move |c| {
            Box::pin(async move {
                c.exec_drop(statement, params).await?;
                Ok(c.affected_rows())
            })
        })
        .await
    }

    async fn dump_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error> {
        Ok(self.dump_databases(connection, &[(database.to_string(), backup_name.to_string())]).await?.remove(0))
    }

    async fn dump_databases(&self, connection: &str, dumps: &[(String, String)]) -> Result<Vec<Backup>, Error> {
        let dumps: Vec<(&str, &str)> = dumps.iter().map(|(d, b)| (d.as_str(), b.as_str())).collect();
        let label = dumps.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ");
        self.bulk_or_pooled(&label, |bulk| self.dump(connection, &dumps, bulk)).await
    }

    async fn restore_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error> {
        Ok(self.restore_databases(connection, &[(database.to_string(), backup_name.to_string())]).await?.remove(0))
    }

    async fn restore_databases(&self, connection: &str, restores: &[(String, String)]) -> Result<Vec<Backup>, Error> {
        // Every backup and every database is checked before anything is replayed.
        let mut c = self.conn(connection).await?;
        let mut sources = Vec::new();
        let mut recorded = Vec::new();
        for (database, backup_name) in restores {
            let (sql_path, meta_path) = self.backup_paths(backup_name);
            let meta = tokio::fs::read(&meta_path).await.map_err(|_| not_found(format!("no backup named {backup_name} in {}", self.backup_dir.display())))?;
            let backup: Backup = serde_json::from_slice(&meta).map_err(|e| failed(format!("{}: {e}", meta_path.display())))?;
            let hash = recorded_hash(&backup, &meta_path)?;
            c.query_drop(format!("USE {}", quote_ident(database))).await.map_err(|e| db_err(database, e))?;
            let existing: Vec<String> =
                c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (database,)).await.map_err(|e| db_err(database, e))?;
            if !existing.is_empty() {
                return Err(invalid(format!("database {database} is not empty ({} tables): drop and create it before restoring", existing.len())));
            }
            // A truncated file is refused before anything is replayed.
            check_backup_file(&sql_path, backup.bytes).map_err(failed)?;
            let mut file = tokio::fs::File::open(&sql_path).await.map_err(|e| io_err(&sql_path, e))?;
            let total = file.metadata().await.map_err(|e| io_err(&sql_path, e))?.len().max(1);
            let zone = zone_of(&mut file, &sql_path).await?;
            sources.push(restore::Source { database: database.clone(), path: sql_path, file, zone, bytes: total });
            recorded.push((backup, hash, zone));
        }
        let flavour = self.flavour(connection, &mut c).await?;
        // Two connections insert (the first also runs the files' heads).
        let metadb = self.pools.get(connection);
        let mut more = Vec::new();
        for _ in 1..metadb.map(|p| p.size).unwrap_or(1).min(RESTORE_WORKERS) {
            more.push(self.conn(connection).await?);
        }
        let label = format!("restore {}", restores.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", "));
        let load_data = metadb.is_some_and(|p| p.load_data) && flavour.load_data();
        restore::replay_all(c, more, sources, load_data, label, self.reporter.clone()).await?;
        // Verified against the checksums recorded at dump time, read as they were read then.
        let mut sums = vec![None; restores.len()];
        for zone in [Zone::Utc, Zone::Server] {
            let which: Vec<usize> = (0..restores.len()).filter(|&i| recorded[i].2 == zone).collect();
            if which.is_empty() {
                continue;
            }
            let databases: Vec<(&str, RowHash)> = which.iter().map(|&i| (restores[i].0.as_str(), recorded[i].1)).collect();
            for (i, sum) in which.into_iter().zip(self.checksums(connection, &databases, zone).await?) {
                sums[i] = Some(sum);
            }
        }
        let mut out = Vec::new();
        for (((database, backup_name), (backup, _, _)), sum) in restores.iter().zip(recorded).zip(sums) {
            let (sum, tables, rows) = sum.expect("every database is in one zone");
            if sum != backup.checksum {
                return Err(failed(format!("restored {database} has checksum {sum}, but backup {backup_name} recorded {}", backup.checksum)));
            }
            out.push(Backup { name: backup_name.clone(), database: database.clone(), bytes: backup.bytes, tables, rows, checksum: sum });
        }
        Ok(out)
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
        let n: Option<u64> =
            c.exec_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (database,)).await.map_err(|e| db_err(database, e))?;
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
        // Two specials anywhere in texts of every length around the 16-byte steps, against the
        // byte-by-byte escaping.
        let slow = |t: &[u8]| -> String {
            let mut s = String::from("'");
            for &c in t {
                match ESCAPED[c as usize] {
                    0 => s.push(c as char),
                    e => s.extend(['\\', e as char]),
                }
            }
            s + "'"
        };
        for len in 1..50 {
            for a in 0..len {
                for b in a..len {
                    let mut text = vec![b'y'; len];
                    text[a] = b'\'';
                    text[b] = b'\0';
                    out.clear();
                    literal(Raw::Bytes(&text), Kind::Text, &mut out);
                    assert_eq!(out, slow(&text), "{len} {a} {b}");
                }
            }
        }
        // Not UTF-8: hex, exact bytes.
        out.clear();
        literal(Raw::Bytes(&[0xff, 0x27]), Kind::Text, &mut out);
        assert_eq!(out, "0xff27");
        out.clear();
        literal(Raw::Bytes(&(0..=255u8).collect::<Vec<_>>()), Kind::Binary, &mut out);
        assert_eq!(out, format!("0x{}", (0..=255u8).map(|b| format!("{b:02x}")).collect::<String>()));
    }

    /// MySQL 8's JSON column (type 245, reported as charset binary) is dumped as a string, never
    /// as a hex literal the server would refuse for JSON.
    #[test]
    fn mysql_json_is_written_as_text() {
        let kind = kind_of(ColumnType::MYSQL_TYPE_JSON, 63);
        assert!(kind == Kind::Text);
        let mut out = String::new();
        literal(Raw::Bytes(br#"{"a": "b'c"}"#), kind, &mut out);
        assert_eq!(out, r#"'{"a": "b\'c"}'"#);
    }
}
