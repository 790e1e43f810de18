//! Reading a journal back: what completed, what was in doubt, where the run stopped.

use super::entry::{Entry, Header};
use crate::runtime::calls::Effect;
use serde_json::Value as Json;
use std::path::Path;

/// One call as an earlier attempt recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub seq: u64,
    pub call: String,
    pub effect: Effect,
    pub args: Json,
    /// None: it began but its end was never written (in doubt).
    pub outcome: Option<Json>,
}

#[derive(Clone, Debug, Default)]
pub struct Replay {
    pub calls: Vec<Recorded>,
    /// The last line was cut off by the crash and ignored.
    pub truncated_tail: bool,
    /// Bytes of the lines read, the cut-off one excepted: where a resume appends.
    pub complete_bytes: u64,
}

impl Replay {
    pub fn load(path: &Path) -> anyhow::Result<(Header, Replay)> {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading journal {}: {e}", path.display()))?;
        // A write cut off inside a character leaves bytes that are not UTF-8, in the last line.
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("the valid prefix"),
        };
        let (header, mut replay) = Self::parse(text, &path.display().to_string())?;
        replay.truncated_tail |= text.len() < bytes.len();
        Ok((header, replay))
    }

    pub fn parse(text: &str, origin: &str) -> anyhow::Result<(Header, Replay)> {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut header = None;
        let mut replay = Replay::default();
        for (i, raw) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            let entry: Entry = match serde_json::from_str(raw.trim_end()) {
                Ok(e) if raw.ends_with('\n') || !last => e,
                // A last line without its newline, or unreadable: the write the crash interrupted.
                _ if last => {
                    replay.truncated_tail = true;
                    break;
                }
                Err(e) => {
                    anyhow::bail!("journal {origin} is corrupt at line {} ({e}): it cannot be replayed; roll the run back from its records instead", i + 1)
                }
                Ok(_) => unreachable!(),
            };
            replay.complete_bytes += raw.len() as u64;
            match entry {
                Entry::Header(h) if i == 0 => header = Some(h),
                Entry::Header(_) => anyhow::bail!("journal {origin}: a second header at line {}", i + 1),
                Entry::Begin { seq, call, effect, args } => {
                    anyhow::ensure!(seq == replay.calls.len() as u64 + 1, "journal {origin}: call {seq} out of order at line {}", i + 1);
                    replay.calls.push(Recorded { seq, call, effect, args, outcome: None });
                }
                Entry::End { seq, outcome, .. } => {
                    let r = replay.calls.last_mut().filter(|r| r.seq == seq && r.outcome.is_none());
                    let Some(r) = r else { anyhow::bail!("journal {origin}: end of call {seq} without its begin at line {}", i + 1) };
                    r.outcome = Some(outcome);
                }
            }
        }
        let header = header.ok_or_else(|| anyhow::anyhow!("journal {origin} has no header"))?;
        Ok((header, replay))
    }

    pub fn completed(&self) -> usize {
        self.calls.iter().filter(|c| c.outcome.is_some()).count()
    }

    /// The call that began but never ended, if the run stopped inside one.
    pub fn in_doubt(&self) -> Option<&Recorded> {
        self.calls.last().filter(|c| c.outcome.is_none())
    }

    pub fn get(&self, seq: u64) -> Option<&Recorded> {
        self.calls.get(seq as usize - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"entry":"header","run":"r","operation":"upgrade","plugin":"p","plugin_hash":"sha256:x","site_config_hash":"sha256:y"}"#;

    fn journal(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn completed_and_in_doubt_calls() {
        let text = journal(&[
            HEADER,
            r#"{"entry":"begin","seq":1,"call":"docker.inspect","effect":"read","args":{"c":"oms_411"}}"#,
            r#"{"entry":"end","seq":1,"outcome":{"ok":null}}"#,
            r#"{"entry":"begin","seq":2,"call":"docker.run","effect":"write","args":{}}"#,
        ]);
        let (h, r) = Replay::parse(&text, "t").unwrap();
        assert_eq!(h.operation, "upgrade");
        assert_eq!(r.completed(), 1);
        assert_eq!(r.in_doubt().unwrap().call, "docker.run");
        assert!(!r.truncated_tail);
    }

    #[test]
    fn a_truncated_last_entry_is_ignored_but_corruption_elsewhere_is_refused() {
        let mut text = journal(&[HEADER, r#"{"entry":"begin","seq":1,"call":"docker.stop","effect":"idempotent-write","args":{}}"#]);
        text.push_str(r#"{"entry":"end","seq":1,"outc"#);
        let (_, r) = Replay::parse(&text, "t").unwrap();
        assert!(r.truncated_tail);
        assert_eq!(r.in_doubt().unwrap().call, "docker.stop");
        // A complete-looking last line without its newline was not fully written either.
        let text = journal(&[HEADER]) + r#"{"entry":"begin","seq":1,"call":"x","effect":"read","args":{}}"#;
        assert!(Replay::parse(&text, "t").unwrap().1.truncated_tail);
        let bad = journal(&[HEADER, "{garbage", r#"{"entry":"begin","seq":1,"call":"x","effect":"read","args":{}}"#]);
        assert!(Replay::parse(&bad, "t").unwrap_err().to_string().contains("corrupt at line 2"));
        let disorder = journal(&[HEADER, r#"{"entry":"begin","seq":2,"call":"x","effect":"read","args":{}}"#]);
        assert!(Replay::parse(&disorder, "t").is_err());
    }
}
