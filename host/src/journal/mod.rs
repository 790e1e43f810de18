//! The run journal: every capability call of one plugin operation (upgrade or rollback), as an
//! append-only JSON-lines file made durable entry by entry. `begin` is written (and fsynced)
//! before a call reaches a backend, `end` with its outcome after. A host that dies mid-run
//! leaves a journal that `opshost resume` replays: completed calls return their recorded
//! outcome without touching anything, then the run continues live.

pub mod entry;
pub mod replay;

use crate::runtime::host_call::Effect;
use entry::{Entry, Header};
use serde_json::Value as Json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use replay::{Recorded, Replay};

/// Test hook: abort the process (like kill -9) right after this many calls completed.
pub const ABORT_AFTER_ENV: &str = "OPSHOST_ABORT_AFTER_CALLS";

pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    /// What an earlier, interrupted attempt recorded (empty on a fresh run).
    pub replay: Replay,
    next_seq: Mutex<u64>,
    abort_after: Option<u64>,
    /// Bytes written so far, and the most this journal may hold (`max_journal_mb`).
    bytes: Mutex<u64>,
    max_bytes: u64,
}

impl Journal {
    /// A new journal for a fresh operation.
    pub fn create(path: &Path, header: Header) -> anyhow::Result<Journal> {
        let mut file =
            std::fs::OpenOptions::new().create_new(true).append(true).open(path).map_err(|e| anyhow::anyhow!("creating journal {}: {e}", path.display()))?;
        writeln!(file, "{}", serde_json::to_string(&Entry::Header(header))?)?;
        file.sync_all()?;
        Ok(Journal::with(path, file, Replay::default()))
    }

    /// Reopen an interrupted operation's journal to resume it: its entries are replayed, new
    /// ones appended.
    pub fn reopen(path: &Path) -> anyhow::Result<(Journal, Header)> {
        let (header, replay) = Replay::load(path)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok((Journal::with(path, file, replay), header))
    }

    fn with(path: &Path, file: std::fs::File, replay: Replay) -> Journal {
        let abort_after = std::env::var(ABORT_AFTER_ENV).ok().and_then(|v| v.parse().ok());
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            replay,
            next_seq: Mutex::new(0),
            abort_after,
            bytes: Mutex::new(bytes),
            max_bytes: u64::MAX,
        }
    }

    /// Cap the journal at `mb` MiB: past it, writing the next call fails and the run stops.
    pub fn limited_to(mut self, mb: u64) -> Journal {
        self.max_bytes = mb.saturating_mul(1 << 20);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number of the next call.
    pub fn next(&self) -> u64 {
        let mut n = self.next_seq.lock().unwrap();
        *n += 1;
        *n
    }

    /// Write one entry. A `begin` past the size cap is refused (the call then does not run); an
    /// `end` is always written, so a call that ran is never left in doubt by the cap.
    fn append(&self, e: &Entry, durable: bool) -> std::io::Result<()> {
        let mut f = self.file.lock().unwrap();
        let mut line = serde_json::to_vec(e).expect("journal entries serialise");
        line.push(b'\n');
        let mut bytes = self.bytes.lock().unwrap();
        if matches!(e, Entry::Begin { .. }) && *bytes + line.len() as u64 > self.max_bytes {
            return Err(std::io::Error::other(format!("the journal would grow past {} MiB (max_journal_mb in [limits])", self.max_bytes >> 20)));
        }
        *bytes += line.len() as u64;
        f.write_all(&line)?;
        if durable {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Before a call reaches its backend. Writes are made durable first.
    pub fn begin(&self, seq: u64, call: &str, effect: Effect, args: &Json) -> std::io::Result<()> {
        self.append(&Entry::Begin { seq, call: call.to_string(), effect, args: args.clone() }, effect != Effect::Read)
    }

    /// After the call, with its outcome.
    pub fn end(&self, seq: u64, outcome: &Json, injected: bool) -> std::io::Result<()> {
        self.append(&Entry::End { seq, outcome: outcome.clone(), injected }, true)?;
        if self.abort_after == Some(seq) {
            eprintln!("{ABORT_AFTER_ENV}={seq}: aborting now (test hook)");
            std::process::abort();
        }
        Ok(())
    }
}
