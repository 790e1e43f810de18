//! What a database holds besides its tables: views (in dependency order), triggers, stored
//! procedures and functions, events, sequences (MariaDB). Read with the `SHOW CREATE` statements
//! before the dump's snapshot, written after every row in a section the stock client replays
//! (`DELIMITER`, each object's own `sql_mode`, connection collation and client character set),
//! replayed last by opshost's restore (so no trigger fires on restored rows), and part of the
//! content checksum: a restore that lost an object fails its verification. Sequences are the
//! exception: a table's `DEFAULT NEXTVAL(s)` needs its sequence first, so they head the dump,
//! each with the `SETVAL` that puts it where it stood. An enabled event is created disabled by
//! opshost's restore and enabled once the restore is verified ([`hold`]), so that the server's
//! scheduler cannot run it in between.
//!
//! A definition is kept as the bytes the server shows: MariaDB shows a view's string literal
//! with a character set introducer as its raw bytes (`_latin1'\xE9'`), which are not UTF-8. Read
//! as text they came back changed, and the checksum, reading them the same way on both sides,
//! could not tell; as bytes they are written, replayed and hashed as they are.

use super::codec::{db_err, is_plain_name, quote_ident};
use super::format::{push_definition, DUMP_SQL_MODE};
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use crate::capabilities::sql::checksum::{RowHash, TableHasher};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

/// The line that opens a dump's objects section; opshost's restore runs what follows it only
/// once every row is in.
pub const MARKER: &str = "-- opshost objects: views, triggers, routines, events (after every row)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    View,
    Trigger,
    Procedure,
    Function,
    Event,
    Sequence,
}

impl ObjectKind {
    fn word(self) -> &'static str {
        match self {
            ObjectKind::View => "VIEW",
            ObjectKind::Trigger => "TRIGGER",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Event => "EVENT",
            ObjectKind::Sequence => "SEQUENCE",
        }
    }
}

/// One object and the statement that re-creates it, as the server shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DbObject {
    pub kind: ObjectKind,
    pub name: String,
    /// As the server shows it: bytes, text but for a literal of another character set.
    pub create: Vec<u8>,
    /// The `sql_mode` it was created under (not for views, whose text the server canonicalises).
    pub sql_mode: Option<String>,
    /// An event's time zone.
    pub time_zone: Option<String>,
    /// The statement that puts the object back where it stood: a sequence's `SETVAL` (its next
    /// value not yet handed out, and its cycle), as the stock dump writes it.
    pub state: Option<String>,
    /// The connection's collation it was created under (views, triggers, routines, events): the
    /// object keeps it, and its string literals compare by it.
    pub collation: Option<String>,
    /// The client character set it was created under (views, triggers, routines, events), which
    /// the server keeps beside it (`CHARACTER_SET_CLIENT` in information_schema).
    pub client_charset: Option<String>,
    /// A trigger's, routine's or event's database collation (`Database Collation` of `SHOW
    /// CREATE`, which sets the character set of its parameters and variables declared without
    /// one) with the database's default, when the two differ: one created before `ALTER DATABASE`
    /// changed the default keeps the old one, and a replay under the new default would not. The
    /// dump creates it under its own ([`section`]) and the checksum counts it ([`digests`]).
    pub database_collation: Option<(String, String)>,
    /// What the server says of a view that no longer works (it refers to a table, column or
    /// function that is gone): no server would create it again, so a backup refuses it
    /// ([`refuse_broken`]) while a checksum still counts it.
    pub broken: Option<String>,
}

/// Column `i` of a `SHOW CREATE` row as text (None for NULL: no privilege to see it): a setting
/// shown beside the definition (`sql_mode`, a time zone, a collation), ASCII.
fn text(row: &Row, i: usize) -> Option<String> {
    row.as_ref(i).and_then(|v| match v {
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    })
}

/// A trigger or routine from its `SHOW CREATE` row, which both lay out alike: name, `sql_mode`,
/// definition, client character set, connection collation.
fn program(kind: ObjectKind, name: String, create: Vec<u8>, row: &Row, default: Option<&str>) -> DbObject {
    DbObject {
        kind,
        name,
        create,
        sql_mode: text(row, 1),
        time_zone: None,
        state: None,
        collation: text(row, 4),
        client_charset: text(row, 3),
        database_collation: own_database_collation(text(row, 5), default),
        broken: None,
    }
}

/// An object's database collation beside the database's `default`, when both are known, plain
/// names, and differ.
fn own_database_collation(own: Option<String>, default: Option<&str>) -> Option<(String, String)> {
    match (own, default) {
        (Some(own), Some(default)) if own != default && is_plain_name(&own) && is_plain_name(default) => Some((own, default.to_string())),
        _ => None,
    }
}

/// Every object of `database` in the order a replay must create them.
pub async fn read(c: &mut Conn, database: &str) -> Result<Vec<DbObject>, Error> {
    let default: Option<String> = c
        .exec_first("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    read_beside(c, database, default.as_deref()).await
}

/// [`read`], the database's default collation already known (a dump's description reads it
/// with the rest of the database's defaults).
pub async fn read_beside(c: &mut Conn, database: &str, default: Option<&str>) -> Result<Vec<DbObject>, Error> {
    let db = quote_ident(database);
    let mut out = Vec::new();
    let unreadable = |kind: &str, name: &str| {
        // What lets an account read another definer's object, per kind.
        let grant = match kind {
            "view" => "SHOW VIEW and SELECT on the database",
            "trigger" => "TRIGGER on the database",
            "event" => "EVENT on the database",
            "sequence" => "SELECT on the database",
            _ => "SELECT on mysql.proc (MariaDB; SHOW CREATE ROUTINE from 11.3) or SHOW_ROUTINE (MySQL 8)",
        };
        failed(format!(
            "{kind} {database}.{name}: the MetaDB account cannot read its definition (SHOW CREATE gave none), so a backup could not bring it back: grant the account {grant}, or drop the object"
        ))
    };
    // A definition as the bytes the server shows (NULL: the account may not see it).
    let definition = |row: Option<&Row>, i: usize, kind: &str, name: &str| -> Result<Vec<u8>, Error> {
        match row.and_then(|r| r.as_ref(i)) {
            Some(mysql_async::Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(unreadable(kind, name)),
        }
    };
    let views: Vec<String> = c
        .exec("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, CAST(TABLE_NAME AS BINARY)", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    let mut view_objects = Vec::new();
    for v in views {
        let row: Option<Row> = c.query_first(format!("SHOW CREATE VIEW {db}.{}", quote_ident(&v))).await.map_err(|e| db_err(database, e))?;
        let create = definition(row.as_ref(), 1, "view", &v)?;
        let collation = row.as_ref().and_then(|r| text(r, 3));
        // MariaDB and MySQL show a view that refers to what is gone, with warning 1356.
        let broken = match c.get_warnings() {
            0 => None,
            _ => {
                let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").await.map_err(|e| db_err(database, e))?;
                warnings.into_iter().find(|w| w.1 == 1356).map(|w| w.2)
            }
        };
        view_objects.push(DbObject {
            kind: ObjectKind::View,
            name: v,
            create,
            sql_mode: None,
            time_zone: None,
            state: None,
            collation,
            client_charset: row.as_ref().and_then(|r| text(r, 2)),
            database_collation: None,
            broken,
        });
    }
    out.extend(in_dependency_order(view_objects));
    let triggers: Vec<String> = c
        .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, CAST(EVENT_OBJECT_TABLE AS BINARY), ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    for t in triggers {
        let row: Option<Row> = c.query_first(format!("SHOW CREATE TRIGGER {db}.{}", quote_ident(&t))).await.map_err(|e| db_err(database, e))?;
        let create = definition(row.as_ref(), 2, "trigger", &t)?;
        let r = row.ok_or_else(|| unreadable("trigger", &t))?;
        out.push(program(ObjectKind::Trigger, t, create, &r, default));
    }
    let routines: Vec<(String, String)> = c
        .exec("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    for (kind, name) in routines {
        let kind = match kind.as_str() {
            "PROCEDURE" => ObjectKind::Procedure,
            "FUNCTION" => ObjectKind::Function,
            other => {
                return Err(failed(format!(
                    "{database}.{name} is a {other}, which opshost cannot back up yet: drop it or back it up by hand before the upgrade"
                )))
            }
        };
        let row: Option<Row> = c.query_first(format!("SHOW CREATE {} {db}.{}", kind.word(), quote_ident(&name))).await.map_err(|e| db_err(database, e))?;
        let create = definition(row.as_ref(), 2, kind.word(), &name)?;
        let r = row.ok_or_else(|| unreadable(kind.word(), &name))?;
        out.push(program(kind, name, create, &r, default));
    }
    let events: Vec<String> = c
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    for e in events {
        let row: Option<Row> = c.query_first(format!("SHOW CREATE EVENT {db}.{}", quote_ident(&e))).await.map_err(|er| db_err(database, er))?;
        let create = definition(row.as_ref(), 3, "event", &e)?;
        let r = row.ok_or_else(|| unreadable("event", &e))?;
        out.push(DbObject {
            kind: ObjectKind::Event,
            name: e,
            create,
            sql_mode: text(&r, 1),
            time_zone: text(&r, 2),
            state: None,
            collation: text(&r, 5),
            client_charset: text(&r, 4),
            database_collation: own_database_collation(text(&r, 6), default),
            broken: None,
        });
    }
    // Last, so that the checksum of a database without any is what earlier versions recorded.
    let sequences: Vec<String> = c
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME, CAST(TABLE_NAME AS BINARY)", (database,))
        .await
        .map_err(|e| db_err(database, e))?;
    for q in sequences {
        let name = format!("{db}.{}", quote_ident(&q));
        let row: Option<Row> = c.query_first(format!("SHOW CREATE SEQUENCE {name}")).await.map_err(|e| db_err(database, e))?;
        let create = definition(row.as_ref(), 1, "sequence", &q)?;
        let stood: Option<(i64, i64)> =
            c.query_first(format!("SELECT next_not_cached_value, cycle_count FROM {name}")).await.map_err(|e| db_err(database, e))?;
        let (next, round) = stood.ok_or_else(|| unreadable("sequence", &q))?;
        let state = Some(format!("DO SETVAL({}, {next}, 0, {round})", quote_ident(&q)));
        out.push(DbObject {
            kind: ObjectKind::Sequence,
            name: q,
            create,
            sql_mode: None,
            time_zone: None,
            state,
            collation: None,
            client_charset: None,
            database_collation: None,
            broken: None,
        });
    }
    Ok(out)
}

/// A backup of `database` is refused when one of its views no longer works: the server checks
/// what a view refers to as it creates it, so the restore of a rollback would fail on it in the
/// middle of the outage (`mariadb-dump` stops on such a view too).
pub fn refuse_broken(database: &str, objects: &[DbObject]) -> Result<(), Error> {
    match objects.iter().find_map(|o| Some((o, o.broken.as_deref()?))) {
        None => Ok(()),
        Some((o, why)) => Err(failed(format!(
            "view {database}.{} no longer works (the server says: {why}), and no restore could create it again, since the server checks what a view refers to as it creates it: drop the view, or create again what it refers to, before the upgrade",
            o.name
        ))),
    }
}

/// The objects of `database` defined by another account than `current` (the connected one, as
/// `CURRENT_USER()` gives it), as (object, definer) pairs, when that account may not create
/// objects for others: the restore of a rollback would fail on them in the middle of the outage.
/// Empty when there are none, or the account holds SUPER, SET USER (MariaDB) or SET_USER_ID /
/// SET_ANY_DEFINER (MySQL 8).
pub async fn definers_it_cannot_restore(c: &mut Conn, database: &str, current: &str) -> Result<Vec<(String, String)>, Error> {
    let defined: Vec<(String, String)> = c
        .exec(
            "SELECT DEFINER, CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? \
             UNION ALL SELECT DEFINER, CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
             UNION ALL SELECT DEFINER, CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? \
             UNION ALL SELECT DEFINER, CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
            (database, database, database, database),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    let foreign: Vec<(String, String)> = defined.into_iter().filter(|(definer, _)| *definer != current).map(|(definer, object)| (object, definer)).collect();
    if foreign.is_empty() {
        return Ok(foreign);
    }
    let may = holds_any(c, database, current, "'SUPER', 'SET USER', 'SET_USER_ID', 'SET_ANY_DEFINER'").await?;
    Ok(if may { Vec::new() } else { foreign })
}

/// Whether `account` (as `CURRENT_USER()` gives it) holds one of `privileges` (quoted, comma
/// separated) server-wide: its own, as `information_schema.USER_PRIVILEGES` shows them, or its
/// session's role's (a default role, which every connection of the account has), which only
/// `SHOW GRANTS` shows.
async fn holds_any(c: &mut Conn, database: &str, account: &str, privileges: &str) -> Result<bool, Error> {
    let (user, host) = account.rsplit_once('@').unwrap_or((account, "%"));
    let held: Option<String> = c
        .exec_first(
            format!("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE IN ({privileges}) LIMIT 1"),
            (format!("'{user}'@'{host}'"),),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    if held.is_some() {
        return Ok(true);
    }
    let grants: Vec<String> = c.query("SHOW GRANTS").await.unwrap_or_default();
    let wanted: Vec<&str> = privileges.split(',').map(|p| p.trim().trim_matches('\'')).collect();
    Ok(grants.iter().any(|g| server_wide(g).is_some_and(|held| held.iter().any(|p| *p == "ALL PRIVILEGES" || wanted.contains(p)))))
}

/// The privileges a `SHOW GRANTS` line grants on `*.*`: `GRANT SUPER, RELOAD ON *.* TO …`;
/// None for any other line (a database's grants, a role granted).
fn server_wide(grant: &str) -> Option<Vec<&str>> {
    let (privileges, _) = grant.strip_prefix("GRANT ")?.split_once(" ON *.* TO ")?;
    Some(privileges.split(", ").map(str::trim).collect())
}

/// With the binary log on and `log_bin_trust_function_creators` off, a server creates a function
/// or a trigger only for an account with SUPER (error 1419), and a function declared neither
/// DETERMINISTIC, NO SQL nor READS SQL DATA for no account at all (1418): the restore a rollback
/// runs would fail on it in the middle of the outage, after the databases were dropped. The
/// account of the README's least-privilege setup has no SUPER, and production MetaDBs usually
/// keep a binary log. `current`: the connected account, as `CURRENT_USER()` gives it. Err naming
/// the object and the fix.
pub async fn refuse_unrestorable_under_binlog(c: &mut Conn, database: &str, objects: &[DbObject], current: &str) -> Result<(), Error> {
    let programs = || objects.iter().filter(|o| matches!(o.kind, ObjectKind::Function | ObjectKind::Trigger));
    let Some(first) = programs().next() else { return Ok(()) };
    // A server without these variables (OceanBase) has no such rule.
    let logged: Option<(u64, u64)> = c.query_first("SELECT @@global.log_bin, @@global.log_bin_trust_function_creators").await.ok().flatten();
    if logged != Some((1, 0)) {
        return Ok(());
    }
    let trust = "SET GLOBAL log_bin_trust_function_creators = 1 for the upgrade and until its rollback window has passed";
    let undeclared: Option<String> = c
        .exec_first(
            "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION' \
             AND IS_DETERMINISTIC = 'NO' AND SQL_DATA_ACCESS IN ('CONTAINS SQL', 'MODIFIES SQL DATA') ORDER BY ROUTINE_NAME LIMIT 1",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    if let Some(f) = undeclared {
        return Err(failed(format!(
            "function {database}.{f} is declared neither DETERMINISTIC, NO SQL nor READS SQL DATA, and the MetaDB keeps a binary log with log_bin_trust_function_creators off: no account could create it again (error 1418), so the restore a rollback runs would fail on it in the middle of the outage; {trust}, or re-create the function with the declaration that fits it"
        )));
    }
    if !holds_any(c, database, current, "'SUPER'").await? {
        let more = match programs().count() {
            1 => String::new(),
            n => format!(" (and {} more functions or triggers)", n - 1),
        };
        return Err(failed(format!(
            "{} {database}.{}{more}: the MetaDB keeps a binary log with log_bin_trust_function_creators off, where only an account with SUPER may create a function or a trigger (error 1419), and the MetaDB account {current} has not, so the restore a rollback runs would fail on it in the middle of the outage; {trust}, or grant the account SUPER",
            first.kind.word().to_lowercase(),
            first.name
        )));
    }
    Ok(())
}

/// Views that select from other views come after them (the server quotes every name it refers to).
fn in_dependency_order(mut views: Vec<DbObject>) -> Vec<DbObject> {
    let mut ordered: Vec<DbObject> = Vec::new();
    while !views.is_empty() {
        let ready = views
            .iter()
            .position(|v| views.iter().all(|other| other.name == v.name || !contains(&v.create, &format!("`{}`", other.name.replace('`', "``")))))
            .unwrap_or(0);
        ordered.push(views.remove(ready));
    }
    ordered
}

/// Whether `definition` holds `text`.
fn contains(definition: &[u8], text: &str) -> bool {
    memchr::memmem::find(definition, text.as_bytes()).is_some()
}

/// A delimiter that no object's text contains.
fn delimiter(objects: &[DbObject]) -> &'static str {
    [";;", "$$", "//", "@@opshost@@"].into_iter().find(|d| objects.iter().all(|o| !contains(&o.create, d))).unwrap_or("@@opshost@@")
}

/// The lines that re-create `objects`' sequences where they stood, for the head of the dump
/// (before any table, whose defaults may call them), one statement a line.
pub fn sequences_head(objects: &[DbObject]) -> Vec<u8> {
    let mut s = Vec::new();
    for o in objects.iter().filter(|o| o.kind == ObjectKind::Sequence) {
        s.extend_from_slice(format!("DROP SEQUENCE IF EXISTS {};\n", quote_ident(&o.name)).as_bytes());
        push_definition(&mut s, &o.create);
        if let Some(state) = &o.state {
            s.extend_from_slice(format!("{state};\n").as_bytes());
        }
    }
    s
}

/// A line of [`sequences_head`]: one that makes a sequence or puts it where it stood.
pub fn is_sequence_line(line: &str) -> bool {
    ["DROP SEQUENCE IF EXISTS ", "CREATE SEQUENCE ", "DO SETVAL("].iter().any(|p| line.starts_with(p))
}

/// The dump's objects section (sequences are in the head): empty when there are none. Objects
/// are written in the order the server can create them, not the order they are read (which
/// fixes the checksum's): routines first, as a view that calls a function is refused before the
/// function exists; then views in dependency order, triggers and events, whose bodies the
/// server checks only when they run. `quoting`: the server has `sql_quote_show_create`, under
/// which each trigger is created again ([`definer_quoted`]).
pub fn section(objects: &[DbObject], quoting: bool) -> Vec<u8> {
    let mut in_creation_order: Vec<&DbObject> = objects.iter().filter(|o| o.kind != ObjectKind::Sequence).collect();
    if in_creation_order.is_empty() {
        return Vec::new();
    }
    let d = delimiter(objects);
    // Text as it is built, moved into the bytes before each definition.
    let mut out = Vec::new();
    let mut s = format!("{MARKER}\nDELIMITER {d}\n");
    in_creation_order.sort_by_key(|o| match o.kind {
        ObjectKind::Procedure | ObjectKind::Function => 0,
        ObjectKind::View => 1,
        ObjectKind::Trigger => 2,
        ObjectKind::Event | ObjectKind::Sequence => 3,
    });
    let (mut mode_set, mut quoting_set) = (false, false);
    // The dump's header sets utf8mb4 (`SET NAMES`).
    let mut current_client = "utf8mb4";
    for o in in_creation_order {
        if let Some(mode) = &o.sql_mode {
            s.push_str(&format!("SET SESSION sql_mode = '{}'{d}\n", mode.replace('\'', "''")));
            mode_set = true;
        } else if std::mem::take(&mut mode_set) {
            // A view after a routine: back to the dump's own mode, not the routine's (which may
            // parse differently, e.g. ORACLE or ANSI_QUOTES).
            s.push_str(&format!("SET SESSION sql_mode = '{DUMP_SQL_MODE}'{d}\n"));
        }
        let client = client_charset(o);
        if client != current_client {
            s.push_str(&format!("SET SESSION character_set_client = '{client}'{d}\n"));
            current_client = client;
        }
        if let Some(collation) = o.collation.as_deref().filter(|c| is_plain_name(c)) {
            s.push_str(&format!("SET SESSION collation_connection = '{collation}'{d}\n"));
        }
        if let Some(tz) = &o.time_zone {
            s.push_str(&format!("SET SESSION time_zone = '{}'{d}\n", tz.replace('\'', "''")));
        }
        if let Some(quoted) = definer_quoted(o).filter(|_| quoting) {
            s.push_str(&format!("SET SESSION sql_quote_show_create = {}{d}\n", quoted as u8));
            quoting_set = true;
        }
        s.push_str(&format!("DROP {} IF EXISTS {}{d}\n", o.kind.word(), quote_ident(&o.name)));
        // Created under its own database collation, as `mariadb-dump` does; the database's
        // default back right after.
        if let Some((own, _)) = &o.database_collation {
            s.push_str(&format!("ALTER DATABASE COLLATE {own}{d}\n"));
        }
        out.extend_from_slice(std::mem::take(&mut s).as_bytes());
        match ending_event(o) {
            Some((create, alter)) => {
                out.extend_from_slice(&create);
                out.extend_from_slice(format!("{d}\n").as_bytes());
                out.extend_from_slice(&alter);
            }
            None => out.extend_from_slice(&o.create),
        }
        s.push_str(&format!("{d}\n"));
        if let Some((_, default)) = &o.database_collation {
            s.push_str(&format!("ALTER DATABASE COLLATE {default}{d}\n"));
        }
    }
    if current_client != "utf8mb4" {
        s.push_str(&format!("SET SESSION character_set_client = 'utf8mb4'{d}\n"));
    }
    if quoting_set {
        s.push_str(&format!("SET SESSION sql_quote_show_create = 1{d}\n"));
    }
    s.push_str("DELIMITER ;\n");
    out.extend_from_slice(s.as_bytes());
    out
}

/// Whether a trigger's definer is backquoted in its text, for the `sql_quote_show_create` to
/// re-create it under: a server keeps a trigger's statement with the definer written as the
/// creating session quoted it (backquoted with the setting on, bare with it off), where it shows
/// a view's, routine's or event's as the reading session quotes it. None for those, and for a
/// trigger without a definer.
fn definer_quoted(o: &DbObject) -> Option<bool> {
    let after = o.create.strip_prefix(b"CREATE DEFINER=".as_slice()).filter(|_| o.kind == ObjectKind::Trigger)?;
    Some(after.first() == Some(&b'`'))
}

/// The client character set to re-create `o` under: its own, when its text (which the server
/// shows in UTF-8) reads the same in it: that character set is UTF-8 (`utf8mb3`, `utf8mb4`) or
/// the text is ASCII. Otherwise utf8mb4, the dump's own: the object's values stay exact (the
/// server converts its literals as before), only its `CHARACTER_SET_CLIENT` differs.
fn client_charset(o: &DbObject) -> &str {
    match o.client_charset.as_deref() {
        Some(cs) if reads_the_same_in(cs, &o.create) => cs,
        _ => "utf8mb4",
    }
}

/// Whether `text`, UTF-8 as the server shows an object, reads the same sent under client
/// character set `charset`: a UTF-8 one, or ASCII text.
fn reads_the_same_in(charset: &str, text: &[u8]) -> bool {
    is_plain_name(charset) && std::str::from_utf8(text).is_ok() && (charset.starts_with("utf8") || text.is_ascii())
}

/// Where the parts of an event's statement are: `CREATE|ALTER [DEFINER=…] EVENT name …
/// ON COMPLETION [NOT] PRESERVE status …`, as MariaDB and MySQL show an event (names quoted with
/// backticks, as in opshost's sessions) and as [`ending_event`] writes its `ALTER`.
struct EventText {
    /// `DEFINER=… ` with its space, or empty.
    definer: std::ops::Range<usize>,
    /// The name, quoted.
    name: std::ops::Range<usize>,
    /// Just past ` ON COMPLETION `.
    completion: usize,
    preserve: bool,
    /// Where the status starts, and which it is.
    status_at: usize,
    status: &'static str,
}

/// [`EventText`] of `c`, a statement beginning with `verb` (`CREATE ` or `ALTER `); None for
/// any other text. What lies between the name and ` ON COMPLETION ` (a schedule) holds no text
/// of the user's, only times and intervals.
fn event_text(c: &[u8], verb: &str) -> Option<EventText> {
    if !c.starts_with(verb.as_bytes()) {
        return None;
    }
    let mut at = verb.len();
    // `DEFINER=`user`@`host`` (or a role's one name), each part quoted, backticks doubled.
    let definer_from = at;
    if c[at..].starts_with(b"DEFINER=") {
        at = quoted_end(c, at + b"DEFINER=".len())?;
        if c.get(at) == Some(&b'@') {
            at = quoted_end(c, at + 1)?;
        }
        if c.get(at) != Some(&b' ') {
            return None;
        }
        at += 1;
    }
    let definer = definer_from..at;
    if !c[at..].starts_with(b"EVENT ") {
        return None;
    }
    let name = at + b"EVENT ".len()..quoted_end(c, at + b"EVENT ".len())?;
    let completion = name.end + memchr::memmem::find(&c[name.end..], b" ON COMPLETION ")? + b" ON COMPLETION ".len();
    let (preserve, status_at) = if c[completion..].starts_with(b"NOT PRESERVE ") {
        (false, completion + b"NOT PRESERVE ".len())
    } else if c[completion..].starts_with(b"PRESERVE ") {
        (true, completion + b"PRESERVE ".len())
    } else {
        return None;
    };
    let status = ["DISABLE ON SLAVE", "ENABLE", "DISABLE"]
        .into_iter()
        .find(|w| c[status_at..].starts_with(w.as_bytes()) && matches!(c.get(status_at + w.len()), Some(b' ') | None))?;
    Some(EventText { definer, name, completion, preserve, status_at, status })
}

/// An event whose schedule ends (`AT …`, or `EVERY … ENDS …`), as two statements that bring it
/// back as it stood whenever they run. Once that time has passed, a server drops such an event
/// as it creates it (`ON COMPLETION NOT PRESERVE`), or creates it disabled: a server whose
/// scheduler is off (MariaDB's default) keeps it past its time, and a rollback runs later than
/// its backup, so its restore would lose or change the event and fail its verification. So it is
/// created `ON COMPLETION PRESERVE`, then altered back to its own completion and status, which
/// the server accepts whatever the time (in the same session, so its `sql_mode`, time zone and
/// collation stay). None for any other object, or a text not of the form MariaDB and MySQL show:
/// `CREATE [DEFINER=…] EVENT name ON SCHEDULE … ON COMPLETION [NOT] PRESERVE status …`.
fn ending_event(o: &DbObject) -> Option<(Vec<u8>, Vec<u8>)> {
    if o.kind != ObjectKind::Event {
        return None;
    }
    let c = &o.create;
    let e = event_text(c, "CREATE ")?;
    if c[e.name.clone()] != *quote_ident(&o.name).as_bytes() || !c[e.name.end..].starts_with(b" ON SCHEDULE ") {
        return None;
    }
    let schedule = &c[e.name.end + b" ON SCHEDULE ".len()..e.completion];
    if !(schedule.starts_with(b"AT ") || contains(schedule, " ENDS ")) {
        return None;
    }
    let mut create = c[..e.completion].to_vec();
    create.extend_from_slice(b"PRESERVE ");
    create.extend_from_slice(&c[e.status_at..]);
    let mut alter = b"ALTER ".to_vec();
    alter.extend_from_slice(&c[e.definer]);
    let completion = if e.preserve { "PRESERVE" } else { "NOT PRESERVE" };
    alter.extend_from_slice(format!("EVENT {} ON COMPLETION {completion} {}", quote_ident(&o.name), e.status).as_bytes());
    Some((create, alter))
}

/// An enabled event that opshost's restore creates disabled, and enables once the restore is
/// verified ([`hold`]). With the server's scheduler on, it could otherwise run in between: write
/// to the restored tables, or (its time come) disable or drop itself, and the verification would
/// fail inside the rollback.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldEvent {
    /// `DEFINER=… ` as the statement gave it (an `ALTER EVENT` without one makes the connected
    /// account the definer), or empty.
    definer: Vec<u8>,
    /// The name, quoted.
    name: Vec<u8>,
}

impl HeldEvent {
    /// The statement that enables it in `database` (it sets nothing else, so the server accepts
    /// it whatever the time; run it in the event's client character set and collation, which
    /// an `ALTER EVENT` takes from the session).
    pub fn enable(&self, database: &str) -> Vec<u8> {
        let mut s = b"ALTER ".to_vec();
        s.extend_from_slice(&self.definer);
        s.extend_from_slice(format!("EVENT {}.", quote_ident(database)).as_bytes());
        s.extend_from_slice(&self.name);
        s.extend_from_slice(b" ENABLE");
        s
    }

    /// Its name, as information_schema gives it.
    pub fn name(&self) -> String {
        let inner = &self.name[1..self.name.len() - 1];
        String::from_utf8_lossy(inner).replace("``", "`")
    }

    /// Whether `o` is this event.
    fn is(&self, o: &DbObject) -> bool {
        o.kind == ObjectKind::Event && *quote_ident(&o.name).as_bytes() == *self.name
    }
}

/// What a restore makes of one statement of an objects section for the events it holds
/// (`held`, this file's): an enabled event's `CREATE` or `ALTER` is run with `DISABLE` instead
/// (the returned statement) and the event held; one that leaves the event otherwise, or drops
/// it, lets it go. Any other statement is run as it is (None).
pub fn hold(statement: &[u8], held: &mut Vec<HeldEvent>) -> Option<Vec<u8>> {
    if let Some(rest) = statement.strip_prefix(b"DROP EVENT IF EXISTS ") {
        let name = rest.get(..quoted_end(rest, 0)?)?;
        held.retain(|h| h.name != name);
        return None;
    }
    let event = ["CREATE ", "ALTER "].into_iter().find_map(|verb| event_text(statement, verb))?;
    let name = &statement[event.name.clone()];
    held.retain(|h| h.name != name);
    if event.status != "ENABLE" {
        return None;
    }
    held.push(HeldEvent { definer: statement[event.definer.clone()].to_vec(), name: name.to_vec() });
    let mut disabled = statement[..event.status_at].to_vec();
    disabled.extend_from_slice(b"DISABLE");
    disabled.extend_from_slice(&statement[event.status_at + "ENABLE".len()..]);
    Some(disabled)
}

/// Enable the events a restore of `database` held ([`hold`]), each in its own client character
/// set (utf8mb4 where its statement would not read the same in it, as in the section) and
/// collation: an `ALTER EVENT` takes both from the session, and keeps the event's `sql_mode` and
/// time zone. The session's are set back after.
pub async fn enable(c: &mut Conn, database: &str, held: &[HeldEvent]) -> Result<(), Error> {
    if held.is_empty() {
        return Ok(());
    }
    let (client, collation): (String, String) =
        c.query_first("SELECT @@character_set_client, @@collation_connection").await.map_err(|e| db_err(database, e))?.unwrap_or_default();
    for h in held {
        let stood: Option<(String, String)> = c
            .exec_first(
                "SELECT CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?",
                (database, h.name()),
            )
            .await
            .map_err(|e| db_err(database, e))?;
        let statement = h.enable(database);
        let (cs, coll) = stood.unwrap_or_default();
        let cs = if reads_the_same_in(&cs, &statement) { cs.as_str() } else { "utf8mb4" };
        let coll = if is_plain_name(&coll) { format!(", collation_connection = '{coll}'") } else { String::new() };
        c.query_drop(format!("SET SESSION character_set_client = '{cs}'{coll}")).await.map_err(|e| db_err(database, e))?;
        c.query_drop(statement.as_slice()).await.map_err(|e| {
            failed(format!("event {database}.{}: restored and verified, but enabling it again failed: {e}; enable it by hand (ALTER EVENT … ENABLE)", h.name()))
        })?;
    }
    if is_plain_name(&client) && is_plain_name(&collation) {
        c.query_drop(format!("SET SESSION character_set_client = '{client}', collation_connection = '{collation}'")).await.map_err(|e| db_err(database, e))?;
    }
    Ok(())
}

/// `objects` read as they will stand once `held` are enabled: what the verification of a
/// restore compares with the checksum recorded at the dump.
pub fn as_enabled(objects: &mut [DbObject], held: &[HeldEvent]) {
    for o in objects.iter_mut().filter(|o| held.iter().any(|h| h.is(o))) {
        if let Some(e) = event_text(&o.create, "CREATE ").filter(|e| e.status == "DISABLE") {
            o.create.splice(e.status_at..e.status_at + "DISABLE".len(), *b"ENABLE");
        }
    }
}

/// Where the identifier quoted with backticks at `from` ends (just past its closing backtick).
fn quoted_end(text: &[u8], from: usize) -> Option<usize> {
    if text.get(from) != Some(&b'`') {
        return None;
    }
    let mut i = from + 1;
    loop {
        match (text.get(i)?, text.get(i + 1)) {
            (b'`', Some(b'`')) => i += 2,
            (b'`', _) => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Each object as a checksum entry: its kind and name, and a definition that compares equal when
/// the same object is restored.
pub fn digests(objects: &[DbObject], hash: RowHash) -> Vec<(String, [u8; 32])> {
    objects
        .iter()
        .map(|o| {
            let key = format!("{} {}", o.kind.word(), o.name);
            let mut definition = o.create.clone();
            definition.extend_from_slice(
                format!("\nsql_mode={}\ntime_zone={}", o.sql_mode.as_deref().unwrap_or(""), o.time_zone.as_deref().unwrap_or("")).as_bytes(),
            );
            if let Some(state) = &o.state {
                definition.extend_from_slice(format!("\nstate={state}").as_bytes());
            }
            // Only where it differs from the database's: the checksums of earlier backups stand.
            if let Some((own, _)) = &o.database_collation {
                definition.extend_from_slice(format!("\ndatabase_collation={own}").as_bytes());
            }
            (key.clone(), TableHasher::new(hash).finish(&key, &definition))
        })
        .collect()
}

/// Splits the lines after [`MARKER`] into the statements to run, as the stock client does with
/// `DELIMITER`: a statement ends at a line that ends with the current delimiter. Lines are bytes
/// (see [`DbObject::create`]) and keep any `\r` before their `\n`: a routine's or trigger's body
/// typed with Windows line ends holds them (`SHOW CREATE` gives `\r\n`), and so must the body
/// re-created. A `\r` after a delimiter, or on a `DELIMITER`, comment or blank line, is a file's
/// own line end (edited elsewhere) and is dropped: no object's text holds the delimiter.
#[derive(Default)]
pub struct Statements {
    delimiter: Option<Vec<u8>>,
    pending: Vec<u8>,
}

impl Statements {
    /// Feed one line (without its `\n`); a complete statement when this line ends one.
    pub fn line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        if self.pending.is_empty() {
            if let Some(d) = trimmed.strip_prefix(b"DELIMITER ") {
                self.delimiter = Some(d.trim_ascii().to_vec());
                return None;
            }
            if trimmed.is_empty() || trimmed.starts_with(b"-- ") || trimmed == b"--" {
                return None;
            }
        }
        let d = self.delimiter.as_deref().unwrap_or(b";");
        if let Some(stmt) = trimmed.strip_suffix(d) {
            let mut s = std::mem::take(&mut self.pending);
            s.extend_from_slice(stmt);
            return Some(s);
        }
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        None
    }

    /// Text left without its delimiter at the end of the file: a truncated backup.
    pub fn unfinished(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: ObjectKind, name: &str, create: &str) -> DbObject {
        DbObject {
            kind,
            name: name.into(),
            create: create.into(),
            sql_mode: None,
            time_zone: None,
            state: None,
            collation: None,
            client_charset: None,
            database_collation: None,
            broken: None,
        }
    }

    /// The statements a restore runs from the lines of `section` (and `more` after them).
    fn run_from(section: &[u8], more: &[&str]) -> (Vec<Vec<u8>>, Statements) {
        let mut s = Statements::default();
        let lines = section.split(|&b| b == b'\n').chain(more.iter().map(|l| l.as_bytes()));
        let got = lines.filter_map(|l| s.line(l)).collect();
        (got, s)
    }

    fn texts(statements: Vec<Vec<u8>>) -> Vec<String> {
        statements.into_iter().map(|s| String::from_utf8(s).unwrap()).collect()
    }

    #[test]
    fn a_view_on_a_view_comes_after_it() {
        let top = obj(ObjectKind::View, "v2", "CREATE VIEW `v2` AS select `v1`.`a` AS `a` from `v1`");
        let base = obj(ObjectKind::View, "v1", "CREATE VIEW `v1` AS select `t`.`a` AS `a` from `t`");
        let order: Vec<String> = in_dependency_order(vec![top, base]).into_iter().map(|v| v.name).collect();
        assert_eq!(order, ["v1", "v2"]);
    }

    #[test]
    fn the_section_splits_back_into_its_statements() {
        let mut t =
            obj(ObjectKind::Trigger, "tr", "CREATE TRIGGER `tr` AFTER INSERT ON `t` FOR EACH ROW BEGIN\n  SET @x = 1;\n  INSERT INTO log VALUES (';;');\nEND");
        t.sql_mode = Some("STRICT_TRANS_TABLES".into());
        let text = section(&[obj(ObjectKind::View, "v", "CREATE VIEW `v` AS select 1 AS `a`"), t.clone()], true);
        let shown = String::from_utf8_lossy(&text);
        assert!(shown.starts_with(MARKER) && shown.contains("DELIMITER $$"), "{shown}");
        let (got, s) = run_from(&text, &["/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;"]);
        assert_eq!(
            texts(got),
            [
                "DROP VIEW IF EXISTS `v`",
                "CREATE VIEW `v` AS select 1 AS `a`",
                "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'",
                "DROP TRIGGER IF EXISTS `tr`",
                std::str::from_utf8(&t.create).unwrap(),
                "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */",
            ]
        );
        assert!(!s.unfinished());
        assert!(section(&[], true).is_empty());
    }

    #[test]
    fn server_wide_privileges_from_show_grants() {
        assert_eq!(server_wide("GRANT SUPER ON *.* TO `r_super`"), Some(vec!["SUPER"]));
        assert_eq!(server_wide("GRANT RELOAD, SUPER ON *.* TO `lp`@`%` IDENTIFIED BY PASSWORD '*AB'"), Some(vec!["RELOAD", "SUPER"]));
        assert_eq!(server_wide("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"), Some(vec!["ALL PRIVILEGES"]));
        assert_eq!(server_wide("GRANT SUPER ON `db`.* TO `lp`@`%`"), None);
        assert_eq!(server_wide("GRANT `r_super` TO `lp`@`%`"), None);
    }

    /// Each trigger is created under the quoting its definer shows, and the section ends with
    /// names quoted again; not where the server has no such setting.
    #[test]
    fn triggers_are_created_again_under_their_definers_quoting() {
        let bare = obj(ObjectKind::Trigger, "a", "CREATE DEFINER=root@localhost TRIGGER a BEFORE INSERT ON t FOR EACH ROW SET @x = 1");
        let quoted = obj(ObjectKind::Trigger, "b", "CREATE DEFINER=`root`@`localhost` TRIGGER b BEFORE INSERT ON t FOR EACH ROW SET @x = 2");
        let routine = obj(ObjectKind::Procedure, "p", "CREATE DEFINER=root@localhost PROCEDURE p() SELECT 1");
        let (got, _) = run_from(&section(&[bare.clone(), quoted.clone(), routine.clone()], true), &[]);
        let settings: Vec<String> = texts(got).into_iter().filter(|t| t.contains("sql_quote_show_create")).collect();
        assert_eq!(settings, ["SET SESSION sql_quote_show_create = 0", "SET SESSION sql_quote_show_create = 1", "SET SESSION sql_quote_show_create = 1"]);
        let (got, _) = run_from(&section(&[bare, quoted, routine], false), &[]);
        assert!(texts(got).iter().all(|t| !t.contains("sql_quote_show_create")));
    }

    #[test]
    fn a_definition_of_raw_bytes_is_written_and_split_back_as_it_is() {
        // MariaDB shows a literal with a character set introducer as its raw bytes.
        let mut v = obj(ObjectKind::View, "v", "");
        v.create = b"CREATE VIEW `v` AS select _latin1'\xe9' AS `l`".to_vec();
        let text = section(std::slice::from_ref(&v), true);
        let (got, s) = run_from(&text, &[]);
        assert_eq!(got, [b"DROP VIEW IF EXISTS `v`".to_vec(), v.create.clone()]);
        assert!(!s.unfinished());
        // Its digest is of those bytes: another byte there is another checksum.
        let mut other = v.clone();
        other.create = b"CREATE VIEW `v` AS select _latin1'\xef\xbf\xbd' AS `l`".to_vec();
        assert_ne!(digests(&[v], RowHash::default()), digests(&[other], RowHash::default()));
    }

    #[test]
    fn a_bodys_carriage_returns_stay_and_a_files_own_go() {
        // A body typed with Windows line ends, as opshost's dump writes it.
        let (got, s) = run_from(b"DELIMITER ;;\nCREATE PROCEDURE `p`()\r\nBEGIN\r\n  SELECT 1;\r\nEND;;\nDELIMITER ;", &[]);
        assert_eq!(got, [b"CREATE PROCEDURE `p`()\r\nBEGIN\r\n  SELECT 1;\r\nEND".to_vec()]);
        assert!(!s.unfinished());
        // The same section saved with Windows line ends everywhere (edited elsewhere).
        let (got, s) = run_from(b"-- a note\r\n\r\nDELIMITER ;;\r\nCREATE PROCEDURE `p`()\r\nBEGIN\r\n  SELECT 1;\r\nEND;;\r\nDELIMITER ;\r", &[]);
        assert_eq!(got, [b"CREATE PROCEDURE `p`()\r\nBEGIN\r\n  SELECT 1;\r\nEND".to_vec()]);
        assert!(!s.unfinished());
    }

    #[test]
    fn routines_are_created_before_the_views_that_call_them_in_the_dumps_own_mode() {
        let view = obj(ObjectKind::View, "v", "CREATE VIEW `v` AS select `f`(1) AS `a`");
        let mut f = obj(ObjectKind::Function, "f", "CREATE FUNCTION `f`(x INT) RETURNS int(11) RETURN x");
        f.sql_mode = Some("ORACLE".into());
        let (got, _) = run_from(&section(&[view.clone(), f.clone()], true), &[]);
        assert_eq!(
            texts(got),
            [
                "SET SESSION sql_mode = 'ORACLE'",
                "DROP FUNCTION IF EXISTS `f`",
                std::str::from_utf8(&f.create).unwrap(),
                "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
                "DROP VIEW IF EXISTS `v`",
                std::str::from_utf8(&view.create).unwrap(),
            ]
        );
    }

    #[test]
    fn an_event_whose_schedule_ends_is_created_preserved_then_given_back_its_completion_and_status() {
        let at = obj(
            ObjectKind::Event,
            "once",
            "CREATE DEFINER=`root`@`localhost` EVENT `once` ON SCHEDULE AT '2026-11-28 02:52:39' ON COMPLETION NOT PRESERVE ENABLE COMMENT 'ON COMPLETION NOT PRESERVE' DO DELETE FROM t",
        );
        let (create, alter) = ending_event(&at).unwrap();
        assert_eq!(
            String::from_utf8(create).unwrap(),
            "CREATE DEFINER=`root`@`localhost` EVENT `once` ON SCHEDULE AT '2026-11-28 02:52:39' ON COMPLETION PRESERVE ENABLE COMMENT 'ON COMPLETION NOT PRESERVE' DO DELETE FROM t"
        );
        assert_eq!(String::from_utf8(alter).unwrap(), "ALTER DEFINER=`root`@`localhost` EVENT `once` ON COMPLETION NOT PRESERVE ENABLE");
        // Names that need quoting, a schedule with an end, another status.
        let ends = obj(
            ObjectKind::Event,
            "e`v ON SCHEDULE",
            "CREATE DEFINER=`o``k`@`%` EVENT `e``v ON SCHEDULE` ON SCHEDULE EVERY '1:30' HOUR_MINUTE STARTS '2026-01-01 00:00:00' ENDS '2026-02-01 00:00:00' ON COMPLETION PRESERVE DISABLE ON SLAVE DO SELECT 1",
        );
        let (create, alter) = ending_event(&ends).unwrap();
        assert_eq!(create, ends.create);
        assert_eq!(String::from_utf8(alter).unwrap(), "ALTER DEFINER=`o``k`@`%` EVENT `e``v ON SCHEDULE` ON COMPLETION PRESERVE DISABLE ON SLAVE");
        // A role as the definer, or none.
        let role = obj(
            ObjectKind::Event,
            "r",
            "CREATE DEFINER=`admins` EVENT `r` ON SCHEDULE AT '2026-01-01 00:00:00' ON COMPLETION NOT PRESERVE DISABLE DO SELECT 1",
        );
        assert_eq!(String::from_utf8(ending_event(&role).unwrap().1).unwrap(), "ALTER DEFINER=`admins` EVENT `r` ON COMPLETION NOT PRESERVE DISABLE");
        let bare = obj(ObjectKind::Event, "b", "CREATE EVENT `b` ON SCHEDULE AT '2026-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO SELECT 1");
        assert_eq!(String::from_utf8(ending_event(&bare).unwrap().1).unwrap(), "ALTER EVENT `b` ON COMPLETION NOT PRESERVE ENABLE");
        // A schedule without an end, another object, a text of another form: as they are.
        let every = obj(
            ObjectKind::Event,
            "e",
            "CREATE DEFINER=`root`@`%` EVENT `e` ON SCHEDULE EVERY 1 HOUR STARTS '2026-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO SELECT 1",
        );
        assert_eq!(ending_event(&every), None);
        assert_eq!(ending_event(&obj(ObjectKind::Procedure, "p", "CREATE PROCEDURE `p`() SELECT ' ENDS ' ON COMPLETION")), None);
        assert_eq!(
            ending_event(&obj(ObjectKind::Event, "x", "CREATE EVENT `y` ON SCHEDULE AT '2026-01-01 00:00:00' ON COMPLETION PRESERVE ENABLE DO SELECT 1")),
            None
        );
        // In the section, the two statements follow each other.
        let (got, s) = run_from(&section(&[at.clone(), every.clone()], true), &[]);
        let got = texts(got);
        assert_eq!(
            got[1..3],
            [
                String::from_utf8(ending_event(&at).unwrap().0).unwrap(),
                "ALTER DEFINER=`root`@`localhost` EVENT `once` ON COMPLETION NOT PRESERVE ENABLE".to_string()
            ]
        );
        assert_eq!(got[4], std::str::from_utf8(&every.create).unwrap());
        assert!(!s.unfinished());
    }

    #[test]
    fn a_restore_holds_enabled_events_disabled_and_reads_them_as_enabled() {
        let mut held = Vec::new();
        let create = "CREATE DEFINER=`o``k`@`%` EVENT `e``v` ON SCHEDULE EVERY 1 SECOND STARTS '2020-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE COMMENT 'ENABLE' DO SELECT 'ENABLE'";
        let disabled = hold(create.as_bytes(), &mut held).expect("an enabled event is held");
        assert_eq!(String::from_utf8(disabled).unwrap(), create.replacen("PRESERVE ENABLE", "PRESERVE DISABLE", 1));
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].name(), "e`v");
        assert_eq!(String::from_utf8(held[0].enable("d`b")).unwrap(), "ALTER DEFINER=`o``k`@`%` EVENT `d``b`.`e``v` ENABLE");
        // The ALTER that gives an ending event back its status holds it too, once.
        let alter = "ALTER DEFINER=`o``k`@`%` EVENT `e``v` ON COMPLETION NOT PRESERVE ENABLE";
        assert_eq!(String::from_utf8(hold(alter.as_bytes(), &mut held).unwrap()).unwrap(), alter.replace("ENABLE", "DISABLE"));
        assert_eq!(held.len(), 1);
        // One that leaves it disabled, or drops it, lets it go; other statements run as they are.
        assert_eq!(hold(b"ALTER DEFINER=`o``k`@`%` EVENT `e``v` ON COMPLETION NOT PRESERVE DISABLE ON SLAVE", &mut held), None);
        assert!(held.is_empty());
        hold(create.as_bytes(), &mut held).unwrap();
        assert_eq!(hold(b"DROP EVENT IF EXISTS `e``v`", &mut held), None);
        assert!(held.is_empty());
        for other in [
            "CREATE EVENT `d` ON SCHEDULE EVERY 1 HOUR STARTS '2020-01-01 00:00:00' ON COMPLETION NOT PRESERVE DISABLE DO SELECT 1",
            "CREATE VIEW `v` AS select 'ON COMPLETION PRESERVE ENABLE' AS `x`",
            "CREATE PROCEDURE `p`() SELECT 1",
            "SET SESSION sql_mode = ''",
        ] {
            assert_eq!(hold(other.as_bytes(), &mut held), None, "{other}");
        }
        assert!(held.is_empty());
        // A role as the definer, or none.
        let bare = "CREATE EVENT `b` ON SCHEDULE AT '2020-01-01 00:00:00' ON COMPLETION PRESERVE ENABLE DO SELECT 1";
        hold(bare.as_bytes(), &mut held).unwrap();
        assert_eq!(String::from_utf8(held[0].enable("d")).unwrap(), "ALTER EVENT `d`.`b` ENABLE");

        // The verification reads the held event as enabled; no other object changes.
        let mut objects = vec![
            obj(ObjectKind::Event, "e`v", &create.replacen("PRESERVE ENABLE", "PRESERVE DISABLE", 1)),
            obj(ObjectKind::Event, "b", &bare.replace("ENABLE", "DISABLE")),
            obj(
                ObjectKind::Event,
                "idle",
                "CREATE EVENT `idle` ON SCHEDULE EVERY 1 HOUR STARTS '2020-01-01 00:00:00' ON COMPLETION NOT PRESERVE DISABLE DO SELECT 1",
            ),
        ];
        let idle = objects[2].clone();
        let mut held = Vec::new();
        hold(create.as_bytes(), &mut held).unwrap();
        as_enabled(&mut objects, &held);
        assert_eq!(String::from_utf8(objects[0].create.clone()).unwrap(), create);
        assert_eq!(String::from_utf8(objects[1].create.clone()).unwrap(), bare.replace("ENABLE", "DISABLE"), "not held");
        assert_eq!(objects[2], idle);
    }
}
