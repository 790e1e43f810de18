//! Reading a journal back: what completed, what was in doubt, where the run stopped.

use super::entry::{Entry, Header};
use crate::runtime::calls::Effect;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value as Json;
use std::path::Path;

/// One call as an earlier attempt recorded it. Its arguments and outcome stay the journal's
/// text until they are needed, one call at a time: parsed whole, a journal of many small values
/// would take tens of times its size as JSON trees (a 1 GiB journal, tens of GB), and could not
/// be resumed or rolled back.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub seq: u64,
    pub call: String,
    pub effect: Effect,
    pub args: Box<RawValue>,
    /// None: it began but its end was never written (in doubt).
    pub outcome: Option<Box<RawValue>>,
}

impl Recorded {
    /// Its arguments as JSON.
    pub fn args(&self) -> Json {
        serde_json::from_str(self.args.get()).unwrap_or(Json::Null)
    }
    /// Its outcome as JSON; None while in doubt.
    pub fn outcome(&self) -> Option<Json> {
        self.outcome.as_ref().map(|o| serde_json::from_str(o.get()).unwrap_or(Json::Null))
    }
}

/// A journal line as read back: [`Entry`]'s fields, the call's arguments and outcome kept as
/// text (serde cannot keep raw text inside an internally tagged enum).
#[derive(Deserialize)]
struct Line<'a> {
    entry: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    call: String,
    #[serde(default)]
    effect: Option<Effect>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
    #[serde(borrow, default)]
    outcome: Option<&'a RawValue>,
}

/// A journal line, or why it is not one.
fn read_line(raw: &str) -> Result<Line<'_>, String> {
    let line: Line = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    let complete = match line.entry.as_str() {
        "header" => true,
        "begin" => line.seq > 0 && line.effect.is_some() && line.args.is_some(),
        "end" => line.seq > 0 && line.outcome.is_some(),
        other => return Err(format!("unknown entry {other:?}")),
    };
    if complete {
        Ok(line)
    } else {
        Err(format!("a {} entry without its fields", line.entry))
    }
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
            let entry = match read_line(raw.trim_end()) {
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
            let seq = entry.seq;
            match (entry.entry.as_str(), entry.args, entry.outcome) {
                ("header", ..) if i == 0 => match serde_json::from_str(raw.trim_end()) {
                    Ok(Entry::Header(h)) => header = Some(h),
                    _ => anyhow::bail!("journal {origin}: its header cannot be read"),
                },
                ("header", ..) => anyhow::bail!("journal {origin}: a second header at line {}", i + 1),
                ("begin", Some(args), _) => {
                    anyhow::ensure!(seq == replay.calls.len() as u64 + 1, "journal {origin}: call {seq} out of order at line {}", i + 1);
                    let effect = entry.effect.expect("checked by read_line");
                    replay.calls.push(Recorded { seq, call: entry.call, effect, args: args.to_owned(), outcome: None });
                }
                (_, _, outcome) => {
                    let r = replay.calls.last_mut().filter(|r| r.seq == seq && r.outcome.is_none());
                    let Some(r) = r else { anyhow::bail!("journal {origin}: end of call {seq} without its begin at line {}", i + 1) };
                    r.outcome = outcome.map(|o| o.to_owned());
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
        let fieldless = journal(&[HEADER, r#"{"entry":"begin","seq":1,"call":"x"}"#, r#"{"entry":"end","seq":1,"outcome":{}}"#]);
        assert!(Replay::parse(&fieldless, "t").unwrap_err().to_string().contains("a begin entry without its fields"));
    }

    /// A journal of many small values is kept as its text until a call is replayed: as JSON
    /// trees it took about 60 times its size (here 48 MB of text, 2.8 GB of trees, measured).
    #[test]
    fn a_journal_of_many_small_values_loads_in_about_its_own_size() {
        fn peak_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()).unwrap()
        }
        let row = format!("[{}]", vec![r#"{"text":""}"#; 1000].join(","));
        let outcome = format!(r#"{{"ok":{{"columns":["a"],"rows":[{}]}}}}"#, vec![row.as_str(); 400].join(","));
        let mut text = journal(&[HEADER]);
        for seq in 1..=10 {
            text.push_str(&format!("{{\"entry\":\"begin\",\"seq\":{seq},\"call\":\"sql.query\",\"effect\":\"read\",\"args\":{{}}}}\n"));
            text.push_str(&format!("{{\"entry\":\"end\",\"seq\":{seq},\"outcome\":{outcome}}}\n"));
        }
        assert!(text.len() > 40 << 20, "{}", text.len());
        let before = peak_kib();
        let (_, r) = Replay::parse(&text, "t").unwrap();
        let grown = peak_kib().saturating_sub(before) << 10;
        assert_eq!(r.completed(), 10);
        assert!(grown < 3 * text.len() as u64, "loading {} bytes of journal took {grown} more bytes at its peak", text.len());
        // One call's outcome, when it is wanted, is the JSON it was.
        assert_eq!(r.get(3).unwrap().outcome().unwrap()["ok"]["rows"][399][999], serde_json::json!({"text": ""}));
        assert_eq!(r.get(3).unwrap().args(), serde_json::json!({}));
    }
}
