//! The host capability's WIT glue: the clock, the operator, notices and run-scoped records
//! through the host-call path ([`crate::runtime::host_call`]); log and progress go to the run's
//! reporter directly (they change nothing a resume would replay).

use serde_json::json;
use std::time::Duration;

use super::HOST_KEY_PREFIX;
use crate::bindings::opshost::plugin::host as wit;
use crate::bindings::Error;
use crate::report::Level;
use crate::runtime::calls;
use crate::runtime::state::HostState;

impl HostState {
    /// Whether `bytes` more of the plugin's log lines and progress labels fit in this call's
    /// `max_log_mb`; the first time they do not, the operator is told the rest are dropped.
    fn within_log_budget(&mut self, bytes: usize) -> bool {
        let max = self.env.limits.max_log_mb << 20;
        if self.logged_bytes + bytes as u64 <= max {
            self.logged_bytes += bytes as u64;
            return true;
        }
        if !self.log_dropped {
            self.log_dropped = true;
            self.env.reporter.log(
                Level::Warn,
                &format!("the plugin wrote more than {} MiB of log lines and progress labels; the rest are dropped (max_log_mb in [limits])", max >> 20),
            );
        }
        false
    }
}

impl wit::Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.admit("host.log")?;
        // Clipped as written: an escaped control character takes several bytes.
        let message = self.env.limits.clip(crate::text::printable(&self.env.limits.clip(message)).into_owned());
        // The run log writes each line break as `\u{a}`.
        if self.within_log_budget(message.len() + 5 * message.matches('\n').count()) {
            self.env.reporter.log(level, &message);
        }
        Ok(())
    }
    async fn progress(&mut self, done: u64, total: u64, label: String) -> wasmtime::Result<()> {
        self.admit("host.progress")?;
        let label = self.env.limits.clip(crate::text::one_line(&self.env.limits.clip(label)).into_owned());
        if self.within_log_budget(label.len()) {
            self.env.reporter.progress(done, total, crate::report::Unit::Count, &label);
        }
        Ok(())
    }
    async fn now(&mut self) -> wasmtime::Result<u64> {
        let s = self.env.caps.services.clone();
        self.call_infallible(calls::HOST_NOW, json!({}), async move { s.now_ms() }).await
    }
    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let s = self.env.caps.services.clone();
        let ms = ms.min(self.env.limits.max_sleep_ms);
        self.slept += Duration::from_millis(ms);
        if self.slept > Duration::from_secs(self.env.limits.max_total_sleep_s) {
            wasmtime::bail!(
                "the plugin asked to sleep more than {} s in total in one call (max_total_sleep_s in [limits]); it was stopped",
                self.env.limits.max_total_sleep_s
            );
        }
        self.call_infallible(calls::HOST_SLEEP, json!({"ms": ms}), async move { s.sleep(ms).await }).await
    }
    async fn confirm(&mut self, question: String) -> wasmtime::Result<bool> {
        let s = self.env.caps.services.clone();
        // Its lines after the first indented: none reads as one of opshost's own.
        let question = crate::text::continued(&crate::text::printable(&self.env.limits.clip(question)), "  ").into_owned();
        self.call_infallible(calls::HOST_CONFIRM, json!({"question": question}), async move { s.confirm(&question).await }).await
    }
    async fn notice(&mut self, message: String) -> wasmtime::Result<()> {
        self.admit("host.notice")?;
        if self.notices.len() >= self.env.limits.max_notices {
            if self.notices_dropped == 0 {
                self.env.reporter.log(
                    Level::Warn,
                    &format!("the plugin left more than {} notices; the rest are dropped (max_notices in [limits])", self.env.limits.max_notices),
                );
            }
            self.notices_dropped += 1;
            return Ok(());
        }
        let message = crate::text::printable(&self.env.limits.clip(message)).into_owned();
        self.env.reporter.notice(&message);
        self.notices.push(message);
        Ok(())
    }
    async fn record(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        let r = self.env.records.clone();
        self.call(calls::HOST_RECORD, (), json!({"key": key, "value": value}), async move { r.set(&key, &value) }).await
    }
    async fn recall(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let r = self.env.records.clone();
        // The host's own records (what the run may use, secrets) are not for the plugin to read.
        self.call_infallible(calls::HOST_RECALL, json!({"key": key}), async move {
            if key.starts_with(HOST_KEY_PREFIX) {
                None
            } else {
                r.get(&key)
            }
        })
        .await
    }
}
