//! What a host call leaves behind and what a scenario injects into one: the [`CallRecord`] each
//! call adds to the run's [`Transcript`], and the [`Faults`] a fake-host scenario fires at named
//! calls. Data only; [`super::host_call`] is the path that writes and fires them.

use crate::bindings::Error;
use crate::runtime::calls::Effect;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One capability call as it happened.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallRecord {
    pub seq: u64,
    pub call: String,
    pub effect: Effect,
    pub args: Json,
    /// `{"ok": value}` or `{"error": {"kind": …, "message": …}}`.
    pub outcome: Json,
    /// The outcome came from an injected fault, not a backend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub injected: bool,
    /// The outcome came from the journal of an interrupted attempt (resume).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Wall-clock milliseconds the host spent on it (which step of a downtime window was slow).
    #[serde(default)]
    pub ms: u64,
    /// When it began, milliseconds since the Unix epoch (the run report's timeline); 0 in
    /// transcripts written before it was kept.
    #[serde(default)]
    pub started_ms: u64,
}

pub type Transcript = Arc<Mutex<Vec<CallRecord>>>;

/// A fault to inject at a named call (fake host scenarios).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// WIT call name, e.g. "docker.exec" or "sql.dump-database".
    pub call: String,
    /// Fire from the nth matching call on (1-based); default the first.
    #[serde(default)]
    pub nth: Option<u32>,
    /// Only calls whose JSON arguments contain this text count.
    #[serde(default)]
    pub matching: Option<String>,
    /// How many times to fire; 0 = every time from `nth` on. Default 1.
    #[serde(default)]
    pub times: Option<u32>,
    /// Return this error (kind: denied, not-found, invalid-input, failed, timeout; default failed).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Or return this value instead of calling the backend (e.g. an exec result with exit_code 1).
    #[serde(default)]
    pub result: Option<Json>,
    /// Or make the backend this slow (real milliseconds): a hung engine or database.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(skip)]
    pub seen: u32,
    #[serde(skip)]
    pub fired: u32,
}

pub enum FaultAction {
    Error(Error),
    Result(Json),
    Delay(Duration),
}

#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<FaultRule>>>);

impl Faults {
    pub fn new(rules: Vec<FaultRule>) -> anyhow::Result<Self> {
        for r in &rules {
            anyhow::ensure!(super::calls::by_name(&r.call).is_some(), "fault at {}: no host call has that name (e.g. docker.stop, sql.dump-databases)", r.call);
            let actions = r.error.is_some() as u8 + r.result.is_some() as u8 + r.delay_ms.is_some() as u8;
            anyhow::ensure!(actions == 1, "fault at {}: give exactly one of error, result or delay_ms", r.call);
            if let Some(k) = &r.kind {
                anyhow::ensure!(Error::from_kind(k, String::new()).is_some(), "fault at {}: unknown error kind {k:?}", r.call);
            }
        }
        Ok(Faults(Arc::new(Mutex::new(rules))))
    }

    pub(crate) fn take(&self, call: &str, args: &Json) -> Option<FaultAction> {
        let mut rules = self.0.lock().unwrap();
        let text = args.to_string();
        for r in rules.iter_mut() {
            if r.call != call || r.matching.as_ref().is_some_and(|m| !text.contains(m.as_str())) {
                continue;
            }
            r.seen += 1;
            let times = r.times.unwrap_or(1);
            if r.seen >= r.nth.unwrap_or(1) && (times == 0 || r.fired < times) {
                r.fired += 1;
                return Some(match (&r.error, &r.result, r.delay_ms) {
                    (Some(msg), _, _) => FaultAction::Error(Error::from_kind(r.kind.as_deref().unwrap_or("failed"), msg.clone()).expect("checked in new")),
                    (None, Some(v), _) => FaultAction::Result(v.clone()),
                    (None, None, Some(ms)) => FaultAction::Delay(Duration::from_millis(ms)),
                    (None, None, None) => unreachable!("checked in new"),
                });
            }
        }
        None
    }

    /// Rules that never fired: a scenario whose fault never happened tested nothing.
    pub fn unfired(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().filter(|r| r.fired == 0).map(|r| format!("{} (seen {} matching calls)", r.call, r.seen)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(call: &str, nth: Option<u32>, times: Option<u32>, matching: Option<&str>) -> FaultRule {
        FaultRule {
            call: call.into(),
            nth,
            matching: matching.map(Into::into),
            times,
            error: Some("boom".into()),
            kind: None,
            result: None,
            delay_ms: None,
            seen: 0,
            fired: 0,
        }
    }

    #[test]
    fn faults_fire_at_the_nth_matching_call_for_the_given_times() {
        let f = Faults::new(vec![rule("docker.stop", Some(2), Some(2), Some("oms_411"))]).unwrap();
        let a = json!({"container": "oms_411"});
        let other = json!({"container": "oms_420"});
        assert!(f.take("docker.stop", &a).is_none());
        assert!(f.take("docker.stop", &other).is_none());
        assert!(matches!(f.take("docker.stop", &a), Some(FaultAction::Error(Error::Failed(m))) if m == "boom"));
        assert!(f.take("docker.stop", &a).is_some());
        assert!(f.take("docker.stop", &a).is_none());
        assert!(f.take("docker.start", &a).is_none());
        assert!(f.unfired().is_empty());
    }

    #[test]
    fn a_fault_needs_exactly_one_action() {
        let mut r = rule("docker.stop", None, None, None);
        r.result = Some(json!(1));
        assert!(Faults::new(vec![r]).is_err());
    }
}
