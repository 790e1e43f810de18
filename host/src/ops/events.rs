//! `--json` on upgrade, rollback and resume: one JSON object per line on stdout, for scripts (as
//! `terraform apply -json` streams). Human text goes to stderr then. Schema version 1; every
//! line has `"v": 1` and an `"event"`:
//!
//! - `plan`      `hop`, `of`, `plugin`, `source`, `target`, `plan` {findings, steps, rollback}
//! - `run`       `run`, `operation` (upgrade | rollback | resume), `dir`
//! - `call`      `seq`, `call`, `ms`, `ok`, `error` {kind, message} when not ok, `replayed`
//! - `log`       `level` (debug | info | warn | error), `message`
//! - `progress`  `label`, `done`, `total`, `unit` (bytes | rows | count; added in v1, absent
//!   before: read absent as count)
//! - `notice`    `message`
//! - `outcome`   `run`, `status` (upgraded | upgrade-failed | upgrade-timed-out | rolled-back |
//!   rollback-failed | upgrading | rolling-back when stopped by Ctrl-C), `error`, `stopped_before`
//!
//! A refusal before any run starts prints no `outcome`: the reason is on stderr, the exit code 1.

use crate::report::Level;
use crate::report::Reporter;
use crate::runtime::record::CallRecord;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// Switch this process to JSON lines on stdout (human text to stderr).
pub fn enable() {
    JSON.store(true, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// One event line, when `--json` is on.
pub fn emit(event: &str, fields: Value) {
    if !enabled() {
        return;
    }
    let mut line = json!({ "v": 1, "event": event });
    if let (Some(out), Value::Object(more)) = (line.as_object_mut(), fields) {
        out.extend(more);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Human text: stdout normally, stderr under `--json` (stdout holds only events then).
macro_rules! say {
    () => { $crate::ops::events::say_line(String::new()) };
    ($($arg:tt)*) => { $crate::ops::events::say_line(format!($($arg)*)) };
}
pub(crate) use say;

pub fn say_line(text: String) {
    if enabled() {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// The run's events as a reporter (beside the run log; the terminal's output goes to stderr).
pub struct JsonLines;

impl Reporter for JsonLines {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        emit("log", json!({ "level": level, "message": message }));
    }
    fn progress(&self, done: u64, total: u64, unit: crate::report::Unit, label: &str) {
        emit("progress", json!({ "label": label, "done": done, "total": total, "unit": unit.word() }));
    }
    fn notice(&self, message: &str) {
        emit("notice", json!({ "message": message }));
    }
    fn call(&self, r: &CallRecord) {
        let error = r.outcome.get("error").cloned();
        emit("call", json!({ "seq": r.seq, "call": r.call, "ms": r.ms, "ok": error.is_none(), "error": error, "replayed": r.replayed }));
    }
}
