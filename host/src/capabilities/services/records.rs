//! Run-scoped records ([`RunRecords`]): the key/value pairs a plugin (and the host, under its own
//! keys) leaves for a later step of the same run, a rollback in another process above all.
//!
//! With a run folder they are kept in `records.jsonl`, one JSON line `[key, value]` per change,
//! appended and synced before the call returns; loading replays the lines, the last for a key
//! wins. A write costs the size of what it writes, not of everything recorded: the file is
//! rewritten whole (atomically) only once superseded lines make up more than half of it. A run
//! started by an earlier version kept them as one JSON map in `records.json`; that file is read
//! when the lines file does not exist yet, and left as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::bindings::Error;

/// The records file in a run folder.
pub const RECORDS_FILE: &str = "records.jsonl";
/// Where a run of an earlier version kept its records: one JSON map, rewritten on every change.
const EARLIER_RECORDS_FILE: &str = "records.json";

pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Keys, and bytes of all values together, one run's records may hold.
pub const MAX_RECORDS: usize = 4096;
pub const MAX_RECORDS_TOTAL_BYTES: usize = 64 << 20;
/// Keys the host keeps for itself; a plugin may read them, never write them.
pub const HOST_KEY_PREFIX: &str = "opshost.";
/// Superseded lines the file may hold beyond its live ones before it is rewritten.
const SLACK_BYTES: u64 = 1 << 20;

/// A run's records, kept in its folder's [`RECORDS_FILE`] or only in memory.
#[derive(Clone, Default)]
pub struct RunRecords {
    inner: Arc<Mutex<Kept>>,
    file: Option<PathBuf>,
}

#[derive(Default)]
struct Kept {
    /// Each key's value and the length of its line in the file.
    map: BTreeMap<String, (String, u64)>,
    /// Bytes of the file, its superseded lines included.
    file_bytes: u64,
    /// The file must be rewritten before the next append: an append failed midway, or the
    /// file was found ending in a torn line.
    rewrite: bool,
    /// Bytes written to the file by this process (what a write costs, for the tests).
    written: u64,
}

/// One record's line: `["key","value"]` and its end.
fn line(key: &str, value: &str) -> Vec<u8> {
    let mut l = serde_json::to_vec(&(key, value)).expect("two strings");
    l.push(b'\n');
    l
}

impl RunRecords {
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The records of the run whose folder is `run_dir`: as its file holds them, or none yet.
    pub fn in_run(run_dir: &Path) -> anyhow::Result<Self> {
        let file = run_dir.join(RECORDS_FILE);
        let mut kept = Kept::default();
        for (key, value) in read_file(run_dir, &mut kept.rewrite)? {
            let n = line(&key, &value).len() as u64;
            kept.map.insert(key, (value, n));
        }
        kept.file_bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        // Records read from an earlier version's file are written out whole at the first change.
        kept.rewrite |= !file.exists() && !kept.map.is_empty();
        Ok(RunRecords { inner: Arc::new(Mutex::new(kept)), file: Some(file) })
    }

    /// The records of the run whose folder is `run_dir`, read only (`opshost runs show`).
    pub fn read(run_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
        read_file(run_dir, &mut false)
    }

    /// A plugin's record: not under the host's own keys.
    pub fn set(&self, key: &str, value: &str) -> Result<(), Error> {
        if key.starts_with(HOST_KEY_PREFIX) {
            return Err(Error::InvalidInput(format!("record {key:?}: keys starting with {HOST_KEY_PREFIX} are the host's own; choose another key")));
        }
        self.set_host(key, value)
    }

    /// Any record, the host's own included. Kept in memory only once the file has it.
    pub fn set_host(&self, key: &str, value: &str) -> Result<(), Error> {
        if key.is_empty() || key.len() > 256 || value.len() > MAX_RECORD_BYTES {
            return Err(Error::InvalidInput(format!("record {key:?}: keys are 1-256 bytes, values at most {MAX_RECORD_BYTES} bytes")));
        }
        let mut kept = self.inner.lock().unwrap();
        // The other records' bytes, and their lines' in the file.
        let (mut others, mut other_lines) = (0usize, 0u64);
        for (k, (v, n)) in kept.map.iter().filter(|(k, _)| k.as_str() != key) {
            others += k.len() + v.len();
            other_lines += n;
        }
        if (!kept.map.contains_key(key) && kept.map.len() >= MAX_RECORDS) || others + key.len() + value.len() > MAX_RECORDS_TOTAL_BYTES {
            return Err(Error::Denied(format!("record {key:?}: a run keeps at most {MAX_RECORDS} records of {} MiB together", MAX_RECORDS_TOTAL_BYTES >> 20)));
        }
        let new = line(key, value);
        let live_bytes = other_lines + new.len() as u64;
        if let Some(file) = &self.file {
            let whole = kept.rewrite || kept.file_bytes + new.len() as u64 > 2 * live_bytes + SLACK_BYTES;
            let wrote = if whole { rewrite(file, &kept, key, &new) } else { append(file, &new) };
            match wrote {
                Ok(n) => {
                    kept.written += n;
                    kept.file_bytes = if whole { n } else { kept.file_bytes + n };
                    kept.rewrite = false;
                }
                Err(e) => {
                    // An append may have left part of its line: the next write starts the file anew.
                    kept.rewrite |= !whole;
                    return Err(Error::Failed(format!("writing run records {}: {e}", file.display())));
                }
            }
        }
        kept.map.insert(key.to_string(), (value.to_string(), new.len() as u64));
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.inner.lock().unwrap().map.get(key).map(|(v, _)| v.clone())
    }

    pub fn all(&self) -> BTreeMap<String, String> {
        self.inner.lock().unwrap().map.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()
    }

    /// Bytes written to the records file by this process.
    pub fn bytes_written(&self) -> u64 {
        self.inner.lock().unwrap().written
    }
}

/// The records in `run_dir`: its lines file replayed, or an earlier version's map, or none.
/// `torn` is set when the lines file ends in a line without its end, a write that never
/// returned: that line is not a record.
fn read_file(run_dir: &Path, torn: &mut bool) -> anyhow::Result<BTreeMap<String, String>> {
    let file = run_dir.join(RECORDS_FILE);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return read_earlier(&run_dir.join(EARLIER_RECORDS_FILE)),
        Err(e) => anyhow::bail!("reading run records {}: {e}", file.display()),
    };
    let mut map = BTreeMap::new();
    let mut lines = bytes.split_inclusive(|b| *b == b'\n').enumerate().peekable();
    while let Some((i, l)) = lines.next() {
        if !l.ends_with(b"\n") && lines.peek().is_none() {
            *torn = true;
            break;
        }
        let (key, value): (String, String) = serde_json::from_slice(l).map_err(|e| {
            anyhow::anyhow!("run records {} are unreadable at line {}: {e}; the run's rollback needs them: restore the file from a copy", file.display(), i + 1)
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

fn read_earlier(file: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("run records {} are unreadable: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(anyhow::anyhow!("reading run records {}: {e}", file.display())),
    }
}

/// Appends `new` to `file`, synced; the bytes written.
fn append(file: &Path, new: &[u8]) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    f.write_all(new)?;
    f.sync_data()?;
    Ok(new.len() as u64)
}

/// Writes `file` anew with one line per key, `key`'s being `new`, synced and put in place at
/// once; the bytes written.
fn rewrite(file: &Path, kept: &Kept, key: &str, new: &[u8]) -> std::io::Result<u64> {
    let tmp = file.with_extension("tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut n = 0;
    for (k, (v, _)) in kept.map.iter().filter(|(k, _)| k.as_str() != key) {
        let l = line(k, v);
        f.write_all(&l)?;
        n += l.len() as u64;
    }
    f.write_all(new)?;
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(n + new.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_a_later_process_last_write_winning() {
        let dir = tempfile::tempdir().unwrap();
        let r = RunRecords::in_run(dir.path()).unwrap();
        r.set("a", "1").unwrap();
        r.set("b", "line\nbreak \"quoted\" \u{0}").unwrap();
        r.set("a", "2").unwrap();
        r.set_host("opshost.approved", "{}").unwrap();
        assert!(r.set("opshost.x", "no").is_err());
        let again = RunRecords::in_run(dir.path()).unwrap();
        assert_eq!(again.all(), r.all());
        assert_eq!(again.get("a").as_deref(), Some("2"));
        assert_eq!(RunRecords::read(dir.path()).unwrap(), r.all());
        assert_eq!(std::fs::read_to_string(dir.path().join(RECORDS_FILE)).unwrap().lines().count(), 4, "appended, not rewritten");
    }

    /// A write costs what it writes: after one record of 1 MiB, a thousand small ones write
    /// kilobytes, not a gigabyte (the file was rewritten whole on every change before).
    #[test]
    fn small_records_after_a_big_one_do_not_rewrite_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = RunRecords::in_run(dir.path()).unwrap();
        r.set("big", &"x".repeat(MAX_RECORD_BYTES)).unwrap();
        for i in 0..1000 {
            r.set(&format!("k{}", i % 10), &i.to_string()).unwrap();
        }
        let written = r.bytes_written();
        assert!(written < (MAX_RECORD_BYTES as u64) + 100_000, "{written} bytes written");
        assert_eq!(RunRecords::in_run(dir.path()).unwrap().all(), r.all());
    }

    /// The same key written over and over: the file is rewritten once superseded lines are most
    /// of it, so it stays within twice the live records (and a megabyte), whatever the count.
    #[test]
    fn superseded_lines_are_dropped_when_they_are_most_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = RunRecords::in_run(dir.path()).unwrap();
        let value = "v".repeat(100_000);
        for i in 0..200 {
            r.set("same", &format!("{i}{value}")).unwrap();
            let size = std::fs::metadata(dir.path().join(RECORDS_FILE)).unwrap().len();
            assert!(size <= 2 * 100_020 + SLACK_BYTES + 100_020, "{size} bytes after {i} writes");
        }
        assert_eq!(RunRecords::in_run(dir.path()).unwrap().get("same").unwrap(), format!("199{value}"));
    }

    #[test]
    fn a_torn_last_line_is_not_a_record_and_the_next_write_starts_the_file_anew() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(RECORDS_FILE);
        std::fs::write(&file, "[\"a\",\"1\"]\n[\"b\",\"2").unwrap();
        let r = RunRecords::in_run(dir.path()).unwrap();
        assert_eq!(r.all(), BTreeMap::from([("a".to_string(), "1".to_string())]));
        r.set("c", "3").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "[\"a\",\"1\"]\n[\"c\",\"3\"]\n");
        // A bad line that is not the last is damage, not a torn write.
        std::fs::write(&file, "[\"a\",\"1\"]\nnot json\n[\"c\",\"3\"]\n").unwrap();
        let e = RunRecords::in_run(dir.path()).err().unwrap().to_string();
        assert!(e.contains("unreadable at line 2") && e.contains("restore the file"), "{e}");
    }

    #[test]
    fn a_run_of_an_earlier_version_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(EARLIER_RECORDS_FILE), r#"{"opshost.approved": "{}", "old": "spec"}"#).unwrap();
        let r = RunRecords::in_run(dir.path()).unwrap();
        assert_eq!(r.get("old").as_deref(), Some("spec"));
        r.set("new", "1").unwrap();
        let again = RunRecords::read(dir.path()).unwrap();
        assert_eq!((again.len(), again["old"].as_str(), again["new"].as_str()), (3, "spec", "1"));
    }

    #[test]
    fn records_are_bounded_in_count_and_bytes() {
        let r = RunRecords::in_memory();
        for i in 0..MAX_RECORDS {
            r.set(&format!("k{i}"), "").unwrap();
        }
        assert!(matches!(r.set("one-more", ""), Err(Error::Denied(_))));
        r.set("k0", "an existing key may change").unwrap();
        assert!(matches!(r.set("k1", &"x".repeat(MAX_RECORD_BYTES + 1)), Err(Error::InvalidInput(_))));
    }
}
