//! Content checksums of a database, the same algorithm for every backend: per row a hash over
//! each column's type-tagged bytes, rows combined by 256-bit addition (order-independent, and
//! duplicate rows count), per table a SHA-256 over its name, definition, row count and row sum,
//! tables in name order. Streaming: memory does not grow with the table.
//!
//! A checksum reads `<row hash>:<hex>`. The row hash is XXH3-128 (it runs for every row of every
//! backup and every verification; SHA-256 cost a sixth of a dump's CPU). Checksums recorded by
//! earlier versions, `sha256:…`, are recomputed with SHA-256 rows, so their backups still verify.
//!
//! The prefix also says how text in a character set other than UTF-8 (latin1, cp1250, gbk, cp932
//! …) was read: `xxh3-stored:` (this version) hashes such a column's bytes as stored, `xxh3:` and
//! `sha256:` (earlier versions) hashed the server's conversion to utf8mb4, which maps bytes
//! without a Unicode equivalent to `?` (and two cp932 codes of one character to one), so it could
//! not see them change. A backup is verified the way its checksum was recorded.

use super::Value;
use sha2::{Digest, Sha256};

/// The per-row hash of a checksum, named by the checksum's prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RowHash {
    /// Earlier versions' checksums (`sha256:`).
    Sha256,
    /// XXH3-128 rows, text in other character sets than UTF-8 read as utf8mb4: earlier versions'
    /// checksums (`xxh3:`).
    Xxh3,
    /// XXH3-128 rows, text in other character sets than UTF-8 read as its stored bytes: the
    /// current one (`xxh3-stored:`). It detects accidental change (a lost or altered row, a
    /// truncated replay, a changed byte); it is not meant to resist someone forging rows.
    #[default]
    Xxh3Stored,
}

impl RowHash {
    pub fn name(self) -> &'static str {
        match self {
            RowHash::Sha256 => "sha256",
            RowHash::Xxh3 => "xxh3",
            RowHash::Xxh3Stored => "xxh3-stored",
        }
    }
    /// Whether text in a character set other than UTF-8 is read (and dumped) as the bytes it is
    /// stored as, rather than converted to utf8mb4 by the server.
    pub fn reads_stored_text(self) -> bool {
        self == RowHash::Xxh3Stored
    }
    /// The row hash a recorded checksum was computed with, or None for a prefix this version
    /// does not know (a backup from a newer opshost).
    pub fn of(checksum: &str) -> Option<RowHash> {
        match checksum.split_once(':')?.0 {
            "sha256" => Some(RowHash::Sha256),
            "xxh3" => Some(RowHash::Xxh3),
            "xxh3-stored" => Some(RowHash::Xxh3Stored),
            _ => None,
        }
    }
}

/// The row hash to verify a restore of `backup` with: the one its checksum was recorded with.
pub fn recorded_hash(backup: &super::Backup, source: &std::path::Path) -> Result<RowHash, crate::bindings::Error> {
    RowHash::of(&backup.checksum).ok_or_else(|| {
        crate::capabilities::errors::failed(format!(
            "backup {} ({}) records checksum {}, in a format this opshost does not know: restore it with the opshost version that made it",
            backup.name,
            source.display(),
            backup.checksum
        ))
    })
}

#[derive(Default)]
pub struct TableHasher {
    hash: RowHash,
    sum: [u64; 4],
    rows: u64,
    buf: Vec<u8>,
}

/// Feeds one row's values into its digest, in the canonical encoding (backends that read raw
/// protocol values use this directly, without building `Value`s). The row is encoded into a
/// reused buffer and hashed once.
pub struct RowEncoder<'a>(&'a mut Vec<u8>);

impl<'a> RowEncoder<'a> {
    /// An encoder appending to `buf`.
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        RowEncoder(buf)
    }
    fn bytes(&mut self, tag: u8, b: &[u8]) {
        self.0.push(tag);
        self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.0.extend_from_slice(b);
    }
    pub fn null(&mut self) {
        self.0.push(0u8);
    }
    // Signed and unsigned integers of equal value hash alike: backends differ in which they return.
    pub fn int(&mut self, i: i64) {
        let mut buf = [0u8; 21];
        let text = decimal(i < 0, i.unsigned_abs(), &mut buf);
        self.bytes(b'i', text);
    }
    /// An integer already in decimal, as [`decimal`] writes it: hashes as `int` and `uint` do.
    pub fn decimal(&mut self, digits: &[u8]) {
        self.bytes(b'i', digits);
    }
    pub fn uint(&mut self, u: u64) {
        let mut buf = [0u8; 21];
        let text = decimal(false, u, &mut buf);
        self.bytes(b'i', text);
    }
    /// Floats hash by their exact bits.
    pub fn float(&mut self, f: f64) {
        self.bytes(b'f', &f.to_bits().to_le_bytes());
    }
    /// Text and binary strings hash alike (the protocol does not always say which it is).
    pub fn text(&mut self, b: &[u8]) {
        self.bytes(b't', b);
    }
    /// Text that `write` appends, hashed as [`RowEncoder::text`] would hash it, without a copy.
    pub fn text_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.0.push(b't');
        let at = self.0.len();
        self.0.extend_from_slice(&[0u8; 8]);
        write(self.0);
        let n = (self.0.len() - at - 8) as u64;
        self.0[at..at + 8].copy_from_slice(&n.to_le_bytes());
    }
}

/// `-n` (when `negative`) or `n` in decimal, without allocating (u64 arithmetic, two digits a
/// step from a table: this runs for every integer of every row).
pub fn decimal(negative: bool, mut n: u64, buf: &mut [u8; 21]) -> &[u8] {
    const PAIRS: &[u8; 200] = b"00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    let mut at = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[n as usize * 2..n as usize * 2 + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

impl TableHasher {
    pub fn new(hash: RowHash) -> TableHasher {
        TableHasher { hash, ..Default::default() }
    }

    pub fn row(&mut self, values: &[Value]) {
        self.row_with(|e| values.iter().for_each(|v| encode(e, v)));
    }

    pub fn row_with(&mut self, fill: impl FnOnce(&mut RowEncoder)) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        fill(&mut RowEncoder(&mut buf));
        let d: [u64; 4] = match self.hash {
            RowHash::Sha256 => {
                let d = Sha256::digest(&buf);
                std::array::from_fn(|i| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap()))
            }
            RowHash::Xxh3 | RowHash::Xxh3Stored => {
                let d = twox_hash::XxHash3_128::oneshot(&buf);
                [d as u64, (d >> 64) as u64, 0, 0]
            }
        };
        self.buf = buf;
        add(&mut self.sum, d);
        self.rows += 1;
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Add the rows another hasher saw (a table read in key ranges by several connections): the
    /// result equals one hasher fed every row, because rows combine by addition.
    pub fn merge(&mut self, other: &TableHasher) {
        debug_assert_eq!(self.hash, other.hash);
        add(&mut self.sum, other.sum);
        self.rows += other.rows;
    }
    /// The table's digest given its name and a canonical definition (column names and types).
    pub fn finish(&self, table: &str, definition: impl AsRef<[u8]>) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [table.as_bytes(), definition.as_ref()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(self.rows.to_le_bytes());
        for lane in self.sum {
            h.update(lane.to_le_bytes());
        }
        h.finalize().into()
    }
}

/// `sum += x`, mod 2^256.
fn add(sum: &mut [u64; 4], x: [u64; 4]) {
    let mut carry = 0u128;
    for (lane, x) in sum.iter_mut().zip(x) {
        let s = *lane as u128 + x as u128 + carry;
        *lane = s as u64;
        carry = s >> 64;
    }
}

/// Combine table digests (callers pass tables sorted by name, hashed with `hash`) into the
/// database checksum.
pub fn database_checksum(tables: &[(String, [u8; 32])], hash: RowHash) -> String {
    let mut h = Sha256::new();
    for (name, d) in tables {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(d);
    }
    format!("{}:{}", hash.name(), hex::encode(h.finalize()))
}

fn encode(e: &mut RowEncoder, v: &Value) {
    match v {
        Value::Null => e.null(),
        Value::Int(i) => e.int(*i),
        Value::Uint(u) => e.uint(*u),
        Value::Float(f) => e.float(*f),
        Value::Text(t) => e.text(t.as_bytes()),
        Value::Bytes(b) => e.text(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_partial_hashers_equal_one_hasher() {
        let rows: Vec<Vec<Value>> = (0..50).map(|i| vec![Value::Int(i), Value::Text(format!("row {i}"))]).collect();
        let mut whole = TableHasher::default();
        rows.iter().for_each(|r| whole.row(r));
        let (mut a, mut b) = (TableHasher::default(), TableHasher::default());
        rows[..17].iter().for_each(|r| a.row(r));
        rows[17..].iter().for_each(|r| b.row(r));
        a.merge(&b);
        assert_eq!(a.rows(), 50);
        assert_eq!(a.finish("t", "d"), whole.finish("t", "d"));
    }

    fn sample() -> Vec<Vec<Value>> {
        vec![
            vec![Value::Int(1), Value::Text("it's".into()), Value::Null, Value::Float(0.5), Value::Bytes(vec![0, 1, 255])],
            vec![Value::Uint(u64::MAX), Value::Text(String::new()), Value::Int(-7), Value::Float(-1e300), Value::Bytes(vec![])],
        ]
    }

    fn checksum_of(rows: &[Vec<Value>], hash: RowHash) -> String {
        let mut t = TableHasher::new(hash);
        rows.iter().for_each(|r| t.row(r));
        database_checksum(&[("t".into(), t.finish("t", "CREATE TABLE t (a int)"))], hash)
    }

    #[test]
    fn sha256_checksums_are_those_earlier_versions_recorded() {
        // Computed by the version before XXH3 rows: backups it made must still verify.
        assert_eq!(checksum_of(&sample(), RowHash::Sha256), "sha256:f69d62b3d943c99fa65683857948cea870c7980c53666070c139a3afe4e6521a");
    }

    #[test]
    fn the_prefix_names_the_row_hash_and_the_default_is_xxh3_of_stored_text() {
        let new = checksum_of(&sample(), RowHash::default());
        assert!(new.starts_with("xxh3-stored:") && new.len() == "xxh3-stored:".len() + 64, "{new}");
        assert_eq!(RowHash::of(&new), Some(RowHash::Xxh3Stored));
        assert!(RowHash::default().reads_stored_text());
        // Earlier versions' XXH3 checksums: the same row hash, text read converted.
        let earlier = checksum_of(&sample(), RowHash::Xxh3);
        assert_eq!(RowHash::of(&earlier), Some(RowHash::Xxh3));
        assert!(!RowHash::Xxh3.reads_stored_text() && !RowHash::Sha256.reads_stored_text());
        assert_eq!(earlier["xxh3:".len()..], new["xxh3-stored:".len()..], "the same rows hash alike; the prefix says how text was read");
        assert_eq!(RowHash::of(&checksum_of(&sample(), RowHash::Sha256)), Some(RowHash::Sha256));
        assert_eq!(RowHash::of("md5:00"), None);
        assert_eq!(RowHash::of("no prefix"), None);
        // The two hashes do not agree, so a checksum is only ever compared within its own kind.
        assert_ne!(earlier[5..], checksum_of(&sample(), RowHash::Sha256)[7..]);
    }

    #[test]
    fn xxh3_rows_detect_what_sha256_rows_detect() {
        let base = sample();
        let reference = checksum_of(&base, RowHash::Xxh3);
        let mut changed = base.clone();
        changed[0][1] = Value::Text("its".into());
        let mut lost = base.clone();
        lost.pop();
        let mut doubled = base.clone();
        doubled.push(base[1].clone());
        let mut reordered = base.clone();
        reordered.reverse();
        for (what, rows) in [("a changed value", &changed), ("a lost row", &lost), ("a duplicated row", &doubled)] {
            assert_ne!(checksum_of(rows, RowHash::Xxh3), reference, "{what}");
        }
        assert_eq!(checksum_of(&reordered, RowHash::Xxh3), reference, "row order is not content");
    }

    fn digest(rows: &[Vec<Value>]) -> [u8; 32] {
        let mut t = TableHasher::default();
        rows.iter().for_each(|r| t.row(r));
        t.finish("t", "id int")
    }

    #[test]
    fn row_order_does_not_matter_but_content_and_duplicates_do() {
        let a = vec![Value::Int(1), Value::Text("x".into())];
        let b = vec![Value::Int(2), Value::Null];
        assert_eq!(digest(&[a.clone(), b.clone()]), digest(&[b.clone(), a.clone()]));
        assert_ne!(digest(&[a.clone(), b.clone()]), digest(&[a.clone(), a.clone(), b.clone()]));
        assert_ne!(digest(std::slice::from_ref(&a)), digest(&[vec![Value::Int(1), Value::Text("y".into())]]));
        // NULL differs from an empty string.
        assert_ne!(digest(&[vec![Value::Null]]), digest(&[vec![Value::Text(String::new())]]));
        // Floats hash by their exact bits.
        assert_ne!(digest(&[vec![Value::Float(3.4028234e38)]]), digest(&[vec![Value::Float(3.40282e38)]]));
        // Integers hash by their decimal text, whatever their width or sign.
        for i in [0i64, -1, 7, i64::MIN, i64::MAX] {
            if i >= 0 {
                assert_eq!(digest(&[vec![Value::Int(i)]]), digest(&[vec![Value::Uint(i as u64)]]), "{i}");
            }
            let mut buf = [0u8; 21];
            assert_eq!(decimal(i < 0, i.unsigned_abs(), &mut buf), i.to_string().as_bytes());
        }
        let mut buf = [0u8; 21];
        assert_eq!(decimal(false, u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
        for u in (0..=1000u64).chain([9_999, 10_000, 99_999, 100_000, 1_767_225_600_000, u64::MAX - 1]) {
            assert_eq!(decimal(false, u, &mut buf), u.to_string().as_bytes());
        }
        // Signed and unsigned of equal value, text and bytes of equal content, hash alike.
        assert_eq!(digest(&[vec![Value::Int(5), Value::Text("x".into())]]), digest(&[vec![Value::Uint(5), Value::Bytes(b"x".to_vec())]]));
    }
}
