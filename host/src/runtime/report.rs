//! Where a run's output goes: plugin logs, progress, notices and the call transcript. The
//! terminal reporter prints for people (a progress bar for long waits); the silent one keeps
//! stdout clean for `--json`.

use crate::capabilities::services::Level;
use crate::runtime::host_call::CallRecord;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

pub trait Reporter: Send + Sync {
    fn log(&self, level: Level, message: &str);
    fn progress(&self, done: u64, total: u64, label: &str);
    fn notice(&self, message: &str);
    fn call(&self, record: &CallRecord);
}

/// Prints nothing (scripts read the JSON result instead).
pub struct Silent;
impl Reporter for Silent {
    fn log(&self, _: Level, _: &str) {}
    fn progress(&self, _: u64, _: u64, _: &str) {}
    fn notice(&self, _: &str) {}
    fn call(&self, _: &CallRecord) {}
}

/// Human output on stderr.
pub struct Terminal {
    /// Print every capability call with arguments and result.
    pub transcript: bool,
    pub debug: bool,
    bar: Mutex<Option<(String, ProgressBar)>>,
}

impl Terminal {
    pub fn new(transcript: bool, debug: bool) -> Self {
        Terminal { transcript, debug, bar: Mutex::new(None) }
    }
    fn finish_bar(&self) {
        if let Some((_, bar)) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

fn short(v: &serde_json::Value, max: usize) -> String {
    let s = v.to_string();
    if s.len() <= max {
        s
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

impl Reporter for Terminal {
    fn log(&self, level: Level, message: &str) {
        if matches!(level, Level::Debug) && !self.debug {
            return;
        }
        self.finish_bar();
        let tag = match level {
            Level::Debug => "debug",
            Level::Info => "  ",
            Level::Warn => "warning:",
            Level::Error => "error:",
        };
        eprintln!("  {tag} {message}");
    }
    fn progress(&self, done: u64, total: u64, label: &str) {
        let mut slot = self.bar.lock().unwrap();
        if slot.as_ref().is_none_or(|(l, _)| l != label) {
            if let Some((_, bar)) = slot.take() {
                bar.finish_and_clear();
            }
            let bar = ProgressBar::new(total.max(1));
            bar.set_style(ProgressStyle::with_template("  {msg} [{bar:30}] {pos}/{len}").unwrap().progress_chars("=> "));
            bar.set_message(label.to_string());
            *slot = Some((label.to_string(), bar));
        }
        let (_, bar) = slot.as_ref().unwrap();
        bar.set_length(total.max(1));
        bar.set_position(done.min(total));
    }
    fn notice(&self, message: &str) {
        self.finish_bar();
        eprintln!("  notice: {message}");
    }
    fn call(&self, r: &CallRecord) {
        if !self.transcript {
            return;
        }
        self.finish_bar();
        let mark = if r.injected { " [injected]" } else { "" };
        let mark = if r.replayed { " [replayed]" } else { mark };
        eprintln!("    #{:<3} {:>6} ms  {} {} -> {}{mark}", r.seq, r.ms, r.call, short(&r.args, 160), short(&r.outcome, 200));
    }
}
