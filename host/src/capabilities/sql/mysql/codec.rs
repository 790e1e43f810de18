//! The MySQL engine's value codec: how a column's type reads ([`Kind`]), a value as it comes off
//! the wire ([`Raw`]), and the three things done with it: decode it for a plugin, feed it to the
//! content checksum, and write it as the SQL literal a dump replays (the escape scan is
//! table-driven and skips runs of plain bytes). Plus identifiers and errors as the server spells them.

use crate::bindings::Error;
use crate::capabilities::errors::{failed, not_found};
use crate::capabilities::sql::checksum::RowEncoder;
use crate::capabilities::sql::Value;
use mysql_async::consts::ColumnType;

pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A character set's or collation's name as the server gives them (letters, digits, `_`): safe
/// to write into a statement as it is.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn db_err(database: &str, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1049 => not_found(format!("database {database} does not exist")),
        _ => failed(format!("{database}: {e}")),
    }
}

pub(super) fn to_mysql(v: &Value) -> mysql_async::Value {
    match v {
        Value::Null => mysql_async::Value::NULL,
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::Uint(u) => mysql_async::Value::UInt(*u),
        Value::Float(f) => mysql_async::Value::Double(*f),
        Value::Text(t) => mysql_async::Value::Bytes(t.as_bytes().to_vec()),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
    }
}

/// How a column's values are read and written.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Text,
    /// BINARY, VARBINARY and BLOB: bytes, written as an escaped binary string (`_binary'…'`).
    Binary,
    /// BIT and GEOMETRY: bytes, written as a hex literal, which both read back as the same bytes
    /// (a string would be read as text into a BIT).
    Hex,
    /// YEAR: its zero is written `0000`, which LOAD DATA reads as 0000 (a bare `0` it reads as 2000).
    Year,
    Other,
}

pub(super) fn column_kind(c: &mysql_async::Column) -> Kind {
    kind_of(c.column_type(), c.character_set())
}

/// [`Kind`] of a column of `column_type` in character set `charset`.
pub(super) fn kind_of(column_type: ColumnType, charset: u16) -> Kind {
    use ColumnType::*;
    match column_type {
        MYSQL_TYPE_BIT | MYSQL_TYPE_GEOMETRY => Kind::Hex,
        MYSQL_TYPE_YEAR => Kind::Year,
        // MySQL 5.7/8's JSON arrives as its text (UTF-8, though the column reports charset
        // binary) and is written back as a string, as mysqldump writes it: a hex literal would
        // be refused ("Cannot create a JSON value from a string with CHARACTER SET 'binary'").
        MYSQL_TYPE_JSON => Kind::Text,
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => {
            // Character set 63 is "binary": BINARY, VARBINARY, BLOB.
            if charset == 63 {
                Kind::Binary
            } else {
                Kind::Text
            }
        }
        _ => Kind::Other,
    }
}

/// One binary-protocol value, borrowed: what both row readers (mysql_async's and the
/// [`super::wire`] reader) hand to the row hash and the literal writer, so they agree exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Raw<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bytes(&'a [u8]),
    /// Year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// Negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
}

impl<'a> From<&'a mysql_async::Value> for Raw<'a> {
    fn from(v: &'a mysql_async::Value) -> Raw<'a> {
        use mysql_async::Value as M;
        match *v {
            M::NULL => Raw::Null,
            M::Int(i) => Raw::Int(i),
            M::UInt(u) => Raw::UInt(u),
            M::Float(f) => Raw::Float(f),
            M::Double(d) => Raw::Double(d),
            M::Bytes(ref b) => Raw::Bytes(b),
            M::Date(y, mo, d, h, mi, s, us) => Raw::Date(y, mo, d, h, mi, s, us),
            M::Time(neg, days, h, mi, s, us) => Raw::Time(neg, days, h, mi, s, us),
        }
    }
}

/// A binary-protocol value as the WIT value every backend agrees on.
pub(super) fn from_mysql(v: mysql_async::Value, kind: Kind) -> Value {
    use mysql_async::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Int(i) => Value::Int(i),
        M::UInt(u) => Value::Uint(u),
        M::Float(f) => Value::Float(f as f64),
        M::Double(d) => Value::Float(d),
        M::Bytes(b) => match kind {
            Kind::Binary | Kind::Hex => Value::Bytes(b),
            _ => match String::from_utf8(b) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            },
        },
        M::Date(..) | M::Time(..) => {
            let mut t = Vec::with_capacity(26);
            temporal_text(Raw::from(&v), kind, &mut t);
            Value::Text(String::from_utf8(t).expect("digits and punctuation"))
        }
    }
}

/// `n` in decimal, zero-padded to `width` digits (no formatter: this runs for every date of a dump).
pub(super) fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = [0u8; 21];
    let digits = crate::capabilities::sql::checksum::decimal(false, n.into(), &mut buf);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits.len())));
    out.extend_from_slice(digits);
}

/// `HH:MM:SS.ffffff` (at least two digits of hours).
pub(super) fn push_clock(out: &mut Vec<u8>, hours: u32, minutes: u8, seconds: u8, micros: u32) {
    push_padded(out, hours, 2);
    out.push(b':');
    push_padded(out, minutes.into(), 2);
    out.push(b':');
    push_padded(out, seconds.into(), 2);
    out.push(b'.');
    push_padded(out, micros, 6);
}

/// A DATE, DATETIME, TIMESTAMP or TIME value as text the server reads back exactly:
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (a DATE, or a midnight without fraction in a date column, has
/// no fraction) and `[-]HHH:MM:SS.ffffff`. Other values append nothing.
pub(super) fn temporal_text(v: Raw, kind: Kind, out: &mut Vec<u8>) {
    use Raw as M;
    match v {
        M::Date(y, mo, d, h, mi, s, us) => {
            push_padded(out, y.into(), 4);
            out.push(b'-');
            push_padded(out, mo.into(), 2);
            out.push(b'-');
            push_padded(out, d.into(), 2);
            if h == 0 && mi == 0 && s == 0 && us == 0 && kind == Kind::Other {
                out.extend_from_slice(b" 00:00:00");
            } else {
                out.push(b' ');
                push_clock(out, h.into(), mi, s, us);
            }
        }
        M::Time(neg, days, h, mi, s, us) => {
            if neg {
                out.push(b'-');
            }
            push_clock(out, days * 24 + h as u32, mi, s, us);
        }
        _ => {}
    }
}

/// Hash one raw protocol value exactly as `from_mysql` then the canonical encoding would.
pub(super) fn hash_raw(e: &mut RowEncoder, v: Raw, kind: Kind) {
    use Raw as M;
    match v {
        M::Null => e.null(),
        M::Int(i) => e.int(i),
        M::UInt(u) => e.uint(u),
        M::Float(f) => e.float(f as f64),
        M::Double(d) => e.float(d),
        M::Bytes(b) => e.text(b),
        M::Date(..) | M::Time(..) => e.text_with(|out| temporal_text(v, kind, out)),
    }
}

/// For each byte, the letter after the backslash that escapes it in a quoted SQL string (the
/// same escapes as `mysql_real_escape_string`), or 0 when it is copied as it is. A table lookup
/// per byte: this loop runs over every byte of every text column of a dump.
pub(super) const ESCAPED: [u8; 256] = {
    let mut t = [0u8; 256];
    t[0] = b'0';
    t[b'\'' as usize] = b'\'';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[0x1a] = b'Z';
    t
};

/// Each byte's two lowercase hex digits.
pub(super) static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// Append `b` to `v` as lowercase hex digits: sixteen bytes a step with SSE2 (part of every
/// x86-64 CPU), the rest by [`HEX_PAIRS`]. A dump writes every binary value this way (a wide
/// BLOB table is hundreds of megabytes of it).
pub(super) fn push_hex(v: &mut Vec<u8>, b: &[u8]) {
    let at = v.len();
    v.reserve(b.len() * 2);
    // SAFETY: `reserve` made room for `2 * b.len()` bytes after `at`; every one of them is
    // written below (sixteen input bytes give 32 output bytes, the tail two per byte) before
    // `set_len` covers them. Loads read `b` in bounds, unaligned.
    unsafe {
        let out = v.as_mut_ptr().add(at);
        let mut i = 0;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            let (low4, nine, zero, gap) = (_mm_set1_epi8(0x0f), _mm_set1_epi8(9), _mm_set1_epi8(b'0' as i8), _mm_set1_epi8(b'a' as i8 - b'0' as i8 - 10));
            // Nibbles 0-15 as '0'-'9', 'a'-'f'.
            let digits = |n: __m128i| _mm_add_epi8(_mm_add_epi8(n, zero), _mm_and_si128(_mm_cmpgt_epi8(n, nine), gap));
            while i + 16 <= b.len() {
                let x = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let high = digits(_mm_and_si128(_mm_srli_epi16(x, 4), low4));
                let low = digits(_mm_and_si128(x, low4));
                _mm_storeu_si128(out.add(2 * i) as *mut __m128i, _mm_unpacklo_epi8(high, low));
                _mm_storeu_si128(out.add(2 * i + 16) as *mut __m128i, _mm_unpackhi_epi8(high, low));
                i += 16;
            }
        }
        for (k, &x) in b[i..].iter().enumerate() {
            std::ptr::copy_nonoverlapping(HEX_PAIRS[x as usize].as_ptr(), out.add(2 * (i + k)), 2);
        }
        v.set_len(at + b.len() * 2);
    }
}

/// The value of a hex digit already checked (`0`–`9`, `a`–`f`, `A`–`F`), without a branch: a
/// letter's low four bits are 1–6 and its bit 6 is set, a decimal digit's is not.
fn nibble(c: u8) -> u8 {
    (c & 0x0f) + (c >> 6) * 9
}

/// Append the bytes `digits` spell, [`push_hex`]'s inverse: `digits` are hex digits already
/// checked, an even number of them, either case. Sixteen bytes a step with SSE2, the rest one
/// at a time. A restore turns every binary value of a dump back into bytes this way.
pub(super) fn extend_from_hex(v: &mut Vec<u8>, digits: &[u8]) {
    let (at, n) = (v.len(), digits.len() / 2);
    v.reserve(n);
    // SAFETY: `reserve` made room for `n` bytes after `at`; every one of them is written below
    // (32 digits give 16 bytes, the tail one byte per pair) before `set_len` covers them. Loads
    // read `digits` in bounds, unaligned.
    unsafe {
        let out = v.as_mut_ptr().add(at);
        let mut i = 0;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::*;
            let (low4, letter, nine, byte) = (_mm_set1_epi8(0x0f), _mm_set1_epi8(0x40), _mm_set1_epi8(9), _mm_set1_epi16(0xff));
            // Sixteen digits as eight bytes, each in the low half of a 16-bit lane.
            let bytes = |x: __m128i| {
                let n = _mm_add_epi8(_mm_and_si128(x, low4), _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(x, letter), letter), nine));
                // A lane holds its first digit's value in its low byte, its second's in the high.
                _mm_and_si128(_mm_or_si128(_mm_slli_epi16(n, 4), _mm_srli_epi16(n, 8)), byte)
            };
            while 2 * i + 32 <= digits.len() {
                let first = bytes(_mm_loadu_si128(digits.as_ptr().add(2 * i) as *const __m128i));
                let second = bytes(_mm_loadu_si128(digits.as_ptr().add(2 * i + 16) as *const __m128i));
                _mm_storeu_si128(out.add(i) as *mut __m128i, _mm_packus_epi16(first, second));
                i += 16;
            }
        }
        while i < n {
            *out.add(i) = nibble(digits[2 * i]) << 4 | nibble(digits[2 * i + 1]);
            i += 1;
        }
        v.set_len(at + n);
    }
}

/// The bytes of `b[at..at + 16]` that need escaping, as bits (bit k: byte `at + k`), with SSE2
/// (part of every x86-64 CPU).
///
/// # Safety
/// `at + 16 <= b.len()`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn specials_at(b: &[u8], at: usize) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: the caller keeps the unaligned load within `b`; SSE2 is always there.
    unsafe {
        let chunk = _mm_loadu_si128(b.as_ptr().add(at) as *const __m128i);
        let mut hit = _mm_cmpeq_epi8(chunk, _mm_setzero_si128());
        for c in [b'\'', b'\\', b'\n', b'\r', 0x1a] {
            hit = _mm_or_si128(hit, _mm_cmpeq_epi8(chunk, _mm_set1_epi8(c as i8)));
        }
        _mm_movemask_epi8(hit) as u32
    }
}

/// The index of the first byte at or after `from` that needs escaping. Sixteen bytes a step
/// with SSE2 (part of every x86-64 CPU), the rest by table.
pub(super) fn next_to_escape(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: every step is within `b`.
        unsafe {
            while i + 16 <= b.len() {
                let mask = specials_at(b, i);
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
            // The tail, as the last 16 bytes (overlapping what was scanned; those bits masked).
            if i < b.len() && b.len() >= 16 {
                let last = b.len() - 16;
                let mask = specials_at(b, last) >> (i - last);
                return (mask != 0).then(|| i + mask.trailing_zeros() as usize);
            }
        }
    }
    b[i..].iter().position(|&c| ESCAPED[c as usize] != 0).map(|p| i + p)
}

/// Append `b` to `out` escaped, sixteen bytes a step with SSE2 (part of every x86-64 CPU), up
/// to where less than a step is left: the index reached. Each step is stored as it is loaded and
/// kept whole when it holds no special byte; one that does is written run by run, every special
/// of it at once (the bench's texts have one every 17 bytes or so). Measured on the `oms` shape,
/// with Ryū for floats, against scanning to the next special and then copying and the
/// formatter: 2–4 % less client CPU per dump.
#[cfg(target_arch = "x86_64")]
fn copy_escaping(out: &mut Vec<u8>, b: &[u8]) -> usize {
    use std::arch::x86_64::*;
    let mut i = 0;
    // SAFETY: SSE2 is always available on x86_64; loads stay in `b`, and every store has 16
    // bytes of `out`'s spare capacity, of which only the bytes before a special are kept.
    unsafe {
        while i + 16 <= b.len() {
            let chunk = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
            let mask = specials_at(b, i);
            if out.capacity() - out.len() < 16 {
                out.reserve(16 + b.len() - i);
            }
            let len = out.len();
            _mm_storeu_si128(out.as_mut_ptr().add(len) as *mut __m128i, chunk);
            if mask == 0 {
                out.set_len(len + 16);
            } else {
                // Every special of the step, in turn: the bytes before it were stored, then
                // each run after one is copied behind its escape.
                let mut k = mask.trailing_zeros() as usize;
                out.set_len(len + k);
                let mut rest = mask;
                loop {
                    out.extend_from_slice(&[b'\\', ESCAPED[b[i + k] as usize]]);
                    rest &= rest - 1;
                    let next = if rest == 0 { 16 } else { rest.trailing_zeros() as usize };
                    out.extend_from_slice(&b[i + k + 1..i + next]);
                    if rest == 0 {
                        break;
                    }
                    k = next;
                }
            }
            i += 16;
        }
    }
    i
}

/// [`hash_raw`] and then [`literal`] of one value, in one pass: integers and dates and times
/// are put into text once for both.
pub(super) fn hash_and_literal(e: &mut RowEncoder, v: Raw, kind: Kind, out: &mut Vec<u8>) {
    use Raw as M;
    let mut buf = [0u8; 21];
    let digits = match v {
        M::Int(i) => crate::capabilities::sql::checksum::decimal(i < 0, i.unsigned_abs(), &mut buf),
        M::UInt(u) => crate::capabilities::sql::checksum::decimal(false, u, &mut buf),
        M::Date(..) | M::Time(..) => {
            out.push(b'\'');
            let at = out.len();
            temporal_text(v, kind, out);
            e.text(&out[at..]);
            out.push(b'\'');
            return;
        }
        _ => {
            hash_raw(e, v, kind);
            literal(v, kind, out);
            return;
        }
    };
    e.decimal(digits);
    if kind == Kind::Year && digits == b"0" {
        out.extend_from_slice(b"0000");
        return;
    }
    out.extend_from_slice(digits);
}

/// One value as a SQL literal for the dump. FLOAT columns arrive as f32 and are written with the
/// shortest text that parses back to the same f32; DOUBLE likewise for f64. Text is UTF-8 (as
/// read) but a binary string's bytes are any bytes: the dump is bytes, not text.
pub(super) fn literal(v: Raw, kind: Kind, out: &mut Vec<u8>) {
    use Raw as M;
    match v {
        M::Null => out.extend_from_slice(b"NULL"),
        M::Int(0) | M::UInt(0) if kind == Kind::Year => out.extend_from_slice(b"0000"),
        M::Int(i) => out.extend_from_slice(crate::capabilities::sql::checksum::decimal(i < 0, i.unsigned_abs(), &mut [0u8; 21])),
        M::UInt(u) => out.extend_from_slice(crate::capabilities::sql::checksum::decimal(false, u, &mut [0u8; 21])),
        // Ryū: the shortest text that reads back as the same value, as `{:?}` gives it, without
        // the formatter (3 % of an `oms` dump's client CPU).
        M::Float(f) => out.extend_from_slice(ryu::Buffer::new().format(f).as_bytes()),
        M::Double(d) => out.extend_from_slice(ryu::Buffer::new().format(d).as_bytes()),
        M::Bytes([]) => out.extend_from_slice(b"''"),
        // BIT and GEOMETRY, and text that is not UTF-8, as hex: exact bytes whatever the charset.
        M::Bytes(b) if kind == Kind::Hex || (kind != Kind::Binary && !b.is_ascii() && std::str::from_utf8(b).is_err()) => {
            out.extend_from_slice(b"0x");
            push_hex(out, b);
        }
        // Binary strings as themselves, escaped (half the size of hex): the introducer keeps the
        // server from reading them in the connection's character set.
        M::Bytes(b) if kind == Kind::Binary => {
            out.extend_from_slice(b"_binary");
            push_escaped(out, b);
        }
        M::Bytes(b) => push_escaped(out, b),
        M::Date(..) | M::Time(..) => {
            out.push(b'\'');
            temporal_text(v, kind, out);
            out.push(b'\'');
        }
    }
}

/// `b` as a quoted string with `mysql_real_escape_string`'s escapes, copied in runs between them.
pub(super) fn push_escaped(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() + 2);
    out.push(b'\'');
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    if b.len() >= 16 {
        start = copy_escaping(out, b);
    }
    while let Some(i) = next_to_escape(b, start) {
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(&[b'\\', ESCAPED[b[i] as usize]]);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes of a xorshift sequence from `seed` (which moves on).
    fn random_bytes(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }

    #[test]
    fn hex_digits_of_either_case_turn_back_into_their_bytes() {
        for (i, c) in b"0123456789abcdef".iter().enumerate() {
            assert_eq!(nibble(*c), i as u8);
            assert_eq!(nibble(c.to_ascii_uppercase()), i as u8);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1000] {
            let b: Vec<u8> = random_bytes(&mut seed, len).into_iter().chain(0..=255u8).collect();
            let mut hex = Vec::new();
            push_hex(&mut hex, &b);
            for digits in [hex.clone(), hex.to_ascii_uppercase()] {
                let mut back = b"kept".to_vec();
                extend_from_hex(&mut back, &digits);
                assert_eq!(&back[..4], b"kept");
                assert_eq!(&back[4..], &b[..], "{len} bytes");
            }
        }
    }

    #[test]
    fn hex_sixteen_bytes_a_step_is_the_table_s_hex() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in (0..80).chain([1000, 4097]) {
            let b = random_bytes(&mut seed, len);
            let mut v = b"0x".to_vec();
            push_hex(&mut v, &b);
            let expected: Vec<u8> = b"0x".iter().copied().chain(b.iter().flat_map(|&x| HEX_PAIRS[x as usize])).collect();
            assert_eq!(v, expected, "{len} bytes");
        }
        // Every byte value, in every position of a sixteen-byte step.
        let all: Vec<u8> = (0..=255u8).collect();
        let mut v = Vec::new();
        push_hex(&mut v, &all);
        assert_eq!(v, all.iter().flat_map(|&x| HEX_PAIRS[x as usize]).collect::<Vec<u8>>());
    }

    #[test]
    fn dates_and_times_read_as_the_formatter_wrote_them() {
        use mysql_async::Value as M;
        // The formatting of the version before: dumps and checksums must not change.
        let reference = |v: &M, kind: Kind| match *v {
            M::Date(y, mo, d, h, mi, s, us) => {
                if h == 0 && mi == 0 && s == 0 && us == 0 && kind == Kind::Other {
                    format!("{y:04}-{mo:02}-{d:02} 00:00:00")
                } else {
                    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
                }
            }
            M::Time(neg, days, h, mi, s, us) => format!("{}{:02}:{mi:02}:{s:02}.{us:06}", if neg { "-" } else { "" }, days * 24 + h as u32),
            _ => unreachable!(),
        };
        let values = [
            M::Date(2026, 11, 23, 0, 0, 0, 0),
            M::Date(1000, 1, 1, 0, 0, 0, 0),
            M::Date(0, 0, 0, 0, 0, 0, 0),
            M::Date(9999, 12, 31, 23, 59, 59, 999_999),
            M::Date(2026, 1, 2, 3, 4, 5, 6),
            M::Date(2026, 1, 2, 0, 0, 0, 1),
            M::Time(true, 34, 22, 59, 59, 0),
            M::Time(false, 0, 0, 0, 0, 0),
            M::Time(false, 0, 5, 1, 2, 30),
            M::Time(false, 4, 6, 7, 8, 999_999),
        ];
        for v in &values {
            for kind in [Kind::Other, Kind::Text] {
                let want = reference(v, kind);
                assert_eq!(from_mysql(v.clone(), kind), Value::Text(want.clone()), "{v:?}");
                let mut lit = Vec::new();
                literal(v.into(), kind, &mut lit);
                assert_eq!(lit, format!("'{want}'").as_bytes());
                let (mut a, mut b) = (Vec::new(), Vec::new());
                hash_raw(&mut crate::capabilities::sql::checksum::RowEncoder::new(&mut a), v.into(), kind);
                crate::capabilities::sql::checksum::RowEncoder::new(&mut b).text(want.as_bytes());
                assert_eq!(a, b, "{v:?} hashes as its text");
            }
        }
    }

    /// FLOAT and DOUBLE values are written as text that reads back as the same value (the
    /// server reads a FLOAT's as a double, then rounds it), which is what `{:?}` writes.
    #[test]
    fn float_literals_read_back_as_the_same_value() {
        let mut seed = 11u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = Vec::new();
        let doubles = [0.0, -0.0, 1.0, 0.1, 1e-7, 1e16, 1e21, 123456789.125, f64::MAX, f64::MIN_POSITIVE];
        for d in doubles.into_iter().chain((0..20_000).map(|_| f64::from_bits(next())).filter(|d| d.is_finite())) {
            out.clear();
            literal(Raw::Double(d), Kind::Other, &mut out);
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), d.to_bits(), "{text}");
            assert_eq!(text.parse::<f64>().unwrap(), format!("{d:?}").parse::<f64>().unwrap());
        }
        for f in [0.0f32, 28333.666, 1e-7, f32::MAX].into_iter().chain((0..20_000).map(|_| f32::from_bits(next() as u32)).filter(|f| f.is_finite())) {
            out.clear();
            literal(Raw::Float(f), Kind::Other, &mut out);
            let text = std::str::from_utf8(&out).unwrap();
            assert_eq!(text.parse::<f64>().unwrap() as f32, f, "{text}");
            assert_eq!(text.parse::<f32>().unwrap(), format!("{f:?}").parse::<f32>().unwrap());
        }
    }

    #[test]
    fn text_literals_escape_what_mysql_real_escape_string_escapes() {
        let mut out = Vec::new();
        literal(Raw::Bytes(b"a'b\\c\nd\re\x1af\0g\t\"h \xc3\xbc"), Kind::Text, &mut out);
        assert_eq!(out, "'a\\'b\\\\c\\nd\\re\\Zf\\0g\t\"h \u{fc}'".as_bytes());
        out.clear();
        literal(Raw::Bytes(b"plain"), Kind::Text, &mut out);
        assert_eq!(out, b"'plain'");
        // Specials at every position of a 16-byte step and in the tail.
        for at in 0..40 {
            let mut text = vec![b'x'; 40];
            text[at] = b'\n';
            out.clear();
            literal(Raw::Bytes(&text), Kind::Text, &mut out);
            let want = format!("'{}\\n{}'", "x".repeat(at), "x".repeat(39 - at));
            assert_eq!(out, want.as_bytes(), "{at}");
        }
        // Two specials anywhere in texts of every length around the 16-byte steps, against the
        // byte-by-byte escaping.
        let slow = |t: &[u8]| -> String {
            let mut s = String::from("'");
            for &c in t {
                match ESCAPED[c as usize] {
                    0 => s.push(c as char),
                    e => s.extend(['\\', e as char]),
                }
            }
            s + "'"
        };
        for len in 1..50 {
            for a in 0..len {
                for b in a..len {
                    let mut text = vec![b'y'; len];
                    text[a] = b'\'';
                    text[b] = b'\0';
                    out.clear();
                    literal(Raw::Bytes(&text), Kind::Text, &mut out);
                    assert_eq!(out, slow(&text).as_bytes(), "{len} {a} {b}");
                }
            }
        }
        // Texts of nothing but specials, and of random ASCII, appended to a buffer already
        // holding something and with no spare room (each step's store needs 16 bytes of it).
        let mut seed = 7u64;
        for len in [16, 17, 31, 32, 33, 100, 1000] {
            let specials: Vec<u8> = (0..len).map(|i| b"\0'\\\n\r\x1a"[i % 6]).collect();
            let random: Vec<u8> = random_bytes(&mut seed, len).into_iter().map(|c| c & 0x7f).collect();
            for text in [specials, random] {
                let mut out = b"(1,".to_vec();
                out.shrink_to_fit();
                literal(Raw::Bytes(&text), Kind::Text, &mut out);
                assert_eq!(out, [&b"(1,"[..], slow(&text).as_bytes()].concat(), "{len}");
            }
        }
        // Not UTF-8: hex, exact bytes.
        out.clear();
        literal(Raw::Bytes(&[0xff, 0x27]), Kind::Text, &mut out);
        assert_eq!(out, b"0xff27");
        // BIT and GEOMETRY: hex.
        let all: Vec<u8> = (0..=255u8).collect();
        out.clear();
        literal(Raw::Bytes(&all), Kind::Hex, &mut out);
        assert_eq!(out, format!("0x{}", (0..=255u8).map(|b| format!("{b:02x}")).collect::<String>()).as_bytes());
    }

    /// A binary string is written as its own bytes, every one of them as it is but the six
    /// `mysql_real_escape_string` escapes, behind the `_binary` introducer; an empty one is `''`.
    #[test]
    fn binary_strings_are_escaped_bytes_behind_the_binary_introducer() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        literal(Raw::Bytes(&all), Kind::Binary, &mut out);
        let mut want = b"_binary'".to_vec();
        for &c in &all {
            match ESCAPED[c as usize] {
                0 => want.push(c),
                e => want.extend_from_slice(&[b'\\', e]),
            }
        }
        want.push(b'\'');
        assert_eq!(out, want);
        assert_eq!(out.len(), "_binary''".len() + 256 + 6, "six bytes escaped");
        // Not UTF-8, and UTF-8: the same form either way.
        for b in [&b"\xff\x27\x00"[..], "é".as_bytes()] {
            out.clear();
            literal(Raw::Bytes(b), Kind::Binary, &mut out);
            assert!(out.starts_with(b"_binary'"), "{out:?}");
        }
        out.clear();
        literal(Raw::Bytes(b""), Kind::Binary, &mut out);
        assert_eq!(out, b"''");
    }

    /// MySQL 8's JSON column (type 245, reported as charset binary) is dumped as a string, never
    /// as a hex literal the server would refuse for JSON.
    #[test]
    fn mysql_json_is_written_as_text() {
        let kind = kind_of(ColumnType::MYSQL_TYPE_JSON, 63);
        assert!(kind == Kind::Text);
        let mut out = Vec::new();
        literal(Raw::Bytes(br#"{"a": "b'c"}"#), kind, &mut out);
        assert_eq!(out, br#"'{"a": "b\'c"}'"#);
    }
}
