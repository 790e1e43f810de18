//! Replaying dump files into their databases: one or several side by side on a few shared worker
//! connections, the way myloader spreads its tables over its threads.
//!
//! - Each file's head (session settings and every table's definition, up to its first INSERT)
//!   runs first. When every head is only session settings followed by table definitions that
//!   stand alone (as opshost writes them), the definitions are shared out over every connection,
//!   each in its file's session; otherwise the heads run in order on the first connection. The
//!   databases are empty (checked by the caller), so a head's `DROP TABLE IF EXISTS` of a table
//!   it has not yet created is a no-op and is left out. Every file's sequences come before any
//!   file's tables: a table's default may take the next value of another database's sequence.
//! - Then each worker takes statements from a file no other worker is on, the biggest first; when
//!   every file left has a worker, it joins the biggest. So the big heartbeat database loads on
//!   one connection while another loads the rest, and on both once the rest is done: two workers
//!   inserting into one table contend for its pages and cost the server about a third more CPU.
//!   A worker alone on its file moves to a file nobody is on that has 8 MB more left, so the
//!   files end together ([`choose`]).
//! - A worker moving to another file's database switches its session to that file's settings.
//! - While a worker's statement of rows runs, its next one is taken and converted (see
//!   [`work_on`]). Lines are handed out in each file's order, and what depends on that order is
//!   decided as they are: after a statement that cannot be sent (over the server's packet limit
//!   without LOAD DATA) no line is handed out, so nothing after it goes in.
//! - Each INSERT is a transaction of its own (see [`load::insert`]); the first error stops every
//!   worker and is the result.
//! - Into a table with an AUTO_INCREMENT column, rows go one statement at a time, whichever
//!   worker has them (rows of long values, bound, excepted). Under MariaDB's default
//!   `innodb_autoinc_lock_mode = 1` a LOAD DATA holds the table's AUTO-INC lock to its end, so two
//!   workers there take turns anyway; under `2` (MySQL 8's default) they would not, and InnoDB's
//!   per-row AUTO_INCREMENT mutex then costs the server two to three times the CPU for the same
//!   rows (the bench's `heartbeat` shape: 32–44 s of server CPU against 16.3 s).
//! - A table whose every column takes a field read as bytes as it takes the dump's value (as the
//!   server shows them once the heads have run: utf8mb4 text, numbers, dates, binary strings;
//!   not INET6 or UUID, which take a binary string as raw bytes; see [`reads_as_bytes`]) gets its
//!   LOAD DATA fields read as bytes, which its columns take as they are; the others are read as
//!   utf8mb4, which their columns convert from (see [`load::from_insert`]). A dump that holds
//!   text in other character sets than UTF-8 as its stored bytes (`_binary'…'`,
//!   [`Source::stored_text`]) reads such a table's fields as bytes too; where it cannot (the
//!   flavour, an INET6 column beside), its rows go as INSERTs, as converting would change them.
//! - Plain secondary keys wait until every row is in, then are built table by table on every
//!   connection (see [`indexes`]).
//! - Last, each file's objects section, run again while that gets further when an object needs
//!   one of another file's (see [`tails`]). Enabled events are created disabled: the caller
//!   enables them once it has verified the restore (see [`objects::hold`]).

use super::codec::{db_err, quote_ident};
use super::format::{Zone, DATABASE_DEFAULTS, END_MARKER, ROWS_NOTE, SET_UTC};
use super::load::ident;
use super::share::share_out;
use super::tables::is_stored_as_other_text;
use super::{indexes, load, objects};
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use crate::report::Reporter;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A dump file to replay into `database` (which exists and is empty).
pub struct Source {
    pub database: String,
    pub path: PathBuf,
    pub file: tokio::fs::File,
    /// The zone its TIMESTAMP values were read in.
    pub zone: Zone,
    /// Its text in character sets other than UTF-8 was read as stored bytes
    /// ([`crate::capabilities::sql::checksum::RowHash::reads_stored_text`], from its checksum).
    pub stored_text: bool,
    pub bytes: u64,
}

/// One file being replayed.
struct Replay {
    database: String,
    path: PathBuf,
    zone: Zone,
    /// The session settings of the file's head, for a worker that moves to it.
    session: Vec<String>,
    policy: load::Policy,
    /// The rest of the file, and its first INSERT (read while running the head).
    lines: tokio::sync::Mutex<(Option<Vec<u8>>, Lines)>,
    /// Plain keys held back until every row is in.
    deferred: Vec<indexes::Deferred>,
    /// Its tables with an AUTO_INCREMENT column (quoted), each with the turn a worker takes to
    /// load rows into it.
    one_at_a_time: std::collections::HashMap<String, tokio::sync::Mutex<()>>,
    /// Its tables (quoted) whose LOAD DATA fields are read as bytes: every text column utf8mb4,
    /// as the server showed them once the heads had run, or, in a dump of stored text, any
    /// ([`fields_as_bytes`]).
    as_bytes: HashSet<String>,
    /// Its tables (quoted) with text in a character set other than UTF-8, when the dump holds
    /// that text as stored bytes ([`Source::stored_text`]): LOAD DATA only as bytes.
    stored_other_text: HashSet<String>,
    stored_text: bool,
    /// False once a statement among the file's rows that is not an INSERT or a setting (a
    /// hand-edited file's) was handed out ([`take_line`]): it may change a table, so no later
    /// rows read their fields as bytes.
    bytes_still: AtomicBool,
    /// The head's line giving the database its default character set and collation back
    /// ([`DATABASE_DEFAULTS`]), run before anything else of the file.
    defaults: Option<String>,
    /// Bytes not yet handed out.
    left: AtomicU64,
    complete: AtomicBool,
}

impl Replay {
    /// The turn to take before inserting `rows` (of an INSERT of this file): its table's when the
    /// table has an AUTO_INCREMENT column and the rows do not go bound.
    fn turn(&self, rows: &load::Rows) -> Option<&tokio::sync::Mutex<()>> {
        if self.one_at_a_time.is_empty() || rows.bound() {
            return None;
        }
        self.one_at_a_time.get(rows.table()?)
    }
}

/// A dump file's lines as bytes: its rows may hold any bytes (a binary string's own), the rest
/// is UTF-8 text ([`text`]).
type Lines = tokio::io::Split<BufReader<tokio::fs::File>>;

/// The next line of `lines` without its end (`\n`, or `\r\n` as a file edited elsewhere may
/// have; a dump escapes every `\r` in its values).
async fn next_line(lines: &mut Lines) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = lines.next_segment().await?;
    if let Some(l) = line.as_mut().filter(|l| l.last() == Some(&b'\r')) {
        l.pop();
    }
    Ok(line)
}

/// A line that holds no rows (a definition, a setting, an object) as the text it must be.
fn text(line: &[u8]) -> std::io::Result<&str> {
    std::str::from_utf8(line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a line that is not an INSERT is not UTF-8 ({e})")))
}

/// Which worker is on which file.
struct Schedule {
    workers_on: Vec<usize>,
    exhausted: Vec<bool>,
}

/// What every worker shares.
struct Shared {
    replays: Vec<Replay>,
    schedule: Mutex<Schedule>,
    stop: AtomicBool,
    done: AtomicU64,
    total: u64,
    label: String,
    reporter: Arc<dyn Reporter>,
}

impl Shared {
    /// The file a worker on `current` takes its next statement from, or None when all are done.
    fn pick(&self, current: Option<usize>) -> Option<usize> {
        let mut s = self.schedule.lock().unwrap();
        let left: Vec<u64> = self.replays.iter().map(|r| r.left.load(Relaxed)).collect();
        let choice = choose(&s, &left, current);
        if choice != current {
            if let Some(c) = current {
                s.workers_on[c] -= 1;
            }
            if let Some(n) = choice {
                s.workers_on[n] += 1;
            }
        }
        choice
    }

    fn exhausted(&self, i: usize) {
        self.schedule.lock().unwrap().exhausted[i] = true;
    }
}

/// The file for a worker on `current`: stay when alone on an unfinished one, unless a file no
/// worker is on has [`OVERTAKE`] bytes more left; else the biggest (`left` bytes) no worker is on;
/// else stay; else join the biggest unfinished. None: all done.
///
/// Moving to the file with the most left keeps the files' remaining bytes level, so they end
/// together: a table with an AUTO_INCREMENT column loads one statement at a time whatever the
/// workers ([`Replay::turn`]), and where three files are mostly such tables (the bench's
/// `autoinc` shape), two workers each staying on its file until done left the last file alone,
/// on one core, for a quarter of the restore.
fn choose(s: &Schedule, left: &[u64], current: Option<usize>) -> Option<usize> {
    let open = |i: &usize| !s.exhausted[*i];
    let free = (0..left.len()).filter(open).filter(|i| s.workers_on[*i] == 0).max_by_key(|i| left[*i]);
    if let Some(c) = current.filter(|c| open(c) && s.workers_on[*c] == 1) {
        return match free {
            Some(f) if left[f] > left[c] + OVERTAKE => Some(f),
            _ => Some(c),
        };
    }
    free.or_else(|| current.filter(open)).or_else(|| (0..left.len()).filter(open).max_by_key(|i| left[*i]))
}

/// How many bytes more a file nobody is on must have left for a worker alone on its file to move
/// there ([`choose`]): a move costs a few statements (the file's session), a statement of rows is
/// up to about 1 MB.
const OVERTAKE: u64 = 8 << 20;

/// Replay `sources`: the heads in order on `first`, then the rows on `first` and `more`, then
/// the objects sections. Per source, the enabled events created disabled
/// ([`objects::hold`]): the caller enables them once the restore is verified.
pub async fn replay_all(
    mut first: Conn,
    more: Vec<Conn>,
    sources: Vec<Source>,
    forms: load::Forms,
    defer_keys: bool,
    label: String,
    reporter: Arc<dyn Reporter>,
) -> Result<Vec<Vec<objects::HeldEvent>>, Error> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let total = sources.iter().map(|s| s.bytes).sum::<u64>().max(1);
    // Values are bound only well under the server's packet limit.
    let packet: Option<u64> = first.query_first("SELECT @@max_allowed_packet").await.ok().flatten();
    let done = AtomicU64::new(0);
    // Two files into one database: the second one's DROPs are not no-ops.
    let databases: HashSet<&str> = sources.iter().map(|s| s.database.as_str()).collect();
    let distinct = databases.len() == sources.len();
    let mut replays = Vec::new();
    let mut heads = Vec::new();
    for s in sources {
        let (replay, head) = read_head(s, load::Policy::new(forms, packet), defer_keys, distinct, &done).await?;
        replays.push(replay);
        heads.push(head);
    }
    keep_referenced_keys(&mut replays, &mut heads);
    let n = replays.len();
    for r in replays.iter().filter(|r| r.defaults.is_some()) {
        enter(&mut first, r, r.defaults.as_slice()).await?;
    }
    for (r, h) in replays.iter().zip(&mut heads).filter(|(_, h)| !h.sequences.is_empty()) {
        switch(&mut first, r).await?;
        for statement in std::mem::take(&mut h.sequences) {
            first.query_drop(statement).await.map_err(|e| fail(r, e))?;
        }
    }
    let mut conns = vec![first];
    conns.extend(more);
    let (mut conns, sessions) = if heads.iter().all(|h| h.standalone) {
        run_heads_shared(conns, &replays, heads).await?
    } else {
        for (r, h) in replays.iter().zip(heads) {
            enter(&mut conns[0], r, &h.statements).await?;
        }
        // The first connection's session is the last head's.
        let sessions = (0..conns.len()).map(|i| (i == 0).then_some(n - 1)).collect();
        (conns, sessions)
    };
    if forms.load_data {
        fields_as_bytes(&mut conns[0], &mut replays, forms.bytes).await;
    }
    let shared = Arc::new(Shared {
        replays,
        schedule: Mutex::new(Schedule { workers_on: vec![0; n], exhausted: vec![false; n] }),
        stop: AtomicBool::new(false),
        done,
        total,
        label,
        reporter,
    });
    let workers: Vec<_> = conns.into_iter().zip(sessions).map(|(c, session)| tokio::spawn(work(c, session, shared.clone()))).collect();
    let mut result = Ok(Vec::new());
    for w in workers {
        let r = w.await.map_err(|e| failed(format!("restore worker: {e}")))?;
        result = match (result, r) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(mut kept), Ok(c)) => {
                kept.push(c);
                Ok(kept)
            }
        };
    }
    let mut conns = add_keys(result?, &shared).await?;
    let held = tails(&mut conns[0], &shared.replays).await?;
    for r in &shared.replays {
        if !r.complete.load(Relaxed) {
            return Err(failed(format!("backup {} is truncated (no end marker): restore it from another copy", r.path.display())));
        }
    }
    Ok(held)
}

/// Fill each file's [`Replay::as_bytes`] (when the flavour reads LOAD DATA fields as bytes,
/// `bytes`) and [`Replay::stored_other_text`]: its database's tables by their exact names (two
/// tables may differ only in case), from the server's own view of the columns, as the heads left
/// them ([`reads_as_bytes`]).
///
/// A failed read leaves every table read as utf8mb4 (the form that converts), which is only
/// slower, but for a dump of stored text: then no row goes as LOAD DATA, as nothing tells which
/// tables hold other text.
async fn fields_as_bytes(c: &mut Conn, replays: &mut [Replay], bytes: bool) {
    for r in replays.iter_mut() {
        // (table as bytes, character set, data type) of every column.
        type Column = (Vec<u8>, Option<String>, String);
        let columns: Option<Vec<Column>> = c
            .exec("SELECT CAST(TABLE_NAME AS BINARY), CHARACTER_SET_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?", (&r.database,))
            .await
            .ok();
        let Some(columns) = columns else {
            if r.stored_text {
                r.policy.no_load_data();
            }
            continue;
        };
        let (mut tables, mut not_as_bytes, mut other) = (HashSet::new(), HashSet::new(), HashSet::new());
        for (table, charset, data_type) in columns {
            let Ok(table) = String::from_utf8(table) else { continue };
            let charset = charset.unwrap_or_default();
            if !reads_as_bytes(&charset, &data_type, r.stored_text) {
                not_as_bytes.insert(table.clone());
            }
            if r.stored_text && is_stored_as_other_text(&charset) {
                other.insert(quote_ident(&table));
            }
            tables.insert(table);
        }
        r.stored_other_text = other;
        if bytes {
            r.as_bytes = tables.difference(&not_as_bytes).map(|t| quote_ident(t)).collect();
        }
    }
}

/// Whether a column of character set `charset` (empty for none) and `DATA_TYPE` `data_type`
/// takes a LOAD DATA field read as bytes as it takes its dump's value: UTF-8 text as UTF-8
/// (utf8mb4; in a dump of stored text, `stored_text`, any text, each as the bytes the dump holds),
/// numbers, dates and times as their digits, binary strings, BIT and geometry as their bytes. Not
/// a type that reads a binary string otherwise than its text (MariaDB's INET4, INET6 and UUID take
/// one as their 4 or 16 raw bytes), nor any type not named here.
fn reads_as_bytes(charset: &str, data_type: &str, stored_text: bool) -> bool {
    const AS_BYTES: &[&str] = &[
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "bigint",
        "decimal",
        "float",
        "double",
        "bit",
        "date",
        "datetime",
        "timestamp",
        "time",
        "year",
        "binary",
        "varbinary",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    ];
    if !charset.is_empty() {
        return charset == "utf8mb4" || stored_text;
    }
    AS_BYTES.contains(&data_type.to_ascii_lowercase().as_str())
}

/// Every file's held-back keys added back, the tables shared out over `conns` (at least one),
/// which are returned.
async fn add_keys(conns: Vec<Conn>, shared: &Shared) -> Result<Vec<Conn>, Error> {
    let jobs: Vec<(&Replay, String)> = shared.replays.iter().flat_map(|r| r.deferred.iter().map(move |d| (r, d.alter(&quote_ident(&r.database))))).collect();
    if jobs.is_empty() {
        return Ok(conns);
    }
    let message = format!("{}: every row is in; building the secondary keys of {} tables", shared.label, jobs.len());
    shared.reporter.log(crate::report::Level::Info, &message);
    share_out(conns, jobs, |mut c: Conn, (r, alter): (&Replay, String)| async move {
        let built = c.query_drop(alter.as_str()).await.map_err(|e| fail(r, format!("adding the secondary keys back: {e}")));
        (c, built)
    })
    .await
}

fn fail(r: &Replay, e: impl std::fmt::Display) -> Error {
    fail_at(&r.database, &r.path, e)
}

fn fail_at(database: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    failed(format!("restoring {database} from {}: {e}", path.display()))
}

/// A file's head as read: the statements to run before its rows.
struct Head {
    /// In order, session settings included; as bytes, since a table's definition need not be
    /// text (a binary column's default of raw bytes, as the server shows it).
    statements: Vec<Vec<u8>>,
    /// Every statement after the session settings defines a different table and stands alone
    /// ([`indexes::defined_table`]): they may run on any connection in the file's session.
    standalone: bool,
    /// Its sequences' statements (`DROP SEQUENCE IF EXISTS`, `CREATE SEQUENCE`, `DO SETVAL`), in
    /// order, when no other file goes to its database: they run before any file's tables, since
    /// a table's `DEFAULT NEXTVAL(s)` may name a sequence of another database of the restore,
    /// which the server checks as it creates the table.
    sequences: Vec<Vec<u8>>,
    /// For each of the replay's `deferred` tables, in order: where its definition is in
    /// `statements`, and that definition with its keys ([`keep_referenced_keys`]).
    whole: Vec<(usize, Vec<u8>)>,
}

/// Read the head of `source` (up to its first INSERT), leaving the rest for the workers.
/// `distinct`: no other file goes to the same database, so a `DROP TABLE IF EXISTS` of a table
/// the head has not created yet is a no-op (the database is empty) and is left out.
async fn read_head(source: Source, policy: load::Policy, defer_keys: bool, distinct: bool, done: &AtomicU64) -> Result<(Replay, Head), Error> {
    let Source { database, path, file, zone, stored_text, bytes } = source;
    let fail = |e: &dyn std::fmt::Display| fail_at(&database, &path, e);
    let mut lines = BufReader::with_capacity(1 << 20, file).split(b'\n');
    let (mut session, mut first_insert, mut complete, mut read, mut deferred) = (Vec::new(), None, false, 0u64, Vec::new());
    let (mut statements, mut standalone, mut created, mut estimate, mut defaults) = (Vec::new(), true, HashSet::new(), None, None);
    let (mut sequences, mut whole) = (Vec::new(), Vec::new());
    let mut one_at_a_time = std::collections::HashMap::new();
    while let Some(line) = next_line(&mut lines).await.map_err(|e| fail(&e))? {
        // The rows, or with none the objects section (a comment, so before the comments are
        // skipped): both are for after every head.
        if line.starts_with(b"INSERT INTO ") || line == objects::MARKER.as_bytes() {
            first_insert = Some(line);
            break;
        }
        read += line.len() as u64 + 1;
        // A definition with a binary column's default of raw bytes runs as the bytes it is
        // (`raw`): only its names are read, from its text with those bytes replaced (names are
        // text), and its keys are not held back (splitting it would take it as text).
        let (line, raw) = match String::from_utf8(line) {
            Ok(line) => (line, None),
            Err(e) if e.as_bytes().starts_with(b"CREATE TABLE ") => (String::from_utf8_lossy(e.as_bytes()).into_owned(), Some(e.into_bytes())),
            Err(e) => return Err(fail(&text(e.as_bytes()).unwrap_err())),
        };
        if line == END_MARKER {
            complete = true;
        }
        if let Some(rows) = line.strip_prefix(ROWS_NOTE) {
            estimate = rows.trim().parse::<u64>().ok();
        }
        if skipped(&line, zone) {
            continue;
        }
        if line.starts_with(DATABASE_DEFAULTS) {
            defaults = Some(line);
            continue;
        }
        if is_setting(line.as_bytes()) {
            // Settings after a definition would apply to the definitions after them only.
            standalone &= created.is_empty();
            session.push(line.clone());
            statements.push(line.into_bytes());
            continue;
        }
        if let Some(table) = line.strip_prefix("DROP TABLE IF EXISTS ").and_then(ident).filter(|(_, rest)| *rest == ";").map(|(t, _)| t) {
            if distinct && !created.contains(table) {
                continue;
            }
        }
        if distinct && raw.is_none() && objects::is_sequence_line(&line) {
            sequences.push(line.into_bytes());
            continue;
        }
        match indexes::defined_table(&line) {
            Some(table) if created.insert(table.to_string()) => {}
            _ => standalone = false,
        }
        if let Some(table) = indexes::auto_increment_table(&line) {
            one_at_a_time.insert(table.to_string(), tokio::sync::Mutex::new(()));
        }
        let hold_back = defer_keys && line.starts_with("CREATE TABLE ") && indexes::worth_deferring(estimate.take());
        let now = match if hold_back && raw.is_none() { indexes::split(&line) } else { None } {
            Some((now, keys)) => {
                deferred.push(keys);
                whole.push((statements.len(), line.into_bytes()));
                now.into_bytes()
            }
            None => raw.unwrap_or_else(|| line.into_bytes()),
        };
        statements.push(now);
    }
    done.fetch_add(read, Relaxed);
    let replay = Replay {
        database,
        path,
        zone,
        session,
        policy,
        deferred,
        one_at_a_time,
        as_bytes: HashSet::new(),
        stored_other_text: HashSet::new(),
        stored_text,
        bytes_still: AtomicBool::new(true),
        defaults,
        lines: tokio::sync::Mutex::new((first_insert, lines)),
        left: AtomicU64::new(bytes.saturating_sub(read)),
        complete: AtomicBool::new(complete),
    };
    Ok((replay, Head { statements, standalone: standalone && distinct, sequences, whole }))
}

/// A table a foreign key refers to, in any file of the restore, keeps its keys while it loads:
/// the key may refer to one of its plain keys (InnoDB allows a non-unique one), which InnoDB
/// needs as the referring table is created, even with `FOREIGN_KEY_CHECKS=0`. Held back, the
/// restore failed on the referring table (errno 150) when it was created after this one.
fn keep_referenced_keys(replays: &mut [Replay], heads: &mut [Head]) {
    let mut referenced = HashSet::new();
    for (r, h) in replays.iter().zip(heads.iter()) {
        let database = quote_ident(&r.database);
        // A definition need not be UTF-8 (a binary column's default is shown raw); its names are.
        for s in &h.statements {
            referenced.extend(indexes::referenced_tables(&String::from_utf8_lossy(s), &database));
        }
    }
    for (r, h) in replays.iter_mut().zip(heads.iter_mut()) {
        let database = quote_ident(&r.database);
        let mut i = 0;
        while i < r.deferred.len() {
            if referenced.contains(&(database.clone(), r.deferred[i].table.clone())) {
                let (at, whole) = h.whole.remove(i);
                h.statements[at] = whole;
                r.deferred.remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// Run the standalone heads' definitions shared out over `conns`, each connection switched to a
/// definition's file session first: the connections, and whose session each has.
async fn run_heads_shared(conns: Vec<Conn>, replays: &[Replay], heads: Vec<Head>) -> Result<(Vec<Conn>, Vec<Option<usize>>), Error> {
    let jobs: Vec<(usize, Vec<u8>)> =
        heads.into_iter().enumerate().flat_map(|(i, h)| h.statements.into_iter().filter(|s| !is_setting(s)).map(move |s| (i, s))).collect();
    let workers = conns.into_iter().map(|c| (c, None)).collect();
    let ran = share_out(workers, jobs, |(mut c, session): (Conn, Option<usize>), (i, statement): (usize, Vec<u8>)| async move {
        let r = &replays[i];
        let ran = async {
            if session != Some(i) {
                switch(&mut c, r).await?;
            }
            c.query_drop(statement.as_slice()).await.map_err(|e| fail(r, e))
        }
        .await;
        // A failed switch may have left the session half-entered: it is no file's.
        let session = if ran.is_ok() { Some(i) } else { session };
        ((c, session), ran)
    })
    .await?;
    Ok(ran.into_iter().unzip())
}

/// A head's session setting (as opposed to a definition).
fn is_setting(statement: &[u8]) -> bool {
    statement.starts_with(b"/*!") || statement.starts_with(b"SET ")
}

/// A line that is not run: blank, a comment, or the header's UTC setting in a dump read in the
/// server's zone (which replays in it: its header's UTC was wrong).
fn skipped(line: &str, zone: Zone) -> bool {
    line.is_empty() || line.starts_with("--") || (zone == Zone::Server && line == SET_UTC)
}

/// Point `c`'s session at `r`'s database and settings.
async fn switch(c: &mut Conn, r: &Replay) -> Result<(), Error> {
    enter(c, r, &r.session).await
}

/// Point `c`'s session at `r`'s database and its zone, then run `statements` there in order (the
/// file's settings, or its whole head).
async fn enter(c: &mut Conn, r: &Replay, statements: &[impl AsRef<[u8]>]) -> Result<(), Error> {
    c.query_drop(format!("USE {}", quote_ident(&r.database))).await.map_err(|e| db_err(&r.database, e))?;
    // A file read in the server's zone has no zone setting of its own: undo another file's.
    c.query_drop("SET SESSION time_zone = @@GLOBAL.time_zone").await.map_err(|e| fail(r, e))?;
    for s in statements {
        c.query_drop(s.as_ref()).await.map_err(|e| fail(r, e))?;
    }
    Ok(())
}

/// One worker: statements from whichever file [`Shared::pick`] gives, until all are done or
/// another worker failed. `session` is the file whose settings `c` has, if any.
async fn work(mut c: Conn, session: Option<usize>, shared: Arc<Shared>) -> Result<Conn, Error> {
    let worked = work_on(&mut c, session, &shared).await;
    if worked.is_err() {
        shared.stop.store(true, Relaxed);
    }
    worked.map(|()| c)
}

/// A statement taken from a file: rows, already in the form they travel in, or any other line.
enum Taken {
    Rows(load::Rows, load::Converted),
    Other(Vec<u8>),
}

/// A statement taken from file `.0`, and its length in the file.
type Next = (usize, u64, Taken);

/// [`work`]'s loop. While one statement of rows runs, the worker's next statement is taken and
/// its rows converted on a blocking thread (parsing the dump's literals, building the LOAD DATA
/// fields or the bound values), so the server gets the next as soon as it is done with the last
/// instead of waiting for the client between the two. Measured on the bench's `wide` shape
/// (rows of 16–32 KB, bound), where that was about a tenth of each worker's time: 6–10 % less
/// (medians 2.32 s against 2.48 s over 6 alternating pairs); on the other shapes the server's
/// work is most of the time, and they moved within the noise.
async fn work_on(c: &mut Conn, mut session: Option<usize>, shared: &Arc<Shared>) -> Result<(), Error> {
    let mut current: Option<usize> = None;
    let mut ahead: Option<tokio::task::JoinHandle<Next>> = None;
    while !shared.stop.load(Relaxed) {
        let (i, n, taken) = match ahead.take() {
            Some(ready) => ready.await.map_err(|e| failed(format!("restore worker: {e}")))?,
            None => match take_next(shared, &mut current).await? {
                Some((i, line)) => prepare(shared, i, line),
                None => break,
            },
        };
        if let Taken::Rows(..) = taken {
            if let Some((j, line)) = take_next(shared, &mut current).await? {
                let shared = shared.clone();
                ahead = Some(tokio::task::spawn_blocking(move || prepare(&shared, j, line)));
            }
        }
        let r = &shared.replays[i];
        match taken {
            Taken::Rows(rows, ready) => {
                if session != Some(i) {
                    switch(c, r).await?;
                    session = Some(i);
                }
                let _turn = match r.turn(&rows) {
                    Some(turn) => Some(turn.lock().await),
                    None => None,
                };
                load::insert(c, rows, &r.policy, ready).await.map_err(|e| fail(r, e))?;
            }
            // After the rows: the footer's settings, or statements a hand-edited file added.
            Taken::Other(line) => {
                let other = text(&line).map_err(|e| fail(r, e))?;
                if other == END_MARKER {
                    r.complete.store(true, Relaxed);
                }
                if !skipped(other, r.zone) {
                    if session != Some(i) {
                        switch(c, r).await?;
                        session = Some(i);
                    }
                    c.query_drop(other).await.map_err(|e| fail(r, e))?;
                }
            }
        }
        let d = shared.done.fetch_add(n, Relaxed) + n;
        shared.reporter.progress(d.min(shared.total), shared.total, crate::report::Unit::Bytes, &shared.label);
    }
    Ok(())
}

/// The next line for a worker whose statements were from `current` (which follows it): from the
/// file [`Shared::pick`] gives, or None when every file is done.
async fn take_next(shared: &Shared, current: &mut Option<usize>) -> Result<Option<(usize, Vec<u8>)>, Error> {
    while let Some(i) = shared.pick(*current).filter(|_| !shared.stop.load(Relaxed)) {
        *current = Some(i);
        if let Some(line) = take_line(shared, i).await? {
            return Ok(Some((i, line)));
        }
    }
    *current = None;
    Ok(None)
}

/// File `i`'s next line, counted as handed out; None once the file is exhausted: at its end, or
/// at its objects section, which waits for every row of every file (see [`tails`]).
///
/// Decided here, in the file's order, under its lock:
/// - a line among the rows that is neither an INSERT nor a setting (a hand-edited file's) may
///   change a table: from there on no more fields are read as bytes;
/// - a statement that cannot be sent (over the server's packet limit, without LOAD DATA) stops
///   every worker before any statement after it is handed out.
///
/// After another worker failed, no more lines are handed out.
async fn take_line(shared: &Shared, i: usize) -> Result<Option<Vec<u8>>, Error> {
    let r = &shared.replays[i];
    let mut lines = r.lines.lock().await;
    if shared.stop.load(Relaxed) {
        return Ok(None);
    }
    let line = match lines.0.take() {
        Some(line) => Some(line),
        None => next_line(&mut lines.1).await.map_err(|e| fail(r, e))?,
    };
    let line = match line {
        // The objects section stays for [`tails`], which reads on from its marker.
        Some(line) if line == objects::MARKER.as_bytes() => {
            lines.0 = Some(line);
            None
        }
        Some(line) if line.starts_with(b"INSERT INTO ") => match r.policy.over_the_packet(&line).filter(|_| !r.policy.loads_data()) {
            Some(too_big) => {
                shared.stop.store(true, Relaxed);
                return Err(fail(r, too_big));
            }
            None => Some(line),
        },
        Some(line) => {
            if std::str::from_utf8(&line).map_or(true, |t| !skipped(t, r.zone) && !is_setting(t.as_bytes())) {
                r.bytes_still.store(false, Relaxed);
            }
            Some(line)
        }
        None => None,
    };
    drop(lines);
    let Some(line) = line else {
        shared.exhausted(i);
        return Ok(None);
    };
    let n = line.len() as u64 + 1;
    r.left.fetch_sub(n.min(r.left.load(Relaxed)), Relaxed);
    Ok(Some(line))
}

/// A line of file `i` as the statement to run: an INSERT's rows in the form they travel in,
/// converted; anything else as it is.
fn prepare(shared: &Shared, i: usize, line: Vec<u8>) -> Next {
    let n = line.len() as u64 + 1;
    if !line.starts_with(b"INSERT INTO ") {
        return (i, n, Taken::Other(line));
    }
    let r = &shared.replays[i];
    let rows = r.policy.rows(line);
    let on = |tables: &HashSet<String>| rows.table().is_some_and(|t| tables.contains(t));
    let bytes = r.bytes_still.load(Relaxed) && on(&r.as_bytes);
    // Stored bytes of other text would be converted as utf8mb4 fields.
    let convert_ok = !on(&r.stored_other_text);
    let rows = rows.fields_as_bytes(bytes).load_data(bytes || convert_ok);
    let ready = rows.convert(&r.policy);
    (i, n, Taken::Rows(rows, ready))
}

/// The objects section of each file (views, triggers, routines, events), once every row of every
/// file is in: a trigger created earlier would fire on the restored rows.
///
/// An object may refer to one of another database restored in the same call: a view reading a
/// view, or calling a function, of a database whose section comes later (the server checks both
/// as it creates the view), while that database may refer back to this one. So a statement the
/// server refuses for something missing is passed over, and each section that had one runs again
/// once the others have run, as long as each round has fewer such refusals; running a section
/// again is safe, since each object's statement is preceded by its `DROP … IF EXISTS`.
///
/// Enabled events are created disabled, and returned per replay ([`objects::hold`]).
async fn tails(c: &mut Conn, replays: &[Replay]) -> Result<Vec<Vec<objects::HeldEvent>>, Error> {
    let mut sections = Vec::new();
    for r in replays {
        sections.push(read_tail(r).await?);
    }
    let mut held = vec![Vec::new(); replays.len()];
    let mut left: Vec<usize> = (0..replays.len()).filter(|&i| !sections[i].is_empty()).collect();
    let mut missing_before = usize::MAX;
    while !left.is_empty() {
        let (mut again, mut missing, mut first) = (Vec::new(), 0, None);
        for &i in &left {
            if let Some((n, e)) = run_tail(c, &replays[i], &sections[i], &mut held[i]).await? {
                again.push(i);
                missing += n;
                first.get_or_insert(e);
            }
        }
        if missing >= missing_before {
            return Err(first.expect("a statement was refused"));
        }
        missing_before = missing;
        left = again;
    }
    Ok(held)
}

/// The statements of `r`'s objects section, split as the stock client splits them
/// (`DELIMITER`); none when the file has no such section.
async fn read_tail(r: &Replay) -> Result<Vec<Vec<u8>>, Error> {
    let mut l = r.lines.lock().await;
    if l.0.take().is_none() {
        return Ok(Vec::new());
    }
    let mut statements = objects::Statements::default();
    statements.line(objects::MARKER.as_bytes());
    let mut out = Vec::new();
    // As bytes: a definition need not be text (see [`objects::DbObject::create`]), and each
    // line keeps any `\r` (a body's own, see [`objects::Statements`]).
    while let Some(line) = l.1.next_segment().await.map_err(|e| fail(r, e))? {
        if line.strip_suffix(b"\r").unwrap_or(&line) == END_MARKER.as_bytes() {
            r.complete.store(true, Relaxed);
        }
        out.extend(statements.line(&line));
    }
    if statements.unfinished() {
        return Err(fail(r, "the objects section ends in the middle of a statement"));
    }
    Ok(out)
}

/// Run one file's objects section in its session. A statement the server refuses for something
/// missing ([`refers_to_what_is_missing`]) is passed over: how many were, and the first one's
/// error. Any other error stops it. An enabled event is created disabled and added to `held`.
async fn run_tail(c: &mut Conn, r: &Replay, statements: &[Vec<u8>], held: &mut Vec<objects::HeldEvent>) -> Result<Option<(usize, Error)>, Error> {
    switch(c, r).await?;
    let mut missing: Option<(usize, Error)> = None;
    for stmt in statements {
        let disabled = objects::hold(stmt, held);
        match c.query_drop(disabled.as_deref().unwrap_or(stmt)).await {
            Ok(()) => {}
            Err(e) if refers_to_what_is_missing(&e) => match &mut missing {
                Some((n, _)) => *n += 1,
                None => missing = Some((1, fail(r, e))),
            },
            Err(e) => return Err(fail(r, e)),
        }
    }
    Ok(missing)
}

/// The server refused a statement for want of a table, view or function (1146, 1305), or for a
/// view that refers to one that is missing (1356).
fn refers_to_what_is_missing(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [1146, 1305, 1356].contains(&s.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_columns_that_take_a_binary_field_as_their_text_load_as_bytes() {
        for (charset, data_type) in [("utf8mb4", "varchar"), ("utf8mb4", "enum"), ("", "int"), ("", "datetime"), ("", "longblob"), ("", "point"), ("", "bit")] {
            assert!(reads_as_bytes(charset, data_type, false), "{charset} {data_type}");
            assert!(reads_as_bytes(charset, data_type, true), "{charset} {data_type}");
        }
        // Converted from utf8mb4 in an earlier version's dump; as stored in this version's.
        for charset in ["latin1", "utf8mb3", "gbk"] {
            assert!(!reads_as_bytes(charset, "varchar", false) && reads_as_bytes(charset, "varchar", true), "{charset}");
        }
        // A binary string is their raw bytes, not their text; and a type not known here.
        for data_type in ["inet4", "inet6", "uuid", "INET6", "vector"] {
            assert!(!reads_as_bytes("", data_type, true), "{data_type}");
        }
    }

    /// The head of `text` as [`read_head`] reads it (LOAD DATA and key deferral on).
    async fn head_of(text: impl AsRef<[u8]>, distinct: bool) -> (Replay, Head) {
        let text = text.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sql");
        std::fs::write(&path, text).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let source = Source { database: "db".into(), path, file, zone: Zone::Utc, stored_text: true, bytes: text.len() as u64 };
        read_head(source, load::Policy::new(load::Forms { load_data: true, bind: true, bytes: true }, Some(16 << 20)), true, distinct, &AtomicU64::new(0))
            .await
            .unwrap()
    }

    const KEYED: &str = "(`id` int(11) NOT NULL, `name` varchar(64) DEFAULT NULL, PRIMARY KEY (`id`), KEY `name` (`name`)) ENGINE=InnoDB";

    #[tokio::test]
    async fn an_opshost_head_runs_anywhere_without_its_drops_and_small_tables_keep_their_keys() {
        let text = format!(
            "-- opshost dump of database db\n/*!40101 SET NAMES utf8mb4 */;\n{DATABASE_DEFAULTS}latin1 COLLATE latin1_bin;\n{ROWS_NOTE}20000\nDROP TABLE IF EXISTS `big`;\nCREATE TABLE `big` {KEYED};\n\
             {ROWS_NOTE}40\nDROP TABLE IF EXISTS `small`;\nCREATE TABLE `small` {KEYED};\nINSERT INTO `small` VALUES (1,'a');\n{END_MARKER}\n"
        );
        let (replay, head) = head_of(&text, true).await;
        assert!(head.standalone);
        let statements: Vec<String> = head.statements.iter().map(|s| String::from_utf8(s.clone()).unwrap()).collect();
        assert_eq!(
            statements,
            [
                "/*!40101 SET NAMES utf8mb4 */;".to_string(),
                "CREATE TABLE `big` (`id` int(11) NOT NULL, `name` varchar(64) DEFAULT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;".to_string(),
                format!("CREATE TABLE `small` {KEYED};"),
            ]
        );
        assert_eq!(replay.deferred.len(), 1);
        assert_eq!(replay.deferred[0].table, "`big`");
        // The database's defaults run once, before the head, not with every switch to the file.
        assert_eq!(replay.defaults.as_deref(), Some("ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_bin;"));
        assert!(!replay.session.iter().any(|s| s.starts_with("ALTER")));
        assert_eq!(replay.lines.lock().await.0.as_deref(), Some(&b"INSERT INTO `small` VALUES (1,'a');"[..]));
    }

    #[tokio::test]
    async fn a_definition_of_raw_bytes_runs_as_it_is_and_nothing_else_may_be_other_than_text() {
        // MariaDB shows a binary column's default of 0xFF00 as its raw bytes.
        let mut text = format!("{ROWS_NOTE}20000\nDROP TABLE IF EXISTS `raw`;\n").into_bytes();
        let create = [
            &b"CREATE TABLE `raw` (`id` int(11) NOT NULL AUTO_INCREMENT, `b` varbinary(4) DEFAULT '"[..],
            b"\xff\\0",
            b"', KEY `b` (`b`), PRIMARY KEY (`id`)) ENGINE=InnoDB;",
        ]
        .concat();
        text.extend_from_slice(&create);
        text.extend_from_slice(format!("\n{ROWS_NOTE}40\nCREATE TABLE `plain` {KEYED};\nINSERT INTO `raw` VALUES (1,DEFAULT);\n").as_bytes());
        let (replay, head) = head_of(&text, true).await;
        assert!(head.standalone);
        assert_eq!(head.statements, [create, format!("CREATE TABLE `plain` {KEYED};").into_bytes()], "as it is, its keys in place");
        assert!(replay.deferred.is_empty(), "20 000 rows, but its keys are not held back");
        assert!(replay.one_at_a_time.contains_key("`raw`"));
        // Any other line of bytes that are not text is refused, naming the file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sql");
        std::fs::write(&path, b"SET @x = '\xff';\n").unwrap();
        let source = Source {
            database: "db".into(),
            path: path.clone(),
            file: tokio::fs::File::open(&path).await.unwrap(),
            zone: Zone::Utc,
            stored_text: true,
            bytes: 16,
        };
        let refused =
            read_head(source, load::Policy::new(load::Forms { load_data: true, bind: true, bytes: true }, None), true, true, &AtomicU64::new(0)).await;
        assert!(matches!(&refused, Err(e) if e.message().contains("not UTF-8") && e.message().contains("db.sql")), "{:?}", refused.err());
    }

    #[tokio::test]
    async fn a_head_edited_by_hand_or_shared_by_two_files_runs_in_order_as_it_is() {
        // A setting between definitions applies to the later ones only.
        let text = format!("CREATE TABLE `a` {KEYED};\nSET SESSION sql_mode = '';\nCREATE TABLE `b` {KEYED};\n{END_MARKER}\n");
        let (replay, head) = head_of(&text, true).await;
        assert!(!head.standalone);
        assert_eq!(head.statements.len(), 3);
        assert_eq!(replay.deferred.len(), 2, "a dump without estimates holds back as before");
        // Dropping a table it created, or creating one from another, is order too.
        for text in [format!("CREATE TABLE `a` {KEYED};\nDROP TABLE IF EXISTS `a`;\n"), "CREATE TABLE `b` LIKE `a`;\n".to_string()] {
            let (_, head) = head_of(&text, true).await;
            assert!(!head.standalone, "{text}");
        }
        // Another file into the same database: its DROPs are kept, in order.
        let text = format!("DROP TABLE IF EXISTS `a`;\nCREATE TABLE `a` {KEYED};\n");
        let (_, head) = head_of(&text, false).await;
        assert!(!head.standalone);
        assert_eq!(head.statements[0], b"DROP TABLE IF EXISTS `a`;");
    }

    #[tokio::test]
    async fn rows_into_an_auto_increment_table_go_one_statement_at_a_time_unless_bound() {
        let text = format!(
            "CREATE TABLE `beats` (`id` bigint(20) NOT NULL AUTO_INCREMENT, `node` varchar(64) DEFAULT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB AUTO_INCREMENT=7;\n\
             CREATE TABLE `plain` {KEYED} AUTO_INCREMENT=3 COMMENT='AUTO_INCREMENT';\n{END_MARKER}\n"
        );
        let (replay, _) = head_of(&text, true).await;
        let rows = |stmt: &[u8]| replay.policy.rows(stmt.to_vec());
        let narrow = rows(b"INSERT INTO `beats` (`id`,`node`) VALUES (1,'10.0.0.1'),(2,'10.0.0.2');");
        assert!(replay.turn(&narrow).is_some());
        // The same table, whichever form its rows take, shares one turn.
        let other = rows(b"INSERT INTO `beats` VALUES (3,'10.0.0.3');");
        assert!(std::ptr::eq(replay.turn(&narrow).unwrap(), replay.turn(&other).unwrap()));
        // No AUTO_INCREMENT column (the table option and a comment do not make one).
        assert!(replay.turn(&rows(b"INSERT INTO `plain` (`id`,`name`) VALUES (1,'a');")).is_none());
        // Rows of long values go bound: an INSERT, which InnoDB lets two workers run side by side.
        let long = rows(format!("INSERT INTO `beats` (`id`,`node`) VALUES (1,'{}');", "x".repeat(4096)).as_bytes());
        assert!(long.bound());
        assert!(replay.turn(&long).is_none());
    }

    #[test]
    fn workers_spread_over_the_files_then_share_the_biggest_left() {
        // rm, cm, cm_hb: 190, 150 and 250 MB.
        let left = [190, 150, 250];
        let mut s = Schedule { workers_on: vec![0; 3], exhausted: vec![false; 3] };
        let take = |s: &mut Schedule, current: Option<usize>| {
            let c = choose(s, &left, current);
            if c != current {
                if let Some(i) = current {
                    s.workers_on[i] -= 1;
                }
                if let Some(i) = c {
                    s.workers_on[i] += 1;
                }
            }
            c
        };
        // Two workers start: the heartbeat file, then rm; each stays while alone on it.
        assert_eq!(take(&mut s, None), Some(2));
        assert_eq!(take(&mut s, None), Some(0));
        assert_eq!(take(&mut s, Some(2)), Some(2));
        assert_eq!(take(&mut s, Some(0)), Some(0));
        // rm is done: its worker goes to cm, the one file nobody is on.
        s.exhausted[0] = true;
        assert_eq!(take(&mut s, Some(0)), Some(1));
        // cm is done too: it joins the heartbeat file, and both stay there.
        s.exhausted[1] = true;
        assert_eq!(take(&mut s, Some(1)), Some(2));
        assert_eq!(s.workers_on, [0, 0, 2]);
        assert_eq!(take(&mut s, Some(2)), Some(2));
        s.exhausted[2] = true;
        assert_eq!(take(&mut s, Some(2)), None);
        assert_eq!(s.workers_on, [0, 0, 1], "one worker still counted there until it asks");
        assert_eq!(take(&mut s, Some(2)), None);
    }

    /// A worker alone on its file moves to a file nobody is on once that one has more than
    /// [`OVERTAKE`] bytes more left: the files' remaining bytes stay level, and they end
    /// together (rows into an AUTO_INCREMENT table go one statement at a time, so a file left
    /// last, alone, would load on one connection).
    #[test]
    fn a_worker_alone_moves_to_a_file_with_much_more_left() {
        const MB: u64 = 1 << 20;
        let mut s = Schedule { workers_on: vec![0; 3], exhausted: vec![false; 3] };
        let mut take = |left: [u64; 3], current: Option<usize>| {
            let c = choose(&s, &left.map(|l| l * MB), current);
            if c != current {
                if let Some(i) = current {
                    s.workers_on[i] -= 1;
                }
                if let Some(i) = c {
                    s.workers_on[i] += 1;
                }
            }
            c
        };
        // rm, cm, cm_hb: 128, 68 and 75 MB; the two biggest first.
        assert_eq!(take([128, 68, 75], None), Some(0));
        assert_eq!(take([128, 68, 75], None), Some(2));
        // cm_hb's worker stays while cm has no more than 8 MB more left, then moves there.
        assert_eq!(take([120, 68, 62], Some(2)), Some(2));
        assert_eq!(take([118, 68, 59], Some(2)), Some(1));
        // rm's worker stays: cm has a worker now, and cm_hb has less left than rm.
        assert_eq!(take([100, 66, 59], Some(0)), Some(0));
        // Once rm has less left than cm_hb by more than 8 MB, rm's worker moves there.
        assert_eq!(take([52, 55, 59], Some(0)), Some(0));
        assert_eq!(take([52, 55, 59], Some(1)), Some(1));
        assert_eq!(take([40, 50, 59], Some(0)), Some(2));
        assert_eq!(s.workers_on, [0, 1, 1]);
    }
}
