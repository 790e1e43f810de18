//! The tables a dump holds, as the server describes them: definition, columns (generated ones
//! left out), estimated rows and an integer key to cut big tables into ranges; and a database's
//! content checksum from its tables' and other objects' digests.
//!
//! A system-versioned table (MariaDB) is read with its history (`FOR SYSTEM_TIME ALL`) and its
//! period columns, which a restore writes back under `system_versioning_insert_history`; one
//! versioned by transaction id cannot be written back by any client and is refused, and so is a
//! table whose definition is not text (a binary column's default of raw bytes).

use super::codec::{db_err, quote_ident};
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
    pub create: String,
    pub columns: Vec<String>,
    pub estimated_rows: u64,
    /// The server's estimate of its rows' bytes (`DATA_LENGTH`): a few very wide rows are cut
    /// into ranges too.
    pub estimated_bytes: u64,
    /// The table's primary key when it is a single integer column, or its first column when
    /// that is an integer (quoted): big tables are read in ranges of it.
    pub integer_key: Option<String>,
    /// System-versioned: read with its history, its period columns among `columns`.
    pub versioned: bool,
}

impl TableInfo {
    /// What a read names after FROM: the table of `database`, every version of its rows for a
    /// system-versioned one.
    pub fn source(&self, database: &str) -> String {
        let all = if self.versioned { " FOR SYSTEM_TIME ALL" } else { "" };
        format!("{}.{}{all}", quote_ident(database), quote_ident(&self.name))
    }
}

/// The session setting a dump of system-versioned tables needs for its rows to be written back
/// with their period columns (MariaDB 10.11 and later; the version comment keeps older servers and
/// MySQL from reading it).
pub const INSERT_HISTORY: &str = "/*!101100 SET @@session.system_versioning_insert_history = 1 */;";

/// A database's (checksum, tables, rows) from its tables and their merged row hashers, and its
/// other objects (a database without any has the checksum earlier versions recorded).
pub(super) fn summary(tables: &[TableInfo], objects: &[objects::DbObject], hashers: &[TableHasher], hash: RowHash) -> (String, u32, u64) {
    let mut digests: Vec<(String, [u8; 32])> =
        tables.iter().zip(hashers).map(|(t, h)| (t.name.clone(), h.finish(&t.name, &definition_for_checksum(&t.create)))).collect();
    digests.extend(objects::digests(objects, hash));
    (database_checksum(&digests, hash), tables.len() as u32, hashers.iter().map(|h| h.rows()).sum())
}

/// Normalise `SHOW CREATE TABLE` for the checksum: the AUTO_INCREMENT counter is not content.
pub(super) fn definition_for_checksum(create: &str) -> String {
    create.split(' ').filter(|w| !w.starts_with("AUTO_INCREMENT=")).collect::<Vec<_>>().join(" ")
}

/// Whether a column of `DATA_TYPE` `ty` is an integer: a key of one is cut into ranges.
pub fn is_integer_type(ty: &str) -> bool {
    ["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&ty.to_lowercase().as_str())
}

/// The base tables of `database` (system-versioned ones included), by name, with their columns
/// (three queries whatever their number) but not yet their definitions: see [`definitions`].
pub(super) async fn tables(c: &mut Conn, database: &str) -> Result<Vec<TableInfo>, Error> {
    let names: Vec<(String, Option<u64>, Option<u64>, String)> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    // (column, extra, key, type) of every table, in each table's order; a period column of a
    // system-versioned table has `ROW START` or `ROW END` for extra.
    let mut columns_of: std::collections::HashMap<String, Vec<(String, String, String, String)>> = std::collections::HashMap::new();
    // Binary columns with a default, by table: see [`default_not_text`].
    let mut binary_defaults: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    let columns = |expression: &str| {
        format!(
            "SELECT TABLE_NAME, COLUMN_NAME, EXTRA, COLUMN_KEY, DATA_TYPE, {expression}, \
             DATA_TYPE IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob') AND COLUMN_DEFAULT IS NOT NULL AND COLUMN_DEFAULT <> 'NULL' \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION"
        )
    };
    // A server whose COLUMNS has no GENERATION_EXPRESSION has no system-versioned tables either.
    let all: Vec<(String, String, String, String, String, String, bool)> = match c.exec(columns("COALESCE(GENERATION_EXPRESSION, '')"), (database,)).await {
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
    for (table, column, extra, key, ty, expression, binary_default) in all {
        if binary_default {
            binary_defaults.entry(table.clone()).or_default().push(column.clone());
        }
        let extra = if ["ROW START", "ROW END"].contains(&expression.as_str()) { expression } else { extra };
        columns_of.entry(table).or_default().push((column, extra, key, ty));
    }
    let mut out = Vec::new();
    for (name, rows, bytes, kind) in names {
        let mut columns = columns_of.remove(&name).unwrap_or_default();
        // A dump is one statement a line, and the server writes a name as it is.
        if let Some(broken) = std::iter::once(&name).chain(columns.iter().map(|(c, ..)| c)).find(|n| n.contains(['\n', '\r'])) {
            return Err(failed(format!(
                "table {database}.{name}: the name {broken:?} holds a line break, which a dump (one statement a line) cannot carry: rename it before the upgrade"
            )));
        }
        if let Some(lost) = match binary_defaults.get(&name) {
            Some(binary) => default_not_text(c, database, &name, binary).await?,
            None => None,
        } {
            return Err(failed(format!(
                "table {database}.{name}: the DEFAULT of binary column {lost} holds bytes that are not text, which the server's SHOW CREATE TABLE gives raw, and opshost's backup does not carry such a definition: drop the default before the upgrade (ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT) and set it again after, or give it a default of ASCII bytes",
                quote_ident(&name),
                quote_ident(&lost)
            )));
        }
        let versioned = kind == "SYSTEM VERSIONED";
        if versioned {
            let period: Vec<&(String, String, String, String)> = columns.iter().filter(|(_, extra, _, _)| extra.starts_with("ROW ")).collect();
            if period.iter().any(|(_, _, _, ty)| !ty.eq_ignore_ascii_case("timestamp")) {
                return Err(failed(format!(
                    "table {database}.{name} keeps its history by transaction id (a BIGINT UNSIGNED period), which no client can write back, so a backup could not restore it: back it up by hand and drop it, or version it by TIMESTAMP, before the upgrade"
                )));
            }
            if period.is_empty() {
                // Implicit period columns: hidden from COLUMNS, but readable and writable by name.
                columns.extend(["ROW_START", "ROW_END"].map(|c| (c.to_string(), "ROW START".to_string(), String::new(), "timestamp".to_string())));
            }
        }
        // `PRI` marks the primary key's columns (or, in a table without one, a unique index's
        // whose columns are NOT NULL: as good for cutting into ranges, as no row's key is NULL).
        // A key of several columns is cut by its first, NOT NULL too: every row falls in exactly
        // one range of it, and each range is a range of the key.
        let key: Vec<&(String, String, String, String)> = columns.iter().filter(|(_, _, k, _)| k == "PRI").collect();
        let integer_key = match key.as_slice() {
            [(name, _, _, ty)] if is_integer_type(ty) => Some(quote_ident(name)),
            [_, _, ..] => leading.get(&name).filter(|first| key.iter().any(|(c, _, _, ty)| c == *first && is_integer_type(ty))).map(|first| quote_ident(first)),
            _ => None,
        };
        // Generated columns cannot be inserted into; they follow from the others and the
        // definition. A versioned table's period columns can, and hold its history's times.
        let columns = columns
            .into_iter()
            .filter(|(_, extra, _, _)| extra.starts_with("ROW ") || !["GENERATED", "VIRTUAL", "STORED"].iter().any(|g| extra.to_uppercase().contains(g)))
            .map(|(n, ..)| n)
            .collect();
        out.push(TableInfo {
            create: String::new(),
            columns,
            estimated_rows: rows.unwrap_or(0),
            estimated_bytes: bytes.unwrap_or(0),
            name,
            integer_key,
            versioned,
        });
    }
    Ok(out)
}

/// The first of `columns` (binary columns with a default) of `database`.`table` whose default
/// `SHOW CREATE TABLE` gives as bytes that are not text. MariaDB writes a binary default as a
/// string of its raw bytes whatever the results' character set (`DEFAULT '\xff\0'`), so a byte
/// of 0x80 or more makes the definition bytes that are not text. The stock client replays such a
/// line as it is; opshost's restore takes definitions as text, so its dump refuses them (read as
/// a string, mysql_async panicked on them).
async fn default_not_text(c: &mut Conn, database: &str, table: &str, columns: &[String]) -> Result<Option<String>, Error> {
    let sql = format!("SHOW CREATE TABLE {}.{}", quote_ident(database), quote_ident(table));
    let create: Option<(Vec<u8>, Vec<u8>)> = c.query_first(sql).await.map_err(|e| db_err(database, e))?;
    let Some((_, create)) = create.filter(|(_, create)| std::str::from_utf8(create).is_err()) else { return Ok(None) };
    let line_of = |column: &str| {
        let start = format!("  {} ", quote_ident(column));
        create.split(|&b| b == b'\n').find(|l| l.starts_with(start.as_bytes())).map(<[u8]>::to_vec)
    };
    // The column whose line is not text; any of them if none is found so (the definition is
    // refused either way).
    Ok(columns.iter().find(|column| line_of(column).is_some_and(|l| std::str::from_utf8(&l).is_err())).or(columns.first()).cloned())
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
    let read = share_out(readers, jobs, |(c, mut found): (&mut Conn, Vec<(usize, usize, String)>), (d, t, sql): (usize, usize, String)| async move {
        // As bytes: a definition that is not text is an error here, not a panic in the driver.
        let create: Result<Option<(Vec<u8>, Vec<u8>)>, _> = c.query_first(sql).await;
        let read = create.map_err(|e| db_err(databases[d], e)).and_then(|create| {
            let (name, create) = create.unwrap_or_default();
            let text = String::from_utf8(create).map_err(|_| {
                failed(format!(
                    "table {}.{}: SHOW CREATE TABLE gives a definition that is not text (as for a binary column's default of raw bytes), which opshost's backup does not carry: make it text (drop such a default for the upgrade and set it again after), then run again",
                    databases[d],
                    String::from_utf8_lossy(&name)
                ))
            })?;
            found.push((d, t, text));
            Ok(())
        });
        ((c, found), read)
    })
    .await?;
    for (d, t, create) in read.into_iter().flat_map(|(_, found)| found) {
        tables[d][t].create = create;
    }
    Ok(())
}
