//! Run context helpers: typed parameters, errors that carry context, records, clock and waiting.

use crate::bindings::opshost::plugin::host::{self, Level};
use crate::{Context, Error};
use serde::{de::DeserializeOwned, Serialize};

pub type Result<T, E = Error> = core::result::Result<T, E>;

pub fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}
pub fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}
pub fn not_found(msg: impl Into<String>) -> Error {
    Error::NotFound(msg.into())
}

impl Error {
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::NotFound(m) | Error::InvalidInput(m) | Error::Failed(m) | Error::Timeout(m) => m,
        }
    }
    /// Same kind of error, message prefixed with what we were doing.
    pub fn within(self, what: &str) -> Error {
        let wrap = |m: String| format!("{what}: {m}");
        match self {
            Error::Denied(m) => Error::Denied(wrap(m)),
            Error::NotFound(m) => Error::NotFound(wrap(m)),
            Error::InvalidInput(m) => Error::InvalidInput(wrap(m)),
            Error::Failed(m) => Error::Failed(wrap(m)),
            Error::Timeout(m) => Error::Timeout(wrap(m)),
        }
    }
}

/// `result.within("dumping rm_411")?`
pub trait Within<T> {
    fn within(self, what: &str) -> Result<T>;
}
impl<T> Within<T> for Result<T> {
    fn within(self, what: &str) -> Result<T> {
        self.map_err(|e| e.within(what))
    }
}

/// Parameters of the run: what the site config (or scenario) set, with defaults filled by the host.
pub struct Params<'a>(pub &'a Context);

impl Params<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.parameters.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
    pub fn or(&self, name: &str, default: impl Into<String>) -> String {
        self.get(name).map(str::to_string).unwrap_or_else(|| default.into())
    }
    pub fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid(format!("parameter {name} = {v:?} is not a whole number"))),
        }
    }
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "yes" | "1") => Ok(true),
            Some("false" | "no" | "0") => Ok(false),
            Some(v) => Err(invalid(format!("parameter {name} = {v:?} must be true or false"))),
        }
    }
    pub fn node(&self) -> String {
        self.get("node").map(str::to_string).or_else(|| self.0.nodes.first().cloned()).unwrap_or_else(|| "local".into())
    }
}

pub fn info(msg: impl AsRef<str>) {
    host::log(Level::Info, msg.as_ref());
}
pub fn warn(msg: impl AsRef<str>) {
    host::log(Level::Warn, msg.as_ref());
}

/// Run records: values a later rollback reads.
pub fn record<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| failed(format!("encoding record {key}: {e}")))?;
    host::record(key, &text)
}
pub fn recall<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match host::recall(key) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| failed(format!("run record {key} is unreadable ({e}): the run record was edited or is from another plugin"))),
    }
}

pub fn now_ms() -> u64 {
    host::now()
}

/// The wait between the first [`FAST_POLLS`] checks of [`wait_until`]: a product up within a
/// second or two (the downtime being measured) is seen within 0.1 s of it; after that the waits
/// double up to the caller's interval, as a product that takes minutes needs.
pub const FIRST_POLL_MS: u64 = 100;
const FAST_POLLS: u32 = 20;

/// Poll `check` until it returns `Some`, or fail after `timeout_s` (host clock). The first checks
/// come quickly ([`FIRST_POLL_MS`] apart for the first two seconds, then doubling) and settle at
/// `interval_s`: a product that is up in a second is noticed within 0.1 s, which is downtime
/// saved, and a slow one is not hammered.
pub fn wait_until<T>(what: &str, timeout_s: u64, interval_s: u64, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = now_ms();
    let deadline = start + timeout_s * 1000;
    let interval_ms = interval_s.max(1) * 1000;
    let mut wait_ms = FIRST_POLL_MS.min(interval_ms);
    let mut polls = 0u32;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        let now = now_ms();
        if now >= deadline {
            return Err(Error::Timeout(format!("{what}: still not the case after {timeout_s} s")));
        }
        host::progress((now - start) / 1000, timeout_s, &format!("waiting: {what}"));
        host::sleep(wait_ms.min(deadline - now).max(1));
        polls += 1;
        if polls >= FAST_POLLS {
            wait_ms = (wait_ms * 2).min(interval_ms);
        }
    }
}

pub fn step(title: impl Into<String>, detail: impl Into<String>, changes: bool) -> crate::Step {
    crate::Step { title: title.into(), detail: detail.into(), changes }
}
