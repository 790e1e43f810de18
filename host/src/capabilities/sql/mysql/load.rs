//! Restoring a dump's rows in the forms the server takes fastest, instead of as the INSERT
//! statements the file holds; the dump file itself stays plain SQL that the stock client restores.
//!
//! - **LOAD DATA LOCAL INFILE** for most rows: the server reads tab-separated values much faster
//!   than it parses SQL literals (a text-heavy table loads in about 60 % of the time).
//! - **Prepared INSERTs with every value bound** for rows of long values (see [`long_values`]):
//!   the values travel as bytes in the binary protocol, which the server copies instead of
//!   reading them one character at a time as a LOAD DATA field or a SQL literal. Measured on
//!   MariaDB 10.11 (server CPU, one connection, the bench's tables): 26 KB texts 0.56 s against
//!   1.36 s as LOAD DATA, 32 KB BLOBs 0.50 s against 0.75 s as hex INSERTs, 14 KB JSON 0.28 s
//!   against 0.54 s. Narrower rows keep LOAD DATA: the bench's `oms_project` (470-byte rows, a
//!   410-byte text in each) cost the server as much bound as strings, and the client three
//!   times the CPU; 75-byte rows cost the server more bound.
//! - Every value is bound as a string in the session's character set (utf8mb4), as a LOAD DATA
//!   field is read, so each column converts it exactly as it converts that field; a `0x…` or
//!   `_binary'…'` value is bound as `CAST(? AS BINARY)`, a binary string as the literal is.
//!   NULL stays `NULL`.
//! - A LOAD DATA into a table whose every text column is utf8mb4 reads its fields as bytes
//!   (`CHARACTER SET binary`; MariaDB only): nothing converts, and the server does not read
//!   them one multibyte character at a time (see [`from_insert`]).
//! - Only statements in exactly the form opshost's dumps write are converted (see
//!   [`literals`]); anything else, for example a hand-edited file, is run as it is.
//! - LOAD DATA rows go to the server from memory through a per-statement handler: whatever file
//!   name the server asks for, no local file is ever read.
//! - A server that refuses LOCAL INFILE (MySQL's default, or `local_infile=OFF`) is detected on the
//!   first statement, and the rest of the restore runs the INSERTs; one that refuses a prepared
//!   statement (too many open, or placeholders) stops binding, likewise.
//! - Tables with an AUTO_INCREMENT column load this way too. Every value is in the dump, so the
//!   server makes none up; under `innodb_autoinc_lock_mode` 1 (MariaDB's default) a LOAD DATA
//!   holds the table's AUTO-INC lock to its end, so two workers on one such table take turns.
//!   Workers keep to files of their own until a restore's end, but where one such table is most
//!   of the MetaDB (the bench's `heartbeat` shape) that end is most of the restore, on one
//!   core. Measured on the bench's
//!   `autoinc` shape (every table so keyed): 11.2–11.7 s and 16–17 s of server CPU against
//!   12.8–14.6 s and 22–24 s with the INSERTs.
//! - Each statement's rows, in any form, are one transaction, as the INSERT was; the restore's
//!   checksum verification is the judge either way.

use super::codec::extend_from_hex;
use super::flavour::Flavour;
use bytes::Bytes;
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Params, Value};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Which forms one restore may send rows in.
#[derive(Clone, Copy)]
pub struct Forms {
    /// LOAD DATA LOCAL INFILE (the site config's `load_data`, and the flavour).
    pub load_data: bool,
    /// Prepared INSERTs with the values bound (the flavour: where seen exact).
    pub bind: bool,
    /// LOAD DATA reading a table's fields as bytes where no column converts them (the flavour:
    /// where seen exact; see [`from_insert`]).
    pub bytes: bool,
}

impl Forms {
    /// The forms a restore on a server of `flavour` uses: none but the INSERTs themselves when
    /// the site config's `load_data` is off.
    pub fn new(load_data: bool, flavour: Flavour) -> Forms {
        Forms { load_data: load_data && flavour.load_data(), bind: load_data && flavour.bind_values(), bytes: load_data && flavour.load_bytes() }
    }
}

/// Which of one restore's statements go in which form.
pub struct Policy {
    load_data: AtomicBool,
    bind: AtomicBool,
    /// The biggest statement whose values are bound (see [`BOUND_MAX`]).
    bound_max: usize,
    /// The server's `max_allowed_packet`, if known: no statement over it can be sent.
    packet: Option<u64>,
}

impl Policy {
    /// The forms allowed; `max_allowed_packet` the server's (None if unknown: nothing is bound,
    /// and every row goes as LOAD DATA where it can).
    pub fn new(forms: Forms, max_allowed_packet: Option<u64>) -> Policy {
        let bound_max = max_allowed_packet.map_or(0, |p| (p / 2).min(BOUND_MAX as u64) as usize);
        Policy { load_data: AtomicBool::new(forms.load_data), bind: AtomicBool::new(forms.bind), bound_max, packet: max_allowed_packet }
    }

    /// Whether `stmt`'s values go bound: rows of long values (see [`long_values`]) in a statement
    /// well under the server's packet limit.
    pub fn binds(&self, stmt: &[u8]) -> bool {
        self.bind.load(Relaxed) && stmt.len() <= self.bound_max && long_values(stmt)
    }

    /// Whether rows may still go as LOAD DATA: the site's `load_data`, and no refusal yet (the
    /// server's `local_infile`).
    pub fn loads_data(&self) -> bool {
        self.load_data.load(Relaxed)
    }

    /// No row goes as LOAD DATA from now on.
    pub fn no_load_data(&self) {
        self.load_data.store(false, Relaxed)
    }

    /// Why `stmt` cannot be sent as the INSERT it is, if it cannot: it is over the server's
    /// `max_allowed_packet`. A row this big travels only as LOAD DATA, which carries it across
    /// packets.
    pub fn over_the_packet(&self, stmt: &[u8]) -> Option<String> {
        let packet = self.packet.filter(|p| stmt.len() as u64 > *p)?;
        let mb = (stmt.len() as u64).div_ceil(1 << 20);
        Some(format!(
            "an INSERT of {mb} MB in the backup is over the server's max_allowed_packet ({} MB), and this restore cannot use LOAD DATA (load_data off, or the server's local_infile): raise it (SET GLOBAL max_allowed_packet = {}), then run the restore again",
            packet >> 20,
            (mb + 1) << 20
        ))
    }

    /// One dump statement's rows, with whether they go bound decided once ([`Policy::binds`]).
    pub fn rows(&self, stmt: Vec<u8>) -> Rows {
        let bound = self.binds(&stmt);
        Rows { stmt, bound, bytes: false, load: true }
    }
}

/// One dump statement's rows, and whether their values go bound (see [`Policy::rows`]).
pub struct Rows {
    stmt: Vec<u8>,
    bound: bool,
    /// As LOAD DATA, its fields are read as bytes (see [`from_insert`]).
    bytes: bool,
    /// It may go as LOAD DATA at all (see [`Rows::load_data`]).
    load: bool,
}

impl Rows {
    /// Whether the values go bound, as a prepared INSERT.
    pub fn bound(&self) -> bool {
        self.bound
    }

    /// The rows with their LOAD DATA fields read as bytes when `yes`: only for a table whose
    /// every text column is utf8mb4 (see [`from_insert`]).
    pub fn fields_as_bytes(self, yes: bool) -> Rows {
        Rows { bytes: yes, ..self }
    }

    /// The rows may go as LOAD DATA only when `yes`: not the stored bytes of text in a character
    /// set other than UTF-8 (`_binary'…'` into a latin1 or gbk column) as fields read as
    /// utf8mb4, which the column would convert from.
    pub fn load_data(self, yes: bool) -> Rows {
        Rows { load: yes, ..self }
    }

    /// The table the rows go into, quoted as the statement names it.
    pub fn table(&self) -> Option<&str> {
        insert_table(&self.stmt).map(|(table, _)| table)
    }

    /// The rows in the form `policy` sends them in now, converted ahead of [`insert`] (a
    /// restore worker converts its next rows while the server loads the last: see `restore.rs`).
    pub fn convert(&self, policy: &Policy) -> Converted {
        let bound = (self.bound && policy.bind.load(Relaxed)).then(|| bound(&self.stmt)).flatten();
        let load = (bound.is_none() && self.load && policy.load_data.load(Relaxed)).then(|| from_insert(&self.stmt, self.bytes)).flatten();
        Converted { bound, load }
    }
}

/// One statement's rows converted ahead ([`Rows::convert`]). A form not in it is converted when
/// it is needed: the form converted was refused, or the statement runs again.
#[derive(Default)]
pub struct Converted {
    bound: Option<Bound>,
    load: Option<Load>,
}

/// The table an INSERT names (quoted, with or without a column list after it) and the rest.
fn insert_table(stmt: &[u8]) -> Option<(&str, &[u8])> {
    let (table, rest) = ident_bytes(stmt.strip_prefix(b"INSERT INTO ")?)?;
    Some((std::str::from_utf8(table).ok()?, rest))
}

/// Insert one dump statement's rows on `c`: bound or as LOAD DATA where `policy` wants it, else
/// as the INSERT it is. The first refusal of a form turns it off for the whole restore.
///
/// `ready`: the rows as converted ahead ([`Rows::convert`]), or the default to convert them here.
///
/// Each statement is a transaction of its own. One that InnoDB picks as a deadlock victim, or
/// that waited too long for a lock, was rolled back whole and is run again, a few times.
pub async fn insert(c: &mut Conn, rows: Rows, policy: &Policy, mut ready: Converted) -> Result<(), mysql_async::Error> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match insert_once(c, &rows, policy, std::mem::take(&mut ready)).await {
            Err(mysql_async::Error::Server(s)) if [1213, 1205].contains(&s.code) && attempt < ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn insert_once(c: &mut Conn, rows: &Rows, policy: &Policy, ready: Converted) -> Result<(), mysql_async::Error> {
    let stmt = rows.stmt.as_slice();
    // A form refused by an earlier statement is not tried again.
    if rows.bound && policy.bind.load(Relaxed) {
        if let Some(b) = ready.bound.or_else(|| bound(stmt)) {
            match run_bound(c, b).await {
                Err(e) if refuses_binding(&e) => policy.bind.store(false, Relaxed),
                other => return other,
            }
        }
    }
    if rows.load && policy.load_data.load(Relaxed) {
        if let Some(l) = ready.load.or_else(|| from_insert(stmt, rows.bytes)) {
            match run(c, l).await {
                Err(e) if is_refusal(&e) => policy.load_data.store(false, Relaxed),
                other => return other,
            }
        }
    }
    if let Some(too_big) = policy.over_the_packet(stmt) {
        return Err(mysql_async::Error::Other(too_big.into()));
    }
    c.query_drop(stmt).await
}

/// Whether a dump's INSERT holds rows of long values, judged on its first row (a table's rows
/// are alike): a row of [`WIDE_ROW`] bytes or more, at least half of it values of
/// [`LONG_VALUE`] bytes or more. Those the server takes for much less bound than as LOAD DATA
/// fields (see the module doc). It only chooses which of two exact forms the rows travel in.
fn long_values(stmt: &[u8]) -> bool {
    let Some(insert) = Insert::parse(stmt) else { return false };
    let (mut long, mut row_len) = (0, 0);
    let first_row = literals(&insert, true, |lit, place| {
        let bytes = match lit {
            Literal::Str(raw) | Literal::Binary(raw) => raw.len(),
            Literal::Hex(digits) => digits.len() / 2,
            _ => 0,
        };
        if bytes >= LONG_VALUE {
            long += match lit {
                Literal::Hex(digits) => digits.len(),
                _ => bytes,
            };
        }
        row_len = place.end;
        Some(())
    });
    first_row.is_some() && row_len >= WIDE_ROW && long * 2 >= row_len
}

/// See [`long_values`] and the module doc.
const WIDE_ROW: usize = 2048;

/// See [`long_values`]: 128-byte hashes (as the bench's `task` has) load faster as LOAD DATA.
const LONG_VALUE: usize = 256;

/// A statement bigger than this (a row of megabytes: the dump closes its INSERTs after 1 MB)
/// keeps LOAD DATA, whose rows travel in packets of their own: as one statement it could pass
/// the server's `max_allowed_packet` (16 MB by default on MariaDB, 4 MB on MySQL 5.7, and
/// whatever a site set), which the policy also keeps it under by half.
const BOUND_MAX: usize = 2 << 20;

/// The most placeholders one prepared statement may hold (the protocol's count is 16 bits).
const MAX_PLACEHOLDERS: usize = 65_535;

/// One INSERT statement's rows as a LOAD DATA statement and its data.
#[derive(Debug, PartialEq)]
pub struct Load {
    pub statement: String,
    pub data: Vec<u8>,
}

/// One INSERT statement as a prepared statement and the values it binds.
#[derive(Debug, PartialEq)]
pub struct Bound {
    pub statement: String,
    pub params: Vec<Value>,
}

/// A backquoted identifier at the start of `s` (doubled backquotes inside): (it, the rest).
pub(super) fn ident(s: &str) -> Option<(&str, &str)> {
    let (id, _) = ident_bytes(s.as_bytes())?;
    // A backquote is one byte of UTF-8: `s` splits there.
    Some(s.split_at(id.len()))
}

/// [`ident`] of bytes.
fn ident_bytes(b: &[u8]) -> Option<(&[u8], &[u8])> {
    if b.first() != Some(&b'`') {
        return None;
    }
    let mut i = 1;
    loop {
        match b.get(i)? {
            b'`' if b.get(i + 1) == Some(&b'`') => i += 2,
            b'`' => return Some(b.split_at(i + 1)),
            _ => i += 1,
        }
    }
}

/// `INSERT INTO `t` (`a`,`b`) VALUES ` and what follows: the form opshost's dumps write.
struct Insert<'a> {
    table: &'a str,
    columns: Vec<&'a str>,
    values: &'a [u8],
}

impl<'a> Insert<'a> {
    /// The statement's table and columns (UTF-8, as the dump writes names) and its values (any
    /// bytes: a binary string's are its own).
    fn parse(stmt: &'a [u8]) -> Option<Insert<'a>> {
        let text = |b: &'a [u8]| std::str::from_utf8(b).ok();
        let (table, rest) = insert_table(stmt)?;
        let mut rest = rest.strip_prefix(b" (")?;
        let mut columns = Vec::new();
        loop {
            let (c, r) = ident_bytes(rest)?;
            columns.push(text(c)?);
            if let Some(r) = r.strip_prefix(b",") {
                rest = r;
            } else {
                rest = r.strip_prefix(b") VALUES ")?;
                break;
            }
        }
        Some(Insert { table, columns, values: rest })
    }
}

/// One value of a dump's INSERT, as written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Literal<'a> {
    Null,
    /// An integer or a float's digits.
    Number(&'a [u8]),
    /// A `'…'` string's text between its quotes, with `mysql_real_escape_string`'s escapes.
    Str(&'a [u8]),
    /// A `_binary'…'` string's bytes between its quotes, escaped as a [`Literal::Str`]'s.
    Binary(&'a [u8]),
    /// A `0x…` literal's digits (an even number of them, at least two).
    Hex(&'a [u8]),
}

/// Hand every value of `insert` to `each` in order, with where it stands (its row and field) and
/// the offset just after it (before the `,` or `)` that follows); None when the statement is not
/// in the dump's form: values that are `NULL`, numbers, `'…'` or `_binary'…'` strings with the
/// client's escapes, or hex, as many in each row as columns, rows separated by `,` and ended by
/// `;`. With `first_only`, stops after the first row.
fn literals<'a>(insert: &Insert<'a>, first_only: bool, mut each: impl FnMut(Literal<'a>, Place) -> Option<()>) -> Option<()> {
    let v = insert.values;
    let mut i = 0;
    for row in 0.. {
        if *v.get(i)? != b'(' {
            return None;
        }
        i += 1;
        let mut fields = 0;
        loop {
            let lit = match *v.get(i)? {
                b'\'' => {
                    let (raw, end) = string(v, i + 1)?;
                    i = end;
                    Literal::Str(raw)
                }
                b'_' if v[i..].starts_with(b"_binary'") => {
                    let (raw, end) = string(v, i + b"_binary'".len())?;
                    i = end;
                    Literal::Binary(raw)
                }
                b'0' if v.get(i + 1) == Some(&b'x') => {
                    // The digits run to the `,` or `)` after them, checked in one pass.
                    let start = i + 2;
                    let digits = &v[start..start + memchr::memchr2(b',', b')', v.get(start..)?)?];
                    if digits.is_empty() || !digits.len().is_multiple_of(2) || !all_hex(digits) {
                        return None;
                    }
                    i = start + digits.len();
                    Literal::Hex(digits)
                }
                b'N' if v.get(i..i + 4) == Some(b"NULL") => {
                    i += 4;
                    Literal::Null
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while v.get(i).is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+')) {
                        i += 1;
                    }
                    Literal::Number(&v[start..i])
                }
                _ => return None,
            };
            each(lit, Place { row, field: fields, end: i })?;
            fields += 1;
            match *v.get(i)? {
                b',' => i += 1,
                b')' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if fields != insert.columns.len() {
            return None;
        }
        if first_only {
            return Some(());
        }
        match *v.get(i)? {
            b',' => i += 1,
            b';' if i + 1 == v.len() => return Some(()),
            _ => return None,
        }
    }
    unreachable!("a statement of more rows than usize counts")
}

/// The string that starts at `start` in `v` (just after its opening quote): its bytes between the
/// quotes and the offset after its closing one, or None when it never ends or holds an escape
/// `mysql_real_escape_string` does not write.
fn string(v: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let mut i = start;
    loop {
        let at = i + memchr::memchr2(b'\'', b'\\', v.get(i..)?)?;
        if v[at] == b'\'' {
            return Some((&v[start..at], at + 1));
        }
        if !matches!(*v.get(at + 1)?, b'\'' | b'0' | b'\\' | b'n' | b'r' | b'Z') {
            return None;
        }
        i = at + 2;
    }
}

/// Whether every byte of `b` is a hex digit: without a branch a byte, which the compiler turns
/// into sixteen bytes a step (BLOBs are hundreds of megabytes of hex).
fn all_hex(b: &[u8]) -> bool {
    b.iter().fold(true, |ok, &c| ok & ((c.wrapping_sub(b'0') < 10) | ((c | 0x20).wrapping_sub(b'a') < 6)))
}

/// Where a [`Literal`] stands in its statement.
#[derive(Clone, Copy)]
struct Place {
    row: usize,
    field: usize,
    /// The offset just after it in the statement's values.
    end: usize,
}

/// Append one byte of a field's value, escaping what the field syntax reserves.
fn push_field_byte(out: &mut Vec<u8>, c: u8) {
    match c {
        b'\t' => out.extend_from_slice(b"\\t"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0 => out.extend_from_slice(b"\\0"),
        c => out.push(c),
    }
}

/// `INSERT INTO `t` (`a`,`b`) VALUES (…),(…);` as a LOAD DATA of the same rows into the same
/// columns, or None when the statement is not in the form opshost's dumps write (see
/// [`literals`]).
///
/// `bytes`: the fields are read as bytes (`CHARACTER SET binary`) instead of as utf8mb4, for a
/// table whose every text column is utf8mb4 (the caller knows). Each column then gets the same
/// bytes, checked as it stores them, and the server skips reading every field one multibyte
/// character at a time: measured on MariaDB 10.11, the bench's `task` table (JSON, TEXT)
/// loaded in 7 % less time and server CPU, and the `autoinc` shape's restore in 3–5 % less.
/// A column of another character set needs the conversion from utf8mb4 (below).
pub fn from_insert(stmt: &[u8], bytes: bool) -> Option<Load> {
    let insert = Insert::parse(stmt)?;
    let mut out = Vec::with_capacity(insert.values.len());
    let mut scratch = Vec::new();
    literals(&insert, false, |lit, place| {
        match (place.row, place.field) {
            (0, 0) => {}
            (_, 0) => out.push(b'\n'),
            _ => out.push(b'\t'),
        }
        match lit {
            Literal::Null => out.extend_from_slice(b"\\N"),
            Literal::Number(n) => out.extend_from_slice(n),
            // The dump's escapes mean the same in the field syntax, but a quote needs none
            // there and a tab does. A binary string's bytes go as they are, as the bytes of hex
            // do (below).
            Literal::Str(raw) | Literal::Binary(raw) => {
                let mut at = 0;
                while let Some(k) = memchr::memchr2(b'\t', b'\\', &raw[at..]) {
                    out.extend_from_slice(&raw[at..at + k]);
                    at += k;
                    if raw[at] == b'\t' {
                        out.extend_from_slice(b"\\t");
                        at += 1;
                    } else {
                        match raw[at + 1] {
                            b'\'' => out.push(b'\''),
                            e => out.extend_from_slice(&[b'\\', e]),
                        }
                        at += 2;
                    }
                }
                out.extend_from_slice(&raw[at..]);
            }
            Literal::Hex(digits) => {
                scratch.clear();
                extend_from_hex(&mut scratch, digits);
                scratch.iter().for_each(|&b| push_field_byte(&mut out, b));
            }
        }
        Some(())
    })?;
    out.push(b'\n');
    // The text is UTF-8, as the dump was read and its INSERTs are replayed (`SET NAMES utf8mb4`):
    // read as utf8mb4, the server converts it to each column's character set (a latin1 `é` is
    // one byte again; read as `binary` it was stored as the two bytes of its UTF-8, so `bytes`
    // is only for tables of utf8mb4 text), and copies the bytes of
    // binary columns (`_binary'…'` or hex in the dump) as they are: a valid multibyte character
    // holds no byte under 0x80, so no field's tab or backslash is read as part of one.
    let statement = format!(
        "LOAD DATA LOCAL INFILE 'opshost-restore' INTO TABLE {} CHARACTER SET {} FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        insert.table,
        if bytes { "binary" } else { "utf8mb4" },
        insert.columns.join(",")
    );
    Some(Load { statement, data: out })
}

/// `INSERT INTO `t` (`a`,`b`) VALUES (…),(…);` as a prepared INSERT of the same rows with every
/// value but NULL bound as a string (a `0x…` or `_binary'…'` one as `CAST(? AS BINARY)`), or
/// None when the statement is not in the dump's form (see [`literals`]) or would need more
/// placeholders than a prepared statement holds.
pub fn bound(stmt: &[u8]) -> Option<Bound> {
    let insert = Insert::parse(stmt)?;
    let mut statement = format!("INSERT INTO {} ({}) VALUES (", insert.table, insert.columns.join(","));
    let mut params = Vec::new();
    literals(&insert, false, |lit, place| {
        match (place.row, place.field) {
            (0, 0) => {}
            (_, 0) => statement.push_str("),("),
            _ => statement.push(','),
        }
        // (the value, whether it is a binary string)
        let (value, binary) = match lit {
            Literal::Null => {
                statement.push_str("NULL");
                return Some(());
            }
            Literal::Number(n) => (n.to_vec(), false),
            Literal::Str(raw) => (unescape(raw), false),
            Literal::Binary(raw) => (unescape(raw), true),
            Literal::Hex(digits) => {
                let mut bytes = Vec::new();
                extend_from_hex(&mut bytes, digits);
                (bytes, true)
            }
        };
        statement.push_str(if binary { "CAST(? AS BINARY)" } else { "?" });
        params.push(Value::Bytes(value));
        (params.len() <= MAX_PLACEHOLDERS).then_some(())
    })?;
    statement.push(')');
    Some(Bound { statement, params })
}

/// A dump string's bytes: `mysql_real_escape_string`'s escapes undone (checked by [`literals`]).
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while let Some(k) = memchr::memchr(b'\\', &raw[at..]) {
        out.extend_from_slice(&raw[at..at + k]);
        at += k;
        out.push(match raw[at + 1] {
            b'0' => 0,
            b'n' => b'\n',
            b'r' => b'\r',
            b'Z' => 0x1a,
            e => e,
        });
        at += 2;
    }
    out.extend_from_slice(&raw[at..]);
    out
}

/// Run one bound INSERT on `c`: prepared, executed, and closed (each statement's text differs
/// in its NULLs and its rows, so none is kept).
pub async fn run_bound(c: &mut Conn, b: Bound) -> Result<(), mysql_async::Error> {
    let statement = c.prep(b.statement).await?;
    let result = c.exec_drop(&statement, Params::Positional(b.params)).await;
    let closed = c.close(statement).await;
    result.and(closed)
}

/// Whether a server error means "no such prepared statement here": too many prepared statements
/// open on the server (1461), a statement the protocol does not take (1295), or too many
/// placeholders (1390). Nothing ran; the rows go another way.
fn refuses_binding(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [1461, 1295, 1390].contains(&s.code))
}

/// Whether a server error means "LOCAL INFILE is not allowed here" (MariaDB 10.5 and later:
/// 4166; older MariaDB and MySQL 5.x: 1148; MySQL 8: 3948 and 2068).
pub fn is_refusal(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [4166, 1148, 3948, 2068].contains(&s.code))
}

/// The most data one LOCAL INFILE packet carries. A statement's rows are about a megabyte (the
/// dump's INSERT size), but one row can be bigger than the server's `max_allowed_packet` once
/// escaped (a 9 MB binary value is 18 MB of hex in the dump): the client refuses to send a packet
/// over that limit, while the server reads a row across packets.
const PACKET_BYTES: usize = 1 << 20;

/// Run one load on `c`: the handler hands the server exactly `load.data`, once, in packets of at
/// most [`PACKET_BYTES`].
pub async fn run(c: &mut Conn, load: Load) -> Result<(), mysql_async::Error> {
    let data = Bytes::from(load.data);
    let packets: Vec<std::io::Result<Bytes>> =
        (0..data.len()).step_by(PACKET_BYTES).map(|at| Ok(data.slice(at..(at + PACKET_BYTES).min(data.len())))).collect();
    c.set_infile_handler(async move { Ok(futures_util::stream::iter(packets).boxed()) });
    let result = c.query_drop(load.statement).await;
    if result.is_err() {
        // Refused before the server asked for the data: leave no handler with rows behind on
        // a connection that goes back to the pool.
        c.set_infile_handler(async { Err(mysql_async::Error::Other("no LOCAL INFILE data here".into())) });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opshost_insert_becomes_tab_separated_rows() {
        let stmt = "INSERT INTO `t``x` (`id`,`s`,`b`,`n`,`f`) VALUES (1,'it\\'s\\\\ a\\nb\\r\\0\\Z\tend',0x00090a5c41,NULL,-1.5e-7),(-2,'',0x7f,NULL,3);";
        let l = from_insert(stmt.as_bytes(), false).unwrap();
        assert_eq!(
            l.statement,
            "LOAD DATA LOCAL INFILE 'opshost-restore' INTO TABLE `t``x` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`id`,`s`,`b`,`n`,`f`)"
        );
        assert_eq!(String::from_utf8(l.data.clone()).unwrap(), "1\tit's\\\\ a\\nb\\r\\0\\Z\\tend\t\\0\\t\\n\\\\A\t\\N\t-1.5e-7\n-2\t\t\x7f\t\\N\t3\n");
        // Read as bytes: the same fields, only the statement's character set differs.
        let b = from_insert(stmt.as_bytes(), true).unwrap();
        assert_eq!(b.statement, l.statement.replace("CHARACTER SET utf8mb4", "CHARACTER SET binary"));
        assert_eq!(b.data, l.data);
    }

    #[test]
    fn an_opshost_insert_becomes_a_prepared_insert_of_strings() {
        let stmt = "INSERT INTO `t``x` (`id`,`s`,`b`,`n`,`f`) VALUES (1,'it\\'s\\\\ a\\nb\\r\\0\\Z\tend',0x00090a5c41,NULL,-1.5e-7),(-2,'',0x7f,NULL,3);";
        let b = bound(stmt.as_bytes()).unwrap();
        assert_eq!(b.statement, "INSERT INTO `t``x` (`id`,`s`,`b`,`n`,`f`) VALUES (?,?,CAST(? AS BINARY),NULL,?),(?,?,CAST(? AS BINARY),NULL,?)");
        let bytes = |v: &[u8]| Value::Bytes(v.to_vec());
        assert_eq!(
            b.params,
            [bytes(b"1"), bytes(b"it's\\ a\nb\r\0\x1a\tend"), bytes(b"\0\t\n\\A"), bytes(b"-1.5e-7"), bytes(b"-2"), bytes(b""), bytes(b"\x7f"), bytes(b"3")]
        );
        // More values than a prepared statement's placeholders: not bound.
        let many = format!("INSERT INTO `t` (`a`) VALUES {};", vec!["(1)"; MAX_PLACEHOLDERS + 1].join(","));
        assert_eq!(bound(many.as_bytes()), None);
        assert!(bound(format!("INSERT INTO `t` (`a`) VALUES {};", vec!["(1)"; MAX_PLACEHOLDERS].join(",")).as_bytes()).is_some());
    }

    /// A binary string holds any bytes: as a LOAD DATA field they go as they are (the field's
    /// own escapes for tab, newline, backslash and NUL), bound they go as `CAST(? AS BINARY)`,
    /// as a hex literal's bytes do.
    #[test]
    fn a_binary_string_s_bytes_go_as_they_are_in_either_form() {
        let mut stmt = b"INSERT INTO `t` (`id`,`b`,`h`) VALUES (1,_binary'\xff\xfe\\'\\0\t\\\\\\n\\r\\Z\xc3',0xff09),(2,_binary'',NULL);".to_vec();
        let l = from_insert(&stmt, false).unwrap();
        assert_eq!(l.data, b"1\t\xff\xfe'\\0\\t\\\\\\n\\r\\Z\xc3\t\xff\\t\n2\t\t\\N\n");
        let b = bound(&stmt).unwrap();
        assert_eq!(b.statement, "INSERT INTO `t` (`id`,`b`,`h`) VALUES (?,CAST(? AS BINARY),CAST(? AS BINARY)),(?,CAST(? AS BINARY),NULL)");
        let bytes = |v: &[u8]| Value::Bytes(v.to_vec());
        assert_eq!(b.params, [bytes(b"1"), bytes(b"\xff\xfe'\0\t\\\n\r\x1a\xc3"), bytes(b"\xff\x09"), bytes(b"2"), bytes(b"")]);
        // Every byte value, escaped as a dump escapes it, comes back as itself.
        let all: Vec<u8> = (0..=255u8).collect();
        let mut literal = Vec::new();
        super::super::codec::literal(super::super::codec::Raw::Bytes(&all), super::super::codec::Kind::Binary, &mut literal);
        stmt = [&b"INSERT INTO `t` (`b`) VALUES ("[..], &literal, b");"].concat();
        assert_eq!(bound(&stmt).unwrap().params, [Value::Bytes(all.clone())]);
        let field = from_insert(&stmt, false).unwrap().data;
        let mut back = Vec::new();
        let mut i = 0;
        while i < field.len() - 1 {
            if field[i] == b'\\' {
                back.push(match field[i + 1] {
                    b'0' => 0,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b'Z' => 0x1a,
                    c => c,
                });
                i += 2;
            } else {
                back.push(field[i]);
                i += 1;
            }
        }
        assert_eq!(back, all, "the LOAD DATA field reads back as every byte");
    }

    #[test]
    fn hex_digits_are_told_from_every_other_byte() {
        for c in 0..=255u8 {
            assert_eq!(all_hex(&[b'a', c, b'0']), c.is_ascii_hexdigit(), "{c}");
        }
        assert!(all_hex(b""));
    }

    #[test]
    fn only_rows_of_long_values_are_bound() {
        let row = |i: usize, hex: usize, text: usize| format!("({i},0x{},'{}')", "ab".repeat(hex), "t".repeat(text));
        let stmt = |rows: Vec<String>| format!("INSERT INTO `t` (`id`,`b`,`s`) VALUES {};", rows.join(",")).into_bytes();
        // Wide binary rows, wide text, and a few kilobytes of text beside short values.
        assert!(long_values(&stmt((0..30).map(|i| row(i, 16_000, 10)).collect())));
        assert!(long_values(&stmt((0..30).map(|i| row(i, 64, 20_000)).collect())));
        assert!(long_values(&stmt((0..300).map(|i| row(i, 8, 2_100)).collect())));
        assert!(long_values(&stmt(vec![row(1, 1_100, 0)])));
        // Narrower rows, even of long values (the bench's `oms_project`: 410 bytes of text), and
        // narrow rows with binary values (its `task`: 128-byte hashes).
        assert!(!long_values(&stmt((0..2_000).map(|i| row(i, 8, 400)).collect())));
        assert!(!long_values(&stmt((0..5_000).map(|i| row(i, 128, 10)).collect())));
        assert!(!long_values(&stmt((0..5_000).map(|i| row(i, 8, 60)).collect())));
        // Long values that are not most of the row.
        assert!(!long_values(&stmt((0..30).map(|i| row(i, 200, 300)).collect())));
        // Not the dump's form.
        assert!(!long_values(format!("INSERT INTO `t` (`s`) VALUES (CONCAT('{}'));", "x".repeat(1_000)).as_bytes()));
        // Binary strings count as their bytes, as hex counts as the bytes it spells.
        assert!(long_values(format!("INSERT INTO `t` (`id`,`b`) VALUES (1,_binary'{}');", "\\0".repeat(1_100)).as_bytes()));
        // Bound only under half the server's packet limit, and under 2 MB.
        let wide = stmt((0..30).map(|i| row(i, 16_000, 10)).collect());
        let forms = Forms { load_data: true, bind: true, bytes: true };
        assert!(Policy::new(forms, Some(16 << 20)).binds(&wide));
        assert!(!Policy::new(forms, Some(1 << 20)).binds(&wide), "{} bytes against a 1 MB limit", wide.len());
        assert!(!Policy::new(forms, None).binds(&wide));
        assert!(!Policy::new(forms, Some(16 << 20)).binds(&stmt(vec![row(1, 1_100_000, 0)])));
        assert!(!Policy::new(Forms { load_data: true, bind: false, bytes: true }, Some(16 << 20)).binds(&wide));
    }

    #[test]
    fn anything_not_in_the_dump_form_is_left_as_sql() {
        for stmt in [
            "INSERT INTO `t` (`a`) VALUES (1)",              // no semicolon
            "INSERT INTO `t` (`a`) VALUES (1);x",            // trailing text
            "INSERT INTO `t` (`a`) VALUES (NOW());",         // an expression
            "INSERT INTO `t` (`a`,`b`) VALUES (1);",         // too few values
            "INSERT INTO `t` (`a`) VALUES (1,2);",           // too many
            "INSERT INTO `t` (`a`) VALUES ('unterminated);", // a string that never ends
            "INSERT INTO `t` (`a`) VALUES ('\\q');",         // an escape dumps never write
            "INSERT INTO `t` (`a`) VALUES (0xabc);",         // odd hex
            "INSERT INTO `t` (`a`) VALUES (0xabcg);",        // not hex
            "INSERT INTO `t` (`a`) VALUES (0x);",            // no digits
            "INSERT INTO `t` (`a`) VALUES (0xab",            // no end
            "INSERT INTO `t` (`a`) VALUES (_binary'ab);",    // a binary string that never ends
            "INSERT INTO `t` (`a`) VALUES (_binary 'ab');",  // not the dump's spelling
            "INSERT INTO `t` (`a`) VALUES (_utf8mb4'ab');",  // another introducer
            "INSERT INTO `t` (`a`) VALUES (_binary'\\q');",  // an escape dumps never write
            "INSERT INTO t (`a`) VALUES (1);",               // unquoted name
            "INSERT IGNORE INTO `t` (`a`) VALUES (1);",
            "REPLACE INTO `t` (`a`) VALUES (1);",
        ] {
            assert_eq!(from_insert(stmt.as_bytes(), false), None, "{stmt}");
            assert_eq!(bound(stmt.as_bytes()), None, "{stmt}");
        }
    }
}
