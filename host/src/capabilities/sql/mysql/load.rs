//! Restoring a dump's rows as `LOAD DATA LOCAL INFILE` instead of as the INSERT statements the
//! file holds. The server reads tab-separated values much faster than it parses SQL literals
//! (a text-heavy table loads in about 60 % of the time); the dump file itself stays plain SQL
//! that the stock client restores.
//!
//! - Only statements in exactly the form opshost's dumps write are converted (see
//!   [`from_insert`]); anything else, for example a hand-edited file, is run as it is.
//! - The rows go to the server from memory through a per-statement handler: whatever file name
//!   the server asks for, no local file is ever read.
//! - A server that refuses LOCAL INFILE (MySQL's default, or `local_infile=OFF`) is detected on the
//!   first statement, and the rest of the restore runs the INSERTs.
//! - Tables with an AUTO_INCREMENT column load this way too. Every value is in the dump, so the
//!   server makes none up; under `innodb_autoinc_lock_mode` 1 (MariaDB's default) a LOAD DATA
//!   holds the table's AUTO-INC lock to its end, so two workers on one such table take turns.
//!   Workers keep to files of their own until a restore's end, but where one such table is most
//!   of the MetaDB (the bench's `heartbeat` shape) that end is most of the restore, on one
//!   core. Measured on the bench's
//!   `autoinc` shape (every table so keyed): 11.2–11.7 s and 16–17 s of server CPU against
//!   12.8–14.6 s and 22–24 s with the INSERTs.
//! - Wide rows with binary values stay INSERTs (see [`wide_binary`]): the server parses their hex
//!   for less than it reads LOAD DATA fields.
//! - The restore's checksum verification is the judge either way.

use bytes::Bytes;
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Which of one restore's statements go as LOAD DATA.
pub struct Policy {
    enabled: AtomicBool,
    /// The biggest wide binary INSERT sent as it is (see [`wide_binary`]).
    insert_max: usize,
    /// The server's `max_allowed_packet`, if known: no statement over it can be sent.
    packet: Option<u64>,
}

impl Policy {
    /// `enabled` from the site config (and the flavour); `max_allowed_packet` the server's
    /// (None if unknown: every row then goes as LOAD DATA where it can).
    pub fn new(enabled: bool, max_allowed_packet: Option<u64>) -> Policy {
        let insert_max = max_allowed_packet.map_or(0, |p| (p / 2).min(WIDE_INSERT_MAX as u64) as usize);
        Policy { enabled: AtomicBool::new(enabled), insert_max, packet: max_allowed_packet }
    }

    /// Whether `stmt` goes as it is even when LOAD DATA is on: wide binary rows (see
    /// [`wide_binary`]) well under the server's packet limit.
    pub fn sends_as_is(&self, stmt: &str) -> bool {
        stmt.len() <= self.insert_max && wide_binary(stmt)
    }

    /// Whether rows go as LOAD DATA (until the server refuses LOCAL INFILE).
    fn wants(&self) -> bool {
        self.enabled.load(Relaxed)
    }
}

/// Insert one dump statement's rows on `c`: as LOAD DATA where `policy` wants it, else as the
/// INSERT it is. The first refusal of LOCAL INFILE turns LOAD DATA off for the whole restore.
///
/// Each statement is a transaction of its own. One that InnoDB picks as a deadlock victim, or
/// that waited too long for a lock, was rolled back whole and is run again, a few times.
pub async fn insert(c: &mut Conn, stmt: String, policy: &Policy) -> Result<(), mysql_async::Error> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match insert_once(c, &stmt, policy).await {
            Err(mysql_async::Error::Server(s)) if [1213, 1205].contains(&s.code) && attempt < ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn insert_once(c: &mut Conn, stmt: &str, policy: &Policy) -> Result<(), mysql_async::Error> {
    if policy.wants() && !policy.sends_as_is(stmt) {
        if let Some(l) = from_insert(stmt) {
            match run(c, l).await {
                Err(e) if is_refusal(&e) => policy.enabled.store(false, Relaxed),
                other => return other,
            }
        }
    }
    if let Some(packet) = policy.packet.filter(|p| stmt.len() as u64 > *p) {
        // A row this big travels only as LOAD DATA, which carries it across packets.
        let mb = (stmt.len() as u64).div_ceil(1 << 20);
        return Err(mysql_async::Error::Other(
            format!(
                "an INSERT of {mb} MB in the backup is over the server's max_allowed_packet ({} MB), and this restore cannot use LOAD DATA (load_data off, or the server's local_infile): raise it (SET GLOBAL max_allowed_packet = {}), then run the restore again",
                packet >> 20,
                (mb + 1) << 20
            )
            .into(),
        ));
    }
    c.query_drop(stmt).await
}

/// Whether a dump's INSERT is better sent as it is: rows of [`WIDE_ROW`] bytes or more on
/// average, at least half of them hex values (binary columns), in a statement of at most
/// [`WIDE_INSERT_MAX`] (and half the server's `max_allowed_packet`: see [`Policy::new`]). The
/// server parses a `0x…` literal for less than it reads the same bytes as a LOAD DATA field
/// (which it takes one character at a time), and the hex need not be turned back into bytes
/// here. Measured on MariaDB 10.11, 100 MB of LONGBLOB values in a table keyed by INT: server
/// CPU 0.57–0.59 s as INSERTs against 0.64–0.71 s as LOAD DATA from 2 KB a value up (at 512
/// bytes, 0.91 s against 0.87 s); text, escaped or not, costs the same or less as LOAD DATA at
/// every width, so it keeps it.
///
/// A guess from the bytes (a `),(` or a `0x` inside a string counts too): it only chooses which
/// of two exact ways the rows travel, and the restore's checksum is the judge either way.
fn wide_binary(stmt: &str) -> bool {
    let b = stmt.as_bytes();
    if b.len() < WIDE_ROW || b.len() > WIDE_INSERT_MAX {
        return false;
    }
    // Where rows end: the first row's end, and how many rows.
    let mut ends = memchr::memmem::find_iter(b, b"),(");
    let first_end = ends.next();
    let rows = 1 + first_end.map_or(0, |_| 1 + ends.count());
    if b.len() / rows < WIDE_ROW {
        return false;
    }
    // Mostly hex, judged on the first row (a table's rows are alike): wide text beside a small
    // binary column keeps LOAD DATA, which costs its text less.
    let first = &b[..first_end.unwrap_or(b.len())];
    let hex: usize = memchr::memmem::find_iter(first, b"0x")
        .filter(|&at| at > 0 && matches!(first[at - 1], b',' | b'('))
        .map(|at| first[at + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count())
        .sum();
    hex * 2 >= first.len()
}

/// See [`wide_binary`].
const WIDE_ROW: usize = 2048;

/// A statement bigger than this (a row of megabytes: the dump closes its INSERTs after 1 MB)
/// keeps LOAD DATA, whose rows travel in packets of their own: as one statement it could pass
/// the server's `max_allowed_packet` (16 MB by default on MariaDB, 4 MB on MySQL 5.7, and
/// whatever a site set), which the policy also keeps it under by half.
const WIDE_INSERT_MAX: usize = 2 << 20;

/// One INSERT statement's rows as a LOAD DATA statement and its data.
#[derive(Debug, PartialEq)]
pub struct Load {
    pub statement: String,
    pub data: Vec<u8>,
}

/// A backquoted identifier at the start of `s` (doubled backquotes inside): (it, the rest).
pub(super) fn ident(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'`') {
        return None;
    }
    let mut i = 1;
    loop {
        match b.get(i)? {
            b'`' if b.get(i + 1) == Some(&b'`') => i += 2,
            b'`' => return Some((&s[..=i], &s[i + 1..])),
            _ => i += 1,
        }
    }
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

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `INSERT INTO `t` (`a`,`b`) VALUES (…),(…);` as a LOAD DATA of the same rows into the same
/// columns, or None when the statement is not in the form opshost's dumps write: values that are
/// `NULL`, numbers, `'…'` strings with `mysql_real_escape_string`'s escapes, or `0x…` hex.
pub fn from_insert(stmt: &str) -> Option<Load> {
    let rest = stmt.strip_prefix("INSERT INTO ")?;
    let (table, mut rest) = ident(rest)?;
    rest = rest.strip_prefix(" (")?;
    let mut columns = Vec::new();
    loop {
        let (c, r) = ident(rest)?;
        columns.push(c);
        if let Some(r) = r.strip_prefix(',') {
            rest = r;
        } else {
            rest = r.strip_prefix(") VALUES ")?;
            break;
        }
    }
    let v = rest.as_bytes();
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    loop {
        if *v.get(i)? != b'(' {
            return None;
        }
        i += 1;
        let mut fields = 0;
        loop {
            match *v.get(i)? {
                b'\'' => {
                    i += 1;
                    loop {
                        // Copy up to the next quote, backslash or tab, then handle it.
                        let at = i + memchr::memchr3(b'\'', b'\\', b'\t', v.get(i..)?)?;
                        out.extend_from_slice(&v[i..at]);
                        match v[at] {
                            b'\'' => {
                                i = at + 1;
                                break;
                            }
                            b'\t' => {
                                out.extend_from_slice(b"\\t");
                                i = at + 1;
                            }
                            _ => {
                                // The dump's escapes mean the same in the field syntax, but a
                                // quote needs none there.
                                match *v.get(at + 1)? {
                                    b'\'' => out.push(b'\''),
                                    e @ (b'0' | b'\\' | b'n' | b'r' | b'Z') => out.extend_from_slice(&[b'\\', e]),
                                    _ => return None,
                                }
                                i = at + 2;
                            }
                        }
                    }
                }
                b'0' if v.get(i + 1) == Some(&b'x') => {
                    i += 2;
                    let start = i;
                    while v.get(i).is_some_and(|c| c.is_ascii_hexdigit()) {
                        i += 1;
                    }
                    if (i - start) % 2 != 0 || i == start {
                        return None;
                    }
                    for pair in v[start..i].chunks_exact(2) {
                        push_field_byte(&mut out, hex_digit(pair[0])? << 4 | hex_digit(pair[1])?);
                    }
                }
                b'N' if v.get(i..i + 4) == Some(b"NULL") => {
                    out.extend_from_slice(b"\\N");
                    i += 4;
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while v.get(i).is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+')) {
                        i += 1;
                    }
                    out.extend_from_slice(&v[start..i]);
                }
                _ => return None,
            }
            fields += 1;
            match *v.get(i)? {
                b',' => {
                    out.push(b'\t');
                    i += 1;
                }
                b')' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        if fields != columns.len() {
            return None;
        }
        out.push(b'\n');
        match *v.get(i)? {
            b',' => i += 1,
            b';' if i + 1 == v.len() => break,
            _ => return None,
        }
    }
    // The text is UTF-8, as the dump was read and its INSERTs are replayed (`SET NAMES utf8mb4`):
    // the server converts it to each column's character set (a latin1 `é` is one byte again;
    // read as `binary` it was stored as the two bytes of its UTF-8), and copies the bytes of
    // binary columns (hex in the dump) as they are.
    let statement = format!(
        "LOAD DATA LOCAL INFILE 'opshost-restore' INTO TABLE {table} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        columns.join(",")
    );
    Some(Load { statement, data: out })
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
        let l = from_insert(stmt).unwrap();
        assert_eq!(
            l.statement,
            "LOAD DATA LOCAL INFILE 'opshost-restore' INTO TABLE `t``x` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`id`,`s`,`b`,`n`,`f`)"
        );
        assert_eq!(String::from_utf8(l.data).unwrap(), "1\tit's\\\\ a\\nb\\r\\0\\Z\\tend\t\\0\\t\\n\\\\A\t\\N\t-1.5e-7\n-2\t\t\x7f\t\\N\t3\n");
    }

    #[test]
    fn only_wide_rows_with_binary_values_stay_inserts() {
        let row = |i: usize, hex: usize, text: usize| format!("({i},0x{},'{}')", "ab".repeat(hex), "t".repeat(text));
        let stmt = |rows: Vec<String>| format!("INSERT INTO `t` (`id`,`b`,`s`) VALUES {};", rows.join(","));
        // Wide binary rows: as they are.
        assert!(wide_binary(&stmt((0..30).map(|i| row(i, 16_000, 10)).collect())));
        assert!(wide_binary(&stmt(vec![row(1, 1_100, 0)])));
        // Narrow rows, even with binary values (the bench's `task`: 128-byte hashes).
        assert!(!wide_binary(&stmt((0..5_000).map(|i| row(i, 128, 10)).collect())));
        // Wide text beside a small binary value, or without one: LOAD DATA.
        assert!(!wide_binary(&stmt((0..30).map(|i| row(i, 64, 20_000)).collect())));
        assert!(!wide_binary(&format!(
            "INSERT INTO `t` (`id`,`s`) VALUES {};",
            (0..30).map(|i| format!("({i},'{}')", "x".repeat(20_000))).collect::<Vec<_>>().join(",")
        )));
        // A small statement.
        assert!(!wide_binary(&stmt(vec![row(1, 8, 0)])));
        // One row of megabytes: LOAD DATA, whose rows travel in packets of their own.
        assert!(!wide_binary(&stmt(vec![row(1, 1_100_000, 0)])));
        // And a wide statement past half the server's packet limit, or with the limit unknown.
        let wide = stmt((0..30).map(|i| row(i, 16_000, 10)).collect());
        assert!(Policy::new(true, Some(16 << 20)).sends_as_is(&wide));
        assert!(!Policy::new(true, Some(1 << 20)).sends_as_is(&wide), "{} bytes against a 1 MB limit", wide.len());
        assert!(!Policy::new(true, None).sends_as_is(&wide));
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
            "INSERT INTO t (`a`) VALUES (1);",               // unquoted name
            "INSERT IGNORE INTO `t` (`a`) VALUES (1);",
            "REPLACE INTO `t` (`a`) VALUES (1);",
        ] {
            assert_eq!(from_insert(stmt), None, "{stmt}");
        }
    }
}
