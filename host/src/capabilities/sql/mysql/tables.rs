//! The tables a dump holds, as the server describes them: definition, columns (generated ones
//! left out), estimated rows and an integer key to cut big tables into ranges; and a database's
//! content checksum from its tables' and other objects' digests.

use super::codec::{db_err, quote_ident};
use super::objects;
use crate::bindings::Error;
use crate::capabilities::sql::checksum::{database_checksum, RowHash, TableHasher};
use mysql_async::prelude::*;
use mysql_async::Conn;

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

pub(super) async fn tables(c: &mut Conn, database: &str) -> Result<Vec<TableInfo>, Error> {
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
