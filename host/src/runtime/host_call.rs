//! The one path every capability call takes: the store's mode and budgets, payload caps, the
//! journal, the grants, injected faults (fake host), a deadline, the transcript. Backends never
//! see any of this.

use crate::bindings::Error;
use crate::grants::Target;
use crate::runtime::calls::{Deadline, HostCall};
use crate::runtime::state::{HostState, Mode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a call does to the world; a journal decides on replay from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Read,
    /// Doing it twice leaves the same state as once (stop, create if absent, set a value).
    IdempotentWrite,
    Write,
}

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
            anyhow::ensure!(
                crate::runtime::calls::by_name(&r.call).is_some(),
                "fault at {}: no host call has that name (e.g. docker.stop, sql.dump-databases)",
                r.call
            );
            let actions = r.error.is_some() as u8 + r.result.is_some() as u8 + r.delay_ms.is_some() as u8;
            anyhow::ensure!(actions == 1, "fault at {}: give exactly one of error, result or delay_ms", r.call);
            if let Some(k) = &r.kind {
                anyhow::ensure!(Error::from_kind(k, String::new()).is_some(), "fault at {}: unknown error kind {k:?}", r.call);
            }
        }
        Ok(Faults(Arc::new(Mutex::new(rules))))
    }

    fn take(&self, call: &str, args: &Json) -> Option<FaultAction> {
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

/// A recorded outcome back as the call's result.
fn from_outcome<T: DeserializeOwned>(o: &Json) -> Result<Result<T, Error>, String> {
    if let Some(v) = o.get("ok") {
        return serde_json::from_value(v.clone()).map(Ok).map_err(|e| format!("recorded result does not fit: {e}"));
    }
    let kind = o["error"]["kind"].as_str().unwrap_or("failed");
    let message = o["error"]["message"].as_str().unwrap_or("").to_string();
    Error::from_kind(kind, message).map(Err).ok_or_else(|| format!("unknown recorded error kind {kind}"))
}

fn outcome<T: Serialize>(r: &Result<T, Error>) -> Json {
    match r {
        Ok(v) => json!({ "ok": serde_json::to_value(v).unwrap_or(Json::Null) }),
        Err(e) => json!({ "error": { "kind": e.kind(), "message": e.message() } }),
    }
}

/// Arguments longer than this are kept in the journal and transcript as their digest only
/// (replay compares digests); the call itself still gets them whole.
const KEEP_ARGS_BYTES: usize = 64 * 1024;

/// A call's arguments (or, in the transcript, its outcome) as they are kept: whole, or their
/// size and digest.
fn kept(args: Json, text_len: usize, text: &str) -> Json {
    if text_len <= KEEP_ARGS_BYTES {
        return args;
    }
    json!({ "digest": crate::runtime::engine::sha256_hex(text.as_bytes()), "bytes": text_len })
}

impl HostState {
    /// Run one capability call through the host-call path: the store's mode (plan reads only,
    /// manifest calls nothing), the call budget, argument size, the journal, the grants, injected
    /// faults, the deadline and the transcript. Typed errors go back to the plugin; only host
    /// bugs and exhausted budgets trap.
    pub async fn call<T, F>(&mut self, spec: &'static HostCall, target: Target, args: Json, fut: F) -> wasmtime::Result<Result<T, Error>>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, Error>>,
    {
        let (name, effect) = (spec.name, spec.effect);
        if self.mode == Mode::NoHost {
            wasmtime::bail!("the plugin called {name} from manifest(), which must describe the plugin without calling the host");
        }
        self.calls_made += 1;
        if self.calls_made > self.limits.max_host_calls {
            wasmtime::bail!("the plugin made more than {} host calls in one call (max_host_calls in [limits]); it was stopped", self.limits.max_host_calls);
        }
        let started = Instant::now();
        // Size first: an oversized argument is never journaled or kept, only its digest.
        let text = args.to_string();
        let oversized = text.len() > self.limits.max_payload_bytes;
        let fault_args = if oversized { Json::Null } else { args.clone() };
        let args = kept(args, text.len(), &text);
        drop(text);
        let seq = self.journal.as_ref().map(|j| j.next());
        // Resume: a call the journal already holds returns what it returned then.
        if let (Some(j), Some(seq)) = (self.journal.clone(), seq) {
            if let Some(rec) = j.replay.get(seq).cloned() {
                if rec.call != name || rec.args != args {
                    wasmtime::bail!(
                        "the plugin diverged from the journal at call {seq}: it recorded {} {}, the plugin now calls {name} {}; this run cannot be resumed: roll it back",
                        rec.call,
                        rec.args,
                        args
                    );
                }
                match &rec.outcome {
                    Some(outcome) => {
                        let result = from_outcome::<T>(outcome).map_err(|e| wasmtime::format_err!("journal call {seq} ({name}): {e}"))?;
                        self.record(name, effect, args, outcome.clone(), false, true, 0);
                        return Ok(result);
                    }
                    // A change that may or may not have happened runs again only when the
                    // operator says so with its own flag: `--yes` is no answer to that.
                    None if effect == Effect::Write && !self.rerun_in_doubt => {
                        wasmtime::bail!(
                            "resume stopped at call {seq}: {name} {args} had started when the host stopped, and whether it happened is unknown; check by hand (the container, database or file it names), then resume with --rerun-in-doubt to run it again, or roll back"
                        );
                    }
                    None if effect == Effect::Write => {
                        self.reporter.log(
                            crate::capabilities::services::Level::Warn,
                            &format!("running call {seq} ({name}) again: it was in doubt, and --rerun-in-doubt says so"),
                        );
                    }
                    // Reads and idempotent writes simply run again.
                    None => {}
                }
                crate::runtime::interrupt::stop_here(name)?;
            } else {
                crate::runtime::interrupt::stop_here(name)?;
                j.begin(seq, name, effect, &args)
                    .map_err(|e| wasmtime::format_err!("writing the run journal {}: {e}; stopping before {name}", j.path().display()))?;
            }
        }
        let refused = if oversized {
            let bytes = args["bytes"].as_u64().unwrap_or_default();
            Some(Error::Denied(format!(
                "{name}: arguments of {bytes} bytes exceed the sandbox limit of {} bytes (max_payload_bytes in [limits])",
                self.limits.max_payload_bytes
            )))
        } else if self.mode == Mode::ReadOnly && effect != Effect::Read {
            Some(Error::Denied(format!(
                "{name} could change the deployment, and plan() may only read: the host refuses every change before the operator has confirmed the plan"
            )))
        } else {
            self.grants.check(name, &target).err()
        };
        let (result, injected) = if let Some(refusal) = refused {
            (Err(refusal), false)
        } else {
            let delay = match self.faults.take(name, &fault_args) {
                Some(FaultAction::Error(e)) => return self.finish(name, effect, args, started, Err(e), true, seq),
                Some(FaultAction::Result(v)) => {
                    let value = serde_json::from_value(v).map_err(|e| wasmtime::format_err!("injected result for {name} does not fit its type: {e}"))?;
                    return self.finish(name, effect, args, started, Ok(value), true, seq);
                }
                Some(FaultAction::Delay(d)) => d,
                None => Duration::ZERO,
            };
            let deadline = Duration::from_secs(match spec.deadline {
                Deadline::Long => self.limits.long_call_timeout_s,
                Deadline::Short => self.limits.call_timeout_s,
            });
            let slow = async move {
                tokio::time::sleep(delay).await;
                fut.await
            };
            match tokio::time::timeout(deadline, slow).await {
                Ok(r) => (r, !delay.is_zero()),
                Err(_) => (
                    Err(Error::Timeout(format!("{name} did not finish within {} s (call_timeout_s in [limits] of the site config)", deadline.as_secs()))),
                    !delay.is_zero(),
                ),
            }
        };
        self.finish(name, effect, args, started, result, injected, seq)
    }

    /// Cap the result, account the time, and write the transcript entry.
    #[allow(clippy::too_many_arguments)]
    fn finish<T: Serialize>(
        &mut self,
        name: &'static str,
        effect: Effect,
        args: Json,
        started: Instant,
        result: Result<T, Error>,
        injected: bool,
        seq: Option<u64>,
    ) -> wasmtime::Result<Result<T, Error>> {
        let mut out = outcome(&result);
        let result = match result {
            Ok(_) if out.to_string().len() > self.limits.max_payload_bytes => {
                let e = Error::Failed(format!(
                    "{name}: the result exceeds the sandbox limit of {} bytes: ask for less (LIMIT, tail)",
                    self.limits.max_payload_bytes
                ));
                out = outcome::<()>(&Err(e.clone()));
                Err(e)
            }
            r => r,
        };
        let elapsed = started.elapsed();
        self.host_time += elapsed;
        if let (Some(j), Some(seq)) = (&self.journal, seq) {
            j.end(seq, &out, injected).map_err(|e| wasmtime::format_err!("writing the run journal {}: {e}; {name} did run", j.path().display()))?;
            crate::runtime::interrupt::test_hook(seq);
        }
        self.record(name, effect, args, out, injected, false, elapsed.as_millis() as u64);
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(&mut self, name: &str, effect: Effect, args: Json, outcome: Json, injected: bool, replayed: bool, ms: u64) {
        // The journal keeps outcomes whole (resume returns them); the transcript keeps big ones as
        // their digest, so that a chatty plugin cannot grow the host's memory with copies.
        let text = outcome.to_string();
        let outcome = kept(outcome, text.len(), &text);
        let record = {
            let mut t = self.transcript.lock().unwrap();
            let started_ms = crate::runs::now_ms().saturating_sub(ms);
            let record = CallRecord { seq: t.len() as u64 + 1, call: name.to_string(), effect, args, outcome, injected, replayed, ms, started_ms };
            t.push(record.clone());
            record
        };
        self.reporter.call(&record);
    }

    /// A call whose WIT signature has no error: an injected error fault cannot apply, a result can.
    pub async fn call_infallible<T, F>(&mut self, spec: &'static HostCall, args: Json, fut: F) -> wasmtime::Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = T>,
    {
        match self.call(spec, Target::Free, args, async move { Ok(fut.await) }).await? {
            Ok(v) => Ok(v),
            Err(e) => Err(wasmtime::format_err!("{} cannot fail, but got {e}", spec.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
