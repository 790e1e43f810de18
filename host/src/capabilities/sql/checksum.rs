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
}

/// Feeds one row's values into its digest, in the canonical encoding (backends that read raw
/// protocol values use this directly, without building `Value`s).
pub struct RowEncoder(Sha256);

impl RowEncoder {
    fn bytes(&mut self, tag: u8, b: &[u8]) {
        self.0.update([tag]);
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    pub fn null(&mut self) {
        self.0.update([0u8]);
    }
    // Signed and unsigned integers of equal value hash alike: backends differ in which they return.
    pub fn int(&mut self, i: i64) {
        self.bytes(b'i', itoa_buf(i as i128).as_bytes());
    }
    pub fn uint(&mut self, u: u64) {
        self.bytes(b'i', itoa_buf(u as i128).as_bytes());
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

fn itoa_buf(i: i128) -> String {
    i.to_string()
}

impl TableHasher {
    pub fn row(&mut self, values: &[Value]) {
        self.row_with(|e| values.iter().for_each(|v| encode(e, v)));
    }

    pub fn row_with(&mut self, fill: impl FnOnce(&mut RowEncoder)) {
        let mut e = RowEncoder(Sha256::new());
        fill(&mut e);
        let d = e.0.finalize();
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
        // Signed and unsigned of equal value, text and bytes of equal content, hash alike.
        assert_eq!(digest(&[vec![Value::Int(5), Value::Text("x".into())]]), digest(&[vec![Value::Uint(5), Value::Bytes(b"x".to_vec())]]));
    }
}
