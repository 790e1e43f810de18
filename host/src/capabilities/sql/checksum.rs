//! Content checksums of a database, the same algorithm for every backend: per row a SHA-256 over
//! each column's type-tagged bytes, rows combined by 256-bit addition (order-independent, and
//! duplicate rows count), per table with its name, definition and row count, tables in name order.
//! Streaming: memory does not grow with the table.

use super::Value;
use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct TableHasher {
    sum: [u64; 4],
    rows: u64,
    buf: Vec<u8>,
}

/// Feeds one row's values into its digest, in the canonical encoding (backends that read raw
/// protocol values use this directly, without building `Value`s). The row is encoded into a
/// reused buffer and hashed once.
pub struct RowEncoder<'a>(&'a mut Vec<u8>);

impl RowEncoder<'_> {
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
}

/// `-n` (when `negative`) or `n` in decimal, without allocating (u64 arithmetic: this runs for
/// every integer of every row).
pub fn decimal(negative: bool, mut n: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

impl TableHasher {
    pub fn row(&mut self, values: &[Value]) {
        self.row_with(|e| values.iter().for_each(|v| encode(e, v)));
    }

    pub fn row_with(&mut self, fill: impl FnOnce(&mut RowEncoder)) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        fill(&mut RowEncoder(&mut buf));
        let d = Sha256::digest(&buf);
        self.buf = buf;
        let mut carry = 0u128;
        for (i, lane) in self.sum.iter_mut().enumerate() {
            let x = u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap());
            let s = *lane as u128 + x as u128 + carry;
            *lane = s as u64;
            carry = s >> 64;
        }
        self.rows += 1;
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Add the rows another hasher saw (a table read in key ranges by several connections): the
    /// result equals one hasher fed every row, because rows combine by addition.
    pub fn merge(&mut self, other: &TableHasher) {
        let mut carry = 0u128;
        for (lane, x) in self.sum.iter_mut().zip(other.sum) {
            let s = *lane as u128 + x as u128 + carry;
            *lane = s as u64;
            carry = s >> 64;
        }
        self.rows += other.rows;
    }
    /// The table's digest given its name and a canonical definition (column names and types).
    pub fn finish(&self, table: &str, definition: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [table.as_bytes(), definition.as_bytes()] {
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

/// Combine table digests (callers pass tables sorted by name) into the database checksum.
pub fn database_checksum(tables: &[(String, [u8; 32])]) -> String {
    let mut h = Sha256::new();
    for (name, d) in tables {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(d);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
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
        assert_ne!(digest(&[a.clone()]), digest(&[vec![Value::Int(1), Value::Text("y".into())]]));
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
        // Signed and unsigned of equal value, text and bytes of equal content, hash alike.
        assert_eq!(digest(&[vec![Value::Int(5), Value::Text("x".into())]]), digest(&[vec![Value::Uint(5), Value::Bytes(b"x".to_vec())]]));
    }
}
