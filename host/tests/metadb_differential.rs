//! Differential property test of MetaDB backups: random rows with the edge values of every MariaDB
//! column type, dumped by opshost (through mysql_async and the bulk reader) and restored three ways
//! (LOAD DATA, INSERTs, the stock client), read back by the server itself (HEX, CAST AS CHAR,
//! ST_AsText, BIT+0, exact FLOAT bits) exactly as the original, under time_zone +08:00 and SYSTEM and
//! sql_mode with and without NO_ZERO_DATE. A binary of its own: it sets (and puts back) globals.
//! Text in legacy character sets (cp1250, gbk, cp932) holds codes without a Unicode equivalent
//! and codes that share one, which only a dump of the stored bytes gives back.
//!
//! Over 500 lines: the value generators of every column type are most of it, and they belong
//! beside the reading that compares them.

mod support;

use mysql_async::prelude::*;
use mysql_async::Value as V;
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

/// How a column's values are generated (and bound, and read back).
#[derive(Clone, Copy, Debug)]
enum Gen {
    Int(i64, i64),
    U64,
    Dec,
    F32,
    F64,
    Bit1,
    Bit64,
    Date,
    DateTime,
    Ts,
    Time,
    Year,
    Text(usize, usize),
    Bmp,
    Latin1,
    /// Text in a legacy character set, by name: single-byte (any byte) or gbk and cp932 (ASCII
    /// and double-byte codes, a trail byte `\` among them).
    Legacy(&'static str),
    Bytes(usize),
    Enum,
    Set,
    Json,
    Inet4,
    Inet6,
    Uuid,
    Point,
}
use Gen::*;

const COLS: &[(&str, &str, Gen)] = &[
    ("ti", "TINYINT", Int(-128, 127)),
    ("tu", "TINYINT UNSIGNED", Int(0, 255)),
    ("si", "SMALLINT", Int(-32768, 32767)),
    ("su", "SMALLINT UNSIGNED", Int(0, 65535)),
    ("mi", "MEDIUMINT", Int(-8388608, 8388607)),
    ("mu", "MEDIUMINT UNSIGNED", Int(0, 16777215)),
    ("i", "INT", Int(i32::MIN as i64, i32::MAX as i64)),
    ("iu", "INT UNSIGNED", Int(0, u32::MAX as i64)),
    ("bi", "BIGINT", Int(i64::MIN, i64::MAX)),
    ("bu", "BIGINT UNSIGNED", U64),
    ("dc", "DECIMAL(65,30)", Dec),
    ("f", "FLOAT", F32),
    ("d", "DOUBLE", F64),
    ("b1", "BIT(1)", Bit1),
    ("b64", "BIT(64)", Bit64),
    ("dt", "DATE", Date),
    ("dt0", "DATETIME", DateTime),
    ("dt6", "DATETIME(6)", DateTime),
    ("ts", "TIMESTAMP(6) NULL DEFAULT NULL", Ts),
    ("ts0", "TIMESTAMP NULL DEFAULT NULL", Ts),
    ("tm0", "TIME", Time),
    ("tm6", "TIME(6)", Time),
    ("yr", "YEAR", Year),
    ("ch", "CHAR(20)", Text(20, 80)),
    ("vc", "VARCHAR(300)", Text(300, 1200)),
    ("tt", "TINYTEXT", Text(255, 255)),
    ("tx", "TEXT", Text(1000, 65535)),
    ("mt", "MEDIUMTEXT", Text(1000, 1 << 24)),
    ("lt", "LONGTEXT", Text(1 << 20, 1 << 30)),
    ("l1", "VARCHAR(300) CHARACTER SET latin1", Latin1),
    ("u3", "VARCHAR(300) CHARACTER SET utf8mb3", Bmp),
    ("u16", "VARCHAR(300) CHARACTER SET utf16", Text(300, 1200)),
    ("w1250", "VARCHAR(200) CHARACTER SET cp1250", Legacy("cp1250")),
    ("gb", "VARCHAR(100) CHARACTER SET gbk", Legacy("gbk")),
    ("sj", "VARCHAR(100) CHARACTER SET cp932", Legacy("cp932")),
    ("bn", "BINARY(8)", Bytes(8)),
    ("vb", "VARBINARY(300)", Bytes(300)),
    ("tb", "TINYBLOB", Bytes(255)),
    ("bl", "BLOB", Bytes(1000)),
    ("mb", "MEDIUMBLOB", Bytes(1000)),
    ("lb", "LONGBLOB", Bytes(1 << 20)),
    ("en", "ENUM('a','b c','NULL','x''y','é','0','2')", Enum),
    ("st", "SET('x','y','z z','é','1')", Set),
    ("js", "JSON", Json),
    ("i4", "INET4", Inet4),
    ("i6", "INET6", Inet6),
    ("uu", "UUID", Uuid),
    ("pt", "POINT", Point),
];

/// Generated columns: left out of dumps, computed again on restore.
const GENERATED: &str = "vg VARCHAR(400) AS (CONCAT_WS('|', ti, vc)) VIRTUAL, sg BIGINT AS (i + 1) STORED";

/// How a value is bound in the INSERT: binary strings and latin1 or legacy bytes travel as hex.
fn bind(g: Gen) -> String {
    match g {
        Bytes(_) => "UNHEX(?)".into(),
        Latin1 => "CONVERT(UNHEX(?) USING latin1)".into(),
        Legacy(charset) => format!("CONVERT(UNHEX(?) USING {charset})"),
        Point => "Point(?, ?)".into(),
        _ => "?".into(),
    }
}

/// The server's own reading of a column: text forms, and FLOAT/DOUBLE raw (exact bits).
fn reads(c: &str, g: Gen) -> Vec<String> {
    match g {
        F32 | F64 => vec![c.into(), format!("CAST({c} AS CHAR)")],
        Bit1 | Bit64 | Year | Enum | Set => vec![format!("{c}+0"), format!("HEX({c})"), format!("CAST({c} AS CHAR)")],
        Ts => vec![format!("CAST({c} AS CHAR)"), format!("UNIX_TIMESTAMP({c})")],
        Text(..) | Bmp | Latin1 | Legacy(_) | Bytes(_) | Json | Inet4 | Inet6 | Uuid => vec![format!("HEX({c})"), format!("LENGTH({c})")],
        Point => vec![format!("ST_AsText({c})"), format!("HEX({c})")],
        _ => vec![format!("CAST({c} AS CHAR)")],
    }
}

/// NULL, an edge value, or a random one.
fn edged<T: Clone + std::fmt::Debug + 'static>(
    edges: Vec<T>,
    random: impl Strategy<Value = T> + 'static,
    to: impl Fn(T) -> V + 'static,
) -> BoxedStrategy<Vec<V>> {
    prop_oneof![1 => Just(None), 2 => prop::sample::select(edges).prop_map(Some), 4 => random.prop_map(Some)]
        .prop_map(move |v| vec![v.map(&to).unwrap_or(V::NULL)])
        .boxed()
}

fn text(s: String) -> V {
    V::Bytes(s.into_bytes())
}

/// Days in a month as MariaDB counts them (year 0 is not a leap year).
fn days_in(y: u32, m: u32) -> u32 {
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || (y.is_multiple_of(400) && y != 0));
    [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1]
}

/// A DATE: any valid one, edges, and (when the sql_mode allows) zero dates and zero parts.
fn date(zero: bool) -> BoxedStrategy<String> {
    let mut edges = vec!["1000-01-01", "9999-12-31", "0000-01-01", "0001-01-01", "2000-02-29", "1900-02-28"];
    if zero {
        edges.extend(["0000-00-00", "2024-00-00", "2024-05-00", "0000-00-01", "2024-00-17"]);
    }
    let random = (0u32..=9999, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{:02}", d.min(days_in(y, m))));
    prop_oneof![prop::sample::select(edges).prop_map(String::from), random].boxed()
}

/// Microseconds since midnight as `HH:MM:SS.ffffff` (hours may exceed 24, for TIME).
fn clock(us: u64) -> String {
    format!("{:02}:{:02}:{:02}.{:06}", us / 3_600_000_000, us / 60_000_000 % 60, us / 1_000_000 % 60, us % 1_000_000)
}

/// (year, month, day) of a day count from 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let (d, m) = (doy - (153 * mp + 2) / 5 + 1, if mp < 10 { mp + 3 } else { mp - 9 });
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

const CHARS: &[char] =
    &['\0', '\\', '\'', '"', '\t', '\n', '\r', '\x1a', ' ', '%', '_', 'N', '`', ';', ',', '\u{a0}', '\u{feff}', '\u{2028}', 'é', '中', '🚀', '\u{10ffff}'];

/// Every ASCII character and a character for every UTF-8 lead and continuation byte.
fn all_utf8() -> String {
    let mut s: String = (0u32..0xc0).filter_map(char::from_u32).collect();
    s.extend((0xc2u32..=0xdf).map(|l| char::from_u32((l - 0xc0) << 6).unwrap()));
    s.extend((0xe0u32..=0xef).map(|l| char::from_u32((((l - 0xe0) << 12) | 0x100).max(0x800)).unwrap()));
    s.extend((0xf0u32..=0xf4).map(|l| char::from_u32(((l - 0xf0) << 18).max(0x10000)).unwrap()));
    s
}

fn strategy(g: Gen, zero: bool) -> BoxedStrategy<Vec<V>> {
    match g {
        Int(lo, hi) => edged(vec![lo, hi, 0.clamp(lo, hi), 1, if lo < 0 { -1 } else { hi - 1 }], lo..=hi, V::Int),
        U64 | Bit64 => edged(vec![0, 1, u64::MAX, i64::MAX as u64, 1 << 63, 0xff], any::<u64>(), V::UInt),
        Bit1 => edged(vec![0, 1], 0..=1u64, V::UInt),
        Dec => {
            let nines = format!("{}.{}", "9".repeat(35), "9".repeat(30));
            let tiny = format!("0.{}1", "0".repeat(29));
            let edges = vec![format!("-{nines}"), nines, format!("-{tiny}"), tiny, "0".into(), "-0".into(), "1".into()];
            edged(edges, "-?[0-9]{1,35}(\\.[0-9]{1,30})?", text)
        }
        F32 => {
            use prop::num::f32::*;
            let edges = vec![
                0.0,
                -0.0,
                f32::MAX,
                f32::MIN,
                f32::MIN_POSITIVE,
                -f32::MIN_POSITIVE,
                f32::from_bits(1),
                -f32::from_bits(1),
                f32::from_bits(0x7f_ffff),
                0.1,
                16777217.0,
            ];
            edged(edges, POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO, V::Float)
        }
        F64 => {
            use prop::num::f64::*;
            let edges = vec![
                0.0,
                -0.0,
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                -f64::MIN_POSITIVE,
                f64::from_bits(1),
                -f64::from_bits(1),
                f64::from_bits(0xf_ffff_ffff_ffff),
                0.1,
                9007199254740993.0,
            ];
            edged(edges, POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO, V::Double)
        }
        Date => edged(vec!["9999-12-31".to_string()], date(zero), text),
        DateTime => {
            let mut edges = vec!["1000-01-01 00:00:00.000000".to_string(), "9999-12-31 23:59:59.999999".into(), "2026-01-01 00:00:00.000001".into()];
            if zero {
                edges.extend(["0000-00-00 00:00:00".into(), "0000-00-00 12:34:56.5".into(), "2024-00-00 23:59:59.999999".into()]);
            }
            edged(edges, (date(zero), 0..86_400_000_000u64).prop_map(|(d, us)| format!("{d} {}", clock(us))), text)
        }
        Ts => {
            let mut edges = vec![(1, 0), (2_147_483_647, 999_999), (1_767_229_200, 123_456)];
            if zero {
                edges.push((0, 0)); // the zero TIMESTAMP
            }
            edged(edges, (1..=2_147_483_647i64, 0..1_000_000i64), |(s, us)| {
                let (y, m, d) = civil(s.div_euclid(86_400));
                text(if s == 0 {
                    "0000-00-00 00:00:00".into()
                } else {
                    format!("{y:04}-{m:02}-{d:02} {}", clock((s.rem_euclid(86_400) * 1_000_000 + us) as u64))
                })
            })
        }
        Time => {
            let max = 3_020_399_999_999i64; // 838:59:59.999999
            edged(vec![max, -max, 0, -1, max - 999_999, -(max - 999_999)], -max..=max, |us: i64| {
                text(format!("{}{}", if us < 0 { "-" } else { "" }, clock(us.unsigned_abs())))
            })
        }
        Year => edged(vec![0, 1901, 2155, 2000, 1970], 1901..=2155i64, V::Int),
        Text(chars, bytes) => {
            let mut edges =
                vec!["", "NULL", "\\N", "N", "\\", "'", "\"", "\t", "\n", "\r\n", "\0", "\x1a", "a\tb\nc\\d'e\"f\0g\\N", "0x41", "🚀", " trailing ", "\\\\'"]
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>();
            edges.push(all_utf8());
            edges.push(all_utf8().repeat(600)); // 230 kB: the dump cuts its INSERTs at 1 MiB
            edges.retain(|s| s.chars().count() <= chars && s.len() <= bytes);
            let ch = prop_oneof![3 => prop::sample::select(CHARS), 3 => (0u8..0x80).prop_map(char::from), 2 => any::<char>(), 1 => proptest::char::range('\u{10000}', '\u{10ffff}')];
            let random = prop::collection::vec(ch, 0..=chars.min(24))
                .prop_map(move |v| v.into_iter().fold(String::new(), |s, c| if s.len() + c.len_utf8() <= bytes { s + &c.to_string() } else { s }));
            edged(edges, random, text)
        }
        // The utf8mb3 column takes the Basic Multilingual Plane only.
        Bmp => strategy(Text(300, 900), zero)
            .prop_map(|v| {
                v.into_iter()
                    .map(|v| if let V::Bytes(b) = v { text(String::from_utf8(b).unwrap().chars().filter(|&c| c <= '\u{ffff}').collect()) } else { v })
                    .collect()
            })
            .boxed(),
        Latin1 | Bytes(_) => {
            let max = if let Bytes(n) = g { n } else { 300 };
            let edges: Vec<Vec<u8>> = vec![
                vec![],
                vec![0],
                (0..=255u8).cycle().take(max.min(256_000)).collect(),
                b"NULL".to_vec(),
                b"\\N".to_vec(),
                b"\\\t\n'\"\r\x1a".to_vec(),
                vec![0xff; max.min(8)],
                b"\xe9\x80\x81\x8d\x9d".to_vec(),
            ];
            edged(edges, prop::collection::vec(any::<u8>(), 0..=max.min(32)), |b| text(hex::encode(b)))
        }
        Legacy(charset) => {
            // One character's bytes: ASCII, or a code of the set (some gbk and cp932 codes drawn
            // here have no Unicode equivalent, and cp932 has pairs of codes for one character).
            let ascii = (0x20u8..0x7f).prop_map(|b| vec![b]);
            let character: BoxedStrategy<Vec<u8>> = match charset {
                "gbk" => prop_oneof![ascii, (0x81u8..=0xfe, prop_oneof![0x40u8..=0x7e, 0x80u8..=0xfe]).prop_map(|(l, t)| vec![l, t])].boxed(),
                "cp932" => prop_oneof![
                    ascii,
                    (0xa1u8..=0xdf).prop_map(|b| vec![b]),
                    (prop_oneof![0x81u8..=0x9f, 0xe0u8..=0xfc], prop_oneof![0x40u8..=0x7e, 0x80u8..=0xfc]).prop_map(|(l, t)| vec![l, t])
                ]
                .boxed(),
                _ => any::<u8>().prop_map(|b| vec![b]).boxed(),
            };
            let edges: Vec<Vec<u8>> = match charset {
                // A trail byte `\` before a real one and a quote; unassigned and user-defined codes.
                "gbk" => vec![vec![], b"\x81\x5c\x5c'".to_vec(), b"\xa2\xa0\xfe\xfe\xaa\xa1".to_vec()],
                // 表 (trail `\`); NEC and IBM codes of one character each (ED40 and FA5C, 8790 and 81E0).
                "cp932" => vec![vec![], b"\x95\x5c\x81\x5f".to_vec(), b"\xed\x40\xfa\x5c\x87\x90\x81\xe0".to_vec()],
                // cp1250's five unassigned bytes, and every byte from 0x80.
                _ => vec![vec![], b"\x81\x83\x88\x90\x98".to_vec(), (0x80..=0xffu8).collect()],
            };
            edged(edges, prop::collection::vec(character, 0..=40).prop_map(|c| c.concat()), |b| text(hex::encode(b)))
        }
        Enum => edged(vec![0, 7], 0..=7i64, V::Int), // 0: the empty error value (see `insert`)
        Set => edged(vec![0, 31], 0..32u64, V::UInt),
        Json => {
            let edges = vec![
                "{}",
                "[]",
                "null",
                "\"\"",
                "0",
                "-0",
                "1e308",
                "{\"k\": \"\\u0000\\\\\\n'\\\"\"}",
                "[1.5, true, false, null, \"🚀\"]",
                " { \"sp\" : [ ] } ",
            ];
            let random = (".{0,12}", any::<i64>(), prop::num::f64::NORMAL | prop::num::f64::POSITIVE | prop::num::f64::NEGATIVE, any::<bool>())
                .prop_map(|(s, i, f, b)| serde_json::json!({ "s": s, "n": [i, f, null, b], "e": {}, "u": "\u{1F600}" }).to_string());
            edged(edges.into_iter().map(String::from).collect(), random, text)
        }
        Inet4 => edged(vec![0, u32::MAX], any::<u32>(), |u| text(std::net::Ipv4Addr::from(u).to_string())),
        Inet6 => edged(vec![0, 1, u128::MAX, 0xffff_0102_0304], any::<u128>(), |u| text(std::net::Ipv6Addr::from(u).to_string())),
        Uuid => edged(vec![0, u128::MAX], any::<u128>(), |u| {
            // Versions 0-7: MariaDB refuses some UUIDs of versions 8 and above.
            let u = if u == u128::MAX { u } else { u & !(8 << 76) };
            let h = format!("{u:032x}");
            text(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
        }),
        Point => {
            use prop::num::f64::*;
            let xy = POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO;
            prop_oneof![Just(vec![V::NULL, V::NULL]), (xy, xy).prop_map(|(x, y)| vec![V::Double(x), V::Double(y)])].boxed()
        }
    }
}

/// Rows by primary key (never 0: an AUTO_INCREMENT column would make up a value for it).
fn rows(zero: bool) -> impl Strategy<Value = Vec<(i64, Vec<V>)>> {
    let row: Vec<BoxedStrategy<Vec<V>>> = COLS.iter().map(|&(_, _, g)| strategy(g, zero)).collect();
    let id = prop_oneof![-50i64..50, any::<i64>(), Just(i64::MIN), Just(i64::MAX)].prop_filter("not 0", |&i| i != 0);
    prop::collection::btree_map(id, row.prop_map(|v| v.concat()), 0..=20).prop_map(|m| m.into_iter().collect())
}

fn ddl(table: &str, auto: bool) -> String {
    let cols: Vec<String> = COLS.iter().map(|(c, ty, _)| format!("{c} {ty}")).collect();
    format!(
        "CREATE TABLE {table} (id BIGINT NOT NULL{} PRIMARY KEY, {}, {GENERATED}) DEFAULT CHARSET=utf8mb4",
        if auto { " AUTO_INCREMENT" } else { "" },
        cols.join(", ")
    )
}

/// Insert `rows` into `table`. The empty ENUM value (index 0) is refused by a strict sql_mode
/// in an INSERT, so it is set afterwards with UPDATE IGNORE.
async fn insert(c: &mut mysql_async::Conn, table: &str, rows: &[(i64, Vec<V>)]) -> Result<(), String> {
    let names: Vec<&str> = COLS.iter().map(|(c, ..)| *c).collect();
    let binds: Vec<String> = COLS.iter().map(|&(_, _, g)| bind(g)).collect();
    let stmt = format!("INSERT INTO {table} (id, {}) VALUES (?, {})", names.join(", "), binds.join(", "));
    let en = COLS.iter().take_while(|(c, ..)| *c != "en").map(|&(_, _, g)| if matches!(g, Point) { 2 } else { 1 }).sum::<usize>();
    for (id, values) in rows {
        let mut params = vec![V::Int(*id)];
        params.extend(values.iter().cloned());
        let empty_enum = params[1 + en] == V::Int(0);
        if empty_enum {
            params[1 + en] = V::NULL;
        }
        c.exec_drop(&stmt, params).await.map_err(|e| format!("insert {id} {values:?}: {e}"))?;
        if empty_enum {
            c.exec_drop(format!("UPDATE IGNORE {table} SET en = 0 WHERE id = ?"), (id,)).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A database as the server reads it: each table's definition, the read expressions, and every
/// row's readings in key order (FLOAT and DOUBLE by their bits).
async fn reading(c: &mut mysql_async::Conn, db: &str) -> Result<Vec<Reading>, String> {
    let mut exprs = vec!["CAST(id AS CHAR)".to_string()];
    exprs.extend(COLS.iter().flat_map(|&(c, _, g)| reads(c, g)));
    exprs.extend(["HEX(vg)".into(), "CAST(sg AS CHAR)".into()]);
    let mut out = Vec::new();
    for t in ["t_load", "t_auto"] {
        let create: Option<(String, String)> = c.query_first(format!("SHOW CREATE TABLE {db}.{t}")).await.map_err(|e| e.to_string())?;
        let rows: Vec<mysql_async::Row> = c.exec(format!("SELECT {} FROM {db}.{t} ORDER BY id", exprs.join(", ")), ()).await.map_err(|e| e.to_string())?;
        let text = |v: V| match v {
            V::NULL => "NULL".to_string(),
            V::Bytes(b) => b.escape_ascii().to_string(),
            V::Float(f) => format!("{f:?} (f32 {:#010x})", f.to_bits()),
            V::Double(d) => format!("{d:?} (f64 {:#018x})", d.to_bits()),
            other => format!("{other:?}"),
        };
        let rows = rows.into_iter().map(|r| r.unwrap().into_iter().map(text).collect()).collect();
        out.push((create.map(|(_, s)| s).unwrap_or_default(), exprs.clone(), rows));
    }
    Ok(out)
}

/// One table as the server reads it back: (its SHOW CREATE TABLE, the read expressions,
/// the rows of readings).
type Reading = (String, Vec<String>, Vec<Vec<String>>);

/// The first difference between the original's reading and a restored one, if any.
fn differs(how: &str, want: &[Reading], got: &[Reading]) -> Result<(), String> {
    for ((w, g), t) in want.iter().zip(got).zip(["t_load", "t_auto"]) {
        if w.0 != g.0 {
            return Err(format!("{how}: {t}'s definition differs:\n{}\n{}", w.0, g.0));
        }
        if w.2.len() != g.2.len() {
            return Err(format!("{how}: {t} has {} rows, the original {}", g.2.len(), w.2.len()));
        }
        for (wr, gr) in w.2.iter().zip(&g.2) {
            if let Some(i) = (0..wr.len()).find(|&i| wr[i] != gr[i]) {
                return Err(format!("{how}: {t} id {}: {} is {} but the original's is {}", wr[0], w.1[i], gr[i], wr[i]));
            }
        }
    }
    Ok(())
}

/// The server's global time_zone and sql_mode, set for the life of this value and put back
/// after, and the filler database (dropped after).
struct Globals(String, String, String);

impl Globals {
    fn save() -> Globals {
        let o = mariadb_client(&["-N", "-e", "SELECT @@GLOBAL.time_zone, @@GLOBAL.sql_mode"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let line = String::from_utf8_lossy(&o.stdout).trim_end().to_string();
        let (zone, mode) = line.split_once('\t').expect("two values");
        // Dumped beside a case's database, enough rows that the dump is read by the bulk reader.
        let filler = unique_db("diff_filler");
        sql(&format!("DROP DATABASE IF EXISTS {filler}; CREATE DATABASE {filler}; USE {filler}; CREATE TABLE f (id INT PRIMARY KEY); INSERT INTO f SELECT seq FROM seq_1_to_150000; ANALYZE TABLE f"));
        Globals(zone.into(), mode.into(), filler)
    }
    fn set(zone: &str, mode: &str) {
        sql(&format!("SET GLOBAL time_zone = '{zone}'; SET GLOBAL sql_mode = '{mode}'"));
    }
}

impl Drop for Globals {
    fn drop(&mut self) {
        Globals::set(&self.0, &self.1);
        sql(&format!("DROP DATABASE IF EXISTS {}", self.2));
    }
}

/// One generated case: original, dump, three restores, four readings. Odd cases are dumped beside `filler`, so by the bulk reader (`wire.rs`); even ones by mysql_async.
async fn case(
    n: usize,
    rows: &[(i64, Vec<V>)],
    conn: &mut mysql_async::Conn,
    load: &MysqlSql,
    inserts: &MysqlSql,
    dir: &std::path::Path,
    filler: &str,
) -> Result<(), String> {
    let base = unique_db(&format!("diff{n}"));
    let [orig, a, b, c] = ["o", "a", "b", "c"].map(|s| format!("{base}_{s}"));
    for db in [&orig, &a, &b, &c] {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4")).await.map_err(|e| e.to_string())?;
    }
    let result = async {
        conn.query_drop(format!("USE {orig}")).await.map_err(|e| e.to_string())?;
        for (t, auto) in [("t_load", false), ("t_auto", true)] {
            conn.query_drop(ddl(t, auto)).await.map_err(|e| format!("{t}: {e}"))?;
        }
        // Names in full: a prepared statement cached for an earlier case's database is not reused.
        insert(conn, &format!("{orig}.t_load"), rows).await?;
        insert(conn, &format!("{orig}.t_auto"), rows).await?;
        let want = reading(conn, &orig).await?;
        let name = format!("case{n}");
        let mut dumps = vec![(orig.clone(), name.clone())];
        if n % 2 == 1 {
            dumps.push((filler.to_string(), format!("filler{n}")));
        }
        let wired = load.bulk_reader_snapshots();
        load.dump_databases("metadb", &dumps).await.map_err(|e| format!("dump: {e:?}"))?;
        if load.bulk_reader_snapshots() - wired != (n % 2) as u64 {
            return Err("the bulk reader read a dump it should not have, or not one it should".to_string());
        }
        for (how, db, s) in [("LOAD DATA restore", &a, load), ("INSERT restore", &b, inserts)] {
            let restored = s.restore_database("metadb", db, &name).await;
            let same = differs(how, &want, &reading(conn, db).await?);
            // A failed verification with the server's own reading of what differs.
            restored.map_err(|e| format!("{how}: {e:?}; {same:?}"))?;
            same?;
        }
        stock_restore(&c, &dir.join(format!("{name}.sql")))?;
        differs("stock client", &want, &reading(conn, &c).await?)
    }
    .await;
    for db in [&orig, &a, &b, &c] {
        conn.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await.map_err(|e| e.to_string())?;
    }
    result
}

/// Four variants of 8 cases of up to 20 rows: about 20 s.
const CASES_PER_VARIANT: u32 = 8;

#[test]
fn random_rows_of_every_type_restore_exactly_three_ways_under_any_zone_and_sql_mode() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let globals = Globals::save();
    let default_mode = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION";
    let no_zero = format!("{default_mode},NO_ZERO_DATE,NO_ZERO_IN_DATE");
    let counter = AtomicUsize::new(0);
    for (zone, mode, zero) in
        [("+08:00", default_mode, true), ("SYSTEM", no_zero.as_str(), false), ("+08:00", no_zero.as_str(), false), ("SYSTEM", default_mode, true)]
    {
        Globals::set(zone, mode);
        // Connections made now take the new globals (pooled ones would keep the old).
        let dir = tempfile::tempdir().unwrap();
        let load = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
        let mut off = connections();
        off.get_mut("metadb").unwrap().load_data = false;
        let inserts = MysqlSql::new(&off, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
        let conn = rt.block_on(async {
            let mut c = mysql_async::Conn::new(mysql_opts(None)).await.unwrap();
            // Values are written in UTC; TIMESTAMPs are also read as instants.
            c.query_drop("SET SESSION time_zone = '+00:00'").await.unwrap();
            c
        });
        let conn = tokio::sync::Mutex::new(conn);
        let config = Config { cases: CASES_PER_VARIANT, max_shrink_iters: 200, failure_persistence: None, ..Config::default() };
        let result = TestRunner::new(config).run(&rows(zero), |rows| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async { case(n, &rows, &mut *conn.lock().await, &load, &inserts, dir.path(), &globals.2).await }).map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            panic!("time_zone {zone}, sql_mode {mode}: {e}");
        }
    }
}
