//! The run journal: every capability call of one plugin operation (upgrade or rollback), as an
//! append-only JSON-lines file made durable entry by entry. `begin` is written (and fsynced)
//! before a call reaches a backend, `end` with its outcome after. A host that dies mid-run
//! leaves a journal that `opshost resume` replays: completed calls return their recorded
//! outcome without touching anything, then the run continues live.

pub mod entry;
pub mod replay;

use crate::runtime::calls::Effect;
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
        // The line the crash cut off goes: appended to, it would make a corrupt line in the
        // middle, and the journal could not be replayed again.
        if replay.truncated_tail {
            file.set_len(replay.complete_bytes)
                .and_then(|_| file.sync_all())
                .map_err(|e| anyhow::anyhow!("cutting the torn last line of journal {}: {e}", path.display()))?;
        }
        Ok((Journal::with(path, file, replay), header))
    }

    /// Make an operation that stopped in a wait resumable: the reads it made after its last
    /// change (the wait's polls and clock) are dropped from the journal, so that a resume makes
    /// them again, live, with a fresh deadline; no change is ever dropped. The journal as it was
    /// is kept beside it (`<name>.timed-out`, numbered if there are several). Returns how many
    /// calls were dropped.
    pub fn drop_trailing_reads(path: &Path) -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading journal {}: {e}", path.display()))?;
        let (_, replay) = Replay::parse(&text, &path.display().to_string())?;
        let keep = replay.calls.iter().rposition(|c| c.effect != Effect::Read).map_or(0, |i| i + 1) as u64;
        let dropped = replay.calls.len() - keep as usize;
        if dropped == 0 {
            return Ok(0);
        }
        let mut kept = String::new();
        for line in text.split_inclusive('\n') {
            match serde_json::from_str::<Entry>(line.trim_end()) {
                Ok(Entry::Begin { seq, .. } | Entry::End { seq, .. }) if seq > keep => break,
                Ok(_) => kept.push_str(line),
                Err(_) => break,
            }
        }
        let mut n = 1;
        let saved = loop {
            let p = path.with_extension(if n == 1 { "journal.timed-out".to_string() } else { format!("journal.timed-out-{n}") });
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let tmp = path.with_extension("journal.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(kept.as_bytes())?;
        f.sync_all()?;
        // The journal as it was gets a second name first; the trimmed copy then replaces it in
        // one rename, so a crash at any point leaves a whole `upgrade.journal`.
        std::fs::hard_link(path, &saved)?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        Ok(dropped)
    }

    /// Whether the operation made a change and its last call was a read (a wait's poll or
    /// clock): what a run that timed out waiting for its new version has, and neither one that
    /// failed in a change nor one that timed out in a precheck, before its first change, has.
    pub fn ended_in_a_read(path: &Path) -> bool {
        Replay::load(path).is_ok_and(|(_, r)| {
            r.calls.iter().any(|c| c.effect != Effect::Read) && r.calls.last().is_some_and(|c| c.effect == Effect::Read && c.outcome.is_some())
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        serde_json::from_str(r#"{"run":"r","operation":"upgrade","plugin":"p","plugin_hash":"sha256:x","site_config_hash":"sha256:y"}"#).unwrap()
    }

    /// A crash cut the last line off, inside a character: a resume replays what came before,
    /// writes after it (not glued to the fragment), and a second resume reads it all.
    #[test]
    fn a_resume_writes_after_the_complete_lines_not_onto_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.journal");
        let j = Journal::create(&path, header()).unwrap();
        j.begin(j.next(), "docker.stop", Effect::IdempotentWrite, &serde_json::json!({"c": "oms"})).unwrap();
        drop(j);
        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice("{\"entry\":\"end\",\"seq\":1,\"outcome\":{\"ok\":\"é".as_bytes().split_last().unwrap().1);
        std::fs::write(&path, &torn).unwrap();

        let (j, _) = Journal::reopen(&path).unwrap();
        assert!(j.replay.truncated_tail && j.replay.in_doubt().is_some_and(|c| c.call == "docker.stop"));
        // As the host path does: the call in doubt runs again under its number and ends there.
        let seq = j.next();
        j.end(seq, &serde_json::json!({"ok": null}), false).unwrap();
        j.begin(j.next(), "docker.start", Effect::IdempotentWrite, &serde_json::json!({})).unwrap();
        drop(j);
        let (_, replay) = Replay::load(&path).unwrap();
        assert!(!replay.truncated_tail);
        assert_eq!(replay.calls.iter().map(|c| (c.call.as_str(), c.outcome.is_some())).collect::<Vec<_>>(), [("docker.stop", true), ("docker.start", false)]);
    }

    /// A wait that timed out: its polls after the last change are dropped (kept beside the
    /// journal), the change and everything before it stay, and new calls follow on.
    #[test]
    fn a_timed_out_wait_drops_its_polls_never_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.journal");
        let j = Journal::create(&path, header()).unwrap();
        let calls = [
            ("host.now", Effect::Read),
            ("docker.stop", Effect::IdempotentWrite),
            ("docker.exec", Effect::Write),
            ("console.list-servers", Effect::Read),
            ("host.sleep", Effect::Read),
            ("host.now", Effect::Read),
        ];
        for (call, effect) in calls {
            let seq = j.next();
            j.begin(seq, call, effect, &serde_json::json!({})).unwrap();
            j.end(seq, &serde_json::json!({"ok": null}), false).unwrap();
        }
        drop(j);
        assert!(Journal::ended_in_a_read(&path));
        assert_eq!(Journal::drop_trailing_reads(&path).unwrap(), 3);
        let (_, replay) = Replay::load(&path).unwrap();
        assert_eq!(replay.calls.iter().map(|c| c.call.as_str()).collect::<Vec<_>>(), ["host.now", "docker.stop", "docker.exec"]);
        assert!(!Journal::ended_in_a_read(&path), "it now ends in the change");
        let (_, before) = Replay::load(&dir.path().join("upgrade.journal.timed-out")).unwrap();
        assert_eq!(before.calls.len(), 6, "the journal as it was is kept");
        // Nothing more to drop; a resume appends from call 4 on and the journal still reads.
        assert_eq!(Journal::drop_trailing_reads(&path).unwrap(), 0);
        let (j, _) = Journal::reopen(&path).unwrap();
        for _ in 0..3 {
            j.next();
        }
        let seq = j.next();
        assert_eq!(seq, 4);
        j.begin(seq, "console.list-servers", Effect::Read, &serde_json::json!({})).unwrap();
        j.end(seq, &serde_json::json!({"ok": []}), false).unwrap();
        assert_eq!(Replay::load(&path).unwrap().1.calls.len(), 4);
    }

    /// A timeout in a precheck, before the first change, is no timed-out wait: there is nothing
    /// to keep and resume after.
    #[test]
    fn reads_only_is_not_a_timed_out_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.journal");
        let j = Journal::create(&path, header()).unwrap();
        for call in ["host.now", "console.list-servers"] {
            let seq = j.next();
            j.begin(seq, call, Effect::Read, &serde_json::json!({})).unwrap();
            j.end(seq, &serde_json::json!({"ok": null}), false).unwrap();
        }
        assert!(!Journal::ended_in_a_read(&path));
    }
}
