//! The tables a dump holds, as the server describes them: definition, columns (generated ones
//! left out), estimated rows and an integer key to cut big tables into ranges; and a database's
//! content checksum from its tables' and other objects' digests. An ENUM or SET with a member
//! `''` is read through an expression that keeps what its text alone would lose
//! ([`empty_member_read`]), and so is one with members equal under its collation (`'a'`, `'A'`),
//! whose values read as their positions ([`shadowed_member_read`]).
//!
//! A column of text in a character set other than UTF-8 (latin1, cp1250, gbk, cp932 …) is read
//! as its stored bytes (`CAST(… AS BINARY)`) where the checksum says so
//! ([`RowHash::reads_stored_text`]): the server's conversion to utf8mb4 maps a byte without a
//! Unicode equivalent to `?`, and two cp932 codes of one character to one, so the dump would
//! hold, and the checksum hash, text that does not restore to what was stored.
//!
//! A system-versioned table (MariaDB) is read with its history (`FOR SYSTEM_TIME ALL`) and its
//! period columns, which a restore writes back under `system_versioning_insert_history`; one
//! versioned by transaction id cannot be written back by any client and is refused.
//!
//! A definition is kept as the bytes `SHOW CREATE TABLE` gives: MariaDB shows a binary column's
//! default as its raw bytes (`DEFAULT '\xff\0'`) whatever the results' character set, so a
//! definition need not be text. The dump writes it as it is, as `mariadb-dump` does, and both
//! opshost's restore and the stock client replay it exact.

use super::codec::{db_err, is_plain_name, quote_ident};
use super::objects;
use super::share::share_out;
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use crate::capabilities::sql::checksum::{database_checksum, RowHash, TableHasher};
use mysql_async::prelude::*;
use mysql_async::Conn;

/// A table to dump: its name, its definition, and the columns to read (generated ones are left out).
pub(super) struct TableInfo {
    pub name: String,
    /// `SHOW CREATE TABLE` as the server gives it: bytes, text but for a binary column's default.
    pub create: Vec<u8>,
    pub columns: Vec<String>,
    /// What a read selects for each of `columns`: its quoted name, or for an ENUM or SET that has
    /// `''` among its members, [`empty_member_read`].
    pub reads: Vec<String>,
    /// [`TableInfo::reads`], but each column of text in a character set other than UTF-8
    /// ([`is_stored_as_other_text`]) as its stored bytes: see [`TableInfo::select_list`].
    pub stored_reads: Vec<String>,
    pub estimated_rows: u64,
    /// The server's estimate of its rows' bytes (`DATA_LENGTH`): a few very wide rows are cut
    /// into ranges too.
    pub estimated_bytes: u64,
    /// The table's primary key when it is a single integer column, or its first column when
    /// that is an integer (quoted): big tables are read in ranges of it.
    pub integer_key: Option<String>,
    /// System-versioned: read with its history, its period columns among `columns`.
    pub versioned: bool,
    /// Its rows live in other tables or on another server ([`ROWS_ELSEWHERE`]): a dump keeps
    /// its definition only, as `mariadb-dump` does, and its checksum hashes no rows of it.
    pub rows_elsewhere: bool,
}

/// Engines whose tables hold no rows of their own: a MERGE table's are its MyISAM tables' (a
/// restore of them through it would write them a second time), a FEDERATED, CONNECT or SPIDER
/// table's are another server's or a file's (a restore would write there).
pub const ROWS_ELSEWHERE: [&str; 5] = ["MRG_MYISAM", "MRG_ISAM", "FEDERATED", "CONNECT", "SPIDER"];

impl TableInfo {
    /// What a read names after FROM: the table of `database`, every version of its rows for a
    /// system-versioned one.
    pub fn source(&self, database: &str) -> String {
        let all = if self.versioned { " FOR SYSTEM_TIME ALL" } else { "" };
        format!("{}.{}{all}", quote_ident(database), quote_ident(&self.name))
    }

    /// What a read of the table selects: [`TableInfo::reads`], each column of text in another
    /// character set than UTF-8 as its stored bytes when `stored_text`
    /// ([`RowHash::reads_stored_text`]). The bytes arrive as a binary string, which a dump writes
    /// as `_binary'…'`: the column takes it back as it is, where a utf8mb4 string would be converted.
    pub fn select_list(&self, stored_text: bool) -> String {
        if stored_text { &self.stored_reads } else { &self.reads }.join(",")
    }
}

/// Whether a column of character set `charset` (`CHARACTER_SET_NAME`, empty for none: numbers,
/// binary strings) holds text that the server converts, on its way to a utf8mb4 session, into
/// something else than its stored bytes: every character set but the UTF-8 ones. ASCII too: a
/// binary string puts bytes beyond ASCII in such a column (strict mode refuses only text), and
/// those read as `?` in utf8mb4. ASCII text hashes alike either way, so earlier backups verify.
pub(super) fn is_stored_as_other_text(charset: &str) -> bool {
    !charset.is_empty() && !["utf8mb4", "utf8mb3", "utf8", "binary"].contains(&charset.to_ascii_lowercase().as_str())
}

/// The session setting a dump of system-versioned tables needs for its rows to be written back
/// with their period columns (MariaDB 10.11 and later; the version comment keeps older servers and
/// MySQL from reading it).
pub const INSERT_HISTORY: &str = "/*!101100 SET @@session.system_versioning_insert_history = 1 */;";

/// A database's (checksum, tables, rows) from its tables and their merged row hashers, its
/// other objects and its comment (a database without any has the checksum earlier versions
/// recorded).
pub(super) fn summary(
    tables: &[TableInfo],
    objects: &[objects::DbObject],
    hashers: &[TableHasher],
    hash: RowHash,
    comment: Option<&str>,
) -> (String, u32, u64) {
    let mut digests: Vec<(String, [u8; 32])> =
        tables.iter().zip(hashers).map(|(t, h)| (t.name.clone(), h.finish(&t.name, definition_for_checksum(&t.create)))).collect();
    digests.extend(objects::digests(objects, hash));
    if let Some(comment) = comment {
        // A key no table or object has (theirs are names, or a kind and a name).
        let key = "\n database comment".to_string();
        digests.push((key.clone(), TableHasher::new(hash).finish(&key, comment.as_bytes())));
    }
    (database_checksum(&digests, hash), tables.len() as u32, hashers.iter().map(|h| h.rows()).sum())
}

/// Normalise `SHOW CREATE TABLE` for the checksum: the AUTO_INCREMENT counter is not content.
pub(super) fn definition_for_checksum(create: &[u8]) -> Vec<u8> {
    create.split(|&b| b == b' ').filter(|w| !w.starts_with(b"AUTO_INCREMENT=")).collect::<Vec<_>>().join(&b' ')
}

/// Refuse a database where the name of an index, a constraint, a view or a sequence holds a line
/// break: `SHOW CREATE` prints such a name as it is, a dump is one statement a line, and the
/// restored definition would differ (found by the verification, inside the rollback). Table and
/// column names are checked with their tables ([`tables`]); the server refuses such a partition
/// name itself.
async fn refuse_broken_names(c: &mut Conn, database: &str) -> Result<(), Error> {
    let broken = |column: &str| format!("(LOCATE(CHAR(10), {column}) > 0 OR LOCATE(CHAR(13), {column}) > 0)");
    let sql = format!(
        "SELECT 'index', TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND {} \
         UNION ALL SELECT 'constraint', TABLE_NAME, CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND {} \
         UNION ALL SELECT LOWER(TABLE_TYPE), TABLE_NAME, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND {} LIMIT 1",
        broken("INDEX_NAME"),
        broken("CONSTRAINT_NAME"),
        broken("TABLE_NAME")
    );
    let found: Option<(String, String, String)> = c.exec_first(sql, (database, database, database)).await.map_err(|e| db_err(database, e))?;
    match found {
        Some((kind, table, name)) => Err(failed(format!(
            "{database}.{table}: the {kind} name {name:?} holds a line break, which a dump (one statement a line) cannot carry: rename it before the upgrade"
        ))),
        None => Ok(()),
    }
}

/// Whether a column of `DATA_TYPE` `ty` is an integer: a key of one is cut into ranges.
pub fn is_integer_type(ty: &str) -> bool {
    ["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&ty.to_lowercase().as_str())
}

/// The base tables of `database` (system-versioned ones included), by name, with their columns
/// (three queries whatever their number) but not yet their definitions: see [`definitions`].
pub(super) async fn tables(c: &mut Conn, database: &str) -> Result<Vec<TableInfo>, Error> {
    // (name, estimated rows, estimated bytes, TABLE_TYPE, ENGINE) of every base table.
    type Listed = (String, Option<u64>, Option<u64>, String, String);
    let names: Vec<Listed> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, TABLE_TYPE, COALESCE(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME, CAST(TABLE_NAME AS BINARY)",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    // (column, extra, key, type, read, stored read) of every table, in each table's order; a
    // period column of a system-versioned table has `ROW START` or `ROW END` for extra; read: the
    // column's [`empty_member_read`], if any; stored read: the same, or the column, as its stored
    // bytes, for text in a character set other than UTF-8 ([`is_stored_as_other_text`]).
    type Described = (String, String, String, String, Option<String>, Option<String>);
    let mut columns_of: std::collections::HashMap<String, Vec<Described>> = std::collections::HashMap::new();
    let columns = |expression: &str| {
        format!(
            "SELECT TABLE_NAME, COLUMN_NAME, EXTRA, COLUMN_KEY, DATA_TYPE, {expression}, COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME, ''), COALESCE(COLLATION_NAME, '') \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, CAST(TABLE_NAME AS BINARY), ORDINAL_POSITION"
        )
    };
    // A server whose COLUMNS has no GENERATION_EXPRESSION has no system-versioned tables either.
    let all: Vec<Column> = match c.exec(columns("COALESCE(GENERATION_EXPRESSION, '')"), (database,)).await {
        Ok(all) => all,
        Err(_) => c.exec(columns("''"), (database,)).await.map_err(|e| db_err(database, e))?,
    };
    // The first column of each primary key of several columns (a server that cannot tell has
    // its tables read whole, as before).
    let leading: std::collections::HashMap<String, String> = c
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_NAME = 'PRIMARY' AND SEQ_IN_INDEX = 1",
            (database,),
        )
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    refuse_broken_names(c, database).await?;
    let mut shadowed = shadowed_members(c, database, &all).await?;
    for (table, column, extra, key, ty, expression, column_type, charset, _) in all {
        let shadowed = shadowed.remove(&(table.clone(), column.clone())).unwrap_or_default();
        // How the column is read when its text is read as `value`, if not by its name.
        let read_of = |value: &str| {
            let inner = empty_member_read(&column, &ty, &column_type, value);
            shadowed_member_read(&column, &ty, &shadowed, inner.as_deref().unwrap_or(value)).or(inner)
        };
        let read = read_of(&quote_ident(&column));
        let stored = is_stored_as_other_text(&charset).then(|| {
            let bytes = format!("CAST({} AS BINARY)", quote_ident(&column));
            read_of(&bytes).unwrap_or(bytes)
        });
        let extra = if ["ROW START", "ROW END"].contains(&expression.as_str()) { expression } else { extra };
        columns_of.entry(table).or_default().push((column, extra, key, ty, read, stored));
    }
    let mut out = Vec::new();
    for (name, rows, bytes, kind, engine) in names {
        let mut columns = columns_of.remove(&name).unwrap_or_default();
        // A dump is one statement a line, and the server writes a name as it is.
        if let Some(broken) = std::iter::once(&name).chain(columns.iter().map(|(c, ..)| c)).find(|n| n.contains(['\n', '\r'])) {
            return Err(failed(format!(
                "table {database}.{name}: the name {broken:?} holds a line break, which a dump (one statement a line) cannot carry: rename it before the upgrade"
            )));
        }
        let versioned = kind == "SYSTEM VERSIONED";
        if versioned {
            let period: Vec<&Described> = columns.iter().filter(|(_, extra, ..)| extra.starts_with("ROW ")).collect();
            if period.iter().any(|(_, _, _, ty, ..)| !ty.eq_ignore_ascii_case("timestamp")) {
                return Err(failed(format!(
                    "table {database}.{name} keeps its history by transaction id (a BIGINT UNSIGNED period), which no client can write back, so a backup could not restore it: back it up by hand and drop it, or version it by TIMESTAMP, before the upgrade"
                )));
            }
            if period.is_empty() {
                // Implicit period columns: hidden from COLUMNS, but readable and writable by name.
                columns.extend(["ROW_START", "ROW_END"].map(|c| (c.to_string(), "ROW START".to_string(), String::new(), "timestamp".to_string(), None, None)));
            }
        }
        // `PRI` marks the primary key's columns (or, in a table without one, a unique index's
        // whose columns are NOT NULL: as good for cutting into ranges, as no row's key is NULL).
        // A key of several columns is cut by its first, NOT NULL too: every row falls in exactly
        // one range of it, and each range is a range of the key.
        let key: Vec<&Described> = columns.iter().filter(|(_, _, k, ..)| k == "PRI").collect();
        let integer_key = match key.as_slice() {
            [(name, _, _, ty, ..)] if is_integer_type(ty) => Some(quote_ident(name)),
            [_, _, ..] => {
                leading.get(&name).filter(|first| key.iter().any(|(c, _, _, ty, ..)| c == *first && is_integer_type(ty))).map(|first| quote_ident(first))
            }
            _ => None,
        };
        // Generated columns cannot be inserted into; they follow from the others and the
        // definition. A versioned table's period columns can, and hold its history's times.
        let (mut names, mut reads, mut stored_reads) = (Vec::new(), Vec::new(), Vec::new());
        for (n, _, _, _, read, stored) in columns.into_iter().filter(|(_, extra, ..)| !is_generated(extra)) {
            let read = read.unwrap_or_else(|| quote_ident(&n));
            stored_reads.push(stored.unwrap_or_else(|| read.clone()));
            reads.push(read);
            names.push(n);
        }
        let rows_elsewhere = ROWS_ELSEWHERE.iter().any(|e| e.eq_ignore_ascii_case(&engine));
        out.push(TableInfo {
            create: Vec::new(),
            columns: names,
            reads,
            stored_reads,
            estimated_rows: if rows_elsewhere { 0 } else { rows.unwrap_or(0) },
            estimated_bytes: if rows_elsewhere { 0 } else { bytes.unwrap_or(0) },
            name,
            integer_key,
            versioned,
            rows_elsewhere,
        });
    }
    Ok(out)
}

/// The members of an ENUM or SET of `COLUMN_TYPE` `column_type` (`enum('','a''b')`), unquoted.
fn enum_members(column_type: &str) -> Vec<String> {
    let Some(list) = column_type.find('(').map(|at| &column_type[at + 1..]) else { return Vec::new() };
    let mut members = Vec::new();
    let mut chars = list.chars().peekable();
    while chars.next() == Some('\'') {
        let mut member = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                c => member.push(c),
            }
        }
        members.push(member);
        // `,` before the next member, `)` after the last.
        if chars.next() != Some(',') {
            break;
        }
    }
    members
}

/// How to read column `column` of `DATA_TYPE` `ty` and `COLUMN_TYPE` `column_type` when it is an
/// ENUM or SET with `''` among its members, whose text alone would lose a value (`None` for
/// any other column, read by name):
/// - an ENUM's error value (index 0, which a bad value stored under a non-strict sql_mode
///   becomes) also reads as `''`, and written back becomes the member. It reads as a text longer
///   than any member can be (255 characters) instead, which a restore's non-strict session (and a
///   dump's, in the stock client) stores as the error value again;
/// - a SET holding the member `''` can read as if it did not (alone it reads `''`, the empty
///   set). When it holds it, it reads with a `,` in front, an empty member the server parses
///   back into it.
///
/// Either way the checksum tells the values apart as the server does. `value`: how the column's
/// text is read (its quoted name, or its stored bytes); the index tests read the column itself.
fn empty_member_read(column: &str, ty: &str, column_type: &str, value: &str) -> Option<String> {
    let empty = enum_members(column_type).iter().position(String::is_empty)?;
    let c = quote_ident(column);
    if ty.eq_ignore_ascii_case("enum") {
        Some(format!("IF({c} + 0 = 0, REPEAT('~', 256), {value})"))
    } else if ty.eq_ignore_ascii_case("set") && empty < 64 {
        Some(format!("IF({c} & {}, CONCAT(',', {value}), {value})", 1u64 << empty))
    } else {
        None
    }
}

/// A column as [`tables`] reads it from `information_schema.COLUMNS`: table, column, extra, key,
/// data type, generation expression, column type, character set and collation.
type Column = (String, String, String, String, String, String, String, String, String);

/// The members of each ENUM and SET column of `columns` (of `database`, as [`tables`] reads them)
/// that equal an earlier member under the column's collation (`'A'` after `'a'`, `'e'` after `'é'`,
/// `'ss'` after `'ß'`), by (table, column), with their positions (from 1). A non-strict sql_mode
/// lets a table be made with such members (the server only warns), and their values then read as
/// text that the server writes back as the earlier member: see [`shadowed_member_read`]. The server
/// compares the members (in one statement for the database, or one a megabyte, none when no column could have any); a
/// server that cannot is taken to have none, as before. A column of them where a member reads as a
/// number, which a position written back would be taken for, is refused.
async fn shadowed_members(c: &mut Conn, database: &str, columns: &[Column]) -> Result<std::collections::HashMap<(String, String), Vec<usize>>, Error> {
    let mut candidates = Vec::new();
    let mut selects = Vec::new();
    for (table, column, _, _, ty, _, column_type, charset, collation) in columns {
        let members = enum_members(column_type);
        let is_members = ty.eq_ignore_ascii_case("enum") || ty.eq_ignore_ascii_case("set");
        // A binary collation tells every two members apart (trailing spaces are not kept).
        if !is_members || members.len() < 2 || collation.ends_with("_bin") || !is_plain_name(charset) || !is_plain_name(collation) {
            continue;
        }
        let list = |alias: &str| {
            let rows: Vec<String> = members
                .iter()
                .enumerate()
                .map(|(i, m)| format!("SELECT {} AS i, CONVERT(_utf8mb4 X'{}' USING {charset}) AS v", i + 1, hex::encode(m)))
                .collect();
            format!("({}) {alias}", rows.join(" UNION ALL "))
        };
        // Each member but the first of a group equal under the collation: grouped, not compared
        // pair by pair, so that an ENUM of thousands of members costs no more than a sort.
        selects.push(format!(
            "SELECT {} AS k, a.i FROM {} WHERE a.i NOT IN (SELECT MIN(b.i) FROM {} GROUP BY b.v COLLATE {collation})",
            candidates.len(),
            list("a"),
            list("b")
        ));
        candidates.push((table, column, members));
    }
    // A statement of about a megabyte at most (one column's members may make a longer one).
    let mut statements: Vec<String> = Vec::new();
    for select in selects {
        match statements.last_mut() {
            Some(last) if last.len() + select.len() < 1 << 20 => {
                last.push_str(" UNION ALL ");
                last.push_str(&select);
            }
            _ => statements.push(select),
        }
    }
    // The shadowed positions of each candidate, by its index.
    let mut positions = vec![Vec::new(); candidates.len()];
    for statement in statements {
        let found: Vec<(usize, usize)> = c.query(statement).await.unwrap_or_default();
        for (k, i) in found {
            if let Some(p) = positions.get_mut(k) {
                p.push(i);
            }
        }
    }
    let mut out = std::collections::HashMap::new();
    for ((table, column, members), mut positions) in candidates.into_iter().zip(positions).filter(|(_, p)| !p.is_empty()) {
        positions.sort_unstable();
        // A member the server could read as the number of a position: digits (any script's, which
        // a collation may take for ASCII ones) with no letter beside them. `'v2'` is not one.
        if let Some(number) = members.iter().find(|m| m.chars().any(char::is_numeric) && !m.chars().any(char::is_alphabetic)) {
            let shadowed = &members[positions[0] - 1];
            return Err(failed(format!(
                "table {database}.{table}: column {column} has members that are one value under its collation ({shadowed:?} among them), and a member that reads as a number ({number:?}), so a dump could not write back which member each row holds: make the members distinct (or give the column a _bin collation) before the upgrade"
            )));
        }
        out.insert((table.clone(), column.clone()), positions);
    }
    Ok(out)
}

/// How to read ENUM or SET column `column` of `DATA_TYPE` `ty` whose members at `shadowed`
/// ([`shadowed_members`]) equal earlier ones, as its text would be written back as the earlier
/// member: a value that is (for a SET, holds) such a member reads as its position (the SET's
/// bits) in text, which the server, finding no member of that name, takes as the position; any
/// other value reads as `other`. `None` when no member is shadowed.
fn shadowed_member_read(column: &str, ty: &str, shadowed: &[usize], other: &str) -> Option<String> {
    if shadowed.is_empty() {
        return None;
    }
    let c = quote_ident(column);
    let position = format!("CAST({c} + 0 AS CHAR)");
    if ty.eq_ignore_ascii_case("set") {
        let bits = shadowed.iter().filter(|&&i| (1..=64).contains(&i)).fold(0u64, |bits, i| bits | 1 << (i - 1));
        Some(format!("IF({c} & {bits}, {position}, {other})"))
    } else {
        let list: Vec<String> = shadowed.iter().map(usize::to_string).collect();
        Some(format!("IF({c} + 0 IN ({}), {position}, {other})", list.join(",")))
    }
}

/// Fill in the definition (`SHOW CREATE TABLE`) of every table of `tables`, each list of one of
/// `databases`, one statement per table shared out over `conns` (all in the session time zone
/// of the read: it shows in TIMESTAMP defaults). A few hundred small tables take a round trip
/// each; several connections take them side by side.
pub(super) async fn definitions(conns: &mut [Conn], databases: &[&str], tables: &mut [Vec<TableInfo>]) -> Result<(), Error> {
    let jobs: Vec<(usize, usize, String)> = tables
        .iter()
        .enumerate()
        .flat_map(|(d, ts)| {
            ts.iter().enumerate().map(move |(t, info)| (d, t, format!("SHOW CREATE TABLE {}.{}", quote_ident(databases[d]), quote_ident(&info.name))))
        })
        .collect();
    let readers = conns.iter_mut().map(|c| (c, Vec::new())).collect();
    // (database, table, definition) as read, per connection.
    type Found = Vec<(usize, usize, Vec<u8>)>;
    let read = share_out(readers, jobs, |(c, mut found): (&mut Conn, Found), (d, t, sql): (usize, usize, String)| async move {
        // As bytes: a binary column's default may be bytes that are not text.
        let create: Result<Option<(Vec<u8>, Vec<u8>)>, _> = c.query_first(sql).await;
        let read = create.map_err(|e| db_err(databases[d], e)).map(|create| found.push((d, t, create.unwrap_or_default().1)));
        ((c, found), read)
    })
    .await?;
    for (d, t, create) in read.into_iter().flat_map(|(_, found)| found) {
        tables[d][t].create = create;
    }
    Ok(())
}

/// Whether `COLUMNS.EXTRA` names a generated column, which cannot be inserted into. A versioned
/// table's period columns (`ROW START`) can, and MySQL 8's `DEFAULT_GENERATED` (a default such as
/// `CURRENT_TIMESTAMP`) is an ordinary column with its own values.
fn is_generated(extra: &str) -> bool {
    let extra = extra.to_uppercase().replace("DEFAULT_GENERATED", "");
    !extra.starts_with("ROW ") && ["GENERATED", "VIRTUAL", "STORED"].iter().any(|g| extra.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_columns_are_told_from_generated_defaults() {
        for extra in ["VIRTUAL GENERATED", "STORED GENERATED", "virtual generated", "PERSISTENT GENERATED"] {
            assert!(is_generated(extra), "{extra}");
        }
        for extra in ["", "auto_increment", "DEFAULT_GENERATED", "DEFAULT_GENERATED on update CURRENT_TIMESTAMP", "ROW START", "ROW END INVISIBLE", "INVISIBLE"]
        {
            assert!(!is_generated(extra), "{extra}");
        }
    }

    #[test]
    fn enum_members_come_unquoted_and_an_empty_one_is_seen() {
        assert_eq!(enum_members("enum('','a','b c')"), ["", "a", "b c"]);
        assert_eq!(enum_members("enum('a''b',',''','')"), ["a'b", ",'", ""]);
        assert_eq!(enum_members("set('x','y')"), ["x", "y"]);
        assert_eq!(enum_members("enum('a,b','')"), ["a,b", ""]);
        assert!(!enum_members("enum('''','a''')").iter().any(String::is_empty));
        assert_eq!(empty_member_read("v`", "enum", "enum('a','')", "`v```").as_deref(), Some("IF(`v``` + 0 = 0, REPEAT('~', 256), `v```)"));
        assert_eq!(empty_member_read("s", "set", "set('x','','y')", "`s`").as_deref(), Some("IF(`s` & 2, CONCAT(',', `s`), `s`)"));
        assert_eq!(
            empty_member_read("s", "set", "set('x','','y')", "CAST(`s` AS BINARY)").as_deref(),
            Some("IF(`s` & 2, CONCAT(',', CAST(`s` AS BINARY)), CAST(`s` AS BINARY))")
        );
        assert_eq!(empty_member_read("s", "set", "set('x','y')", "`s`"), None);
        assert_eq!(empty_member_read("e", "enum", "enum('a')", "`e`"), None);
        assert_eq!(shadowed_member_read("e", "enum", &[2, 4], "`e`").as_deref(), Some("IF(`e` + 0 IN (2,4), CAST(`e` + 0 AS CHAR), `e`)"));
        assert_eq!(shadowed_member_read("s", "set", &[2, 3], "`s`").as_deref(), Some("IF(`s` & 6, CAST(`s` + 0 AS CHAR), `s`)"));
        assert_eq!(shadowed_member_read("s", "set", &[], "`s`"), None);
        assert_eq!(empty_member_read("t", "varchar", "varchar(10)", "`t`"), None);
    }

    #[test]
    fn text_in_other_character_sets_than_utf8_is_told_apart() {
        for charset in ["latin1", "cp1250", "gbk", "cp932", "sjis", "big5", "utf16", "ucs2", "utf32", "LATIN1", "ascii"] {
            assert!(is_stored_as_other_text(charset), "{charset}");
        }
        for charset in ["", "utf8mb4", "utf8mb3", "utf8", "binary", "UTF8MB4"] {
            assert!(!is_stored_as_other_text(charset), "{charset}");
        }
    }
}
