//! The MySQL engine: the sql capability on a real MetaDB (MariaDB, MySQL, OceanBase's MySQL
//! mode) through mysql_async. This file holds [`MysqlSql`], its pools and connections and the
//! `Sql` trait's calls; the rest of the engine is one file per part (codec, creatable, dump, format,
//! load, objects, restore, share, snapshot, tables, wire) below it, none importing this one's items back
//! except `dump.rs`, which adds the dump and checksum methods to [`MysqlSql`].
//!
//! - One pool per named connection from the site config; the password comes from an environment
//!   variable or a file and never reaches a plugin or a log.
//! - Values travel over the binary protocol (prepared statements), so FLOAT, DOUBLE, DATETIME(6)
//!   and friends are exact; the text protocol rounds floats.
//! - `dump-database` writes plain SQL that the stock client restores (`mariadb -e "source F" -D DB`):
//!   one consistent snapshot, streamed row by row (memory stays flat), one statement per line,
//!   binary strings as their escaped bytes (`_binary'…'`, so a file is bytes, not UTF-8 text),
//!   BIT and GEOMETRY as hex, generated columns left out; the content checksum is computed in
//!   the same pass and kept beside the dump.
//! - Reads for a dump or a checksum run on two connections in one snapshot when the database is
//!   big enough to split (`snapshot.rs`). `dump-databases` reads several databases in one
//!   snapshot on the same connections, each into its own file, each file synced to disk as it
//!   grows and finished as soon as its database is read.
//! - `restore-database` and `restore-databases` check every backup and database first, stream
//!   the files back side by side on two connections (`restore.rs`), then verify every checksum.
//!
//! Over 500 lines: the `Sql` calls read best beside the pools and connections they use; the
//! dump, restore, codec and reader parts are already files of their own.

pub mod codec;
pub mod config;
mod creatable;
mod dump;
pub mod flavour;
pub mod format;
mod indexes;
pub mod load;
pub mod objects;
mod restore;
mod share;
mod snapshot;
mod tables;
/// The bulk reader; public for the bench's floor (a client that only frames and discards rows).
pub mod wire;
/// How many key ranges a dump cuts a table into; public for the bench's floor, which cuts the
/// same.
pub use snapshot::pieces as range_pieces;
/// Which key columns a dump cuts by; public for the bench's floor, which cuts by the same.
pub use tables::is_integer_type;

use super::checksum::{recorded_hash, RowHash};
use super::{Backup, Rows, Sql, Value};
use crate::bindings::Error;
use crate::capabilities::errors::{failed, invalid, not_found};
use crate::report::Reporter;
use async_trait::async_trait;
use codec::{column_kind, db_err, from_mysql, quote_ident, to_mysql, Kind};
use config::ConnectionConfig;
use format::{check_backup_file, io_err, zone_of, Zone};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub struct MysqlSql {
    pools: BTreeMap<String, Metadb>,
    /// The server stops a plugin's statement after this (`max_statement_time`), and a statement
    /// whose host call was abandoned is killed (`KILL QUERY`).
    statement_timeout: std::time::Duration,
    /// The most bytes of rows a plugin's query keeps (`max_payload_bytes`): past it the rest is
    /// not read, and the statement is killed.
    result_limit: usize,
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
    flavour: tokio::sync::OnceCell<flavour::Flavour>,
}

/// The address and credentials the bulk reader connects with.
struct WireTarget {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

/// What a reading connection runs to read TIMESTAMP values in UTC.
const SET_SESSION_UTC: &str = "SET SESSION time_zone = '+00:00'";

/// A plugin statement's session: the server's sql_mode but for the flags under which the server
/// would read the text otherwise than the statement policy (sqlparser's MySQL dialect) did,
/// `ANSI_QUOTES` (`"x"` a name, not a string) and `ORACLE` (another parser); each statement
/// committed (under a global `autocommit = 0` a change was rolled back as the connection closed);
/// and every row a SELECT finds (not a global `sql_select_limit`'s first few).
const PLUGIN_SESSION: &str = "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',ANSI_QUOTES,', ','), ',ORACLE,', ',')), autocommit = 1, sql_select_limit = 18446744073709551615";

/// mysql_async's process-wide pool of spare I/O buffers: how many it keeps (its default is 128,
/// each kept up to 4 MB). A restore's bound INSERTs (load.rs) send a megabyte a statement, and
/// the pool, used in turn, grows every buffer it keeps to that: 130 MB more at the peak of the
/// bench's `wide` restore (180 MB against 48 MB with 16), for no speed, since a dump or restore
/// has a few buffers in use at once.
const BUFFER_POOL_CAP: &str = "16";

/// Cap mysql_async's buffer pool ([`BUFFER_POOL_CAP`]) unless the environment sets
/// `MYSQL_ASYNC_BUFFER_POOL_CAP` already. The pool reads it once, when it is first used.
///
/// # Safety
/// It sets a variable of the process's environment: call it first thing in `main`, before any
/// other thread starts.
pub unsafe fn cap_buffer_pool() {
    const VAR: &str = "MYSQL_ASYNC_BUFFER_POOL_CAP";
    if std::env::var_os(VAR).is_none() {
        // SAFETY: the caller runs it before any other thread exists (see above).
        unsafe { std::env::set_var(VAR, BUFFER_POOL_CAP) };
    }
}

/// Connections that insert a restore's rows (two keep the 2-core bench machine's MetaDB busy;
/// more contend for the same tables' pages).
const RESTORE_WORKERS: usize = 2;

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
        Ok(MysqlSql {
            pools,
            statement_timeout: std::time::Duration::from_secs(300),
            result_limit: crate::config::Limits::default().max_payload_bytes,
            backup_dir,
            reporter,
            wire_snapshots: Default::default(),
        })
    }

    /// The server-side limit of a plugin's statements (`call_timeout_s`).
    pub fn with_statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The most bytes of rows a plugin's query may return (`max_payload_bytes`).
    pub fn with_result_limit(mut self, bytes: usize) -> Self {
        self.result_limit = bytes;
        self
    }

    /// Run a plugin's statement on a connection of its own in `database`: the server stops it
    /// after the statement timeout (MariaDB `max_statement_time`; MySQL `max_execution_time`,
    /// which bounds SELECTs), and if the host call is abandoned first (its deadline, the run
    /// stopping) the statement is killed on the server instead of running on; so is one whose
    /// result `run` stopped reading as too big ([`Read::TooBig`]).
    async fn plugin_statement<T, F>(&self, connection: &str, database: &str, run: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Read<T>, mysql_async::Error>> + Send + 'c>>,
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
        // The statement was checked as MySQL reads it, and runs as the plugin wrote it, whatever
        // the server's globals. A server that does not take the statement whole (a flavour
        // opshost has not met) gets its parts; its sql_mode must then not hold what it drops.
        if c.query_drop(PLUGIN_SESSION).await.is_err() {
            c.query_drop("SET SESSION autocommit = 1").await.map_err(|e| db_err(database, e))?;
            let _ = c.query_drop("SET SESSION sql_select_limit = 18446744073709551615").await;
            let mode: Option<String> = c.query_first("SELECT @@SESSION.sql_mode").await.map_err(|e| db_err(database, e))?;
            if let Some(flag) = ["ANSI_QUOTES", "ORACLE"].into_iter().find(|f| mode.as_deref().unwrap_or("").split(',').any(|m| m.eq_ignore_ascii_case(f))) {
                return Err(failed(format!(
                    "MetaDB {connection}: the server's sql_mode has {flag}, under which it reads a statement otherwise than opshost checked it, and the session could not drop it: remove {flag} from the server's global sql_mode"
                )));
            }
        }
        c.query_drop(format!("USE {}", quote_ident(database))).await.map_err(|e| db_err(database, e))?;
        let id = c.id();
        let guard = KillOnDrop { pool: m.pool.clone(), id: Some(id) };
        // Stop it a little before the host call's own deadline, so the kill is awaited here
        // rather than left to a task the ending process may never run.
        let deadline = started + self.statement_timeout.saturating_sub(std::time::Duration::from_millis(250));
        let kill = |pool: Pool| async move {
            if let Ok(mut k) = pool.get_conn().await {
                let _ = k.query_drop(format!("KILL QUERY {id}")).await;
            }
        };
        let r = match tokio::time::timeout_at(deadline.into(), run(&mut c)).await {
            Ok(Ok(Read::Done(value))) => Ok(value),
            Ok(Ok(Read::TooBig)) => {
                guard.disarm();
                kill(m.pool.clone()).await;
                return Err(failed(format!(
                    "{database}: the result passed the sandbox limit of {} bytes (max_payload_bytes in [limits]) or {} values before its end; the statement was stopped on the server: ask for less (LIMIT, fewer columns)",
                    self.result_limit,
                    super::MAX_RESULT_VALUES
                )));
            }
            Ok(Err(e)) => Err(db_err(database, e)),
            Err(_) => {
                guard.disarm();
                kill(m.pool.clone()).await;
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
            let said = e.to_string();
            let check = if said.contains("Access denied") {
                format!("check the user in [metadb.{connection}] and {password_from}")
            } else if said.contains("max_user_connections") {
                format!("the account is at its limit of connections at once: set max_connections in [metadb.{connection}] to at most that limit, or raise it (ALTER USER ... WITH MAX_USER_CONNECTIONS)")
            } else if said.contains("Too many connections") {
                "the server is at its max_connections: close other clients, or raise it (SET GLOBAL max_connections)".to_string()
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
                        // CREATE, DROP and INSERT (SETVAL writes it): a table's own needs.
                        objects::ObjectKind::Sequence => &[][..],
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
    async fn flavour(&self, connection: &str, c: &mut Conn) -> Result<flavour::Flavour, Error> {
        let m = self.metadb(connection)?;
        m.flavour
            .get_or_try_init(|| async {
                let (version, comment): (String, String) = c
                    .query_first("SELECT VERSION(), @@version_comment")
                    .await
                    .map_err(|e| failed(format!("MetaDB {connection}: reading its version: {e}")))?
                    .unwrap_or_default();
                Ok(flavour::Flavour::of(&version, &comment))
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
        self.bulk_session(connection, &mut c).await?;
        if zone == Zone::Utc {
            c.query_drop(SET_SESSION_UTC).await.map_err(|e| db_err(database, e))?;
        }
        Ok(c)
    }

    /// Make `c` a session for a dump, checksum or restore ([`flavour::Flavour::bulk_session`]).
    /// A server that knows no such limit (an older version) gets [`flavour::BULK_SESSION`]
    /// and [`flavour::Flavour::quoted_names`] alone, which none may lack.
    async fn bulk_session(&self, connection: &str, c: &mut Conn) -> Result<(), Error> {
        let flavour = self.flavour(connection, c).await?;
        if c.query_drop(flavour.bulk_session()).await.is_err() {
            for session in [flavour::BULK_SESSION].into_iter().chain(flavour.quoted_names()) {
                c.query_drop(session)
                    .await
                    .map_err(|e| failed(format!("MetaDB {connection}: preparing a session for a backup or restore ({session}): {e}")))?;
            }
        }
        // A definition replays as `SHOW CREATE TABLE` gave it only with explicit TIMESTAMP
        // defaults: with them off, a `timestamp NOT NULL` column (made while they were on) would
        // gain `DEFAULT current_timestamp() ON UPDATE current_timestamp()`. What was made with
        // them off shows its defaults in full, and replays the same either way. Apart: a server
        // without the variable (MariaDB before 10.1.8), or a MySQL 8 account that may not set
        // it (already on by default there), keeps the rest of the session.
        let _ = c.query_drop("SET SESSION explicit_defaults_for_timestamp = 1").await;
        Ok(())
    }

    /// A bulk-reader connection, its session made by `session` ([`flavour::Flavour::bulk_session`]).
    async fn wire_conn(&self, target: &WireTarget, database: &str, zone: Zone, session: &str) -> Result<wire::WireConn, wire::WireError> {
        let mut w = wire::WireConn::connect(&target.host, target.port, &target.user, target.password.as_deref(), database).await?;
        w.query_drop(session).await?;
        if zone == Zone::Utc {
            w.query_drop(SET_SESSION_UTC).await?;
        }
        Ok(w)
    }

    /// How many snapshots the bulk reader has read.
    pub fn bulk_reader_snapshots(&self) -> u64 {
        self.wire_snapshots.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where a backup's SQL and metadata live.
    pub fn backup_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.backup_dir.join(format!("{name}.sql")), self.backup_dir.join(format!("{name}.json")))
    }

    /// The backup called `name` as its dump recorded it (its `.json` beside the file).
    async fn recorded_backup(&self, name: &str) -> Result<Backup, Error> {
        let (_, meta_path) = self.backup_paths(name);
        let meta = tokio::fs::read(&meta_path).await.map_err(|_| not_found(format!("no backup named {name} in {}", self.backup_dir.display())))?;
        serde_json::from_slice(&meta).map_err(|e| failed(format!("{}: {e}", meta_path.display())))
    }
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

/// Kills the statement of connection `id` on the server unless disarmed: dropped with the future
/// of a host call that was abandoned, it stops what the server would otherwise go on running.
/// What a plugin's statement read: all of its result, or so much that the rest was not read.
enum Read<T> {
    Done(T),
    TooBig,
}

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

/// A warning for each event of `database` that the server's scheduler runs (enabled, and
/// `event_scheduler` ON): it writes to the MetaDB whenever it fires, which a backup taken and then
/// verified against the live database inside the downtime cannot tell from a stray writer.
async fn events_that_write(c: &mut Conn, database: &str) -> Result<Vec<String>, Error> {
    let scheduler: Option<String> = c.query_first("SELECT @@global.event_scheduler").await.ok().flatten();
    if !scheduler.is_some_and(|s| s.eq_ignore_ascii_case("ON")) {
        return Ok(Vec::new());
    }
    let enabled: Vec<(String, Option<String>, Option<String>)> = c
        .exec(
            "SELECT EVENT_NAME, CAST(INTERVAL_VALUE AS CHAR), INTERVAL_FIELD FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND STATUS = 'ENABLED' ORDER BY EVENT_NAME",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    Ok(enabled
        .into_iter()
        .map(|(name, every, unit)| {
            let when = match (every, unit) {
                (Some(n), Some(unit)) => format!("every {n} {}", unit.to_lowercase()),
                _ => "once".to_string(),
            };
            let event = format!("{}.{}", quote_ident(database), quote_ident(&name));
            format!(
                "warning: event {event} is enabled and the server's event_scheduler is ON: it runs {when}, and if it writes while the upgrade runs, the backup no longer matches the live database and the upgrade stops in the downtime; disable it for the upgrade (ALTER EVENT {event} DISABLE) and enable it after"
            )
        })
        .collect())
}

#[async_trait]
impl Sql for MysqlSql {
    async fn describe_backup(&self, connection: &str, databases: &[String]) -> Result<Vec<String>, Error> {
        let m = self.metadb(connection)?;
        let mut c = self.conn(connection).await?;
        // The flavour first: what else to ask, and which paths run, depend on it (flavour.rs).
        let flavour = self.flavour(connection, &mut c).await.ok();
        // Read as a dump reads (whatever the server's sql_mode or sql_select_limit), and a session
        // a dump could not have is refused now rather than in the downtime.
        if flavour.is_some() {
            self.bulk_session(connection, &mut c).await?;
        }
        // An upgrade writes to the MetaDB (the heartbeat trim, the new version's schema) and a
        // rollback restores it: a read-only server (a replica, or a primary left read-only after
        // a failover) is refused before anything changes, not met half way.
        let read_only: Option<u64> = c.query_first("SELECT @@global.read_only").await.ok().flatten();
        if read_only.is_some_and(|r| r != 0) {
            return Err(failed(format!(
                "MetaDB {connection} ({}) is read-only (read_only = ON): an upgrade writes to it and a rollback restores it; point [metadb.{connection}] at the primary, or turn read_only off there, then plan again",
                m.addr
            )));
        }
        // An account held to fewer connections at once than opshost opens (its
        // MAX_USER_CONNECTIONS, or the server's max_user_connections, which the session shows)
        // would have a backup or a rollback's restore refused a connection midway.
        let at_once: Option<i64> = c.query_first("SELECT @@max_user_connections").await.ok().flatten();
        if let Some(cap) = at_once.filter(|&n| n > 0 && (n as usize) < m.size) {
            return Err(failed(format!(
                "MetaDB {connection} ({}): the account may hold only {cap} connections at once (its MAX_USER_CONNECTIONS, or the server's max_user_connections), and opshost opens up to {} (max_connections in [metadb.{connection}]), so a backup, or a rollback's restore, would be refused a connection midway: set max_connections = {cap} in [metadb.{connection}] (backups and restores then run on fewer connections), or raise the account's limit (ALTER USER ... WITH MAX_USER_CONNECTIONS {}), then plan again",
                m.addr, m.size, m.size
            )));
        }
        let facts: Option<(String, String, String, String, u64)> =
            c.query_first("SELECT VERSION(), @@global.time_zone, @@system_time_zone, @@global.sql_mode, @@global.local_infile").await.ok().flatten();
        let mut out = Vec::new();
        if let (Some(flavour), Some((version, tz, system_tz, sql_mode, local_infile))) = (flavour, facts) {
            let zone = if tz == "SYSTEM" { format!("SYSTEM ({system_tz})") } else { tz };
            let forms = load::Forms::new(m.load_data, flavour);
            let rows = match (m.load_data, forms.load_data, local_infile == 1) {
                (false, _, _) => "restores replay the dump's INSERTs (load_data = false)".to_string(),
                (true, false, _) => "restores replay the dump's INSERTs".to_string(),
                (true, true, false) => "restores replay the dump's INSERTs (the server has local_infile off)".to_string(),
                (true, true, true) => "restores load rows with LOAD DATA LOCAL INFILE".to_string(),
            };
            let rows = match forms.bind {
                true => format!("{rows}, rows of long values as prepared INSERTs"),
                false => rows,
            };
            let reader = if m.wire.is_some() && flavour.bulk_reader() { "with opshost's row reader" } else { "through mysql_async" };
            out.push(format!(
                "MetaDB {connection}: {} {version}, time zone {zone}, sql_mode '{sql_mode}'; {} {reader}, TIMESTAMPs in UTC; {rows}; every restore is verified by checksum",
                flavour.name(),
                flavour.paths()
            ));
        }
        // What the server, as set now, would refuse or change as a restore creates a table.
        let create_rules = creatable::Rules::read(&mut c).await;
        // The account the objects' definers are compared with.
        let account: String = c.query_first("SELECT CURRENT_USER()").await.map_err(|e| failed(format!("MetaDB {connection}: {e}")))?.unwrap_or_default();
        for db in databases {
            let exists: Option<String> =
                c.exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,)).await.map_err(|e| db_err(db, e))?;
            if exists.is_none() {
                continue;
            }
            // As a dump reads them: a table it could not bring back is refused now.
            let tables = tables::tables(&mut c, db).await?;
            if let Some(t) = tables.iter().find(|t| t.versioned) {
                // system_versioning_insert_history exists from MariaDB 10.11 on; secure_timestamp
                // may forbid it.
                let allowed: Result<Option<(String, String)>, _> =
                    c.query_first("SELECT @@global.secure_timestamp, CAST(@@session.system_versioning_insert_history AS CHAR)").await;
                let refusal = match allowed {
                    Ok(Some((v, _))) if v == "NO" => None,
                    Ok(Some((v, _))) => Some(format!("the server's secure_timestamp is {v}, which forbids writing a row's period; set it to NO")),
                    _ => Some("this server cannot write a row's period back (MariaDB 10.11 or later can)".to_string()),
                };
                if let Some(why) = refusal {
                    return Err(failed(format!(
                        "table {db}.{} is system-versioned, and a restore must write back its history with each row's period: {why}, or back the table up by hand and drop it, before the upgrade",
                        t.name
                    )));
                }
            }
            // Created again as they are by the server as it is set now, not refused or changed.
            creatable::refuse_uncreatable(&mut c, db, &create_rules).await?;
            creatable::refuse_missing_sequences(&mut c, db).await?;
            let versioned = tables.iter().filter(|t| t.versioned).count();
            // Every object must be readable now, not discovered unreadable during the backup.
            let objects = objects::read(&mut c, db).await?;
            objects::refuse_broken(db, &objects)?;
            // And re-creatable by this account, not discovered otherwise by a rollback's restore.
            if !objects.is_empty() {
                let foreign = objects::definers_it_cannot_restore(&mut c, db, &account).await?;
                if let Some((object, definer)) = foreign.first() {
                    let more = if foreign.len() > 1 { format!(" (and {} more objects of other definers)", foreign.len() - 1) } else { String::new() };
                    let (user, host) = account.rsplit_once('@').unwrap_or((account.as_str(), "%"));
                    return Err(failed(format!(
                        "{db}: {object} has DEFINER {definer}{more}, and the MetaDB account {account} may not create objects for another account, so the restore a rollback runs would fail on it in the middle of the outage: grant it (MariaDB: GRANT SET USER ON *.* TO '{user}'@'{host}'; MySQL 8: SET_USER_ID) or SUPER, or connect as {definer}"
                    )));
                }
            }
            objects::refuse_unrestorable_under_binlog(&mut c, db, &objects, &account).await?;
            let count = |k: objects::ObjectKind| objects.iter().filter(|o| o.kind == k).count();
            out.push(format!(
                "backup of {db}: {} tables{}, {} views, {} triggers, {} procedures, {} functions, {} events{}{}",
                tables.len(),
                match versioned {
                    0 => String::new(),
                    n => format!(" ({n} system-versioned, with their history)"),
                },
                count(objects::ObjectKind::View),
                count(objects::ObjectKind::Trigger),
                count(objects::ObjectKind::Procedure),
                count(objects::ObjectKind::Function),
                count(objects::ObjectKind::Event),
                match count(objects::ObjectKind::Sequence) {
                    0 => String::new(),
                    n => format!(", {n} sequences"),
                },
                if objects.is_empty() { String::new() } else { " (each with its DEFINER, re-created after every row; this account may)".to_string() }
            ));
            if objects.iter().any(|o| o.kind == objects::ObjectKind::Event) {
                out.extend(events_that_write(&mut c, db).await?);
            }
        }
        Ok(out)
    }

    /// Tables with a binary column count twice: their dump writes those values escaped, which is
    /// up to twice their size (bytes that are all quotes, backslashes, NULs or line ends).
    async fn database_bytes(&self, connection: &str, database: &str) -> Result<u64, Error> {
        let mut c = self.conn(connection).await?;
        let bytes: Option<u64> = c
            .exec_first(
                "SELECT CAST(COALESCE(SUM((t.DATA_LENGTH + t.INDEX_LENGTH) * IF(EXISTS(SELECT 1 FROM information_schema.COLUMNS k \
                 WHERE k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME \
                 AND k.DATA_TYPE IN ('tinyblob', 'blob', 'mediumblob', 'longblob', 'binary', 'varbinary')), 2, 1)), 0) AS UNSIGNED) \
                 FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ?",
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
        let (statement, limit) = (statement.to_string(), self.result_limit);
        self.plugin_statement(connection, database, move |c| {
            Box::pin(async move {
                let mut result = c.exec_iter(statement, params).await?;
                let columns: Vec<String> = result.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
                let kinds: Vec<Kind> = result.columns_ref().iter().map(column_kind).collect();
                // Read row by row, counting what the plugin would get, so that a result of
                // gigabytes is stopped at the limit instead of held in the host's memory.
                let (mut rows, mut bytes, mut count) = (Vec::new(), 0usize, 0usize);
                while let Some(row) = result.next().await? {
                    let values: Vec<Value> =
                        row.unwrap_raw().into_iter().zip(&kinds).map(|(v, k)| from_mysql(v.unwrap_or(mysql_async::Value::NULL), *k)).collect();
                    bytes += values.iter().map(super::json_bytes).sum::<usize>();
                    count += values.len().max(1);
                    if bytes > limit || count > super::MAX_RESULT_VALUES {
                        return Ok(Read::TooBig);
                    }
                    rows.push(values);
                }
                Ok(Read::Done(Rows { columns, rows }))
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
                Ok(Read::Done(c.affected_rows()))
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

    async fn backup_database(&self, backup_name: &str) -> Result<String, Error> {
        Ok(self.recorded_backup(backup_name).await?.database)
    }

    async fn restore_databases(&self, connection: &str, restores: &[(String, String)]) -> Result<Vec<Backup>, Error> {
        // Every backup and every database is checked before anything is replayed.
        let mut c = self.conn(connection).await?;
        self.bulk_session(connection, &mut c).await?;
        let mut sources = Vec::new();
        let mut recorded = Vec::new();
        for (database, backup_name) in restores {
            let (sql_path, meta_path) = self.backup_paths(backup_name);
            let backup = self.recorded_backup(backup_name).await?;
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
            sources.push(restore::Source { database: database.clone(), path: sql_path, file, zone, stored_text: hash.reads_stored_text(), bytes: total });
            recorded.push((backup, hash, zone));
        }
        let flavour = self.flavour(connection, &mut c).await?;
        // Two connections insert (the first also runs the files' heads).
        let metadb = self.pools.get(connection);
        let mut more = Vec::new();
        for _ in 1..metadb.map(|p| p.size).unwrap_or(1).min(RESTORE_WORKERS) {
            let mut worker = self.conn(connection).await?;
            self.bulk_session(connection, &mut worker).await?;
            more.push(worker);
        }
        let label = format!("restore {}", restores.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join(", "));
        let forms = load::Forms::new(metadb.is_some_and(|p| p.load_data), flavour);
        let held = restore::replay_all(c, more, sources, forms, flavour.defer_keys(), label, self.reporter.clone()).await?;
        // Verified against the checksums recorded at dump time, read as they were read then (time
        // zone; text in other character sets as stored or converted, which each database's row
        // hash says); the enabled events, still held disabled, read as enabled.
        let mut sums = vec![None; restores.len()];
        for zone in [Zone::Utc, Zone::Server] {
            let which: Vec<usize> = (0..restores.len()).filter(|&i| recorded[i].2 == zone).collect();
            if which.is_empty() {
                continue;
            }
            let databases: Vec<(&str, RowHash)> = which.iter().map(|&i| (restores[i].0.as_str(), recorded[i].1)).collect();
            let held: Vec<&[objects::HeldEvent]> = which.iter().map(|&i| held[i].as_slice()).collect();
            for (i, sum) in which.into_iter().zip(self.checksums_held(connection, &databases, zone, &held).await?) {
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
        // Only now may the scheduler run the restored events.
        if held.iter().any(|h| !h.is_empty()) {
            let mut c = self.conn(connection).await?;
            self.bulk_session(connection, &mut c).await?;
            for ((database, _), held) in restores.iter().zip(&held).filter(|(_, h)| !h.is_empty()) {
                objects::enable(&mut c, database, held).await?;
                let names: Vec<String> = held.iter().map(|h| h.name()).collect();
                self.reporter.log(
                    crate::report::Level::Info,
                    &format!("restore {database}: enabled events created disabled until the restore was verified, now enabled: {}", names.join(", ")),
                );
            }
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

    /// Without foreign key checks: a foreign key of another database onto one of its tables
    /// refused the drop (1451), so a rollback replacing several databases that refer to each
    /// other stopped inside the downtime. Such a key refers to nothing until the table is back.
    async fn drop_database(&self, connection: &str, database: &str) -> Result<(), Error> {
        let mut c = self.conn(connection).await?;
        c.query_drop("SET SESSION foreign_key_checks = 0").await.map_err(|e| db_err(database, e))?;
        let dropped = c.query_drop(format!("DROP DATABASE {}", quote_ident(database))).await;
        c.query_drop("SET SESSION foreign_key_checks = DEFAULT").await.map_err(|e| db_err(database, e))?;
        dropped.map_err(|e| match &e {
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

    async fn database_checksums(&self, connection: &str, databases: &[String]) -> Result<Vec<String>, Error> {
        let each: Vec<(&str, RowHash)> = databases.iter().map(|d| (d.as_str(), RowHash::default())).collect();
        Ok(self.checksums(connection, &each, Zone::Utc).await?.into_iter().map(|(sum, _, _)| sum).collect())
    }
}
