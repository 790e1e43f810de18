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

impl TableHasher {
    pub fn row(&mut self, values: &[Value]) {
        let mut h = Sha256::new();
        for v in values {
            encode(&mut h, v);
        }
        let d = h.finalize();
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

fn encode(h: &mut Sha256, v: &Value) {
    let bytes = |h: &mut Sha256, tag: u8, b: &[u8]| {
        h.update([tag]);
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    match v {
        Value::Null => h.update([0u8]),
        // Signed and unsigned integers of equal value hash alike: backends differ in which they return.
        Value::Int(i) => bytes(h, b'i', i.to_string().as_bytes()),
        Value::Uint(u) => bytes(h, b'i', u.to_string().as_bytes()),
        Value::Float(f) => bytes(h, b'f', &f.to_bits().to_le_bytes()),
        Value::Text(t) => bytes(h, b't', t.as_bytes()),
        Value::Bytes(b) => bytes(h, b't', b),
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
    }
}
