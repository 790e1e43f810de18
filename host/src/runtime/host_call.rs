//! The one path every capability call takes: the store's mode and budgets, payload caps, the
//! journal, the grants, injected faults (fake host), a deadline, the transcript. Backends never
//! see any of this.

use crate::bindings::Error;
use crate::grants::Target;
use crate::runtime::calls::{Deadline, Effect, Free, GrantKind, HostCall};
use crate::runtime::record::{CallRecord, FaultAction};
use crate::runtime::state::{HostState, Mode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::future::Future;
use std::time::{Duration, Instant};

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
    digest(text)
}

/// A value kept as the size and SHA-256 of its JSON text.
fn digest(text: &str) -> Json {
    json!({ "digest": crate::runtime::engine::sha256_hex(text.as_bytes()), "bytes": text.len() })
}

/// A call's arguments as [`HostState::call`] takes them: JSON, or, for arguments that may be too
/// big to build as JSON ([`measured_args`]), the size and digest of their JSON text.
pub enum CallArgs {
    Json(Json),
    Measured { bytes: usize, digest: String },
}

impl From<Json> for CallArgs {
    fn from(args: Json) -> Self {
        CallArgs::Json(args)
    }
}

/// `args` as JSON when its JSON text is within `limit` bytes; else only that text's size and
/// digest (as [`kept`] keeps them), counted and hashed as the text is written, never held: a
/// plugin's list of bytes would take 32 bytes of the host's memory a byte as JSON values.
pub fn measured_args(args: &impl Serialize, limit: usize) -> CallArgs {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    struct Hash(sha2::Sha256);
    impl std::io::Write for Hash {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            sha2::Digest::update(&mut self.0, b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, args);
    if count.0 <= limit {
        return CallArgs::Json(serde_json::to_value(args).unwrap_or(Json::Null));
    }
    let mut hash = Hash(<sha2::Sha256 as sha2::Digest>::new());
    let _ = serde_json::to_writer(&mut hash, args);
    CallArgs::Measured { bytes: count.0, digest: format!("sha256:{}", hex::encode(sha2::Digest::finalize(hash.0))) }
}

/// The most items one list argument of a host call may hold (a run spec's environment or labels,
/// an exec's command, a set of backups): far above any product's, far below the count at which
/// the host's copies of the list (JSON for the journal, grant targets) would cost gigabytes, as
/// a list of empty strings is 16 bytes an item in the guest and hundreds as JSON.
pub const MAX_LIST_ITEMS: usize = 4096;

/// The most parameters of one statement: the protocol's limit on placeholders.
pub const MAX_STATEMENT_PARAMS: usize = 65_535;

/// `invalid-input` when the list `what` of `call` holds more than `max` items; checked before the
/// call's arguments are built.
pub fn check_list_len(call: &str, what: &str, len: usize, max: usize) -> Result<(), Error> {
    if len > max {
        return Err(Error::InvalidInput(format!("{call}: {what} holds {len} items, more than the {max} a host call takes")));
    }
    Ok(())
}

/// Bytes of arguments and outcomes one store keeps whole in the run's transcript, which is in
/// memory: 100 000 calls (`max_host_calls`) of 64 KiB each would be gigabytes. Past it, each call
/// keeps their sizes and digests only; the journal, on disk, still keeps outcomes whole.
const TRANSCRIPT_BYTES: usize = 64 << 20;

/// A call's arguments and outcome as the transcript keeps them: each as [`kept`] does while the
/// store's `used` bytes stay within [`TRANSCRIPT_BYTES`], else both as their size and digest.
fn kept_in_transcript(used: &mut usize, args: Json, outcome: Json) -> (Json, Json) {
    let (args_text, outcome_text) = (args.to_string(), outcome.to_string());
    let outcome = kept(outcome, outcome_text.len(), &outcome_text);
    let bytes = args_text.len() + outcome_text.len().min(KEEP_ARGS_BYTES);
    if *used + bytes <= TRANSCRIPT_BYTES {
        *used += bytes;
        return (args, outcome);
    }
    (digest(&args_text), digest(&outcome_text))
}

impl HostState {
    /// Let one more host call through, journaled or not (`host.log`, `host.progress` and
    /// `host.notice` are not): refused from `manifest()`, which must call nothing, and counted
    /// against `max_host_calls`.
    pub fn admit(&mut self, name: &str) -> wasmtime::Result<()> {
        if self.mode == Mode::NoHost {
            wasmtime::bail!("the plugin called {name} from manifest(), which must describe the plugin without calling the host");
        }
        self.calls_made += 1;
        if self.calls_made > self.env.limits.max_host_calls {
            wasmtime::bail!("the plugin made more than {} host calls in one call (max_host_calls in [limits]); it was stopped", self.env.limits.max_host_calls);
        }
        Ok(())
    }

    /// Run one capability call through the host-call path: the store's mode (plan reads only,
    /// manifest calls nothing), the call budget, argument size, the journal, the grants, injected
    /// faults, the deadline and the transcript. Typed errors go back to the plugin; only host
    /// bugs and exhausted budgets trap.
    pub async fn call<K, T, F>(
        &mut self,
        spec: &'static HostCall<K>,
        object: K::Object,
        args: impl Into<CallArgs>,
        fut: F,
    ) -> wasmtime::Result<Result<T, Error>>
    where
        K: GrantKind,
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, Error>>,
    {
        let target: Target = K::target(object);
        let (name, effect) = (spec.name, spec.effect);
        self.admit(name)?;
        let started = Instant::now();
        // Size first: an oversized argument is never journaled or kept, only its digest.
        let max = self.env.limits.max_payload_bytes;
        let (oversized, fault_args, args) = match args.into() {
            CallArgs::Json(args) => {
                let text = args.to_string();
                let oversized = text.len() > max;
                let fault_args = if oversized { Json::Null } else { args.clone() };
                (oversized, fault_args, kept(args, text.len(), &text))
            }
            CallArgs::Measured { bytes, digest } => (bytes > max, Json::Null, json!({ "digest": digest, "bytes": bytes })),
        };
        let seq = self.env.journal.as_ref().map(|j| j.next());
        // Resume: a call the journal already holds returns what it returned then.
        if let (Some(j), Some(seq)) = (self.env.journal.clone(), seq) {
            if let Some(rec) = j.replay.get(seq).cloned() {
                if rec.call != name || rec.args() != args {
                    wasmtime::bail!(
                        "the plugin diverged from the journal at call {seq}: it recorded {} {}, the plugin now calls {name} {}; this run cannot be resumed: roll it back",
                        rec.call,
                        rec.args.get(),
                        args
                    );
                }
                match rec.outcome() {
                    Some(outcome) => {
                        let result = from_outcome::<T>(&outcome).map_err(|e| wasmtime::format_err!("journal call {seq} ({name}): {e}"))?;
                        self.record(name, effect, args, outcome, false, true, 0);
                        return Ok(result);
                    }
                    // A change that may or may not have happened runs again only when the
                    // operator says so with its own flag: `--yes` is no answer to that.
                    None if effect == Effect::Write && !self.env.rerun_in_doubt => {
                        wasmtime::bail!(
                            "resume stopped at call {seq}: {name} {args} had started when the host stopped, and whether it happened is unknown; check by hand (the container, database or file it names), then resume with --rerun-in-doubt to run it again, or roll back"
                        );
                    }
                    None if effect == Effect::Write => {
                        self.env
                            .reporter
                            .log(crate::report::Level::Warn, &format!("running call {seq} ({name}) again: it was in doubt, and --rerun-in-doubt says so"));
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
                self.env.limits.max_payload_bytes
            )))
        } else if self.mode == Mode::ReadOnly && effect != Effect::Read {
            Some(Error::Denied(format!(
                "{name} could change the deployment, and plan() may only read: the host refuses every change before the operator has confirmed the plan"
            )))
        } else {
            self.env.grants.check(name, &target).err()
        };
        let (result, injected) = if let Some(refusal) = refused {
            (Err(refusal), false)
        } else {
            let delay = match self.env.faults.take(name, &fault_args) {
                Some(FaultAction::Error(e)) => return self.finish(name, effect, args, started, Err(e), true, seq),
                Some(FaultAction::Result(v)) => {
                    let value = serde_json::from_value(v).map_err(|e| wasmtime::format_err!("injected result for {name} does not fit its type: {e}"))?;
                    return self.finish(name, effect, args, started, Ok(value), true, seq);
                }
                Some(FaultAction::Delay(d)) => d,
                None => Duration::ZERO,
            };
            let deadline = Duration::from_secs(match spec.deadline {
                Deadline::Long => self.env.limits.long_call_timeout_s,
                Deadline::Short => self.env.limits.call_timeout_s,
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
            Ok(_) if out.to_string().len() > self.env.limits.max_payload_bytes => {
                let e = Error::Failed(format!(
                    "{name}: the result exceeds the sandbox limit of {} bytes: ask for less (LIMIT, tail)",
                    self.env.limits.max_payload_bytes
                ));
                out = outcome::<()>(&Err(e.clone()));
                Err(e)
            }
            r => r,
        };
        let elapsed = started.elapsed();
        self.host_time += elapsed;
        let bookkeeping = Instant::now();
        if let (Some(j), Some(seq)) = (&self.env.journal, seq) {
            j.end(seq, &out, injected).map_err(|e| wasmtime::format_err!("writing the run journal {}: {e}; {name} did run", j.path().display()))?;
            crate::runtime::interrupt::test_hook(seq);
        }
        self.record(name, effect, args, out, injected, false, elapsed.as_millis() as u64);
        self.bookkeeping_time += bookkeeping.elapsed();
        Ok(result)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(&mut self, name: &str, effect: Effect, args: Json, outcome: Json, injected: bool, replayed: bool, ms: u64) {
        // The journal keeps outcomes whole (resume returns them); the transcript keeps big ones as
        // their digest, and all of them past a budget, so that a chatty plugin cannot grow the
        // host's memory with copies.
        let (args, outcome) = kept_in_transcript(&mut self.transcript_bytes, args, outcome);
        let record = {
            let mut t = self.env.transcript.lock().unwrap();
            let started_ms = crate::text::now_ms().saturating_sub(ms);
            let record = CallRecord { seq: t.len() as u64 + 1, call: name.to_string(), effect, args, outcome, injected, replayed, ms, started_ms };
            t.push(record.clone());
            record
        };
        self.env.reporter.call(&record);
    }

    /// A call whose WIT signature has no error: an injected error fault cannot apply, a result can.
    pub async fn call_infallible<T, F>(&mut self, spec: &'static HostCall<Free>, args: Json, fut: F) -> wasmtime::Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = T>,
    {
        match self.call(spec, (), args, async move { Ok(fut.await) }).await? {
            Ok(v) => Ok(v),
            Err(e) => Err(wasmtime::format_err!("{} cannot fail, but got {e}", spec.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments measured as they are written keep what the JSON would have been kept as: whole
    /// within the limit, else the same size and digest.
    #[test]
    fn measured_arguments_are_kept_as_their_json_would_be() {
        use crate::bindings::opshost::plugin::sql::Value;
        let args = |n: usize| {
            let params = vec![Value::Bytes(vec![0xff; n]), Value::Text("t\"x".into()), Value::Int(-1)];
            (json!({"connection": "metadb", "database": "rm", "statement": "SELECT ?", "params": params}), params)
        };
        #[derive(Serialize)]
        struct Args<'a> {
            connection: &'a str,
            database: &'a str,
            params: &'a [Value],
            statement: &'a str,
        }
        for n in [10, 100_000] {
            let (json, params) = args(n);
            let text = json.to_string();
            match measured_args(&Args { connection: "metadb", database: "rm", params: &params, statement: "SELECT ?" }, 1000) {
                CallArgs::Json(j) => assert!(n == 10 && j == json),
                CallArgs::Measured { bytes, digest } => assert!(n == 100_000 && json!({"digest": digest, "bytes": bytes}) == kept(json, text.len(), &text)),
            }
        }
    }

    #[test]
    fn the_transcript_keeps_calls_whole_up_to_its_budget_then_their_digests() {
        let mut used = 0;
        let big = "x".repeat(60 * 1024);
        let (args_len, outcome_len) = (json!({ "message": big }).to_string().len(), json!({ "ok": null }).to_string().len());
        let (args, outcome) = kept_in_transcript(&mut used, json!({ "message": big }), json!({ "ok": null }));
        assert_eq!((args["message"].as_str().map(str::len), outcome), (Some(big.len()), json!({ "ok": null })));
        // A hostile plugin's 100 000 such calls: the transcript stops growing at its budget.
        let mut kept_whole = 1;
        for _ in 0..1_200 {
            let (args, _) = kept_in_transcript(&mut used, json!({ "message": big }), json!({ "ok": null }));
            if args.get("message").is_some() {
                kept_whole += 1;
            } else {
                assert_eq!(args["bytes"], json!(args_len), "its size and digest: {args}");
            }
        }
        assert!(used <= TRANSCRIPT_BYTES && kept_whole == TRANSCRIPT_BYTES / (args_len + outcome_len), "{kept_whole} kept whole, {used} bytes");
    }
}
