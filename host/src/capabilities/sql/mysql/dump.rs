//! Dumps and checksums on the MySQL engine: open one consistent snapshot of one or more
//! databases on several connections ([`super::snapshot`]), read every table's rows in key ranges,
//! and write each database's file (definitions, rows, then views, triggers, routines and events)
//! while hashing the same values for its content checksum. Each file is synced as it grows and
//! renamed into place only when complete.

use super::codec::{db_err, quote_ident};
use super::flavour::Flavour;
use super::format::{database_defaults, io_err, push_definition, Zone, END_MARKER, ROWS_NOTE, SET_UTC, UTC_MARKER};
use super::share::share_out;
use super::tables::{definitions, summary, tables, TableInfo, INSERT_HISTORY};
use super::{objects, snapshot, MysqlSql};
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use crate::capabilities::sql::checksum::RowHash;
use crate::capabilities::sql::Backup;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl MysqlSql {
    /// Connections in one consistent snapshot for reading `rows` rows of `bytes` bytes (of
    /// `database` and maybe others; readers name every table in full): several when there is
    /// enough to split, else one.
    ///
    /// Big ones are read by [`READERS`] bulk-reader connections when they connect (and the
    /// configured `max_connections` leaves room for them next to `first`, which then only plans);
    /// otherwise by pooled connections, `first` among them.
    pub(super) async fn snapshot(
        &self,
        connection: &str,
        database: &str,
        mut first: Conn,
        (rows, bytes): (u64, u64),
        zone: Zone,
        bulk: bool,
    ) -> Result<Vec<snapshot::Reader>, Error> {
        let metadb = self.pools.get(connection);
        let pool_size = metadb.map(|p| p.size).unwrap_or(1);
        let flavour = self.flavour(connection, &mut first).await?;
        let want = if snapshot::pieces(rows, bytes) > 1 && flavour.shared_snapshot() { READERS.min(pool_size) } else { 1 };
        let mut more = Vec::new();
        if let Some(target) = metadb.and_then(|m| m.wire.as_ref()).filter(|_| bulk && flavour.bulk_reader() && want > 1 && pool_size > READERS) {
            // Side by side; whatever the bulk reader cannot do, mysql_async can: read through it.
            let tries = futures_util::future::join_all((0..READERS).map(|_| self.wire_conn(target, database, zone, flavour.bulk_session()))).await;
            if tries.iter().all(Result::is_ok) {
                more = tries.into_iter().flatten().map(snapshot::Reader::Wire).collect();
            }
        }
        if more.is_empty() {
            more = self.conns_zoned(connection, database, zone, want - 1).await?.into_iter().map(snapshot::Reader::Pooled).collect();
        }
        let started = snapshot::start(first, more, database).await?;
        if started.iter().any(|r| matches!(r, snapshot::Reader::Wire(_))) {
            self.wire_snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(started)
    }

    /// One consistent snapshot of `databases` (at least one) ready to read, TIMESTAMP values in
    /// `zone`, with the bulk reader when `bulk` (and it connects). Their chunks queue one database
    /// after another. An error after the bulk reader started says so.
    ///
    /// The databases are described side by side, one per connection (each takes a few
    /// `information_schema` queries, a few milliseconds on a server with a few hundred tables,
    /// most of it the server opening the tables' definitions), and so are many tables'
    /// definitions; a backup taken inside the downtime waits for all of it.
    pub(super) async fn open(&self, connection: &str, databases: &[&str], zone: Zone, bulk: bool) -> Result<Opened, (Error, bool)> {
        let pool_size = self.pools.get(connection).map(|p| p.size).unwrap_or(1);
        let mut conns = self.conns_zoned(connection, databases[0], zone, databases.len().min(READERS).min(pool_size)).await.map_err(|e| (e, false))?;
        let flavour = self.flavour(connection, &mut conns[0]).await.map_err(|e| (e, false))?;
        let workers = conns.into_iter().map(|c| (c, Vec::new())).collect();
        let described = share_out(workers, databases.iter().enumerate(), |(mut c, mut found): (Conn, Vec<(usize, Described)>), (i, database)| async move {
            // Every connection is in the first database, checked by its `USE`; each other is
            // described from inside it (below).
            let home = (i > 0).then_some(databases[0]);
            let read = describe(&mut c, database, home).await.map(|d| found.push((i, d)));
            ((c, found), read)
        })
        .await
        .map_err(|e| (e, false))?;
        let (mut conns, found): (Vec<Conn>, Vec<Vec<(usize, Described)>>) = described.into_iter().unzip();
        let mut found: Vec<(usize, Described)> = found.into_iter().flatten().collect();
        found.sort_by_key(|(i, _)| *i);
        let (mut tables, mut objects, mut defaults, mut comments) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (_, d) in found {
            tables.push(d.tables);
            objects.push(d.objects);
            defaults.push(d.defaults);
            comments.push(d.comment);
        }
        // Many definitions are read on a few connections side by side.
        let count: usize = tables.iter().map(Vec::len).sum();
        if count >= DEFINITIONS_SHARED_FROM {
            let more = READERS.min(pool_size).saturating_sub(conns.len());
            conns.extend(self.conns_zoned(connection, databases[0], zone, more).await.map_err(|e| (e, false))?);
        }
        definitions(&mut conns, databases, &mut tables).await.map_err(|e| (e, false))?;
        // The others go back to the pool now, before the snapshot takes its readers from it: a
        // pool of fewer connections than the dump's readers and these would wait forever.
        let first = conns.swap_remove(0);
        drop(conns);
        let tables: Vec<Arc<Vec<TableInfo>>> = tables.into_iter().map(Arc::new).collect();
        let all = || tables.iter().flat_map(|t| t.iter());
        let size = (all().map(|t| t.estimated_rows).sum(), all().map(|t| t.estimated_bytes).sum());
        let mut conns = self.snapshot(connection, databases[0], first, size, zone, bulk).await.map_err(|e| (e, false))?;
        let wired = conns.iter().any(|c| matches!(c, snapshot::Reader::Wire(_)));
        let n = conns.len();
        let mut chunks = Vec::new();
        for (db, database) in databases.iter().enumerate() {
            chunks.extend(snapshot::plan(conns[0].pooled(), db, database, &tables[db], n).await.map_err(|e| (e, wired))?);
        }
        Ok(Opened { tables, objects, defaults, comments, flavour, readers: snapshot::readers(conns), chunks, wired })
    }

    /// `n` connections as [`MysqlSql::conn_zoned`] makes them, connected side by side.
    async fn conns_zoned(&self, connection: &str, database: &str, zone: Zone, n: usize) -> Result<Vec<Conn>, Error> {
        futures_util::future::try_join_all((0..n).map(|_| self.conn_zoned(connection, database, zone))).await
    }

    /// `read(true)`; when it failed after the bulk reader started, a warning and `read(false)`
    /// (through mysql_async).
    pub(super) async fn bulk_or_pooled<T, F, Fut>(&self, database: &str, read: F) -> Result<T, Error>
    where
        F: Fn(bool) -> Fut,
        Fut: std::future::Future<Output = Result<T, (Error, bool)>>,
    {
        match read(true).await {
            Err((e, true)) => {
                let why = e.message();
                self.reporter.log(
                    crate::report::Level::Warn,
                    &format!("the bulk reader failed on {database} ({why}); reading it again through mysql_async (bulk_reader = false in [metadb.X] skips it)"),
                );
                read(false).await.map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// Dump each `(database, backup name)` of `dumps` in one snapshot, with the bulk reader when
    /// `bulk`.
    pub(super) async fn dump(&self, connection: &str, dumps: &[(&str, &str)], bulk: bool) -> Result<Vec<Backup>, (Error, bool)> {
        // Read in UTC, as the header replays it: TIMESTAMP values (and TIMESTAMP defaults in the
        // definitions) come back as the same instants whatever the server's time zone.
        let databases: Vec<&str> = dumps.iter().map(|(d, _)| *d).collect();
        let opened = self.open(connection, &databases, Zone::Utc, bulk).await?;
        // Before any file: a view no restore could create again is refused, not written.
        for (database, objects) in databases.iter().zip(&opened.objects) {
            objects::refuse_broken(database, objects).map_err(|e| (e, false))?;
        }
        let wired = opened.wired;
        self.write_dumps(dumps, opened).await.map_err(|e| (e, wired))
    }

    /// Read an opened snapshot into the backups of `dumps` (one file and its metadata each). The
    /// databases' files are written side by side, each made durable as soon as its last rows are
    /// read; a backup is only renamed into place when every one of them was read and written.
    pub(super) async fn write_dumps(&self, dumps: &[(&str, &str)], opened: Opened) -> Result<Vec<Backup>, Error> {
        let Opened { tables, objects, defaults, comments, flavour, readers: conns, chunks, .. } = opened;
        tokio::fs::create_dir_all(&self.backup_dir).await.map_err(|e| io_err(&self.backup_dir, e))?;
        // Dumps hold the MetaDB's content: owner only.
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&self.backup_dir, std::fs::Permissions::from_mode(0o700)).await.map_err(|e| io_err(&self.backup_dir, e))?;
        }
        let mut jobs = Vec::new();
        let mut writers = Vec::new();
        let spare = snapshot::Spare::default();
        for ((((database, backup_name), tables), objects), defaults) in dumps.iter().zip(&tables).zip(&objects).zip(&defaults) {
            let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
            jobs.push(snapshot::Job::new(database, tables.clone(), Some(tx), RowHash::default()));
            let head = dump_head(flavour, database, tables, objects, defaults.as_deref());
            writers.push(self.write_file(backup_name, head, objects::section(objects, flavour.quoted_names().is_some()), rx, spare.clone()));
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
        for (((((database, backup_name), tables), objects), (hashers, tmp)), comment) in
            dumps.iter().zip(&tables).zip(&objects).zip(hashers.iter().zip(written)).zip(&comments)
        {
            let tmp = tmp.expect("checked above");
            let (sql_path, meta_path) = self.backup_paths(backup_name);
            tokio::fs::rename(&tmp, &sql_path).await.map_err(|e| io_err(&sql_path, e))?;
            let bytes = tokio::fs::metadata(&sql_path).await.map_err(|e| io_err(&sql_path, e))?.len();
            let (checksum, n_tables, rows) = summary(tables, objects, hashers, RowHash::default(), comment.as_deref());
            let backup = Backup { name: backup_name.to_string(), database: database.to_string(), bytes, tables: n_tables, rows, checksum };
            let meta = serde_json::to_vec_pretty(&backup).expect("backup serialises");
            tokio::fs::write(&meta_path, meta).await.map_err(|e| io_err(&meta_path, e))?;
            backups.push(backup);
        }
        Ok(backups)
    }

    /// Write one database's dump file as `backup_name` with a `.partial` suffix (see
    /// [`write_file`]): `head`, the rows from `rx`, then `tail`. The partial file's path; on an
    /// error it is removed.
    pub(super) async fn write_file(
        &self,
        backup_name: &str,
        head: Vec<u8>,
        tail: Vec<u8>,
        rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
        spare: snapshot::Spare,
    ) -> Result<PathBuf, Error> {
        let tmp = self.backup_paths(backup_name).0.with_extension("sql.partial");
        let path = tmp.clone();
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
        self.checksums_held(connection, databases, zone, &[]).await
    }

    /// [`MysqlSql::checksums`] of restored databases whose enabled events the restore still
    /// holds disabled (`held`, per database, empty for none): those are read as enabled, as
    /// they will stand.
    pub async fn checksums_held(
        &self,
        connection: &str,
        databases: &[(&str, RowHash)],
        zone: Zone,
        held: &[&[objects::HeldEvent]],
    ) -> Result<Vec<(String, u32, u64)>, Error> {
        let label = databases.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ");
        self.bulk_or_pooled(&label, |bulk| self.checksum_with(connection, databases, zone, held, bulk)).await
    }

    /// [`MysqlSql::checksums_held`], with the bulk reader when `bulk`.
    pub(super) async fn checksum_with(
        &self,
        connection: &str,
        databases: &[(&str, RowHash)],
        zone: Zone,
        held: &[&[objects::HeldEvent]],
        bulk: bool,
    ) -> Result<Vec<(String, u32, u64)>, (Error, bool)> {
        let names: Vec<&str> = databases.iter().map(|(d, _)| *d).collect();
        let Opened { tables, mut objects, comments, readers, chunks, wired, .. } = self.open(connection, &names, zone, bulk).await?;
        for (objects, held) in objects.iter_mut().zip(held) {
            objects::as_enabled(objects, held);
        }
        let jobs = databases.iter().zip(&tables).map(|((database, hash), tables)| snapshot::Job::new(database, tables.clone(), None, *hash)).collect();
        let work = snapshot::Work::new(jobs, format!("checksum {}", names.join(", ")), self.reporter.clone());
        let hashers = snapshot::read_all(readers, chunks, work).await.map_err(|e| (e, wired))?;
        Ok(databases
            .iter()
            .zip(tables.iter().zip(&objects).zip(&hashers).zip(&comments))
            .map(|((_, hash), (((tables, objects), hashers), comment))| summary(tables, objects, hashers, *hash, comment.as_deref()))
            .collect())
    }
}

/// A consistent snapshot of one or more databases ready to read: each database's tables, the
/// connections that read them, the ranges they read, and whether the bulk reader is among them.
pub(super) struct Opened {
    tables: Vec<Arc<Vec<TableInfo>>>,
    /// Each database's views, triggers, routines and events.
    objects: Vec<Vec<objects::DbObject>>,
    /// Each database's comment, if it has one: counted by its checksum.
    comments: Vec<Option<String>>,
    /// Each database's default character set and collation, as its dump's head line.
    defaults: Vec<Option<String>>,
    flavour: Flavour,
    readers: Vec<snapshot::Reader>,
    chunks: Vec<snapshot::Chunk>,
    wired: bool,
}

/// What a snapshot needs of one database before it starts: its tables (their definitions read
/// after, see [`definitions`]), its other objects, and its defaults as a dump's head line.
struct Described {
    tables: Vec<TableInfo>,
    objects: Vec<objects::DbObject>,
    defaults: Option<String>,
    /// The database's comment, if it has one (MariaDB).
    comment: Option<String>,
}

/// Describe `database` on `c`. `home`: the database `c` is in, when it is another one: `database`
/// is described from inside (its `USE` refuses it if it does not exist, where an empty answer
/// would read as a database without tables), as a dump or checksum of it alone describes it;
/// then `c` goes back `home`. From outside, the server shows a view qualified by its database (`` `db`.`v` ``, and
/// its tables `` `db`.`t` ``): the checksum of a database read second in a dump of several
/// differed from its checksum read alone, and its views were dumped bound to its name.
async fn describe(c: &mut Conn, database: &str, home: Option<&str>) -> Result<Described, Error> {
    if let Some(home) = home {
        // An unknown database is `not_found` ([`db_err`]).
        c.query_drop(format!("USE {}", quote_ident(database))).await.map_err(|e| db_err(database, e))?;
        let described = describe_here(c, database).await;
        c.query_drop(format!("USE {}", quote_ident(home))).await.map_err(|e| db_err(home, e))?;
        return described;
    }
    describe_here(c, database).await
}

/// Describe `database`, the database `c` is in.
async fn describe_here(c: &mut Conn, database: &str) -> Result<Described, Error> {
    let tables = tables(c, database).await?;
    // SCHEMA_COMMENT: MariaDB 10.5 and later; other servers have no database comments.
    let found: Option<(String, String, String)> = match c
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )
        .await
    {
        Ok(found) => found,
        Err(_) => c
            .exec_first::<(String, String), _, _>(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (database,),
            )
            .await
            .map_err(|e| db_err(database, e))?
            .map(|(charset, collation)| (charset, collation, String::new())),
    };
    let comment = found.as_ref().map(|(_, _, comment)| comment.clone()).filter(|c| !c.is_empty());
    let objects = objects::read_beside(c, database, found.as_ref().map(|(_, collation, _)| collation.as_str())).await?;
    Ok(Described {
        tables,
        objects,
        defaults: found.as_ref().and_then(|(charset, collation, _)| database_defaults(charset, collation, comment.as_deref())),
        comment,
    })
}

/// From this many tables, their definitions are read on [`READERS`] connections side by side.
const DEFINITIONS_SHARED_FROM: usize = 32;

/// Connections that read a snapshot in parallel; the pool size caps it. On the 2-core bench
/// machine (MetaDB on the same cores) three keep both cores busier than two: while one waits for
/// the server or for the client, the others work (1.62 s against 1.75 s; four gain nothing more).
const READERS: usize = 3;

/// The header line of a MariaDB dump that lets a replay write rows a CHECK constraint would
/// refuse (MariaDB 10.2.1 and later). Such rows exist where they were written with
/// `check_constraint_checks` off, and a backup holds them as they are: an INSERT of one fails
/// (LOAD DATA does not check). Only in MariaDB dumps: MySQL reads a version comment's first five
/// digits, so it would run `1 SET …`.
const NO_CHECK_CONSTRAINTS: &str = "/*!100201 SET SESSION check_constraint_checks = 0 */;";

/// A dump's head: the header's session settings, the database's defaults, the sequences, and
/// every table's definition (after the estimate of its rows).
fn dump_head(flavour: Flavour, database: &str, tables: &[TableInfo], objects: &[objects::DbObject], defaults: Option<&str>) -> Vec<u8> {
    let mut head = format!(
        "-- opshost dump of database {database}\n{UTC_MARKER}\n/*!40101 SET NAMES utf8mb4 */;\n{SET_UTC}\n/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='{}' */;\n",
        flavour.dump_sql_mode()
    );
    if flavour == Flavour::MariaDb {
        head.push_str(NO_CHECK_CONSTRAINTS);
        head.push('\n');
    }
    if let Some(line) = defaults {
        head.push_str(line);
        head.push('\n');
    }
    if tables.iter().any(|t| t.versioned) {
        head.push_str(INSERT_HISTORY);
        head.push('\n');
    }
    // Definitions are bytes (see [`TableInfo::create`] and [`objects::DbObject::create`]).
    let mut head = head.into_bytes();
    head.extend_from_slice(&objects::sequences_head(objects));
    for t in tables.iter() {
        head.extend_from_slice(format!("{ROWS_NOTE}{}\nDROP TABLE IF EXISTS {};\n", t.estimated_rows, quote_ident(&t.name)).as_bytes());
        push_definition(&mut head, &t.create);
    }
    head
}

/// Write a dump file at `path` (on a blocking thread): `head` (the header and every table's
/// definition), then the statements from `rx` in whatever order the readers produce them (each
/// INSERT stands alone) until the database's last chunk is read, then `tail` (the database's
/// views, triggers, routines and events), the footer and the end marker, on disk (fsync).
/// Statements go to the file as they come, without another copy, and their buffers back to
/// `spare`. The file goes through the page cache: a rollback right after a failed upgrade reads
/// it back from there (written past the cache with `O_DIRECT`, the dump saved a little system
/// time and the restore then spent far more reading the file from the disk).
///
/// Every [`SYNC_BYTES`] the file is made durable so far on a thread of its own, one such sync at
/// a time, so the closing fsync has little left to wait for; a failed one fails the dump. On any
/// error the channel is closed at once, so readers blocked on a full channel fail instead of
/// waiting forever.
fn write_file(path: &Path, head: &[u8], tail: &[u8], mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>, spare: &snapshot::Spare) -> std::io::Result<()> {
    use std::io::Write;
    let join = |h: std::thread::JoinHandle<std::io::Result<()>>| h.join().map_err(|_| std::io::Error::other("background sync panicked"))?;
    let mut in_flight = None;
    let result = (|| {
        let mut f = std::fs::File::create(path)?;
        f.write_all(head)?;
        let (mut written, mut synced) = (head.len() as u64, head.len() as u64);
        while let Some(mut stmt) = rx.blocking_recv() {
            f.write_all(&stmt)?;
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
        f.write_all(tail)?;
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
