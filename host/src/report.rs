//! Where a run's output goes: plugin logs, progress, notices and the call transcript. The
//! terminal reporter prints for people (a progress bar for long waits); the silent one keeps
//! stdout clean for `--json`; [`RunLog`] keeps all of it, timestamped, in the run's folder.

/// A log line's level, as the WIT contract spells it.
pub use crate::bindings::opshost::plugin::host::Level;
use crate::runtime::record::CallRecord;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// What a progress count counts: bytes (restores, image loads) and rows (dumps: a dump's size
/// is not known before it is written, its rows are from the server's estimate) are shown with
/// their rate and time left; a plugin's own progress is a plain count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Rows,
    Bytes,
}

impl Unit {
    pub fn word(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Rows => "rows",
            Unit::Bytes => "bytes",
        }
    }
    /// `done/total` for people: `12.0 MiB/40.0 MiB`, `8192/10000 rows`, `3/7`.
    pub fn of(self, done: u64, total: u64) -> String {
        match self {
            Unit::Bytes => format!("{}/{}", indicatif::BinaryBytes(done), indicatif::BinaryBytes(total)),
            Unit::Rows => format!("{done}/{total} rows"),
            Unit::Count => format!("{done}/{total}"),
        }
    }
}

pub trait Reporter: Send + Sync {
    fn log(&self, level: Level, message: &str);
    fn progress(&self, done: u64, total: u64, unit: Unit, label: &str);
    fn notice(&self, message: &str);
    fn call(&self, record: &CallRecord);
}

/// How much the terminal shows (`-q`, default, `-v`, `-vv`; cli/logging.rs sets it once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Trace,
}

static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        2 => Verbosity::Verbose,
        _ => Verbosity::Trace,
    }
}

/// Prints nothing (scripts read the JSON result instead).
pub struct Silent;
impl Reporter for Silent {
    fn log(&self, _: Level, _: &str) {}
    fn progress(&self, _: u64, _: u64, _: Unit, _: &str) {}
    fn notice(&self, _: &str) {}
    fn call(&self, _: &CallRecord) {}
}

/// Where the lines after a message's first start on the terminal: under none of its tags.
const CONTINUED: &str = "        ";

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

/// `ok`, or `error <kind>: <message>`.
fn outcome_words(r: &CallRecord) -> String {
    match r.outcome.get("error") {
        Some(e) => format!("error {}: {}", e["kind"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("")),
        None => "ok".to_string(),
    }
}

/// Where a call's outcome came from, if not a backend just now: `replayed` (worded by the
/// caller) from the journal of an interrupted attempt, or ` [injected]` by a fault.
fn call_mark(r: &CallRecord, replayed: &'static str) -> &'static str {
    if r.replayed {
        replayed
    } else if r.injected {
        " [injected]"
    } else {
        ""
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
        let shown = match level {
            Level::Debug => self.debug || verbosity() >= Verbosity::Verbose,
            Level::Info => verbosity() > Verbosity::Quiet,
            Level::Warn | Level::Error => true,
        };
        if !shown {
            return;
        }
        self.finish_bar();
        let tag = match level {
            Level::Debug => "debug",
            Level::Info => "  ",
            Level::Warn => "warning:",
            Level::Error => "error:",
        };
        eprintln!("  {tag} {}", crate::text::continued(message, CONTINUED));
    }
    fn progress(&self, done: u64, total: u64, unit: Unit, label: &str) {
        if verbosity() == Verbosity::Quiet {
            return;
        }
        let mut slot = self.bar.lock().unwrap();
        if slot.as_ref().is_none_or(|(l, _)| l != label) {
            if let Some((_, bar)) = slot.take() {
                bar.finish_and_clear();
            }
            let bar = ProgressBar::new(total.max(1));
            let template = match unit {
                Unit::Bytes => "  {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  {eta} left",
                Unit::Rows => "  {msg} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  {eta} left",
                Unit::Count => "  {msg} [{bar:30}] {pos}/{len}",
            };
            bar.set_style(ProgressStyle::with_template(template).unwrap().progress_chars("=> "));
            bar.set_message(label.to_string());
            *slot = Some((label.to_string(), bar));
        }
        let (_, bar) = slot.as_ref().unwrap();
        bar.set_length(total.max(1));
        bar.set_position(done.min(total));
    }
    fn notice(&self, message: &str) {
        self.finish_bar();
        eprintln!("  notice: {}", crate::text::continued(message, CONTINUED));
    }
    fn call(&self, r: &CallRecord) {
        // -v: each call with its duration and outcome; -vv: its arguments too (cli/logging.rs).
        if tracing::enabled!(target: "opshost::call", tracing::Level::DEBUG) {
            self.finish_bar();
            let outcome = outcome_words(r);
            let mark = call_mark(r, " [replayed]");
            if tracing::enabled!(target: "opshost::call", tracing::Level::TRACE) {
                tracing::trace!(target: "opshost::call", seq = r.seq, ms = r.ms, args = %short(&r.args, 400), "{} -> {outcome}{mark}", r.call);
            } else {
                tracing::debug!(target: "opshost::call", seq = r.seq, ms = r.ms, "{} -> {outcome}{mark}", r.call);
            }
        }
        if !self.transcript {
            return;
        }
        self.finish_bar();
        let mark = call_mark(r, " [replayed]");
        eprintln!("    #{:<3} {:>6} ms  {} {} -> {}{mark}", r.seq, r.ms, r.call, short(&r.args, 160), short(&r.outcome, 200));
    }
}

/// Progress labels the run log remembers its last line of; past them it starts over (a label
/// seen again then writes its line again).
const PROGRESS_LABELS: usize = 256;

/// A progress label's last line in the run log.
struct LastProgress {
    tenth: u64,
    at: std::time::Instant,
    done: u64,
}

/// Every line of a run, timestamped (UTC), appended to `run.log` in its folder: plugin logs at
/// every level, notices, progress at each tenth, each host call with its duration and outcome,
/// and what the CLI says of the run. What an operator reads after a 3 a.m. failure.
pub struct RunLog {
    file: Mutex<std::fs::File>,
    /// Per progress label, the last line written: its tenth, when, and the count then.
    tenths: Mutex<std::collections::HashMap<String, LastProgress>>,
}

impl RunLog {
    pub fn open(path: &std::path::Path) -> anyhow::Result<RunLog> {
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| anyhow::anyhow!("opening the run log {}: {e}", path.display()))?;
        Ok(RunLog { file: Mutex::new(file), tenths: Mutex::default() })
    }

    /// One line, stamped; a log that cannot be written does not stop the run.
    pub fn line(&self, text: &str) {
        use std::io::Write;
        let ms = crate::text::now_ms();
        let stamp = crate::text::stamp(ms);
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{stamp}.{:03}Z {}", ms % 1000, crate::text::one_line(text));
    }
}

impl Reporter for RunLog {
    fn log(&self, level: Level, message: &str) {
        let tag = match level {
            Level::Debug => "DEBUG",
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        };
        self.line(&format!("{tag} {message}"));
    }
    fn progress(&self, done: u64, total: u64, unit: Unit, label: &str) {
        let tenth = (done.min(total) * 10).checked_div(total).unwrap_or(10);
        let mut seen = self.tenths.lock().unwrap_or_else(|e| e.into_inner());
        // A plugin may name any number of labels: only the latest few are remembered.
        if seen.len() >= PROGRESS_LABELS && !seen.contains_key(label) {
            seen.clear();
        }
        let now = std::time::Instant::now();
        match seen.get(label) {
            Some(last) if last.tenth == tenth => {}
            before => {
                // The rate since the last line of this label.
                let rate = match (before, unit) {
                    (Some(last), Unit::Bytes | Unit::Rows) if done > last.done => {
                        let per_s = (done - last.done) as f64 / now.duration_since(last.at).as_secs_f64().max(0.001);
                        match unit {
                            Unit::Bytes => format!(", {}/s", indicatif::BinaryBytes(per_s as u64)),
                            _ => format!(", {per_s:.0} rows/s"),
                        }
                    }
                    _ => String::new(),
                };
                self.line(&format!("PROGR {label}: {}{rate}", unit.of(done, total)));
                seen.insert(label.to_string(), LastProgress { tenth, at: now, done });
            }
        }
    }
    fn notice(&self, message: &str) {
        self.line(&format!("NOTE  {message}"));
    }
    fn call(&self, r: &CallRecord) {
        let how = outcome_words(r);
        let mark = call_mark(r, " [replayed from the journal]");
        self.line(&format!("CALL  #{} {} {} ms {} {}{mark}", r.seq, r.call, r.ms, short(&r.args, 400), how));
    }
}

/// Several reporters as one (the terminal and the run log).
pub struct Tee(pub Vec<std::sync::Arc<dyn Reporter>>);

impl Reporter for Tee {
    fn log(&self, level: Level, message: &str) {
        self.0.iter().for_each(|r| r.log(level, message));
    }
    fn progress(&self, done: u64, total: u64, unit: Unit, label: &str) {
        self.0.iter().for_each(|r| r.progress(done, total, unit, label));
    }
    fn notice(&self, message: &str) {
        self.0.iter().for_each(|r| r.notice(message));
    }
    fn call(&self, record: &CallRecord) {
        self.0.iter().for_each(|r| r.call(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_log_remembers_a_bounded_number_of_progress_labels() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::open(&dir.path().join("run.log")).unwrap();
        for i in 0..10_000 {
            log.progress(1, 10, Unit::Count, &format!("label {i}"));
        }
        assert!(log.tenths.lock().unwrap().len() <= PROGRESS_LABELS);
        let text = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
        assert!(text.contains("PROGR label 0: ") && text.contains("PROGR label 9999: "));
    }
}
