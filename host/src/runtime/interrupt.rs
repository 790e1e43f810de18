//! Ctrl-C (or SIGTERM) during a run. The first stops the plugin at the next host-call boundary: the call in
//! flight finishes and is journaled, no new one starts, and the run stays resumable (`opshost
//! resume` goes on from there, `opshost rollback` undoes it). The second exits at once: the call
//! in flight is then in doubt, which resume reports and never re-runs on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The call a run stopped before, once it has.
static STOPPED_BEFORE: Mutex<Option<String>> = Mutex::new(None);

/// Test hook: after this many calls completed, the process sends itself SIGINT (a real Ctrl-C).
pub const SIGINT_AFTER_ENV: &str = "OPSHOST_TEST_SIGINT_AFTER_CALLS";

/// Whether the operator asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// At a journaled call's boundary, before anything of it happens: stop the plugin (a trap) when
/// the operator asked.
pub fn stop_here(call: &str) -> wasmtime::Result<()> {
    if !requested() {
        return Ok(());
    }
    *STOPPED_BEFORE.lock().unwrap_or_else(|e| e.into_inner()) = Some(call.to_string());
    wasmtime::bail!("stopped at the operator's request (Ctrl-C) before {call}: no call was in flight")
}

/// The call the run stopped before at the operator's request, if it did.
pub fn stopped_before() -> Option<String> {
    STOPPED_BEFORE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Handle Ctrl-C and SIGTERM (what `kill` and systemd send) for the rest of the process
/// (upgrade, rollback, resume).
pub fn install() {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            eprintln!("warning: cannot handle Ctrl-C: it will stop the host wherever it is");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = int.recv() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            };
            if REQUESTED.swap(true, Ordering::SeqCst) {
                eprintln!("\n{name} again: exiting now; the call in flight is in doubt (`opshost runs show` names it)");
                std::process::exit(130);
            }
            eprintln!("\n{name}: stopping after the call in flight ends ({name} again exits at once, leaving that call in doubt)");
        }
    });
}

/// The test hook: SIGINT to this process once `completed` calls are done, when asked for.
pub fn test_hook(completed: u64) {
    if std::env::var(SIGINT_AFTER_ENV).ok().and_then(|v| v.parse::<u64>().ok()) == Some(completed) {
        eprintln!("{SIGINT_AFTER_ENV}={completed}: sending SIGINT to this process (test hook)");
        let _ = std::process::Command::new("kill").args(["-INT", &std::process::id().to_string()]).status();
        // The handler runs on another task: let it see the signal before the next call starts.
        for _ in 0..200 {
            if requested() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
