//! FakeSql: the sql capability on embedded SQLite, one in-memory database per MetaDB database.
//! Plugins' statements really execute (no matching of SQL text); dumps are SQL text replayed on
//! restore; checksums use the same algorithm as the real backend.

use super::checksum::{database_checksum, recorded_hash, RowHash, TableHasher};
use super::{Backup, Rows, Sql, Value};
use crate::bindings::Error;
use crate::capabilities::errors::{failed, invalid, not_found};
use async_trait::async_trait;
use rusqlite::types::{Value as SqliteValue, ValueRef};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

pub struct FakeSql {
    connections: BTreeSet<String>,
    databases: Mutex<BTreeMap<String, Connection>>,
    backups: Mutex<BTreeMap<String, (String, Backup)>>,
    /// A plugin's statement is stopped after this many seconds of real time (`call_timeout_s`)
    /// and its result past this many bytes (`max_payload_bytes`), as the real backend's are:
    /// SQLite runs in the host's thread, where the call's own deadline cannot reach it.
    statement_seconds: u64,
    result_limit: usize,
}

impl FakeSql {
    /// An empty MetaDB server reachable under these connection names.
    pub fn new(connections: impl IntoIterator<Item = String>) -> Self {
        let limits = crate::config::Limits::default();
        FakeSql {
            connections: connections.into_iter().collect(),
            databases: Mutex::default(),
            backups: Mutex::default(),
            statement_seconds: limits.call_timeout_s,
            result_limit: limits.max_payload_bytes,
        }
    }

    /// The limits of a plugin's statements: seconds of real time, and bytes of a result.
    pub fn with_limits(mut self, limits: &crate::config::Limits) -> Self {
        (self.statement_seconds, self.result_limit) = (limits.call_timeout_s, limits.max_payload_bytes);
        self
    }

    /// A plugin's statement `f` on `database`, stopped once it runs past its time (an error
    /// that says so).
    fn plugin_statement<T>(&self, database: &str, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let seconds = self.statement_seconds;
        self.with_db(database, |c| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
            c.progress_handler(10_000, Some(move || std::time::Instant::now() > deadline));
            let r = f(c);
            c.progress_handler(0, None::<fn() -> bool>);
            r.map_err(|e| match std::time::Instant::now() > deadline {
                true => Error::Timeout(format!("{database}: the statement did not finish within {seconds} s (call_timeout_s in [limits]); it was stopped")),
                false => e,
            })
        })
    }

    /// Create a database (if needed) and run a script in it: scenario set-up and product behaviour.
    pub fn apply(&self, database: &str, script: &str) -> Result<(), Error> {
        let mut dbs = self.databases.lock().unwrap();
        if !dbs.contains_key(database) {
            dbs.insert(database.to_string(), open()?);
        }
        dbs[database].execute_batch(script).map_err(|e| failed(format!("{database}: {e}")))
    }

    pub fn database_names(&self) -> Vec<String> {
        self.databases.lock().unwrap().keys().cloned().collect()
    }

    /// Rows of a query, every value as text (NULL as "NULL"): for scenario expectations.
    pub fn query_text(&self, database: &str, statement: &str) -> Result<Vec<Vec<String>>, Error> {
        let rows = self.with_db(database, |c| query(c, statement, &[]))?;
        Ok(rows.rows.into_iter().map(|r| r.iter().map(value_text).collect()).collect())
    }

    pub fn checksum_now(&self, database: &str) -> Result<String, Error> {
        self.with_db(database, |c| checksum(c, RowHash::default()).map(|(sum, _, _)| sum))
    }

    fn check_connection(&self, connection: &str) -> Result<(), Error> {
        if self.connections.contains(connection) {
            Ok(())
        } else {
            Err(not_found(format!("no MetaDB connection named {connection} in the site config")))
        }
    }

    fn with_db<T>(&self, database: &str, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let dbs = self.databases.lock().unwrap();
        let c = dbs.get(database).ok_or_else(|| not_found(format!("database {database} does not exist")))?;
        f(c)
    }
}

pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// An in-memory database that cannot reach the host's files: no ATTACH (so no `VACUUM INTO`
/// either), no DETACH, no extensions, and the file functions SQLite might be built with denied.
fn open() -> Result<Connection, Error> {
    use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
    let c = Connection::open_in_memory().map_err(|e| failed(format!("embedded SQL engine: {e}")))?;
    c.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(|e| failed(format!("embedded SQL engine: {e}")))?;
    c.authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        AuthAction::Function { function_name }
            if ["load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"].iter().any(|f| function_name.eq_ignore_ascii_case(f)) =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }));
    Ok(c)
}

fn sql_err(e: rusqlite::Error) -> Error {
    failed(format!("SQL error: {e}"))
}

fn to_sqlite(v: &Value) -> SqliteValue {
    match v {
        Value::Null => SqliteValue::Null,
        Value::Int(i) => SqliteValue::Integer(*i),
        Value::Uint(u) => match i64::try_from(*u) {
            Ok(i) => SqliteValue::Integer(i),
            Err(_) => SqliteValue::Text(u.to_string()),
        },
        Value::Float(f) => SqliteValue::Real(*f),
        Value::Text(t) => SqliteValue::Text(t.clone()),
        Value::Bytes(b) => SqliteValue::Blob(b.clone()),
    }
}

fn from_sqlite(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn query(c: &Connection, statement: &str, params: &[Value]) -> Result<Rows, Error> {
    query_within(c, statement, params, usize::MAX)
}

/// [`query`], stopped once its rows pass `limit` bytes (counted as the real backend counts them).
fn query_within(c: &Connection, statement: &str, params: &[Value], limit: usize) -> Result<Rows, Error> {
    let mut stmt = c.prepare(statement).map_err(sql_err)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let n = columns.len();
    let (mut out, mut bytes, mut count) = (Vec::new(), 0usize, 0usize);
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(to_sqlite))).map_err(sql_err)?;
    while let Some(row) = rows.next().map_err(sql_err)? {
        let values = (0..n).map(|i| row.get_ref(i).map(from_sqlite)).collect::<Result<Vec<_>, _>>().map_err(sql_err)?;
        bytes += values.iter().map(super::json_bytes).sum::<usize>();
        count += values.len().max(1);
        if bytes > limit || count > super::MAX_RESULT_VALUES {
            return Err(failed(format!(
                "the result passed the sandbox limit of {limit} bytes (max_payload_bytes in [limits]) or {} values before its end; the statement was stopped: ask for less (LIMIT, fewer columns)",
                super::MAX_RESULT_VALUES
            )));
        }
        out.push(values);
    }
    Ok(Rows { columns, rows: out })
}

/// (name, definition) of every user table, in name order.
fn tables(c: &Connection) -> Result<Vec<(String, String)>, Error> {
    let rows = query(c, "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", &[])?;
    Ok(rows.rows.into_iter().map(|r| (value_text(&r[0]), value_text(&r[1]))).collect())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// (checksum, tables, rows), rows hashed with `hash`
fn checksum(c: &Connection, hash: RowHash) -> Result<(String, u32, u64), Error> {
    let mut digests = Vec::new();
    let mut total = 0;
    for (name, definition) in tables(c)? {
        let mut t = TableHasher::new(hash);
        for row in query(c, &format!("SELECT * FROM {}", quote_ident(&name)), &[])?.rows {
            t.row(&row);
        }
        total += t.rows();
        digests.push((name.clone(), t.finish(&name, &definition)));
    }
    Ok((database_checksum(&digests, hash), digests.len() as u32, total))
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        // `{:?}` is the shortest text that parses back to the same f64.
        Value::Float(f) => format!("{f:?}"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Bytes(b) => format!("X'{}'", hex::encode(b)),
    }
}

fn dump(c: &Connection, database: &str) -> Result<String, Error> {
    let mut out = format!("-- opshost fake dump of {database}\n");
    for (name, definition) in tables(c)? {
        out.push_str(&definition);
        out.push_str(";\n");
        for row in query(c, &format!("SELECT * FROM {}", quote_ident(&name)), &[])?.rows {
            let values: Vec<String> = row.iter().map(literal).collect();
            out.push_str(&format!("INSERT INTO {} VALUES ({});\n", quote_ident(&name), values.join(",")));
        }
    }
    let extras = query(c, "SELECT sql FROM sqlite_master WHERE type IN ('index','trigger','view') AND sql IS NOT NULL ORDER BY name", &[])?;
    for r in extras.rows {
        out.push_str(&value_text(&r[0]));
        out.push_str(";\n");
    }
    Ok(out)
}

impl FakeSql {
    /// Replay one backup into `database` and verify it.
    fn restore_one(&self, database: &str, backup_name: &str) -> Result<Backup, Error> {
        let (text, recorded) = self.backups.lock().unwrap().get(backup_name).cloned().ok_or_else(|| not_found(format!("no backup named {backup_name}")))?;
        let hash = recorded_hash(&recorded, std::path::Path::new("fake host"))?;
        let (sum, tables_n, rows) = self.with_db(database, |c| {
            if !tables(c)?.is_empty() {
                return Err(invalid(format!("database {database} is not empty: drop and create it before restoring")));
            }
            c.execute_batch(&text).map_err(|e| failed(format!("replaying backup {backup_name} into {database}: {e}")))?;
            checksum(c, hash)
        })?;
        if sum != recorded.checksum {
            return Err(failed(format!("restored {database} has checksum {sum}, but backup {backup_name} recorded {}", recorded.checksum)));
        }
        Ok(Backup { name: backup_name.into(), database: database.into(), bytes: text.len() as u64, tables: tables_n, rows, checksum: sum })
    }
}

#[async_trait]
impl Sql for FakeSql {
    async fn query(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<Rows, Error> {
        self.check_connection(connection)?;
        let limit = self.result_limit;
        self.plugin_statement(database, |c| query_within(c, statement, params, limit))
    }

    async fn execute(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<u64, Error> {
        self.check_connection(connection)?;
        self.plugin_statement(database, |c| {
            let mut stmt = c.prepare(statement).map_err(sql_err)?;
            Ok(stmt.execute(rusqlite::params_from_iter(params.iter().map(to_sqlite))).map_err(sql_err)? as u64)
        })
    }

    async fn dump_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error> {
        Ok(self.dump_databases(connection, &[(database.to_string(), backup_name.to_string())]).await?.remove(0))
    }

    /// All or nothing, as the real backend: no backup is kept unless every database was dumped.
    async fn dump_databases(&self, connection: &str, dumps: &[(String, String)]) -> Result<Vec<Backup>, Error> {
        self.check_connection(connection)?;
        let mut taken = Vec::new();
        for (database, backup_name) in dumps {
            let (text, (sum, tables, rows)) = self.with_db(database, |c| Ok((dump(c, database)?, checksum(c, RowHash::default())?)))?;
            let bytes = text.len() as u64;
            taken.push((text, Backup { name: backup_name.clone(), database: database.clone(), bytes, tables, rows, checksum: sum }));
        }
        let mut kept = self.backups.lock().unwrap();
        Ok(taken
            .into_iter()
            .map(|(text, b)| {
                kept.insert(b.name.clone(), (text, b.clone()));
                b
            })
            .collect())
    }

    async fn restore_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error> {
        Ok(self.restore_databases(connection, &[(database.to_string(), backup_name.to_string())]).await?.remove(0))
    }

    /// As the real backend: every backup and database checked before anything is replayed.
    async fn restore_databases(&self, connection: &str, restores: &[(String, String)]) -> Result<Vec<Backup>, Error> {
        self.check_connection(connection)?;
        for (database, backup_name) in restores {
            let (_, recorded) = self.backups.lock().unwrap().get(backup_name).cloned().ok_or_else(|| not_found(format!("no backup named {backup_name}")))?;
            recorded_hash(&recorded, std::path::Path::new("fake host"))?;
            self.with_db(database, |c| match tables(c)?.len() {
                0 => Ok(()),
                n => Err(invalid(format!("database {database} is not empty ({n} tables): drop and create it before restoring"))),
            })?;
        }
        restores.iter().map(|(database, backup_name)| self.restore_one(database, backup_name)).collect()
    }

    async fn backup_database(&self, backup_name: &str) -> Result<String, Error> {
        let backups = self.backups.lock().unwrap();
        backups.get(backup_name).map(|(_, recorded)| recorded.database.clone()).ok_or_else(|| not_found(format!("no backup named {backup_name}")))
    }

    async fn create_database(&self, connection: &str, database: &str) -> Result<(), Error> {
        self.check_connection(connection)?;
        let mut dbs = self.databases.lock().unwrap();
        if dbs.contains_key(database) {
            return Err(invalid(format!("database {database} already exists")));
        }
        dbs.insert(database.to_string(), open()?);
        Ok(())
    }

    async fn drop_database(&self, connection: &str, database: &str) -> Result<(), Error> {
        self.check_connection(connection)?;
        self.databases.lock().unwrap().remove(database).map(drop).ok_or_else(|| not_found(format!("database {database} does not exist")))
    }

    async fn database_exists(&self, connection: &str, database: &str) -> Result<bool, Error> {
        self.check_connection(connection)?;
        Ok(self.databases.lock().unwrap().contains_key(database))
    }

    async fn database_checksum(&self, connection: &str, database: &str) -> Result<String, Error> {
        self.check_connection(connection)?;
        self.checksum_now(database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin's statement that never ends, or whose result has no end, is stopped at the
    /// limits, as on the real backend: SQLite runs in the host's thread, where the host call's
    /// own deadline cannot stop it.
    #[tokio::test]
    async fn a_runaway_statement_is_stopped_at_its_time_and_a_flood_at_its_bytes() {
        let limits = crate::config::Limits { call_timeout_s: 1, max_payload_bytes: 1 << 20, ..Default::default() };
        let sql = FakeSql::new(["metadb".to_string()]).with_limits(&limits);
        sql.apply("rm_411", "CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
        let endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r";
        let started = std::time::Instant::now();
        assert!(matches!(sql.query("metadb", "rm_411", endless, &[]).await, Err(Error::Timeout(m)) if m.contains("within 1 s")));
        assert!(matches!(sql.execute("metadb", "rm_411", &format!("INSERT INTO t {endless}"), &[]).await, Err(Error::Timeout(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
        let flood = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n, printf('%.1000c', 'x') FROM r";
        assert!(matches!(sql.query("metadb", "rm_411", flood, &[]).await, Err(Error::Failed(m)) if m.contains("sandbox limit of 1048576 bytes")));
        // Within the limits, as before; and the connection is not left stopping statements.
        let fits = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 500) SELECT n FROM r";
        assert_eq!(sql.query("metadb", "rm_411", fits, &[]).await.unwrap().rows.len(), 500);
        assert_eq!(sql.query_text("rm_411", "SELECT COUNT(*) FROM t").unwrap(), [["0"]]);
    }

    #[test]
    fn the_embedded_engine_reaches_no_file() {
        let c = open().unwrap();
        let target = std::env::temp_dir().join(format!("opshost-fake-attach-{}", std::process::id()));
        let t = target.display();
        for sql in [format!("ATTACH DATABASE '{t}' AS evil"), format!("VACUUM INTO '{t}'")] {
            assert!(c.execute_batch(&sql).is_err(), "{sql} went through");
        }
        assert!(!target.exists());
        c.execute_batch("CREATE TABLE t (a INT); INSERT INTO t VALUES (1);").unwrap();
    }

    #[tokio::test]
    async fn dump_restore_round_trip_is_exact_for_every_type() {
        let s = FakeSql::new(["metadb".to_string()]);
        s.apply(
            "db",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, f REAL, s TEXT, b BLOB, n TEXT); \
            INSERT INTO t VALUES (1, 3.4028234e38, 'it''s', X'00ff', NULL), (2, 0.1, '{\"enable\":true}', X'', 'x');",
        )
        .unwrap();
        let before = s.database_checksum("metadb", "db").await.unwrap();
        let b = s.dump_database("metadb", "db", "db.sql").await.unwrap();
        assert_eq!((b.tables, b.rows, &b.checksum), (1, 2, &before));
        s.execute("metadb", "db", "DELETE FROM t WHERE id = ?", &[Value::Int(1)]).await.unwrap();
        assert_ne!(s.database_checksum("metadb", "db").await.unwrap(), before);
        s.drop_database("metadb", "db").await.unwrap();
        s.create_database("metadb", "db").await.unwrap();
        let r = s.restore_database("metadb", "db", "db.sql").await.unwrap();
        assert_eq!(r.checksum, before);
        assert_eq!(s.query_text("db", "SELECT s, n FROM t WHERE id = 1").unwrap(), vec![vec!["it's".to_string(), "NULL".to_string()]]);
    }

    #[tokio::test]
    async fn restore_refuses_a_non_empty_database_and_unknown_connections() {
        let s = FakeSql::new(["metadb".to_string()]);
        s.apply("db", "CREATE TABLE t(id INTEGER)").unwrap();
        s.dump_database("metadb", "db", "b").await.unwrap();
        assert!(matches!(s.restore_database("metadb", "db", "b").await, Err(Error::InvalidInput(_))));
        assert!(matches!(s.query("other", "db", "SELECT 1", &[]).await, Err(Error::NotFound(_))));
    }
}
