//! Plan and upgrade on a real deployment: the route and the first hop's plan (read-only), then,
//! once confirmed, each hop as a run of its own (journal, run log, transcript, run record), and
//! how a run ends (its status, and what to do next in words that name the commands).

use super::events::{emit, say, JsonLines};
use super::runs::{current_version, top, Lock, RouteRef, RunMeta, RunStatus};
use super::site::{Hop, Site};
use super::{Setup, SiteRef, UpgradeRequest};
use crate::bindings::Plan;
use crate::report::{Reporter, RunLog, Tee, Terminal};
use crate::text::now_ms;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

pub(super) fn print_route(product: &str, hops: &[Hop]) {
    if hops.len() < 2 {
        return;
    }
    say!("Route for {product}: {} hops, each with its own run and MetaDB backup", hops.len());
    for (i, h) in hops.iter().enumerate() {
        say!("  {}. {} -> {}  with plugin {}", i + 1, h.ctx.source_version, h.ctx.target_version, h.plugin.manifest.name);
    }
    say!("Hops after the first are prechecked and planned when the hop before them has finished.");
    say!();
}

/// Show the route and the first hop's plan on the real deployment (read-only).
pub async fn plan(setup: &Setup, a: &SiteRef, to: &str, json: bool) -> Result<i32> {
    let site = Site::open(a)?;
    let runtime = setup.runtime()?;
    let history = site.runs.history(&site.section)?;
    let from = current_version(&site.product.version, &history);
    let hops = or_refuse!(site.route(setup, &runtime, &from, to).await?);
    let reporter: Arc<dyn Reporter> = if json { Arc::new(crate::report::Silent) } else { Arc::new(Terminal::new(false, false)) };
    let (planned, _) = site.plan_hop(&hops[0], reporter, false).await?;
    match planned {
        Ok(p) => {
            if json {
                let route: Vec<_> = hops
                    .iter()
                    .map(|h| serde_json::json!({"plugin": h.plugin.manifest.name, "source": h.ctx.source_version, "target": h.ctx.target_version}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"route": route, "plan": p}))?);
            } else {
                print_route(&site.section, &hops);
                print_plan(&hops[0].plugin.manifest.name, &p);
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("refused ({}): {}", e.kind(), e.message());
            Ok(1)
        }
    }
}

pub async fn upgrade(setup: &Setup, a: &UpgradeRequest) -> Result<i32> {
    let site = Site::open(&a.site)?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let runtime = setup.runtime()?;
    let history = site.runs.history(&site.section)?;
    if let Some(m) = top(&history).filter(|m| m.status.unsettled()) {
        eprintln!(
            "refused: run {} of {} ({} -> {}) is {}; roll it back first: opshost rollback --config {} --product {}",
            m.id,
            m.product,
            m.source,
            m.target,
            m.status.words(),
            site.path.display(),
            site.section,
        );
        return Ok(1);
    }
    let from = current_version(&site.product.version, &history);
    let hops = or_refuse!(site.route(setup, &runtime, &from, &a.to).await?);
    let reporter = console_reporter(a.transcript, a.json, a.yes)?;
    // Plan first: prechecks on the real deployment, nothing changes.
    let (planned, plan_env) = site.plan_hop(&hops[0], reporter.clone(), a.yes).await?;
    let p = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("refused before any change ({}): {}", e.kind(), e.message());
            return Ok(1);
        }
    };
    print_route(&site.section, &hops);
    print_plan(&hops[0].plugin.manifest.name, &p);
    emit_plan(1, hops.len(), &hops[0], &p);
    let question = if hops.len() > 1 {
        format!("Upgrade {} {from} -> {} in {} hops now? The steps marked [changes] will run; each later hop is prechecked first and the route stops at the first refusal.", site.section, a.to, hops.len())
    } else {
        format!("Upgrade {} {from} -> {} now? The steps marked [changes] will run.", site.section, a.to)
    };
    if !plan_env.caps.services.confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    let _metadb_lock = or_refuse!(site.take_run_lock(&reporter).await?, "refused before any change");
    // A route continues the one the deployment stands on when it was cut short (e.g. resumed).
    let mut route = top(&history).and_then(|m| m.route.clone()).filter(|r| r.target == a.to);
    let mut hop_plan = p;
    for (i, hop) in hops.iter().enumerate() {
        if i > 0 {
            say!("\n== hop {} of {}: {} -> {} ({}) ==", i + 1, hops.len(), hop.ctx.source_version, hop.ctx.target_version, hop.plugin.manifest.name);
            let (planned, _) = site.plan_hop(hop, reporter.clone(), a.yes).await?;
            match planned {
                Ok(p) => {
                    print_plan(&hop.plugin.manifest.name, &p);
                    emit_plan(i + 1, hops.len(), hop, &p);
                    hop_plan = p;
                }
                Err(e) => {
                    eprintln!(
                        "the route stopped before hop {} ({} -> {}): its precheck refused ({}): {}",
                        i + 1,
                        hop.ctx.source_version,
                        hop.ctx.target_version,
                        e.kind(),
                        e.message()
                    );
                    eprintln!("{} is at {} (hops 1..{} are upgraded); fix the cause and run the same upgrade again, or go back: opshost rollback --config {} --product {}", site.section, hop.ctx.source_version, i, site.path.display(), site.section);
                    return Ok(1);
                }
            }
        }
        let mut meta = site.runs.create(RunMeta {
            id: String::new(),
            product: site.section.clone(),
            source: hop.ctx.source_version.clone(),
            target: hop.ctx.target_version.clone(),
            plugin: hop.plugin.manifest.name.clone(),
            plugin_hash: hop.plugin.loaded.hash.clone(),
            site_config: std::fs::canonicalize(&site.path).unwrap_or(site.path.clone()).display().to_string(),
            started_ms: now_ms(),
            status: RunStatus::Upgrading,
            finished_ms: None,
            error: None,
            route: route.clone(),
        })?;
        if hops.len() > 1 && route.is_none() {
            let r = RouteRef { id: meta.id.clone(), source: from.clone(), target: a.to.clone() };
            meta.route = Some(r.clone());
            site.runs.save(&meta)?;
            route = Some(r);
        }
        let run_dir = site.runs.run_dir(&meta.id);
        eprintln!("run {} (records in {}, log in run.log)", meta.id, run_dir.display());
        emit("run", serde_json::json!({ "run": meta.id, "operation": "upgrade", "dir": run_dir }));
        let log = run_log(&run_dir, &format!("upgrade {} {} -> {} with {} ({})", meta.product, meta.source, meta.target, meta.plugin, meta.plugin_hash))?;
        for step in hop_plan.steps.iter() {
            log.line(&format!("PLAN  {}: {}", step.title, step.detail));
        }
        // The plan as confirmed: the run report shows it, with what rollback would do.
        let _ = std::fs::write(run_dir.join("plan.json"), serde_json::to_string_pretty(&hop_plan)?);
        let env = site.journaled_env(&meta, &run_dir.join("upgrade.journal"), "upgrade", Arc::new(Tee(vec![reporter.clone(), log])), a.yes, &hop.grants)?;
        let outcome = hop.plugin.loaded.upgrade(&env, &hop.ctx).await;
        site.save_transcript(&meta, &env, "upgrade-calls.json", &outcome);
        let code = finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::Upgraded, RunStatus::UpgradeFailed, &a.site)?;
        if code != 0 {
            return Ok(code);
        }
    }
    if hops.len() > 1 {
        say!("route complete: {} {from} -> {} in {} hops", site.section, a.to, hops.len());
    }
    if site.product.version != a.to {
        eprintln!(
            "note: {} still says version = \"{}\" for {}; opshost knows it is at {} from its runs, and a rollback returns it to {}. Set version = \"{}\" there once you keep this version",
            site.path.display(),
            site.product.version,
            site.section,
            a.to,
            site.product.version,
            a.to
        );
    }
    Ok(0)
}

/// The terminal (stderr), and under `--json` the event stream too. `--json` needs `--yes`: no one
/// answers a prompt in a script.
pub(super) fn console_reporter(transcript: bool, json: bool, yes: bool) -> Result<Arc<dyn Reporter>> {
    if !json {
        return Ok(Arc::new(Terminal::new(transcript, false)));
    }
    anyhow::ensure!(yes, "--json needs --yes: a script cannot answer the confirmation");
    super::events::enable();
    Ok(Arc::new(Tee(vec![Arc::new(Terminal::new(transcript, false)), Arc::new(JsonLines)])))
}

/// The plan event of `--json`.
pub(super) fn emit_plan(hop: usize, of: usize, h: &Hop, plan: &crate::bindings::Plan) {
    emit(
        "plan",
        serde_json::json!({ "hop": hop, "of": of, "plugin": h.plugin.manifest.name, "source": h.ctx.source_version, "target": h.ctx.target_version, "plan": plan }),
    );
}

/// The run's log (`run.log` in its folder), opened with a first line saying what starts.
pub(super) fn run_log(run_dir: &Path, what: &str) -> Result<Arc<RunLog>> {
    let log = Arc::new(RunLog::open(&run_dir.join("run.log"))?);
    log.line(&format!("RUN   {what}; opshost {} pid {}", env!("CARGO_PKG_VERSION"), std::process::id()));
    Ok(log)
}

pub(super) fn finish(
    site: &Site,
    mut meta: RunMeta,
    outcome: Result<(Result<(), crate::bindings::Error>, Vec<String>)>,
    ok: RunStatus,
    failed: RunStatus,
    a: &SiteRef,
) -> Result<i32> {
    meta.finished_ms = Some(now_ms());
    let run_dir = site.runs.run_dir(&meta.id);
    // An upgrade that timed out in a wait after its last change (the new version did not come
    // up in time) can be waited for again: resume drops the wait's polls and polls anew.
    let mut timed_out_waiting = false;
    let (code, error) = match outcome {
        // The notices were printed as they came (the terminal reporter): once is enough.
        Ok((Ok(()), _notices)) => (0, None),
        Ok((Err(e), _)) => {
            timed_out_waiting = matches!(e, crate::bindings::Error::Timeout(_))
                && failed == RunStatus::UpgradeFailed
                && crate::journal::Journal::ended_in_a_read(&run_dir.join("upgrade.journal"));
            (1, Some(format!("{}: {}", e.kind(), e.message())))
        }
        Err(trap) => (1, Some(format!("the plugin stopped: {trap:#}"))),
    };
    // Ctrl-C: the run stopped between two calls and keeps its in-progress status (resumable),
    // not failed.
    let stopped = crate::runtime::interrupt::stopped_before().filter(|_| error.is_some());
    meta.status = match (&stopped, code) {
        (Some(_), _) if failed == RunStatus::UpgradeFailed => RunStatus::Upgrading,
        (Some(_), _) => RunStatus::RollingBack,
        (None, 0) => ok,
        (None, _) if timed_out_waiting => RunStatus::UpgradeTimedOut,
        (None, _) => failed,
    };
    meta.error = error.clone();
    if let Ok(log) = RunLog::open(&run_dir.join("run.log")) {
        let how = match &stopped {
            Some(call) => format!("stopped (stopped at the operator's request before {call}: resumable)"),
            None => meta.status.words().to_string(),
        };
        log.line(&format!("END   {how}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()));
    }
    emit("outcome", serde_json::json!({ "run": meta.id, "status": meta.status, "error": error, "stopped_before": stopped }));
    if let (Some(call), Some(e)) = (&stopped, &error) {
        meta.finished_ms = None;
        site.runs.save(&meta)?;
        let what = if meta.status == RunStatus::Upgrading { "upgrade" } else { "rollback" };
        eprintln!("run {}: {what} stopped at your request before {call} ({e})", meta.id);
        eprintln!("to go on from there: opshost resume {} --config {}", meta.id, a.config.display());
        if meta.status == RunStatus::Upgrading {
            eprintln!("to undo what it did instead: opshost rollback --config {} --product {} --run {}", a.config.display(), a.product, meta.id);
        }
        return Ok(130);
    }
    site.runs.save(&meta)?;
    match (error, meta.status) {
        (None, s) => say!("run {}: {}", meta.id, s.words()),
        (Some(e), RunStatus::UpgradeFailed) => {
            eprintln!("run {}: upgrade failed: {}", meta.id, crate::text::continued(&e.to_string(), "    "));
            match &meta.route {
                Some(r) if r.id != meta.id => eprintln!(
                    "to return to {} {} (the route's start): opshost rollback --config {} --product {}  (unwinds every hop of the route, newest first); to return to {} only: add --run {}",
                    meta.product, r.source, a.config.display(), a.product, meta.source, meta.id
                ),
                _ => eprintln!("to return to {} {}: opshost rollback --config {} --product {} --run {}", meta.product, meta.source, a.config.display(), a.product, meta.id),
            }
        }
        (Some(e), RunStatus::UpgradeTimedOut) => {
            eprintln!("run {}: upgrade timed out waiting for {} {}: {}", meta.id, meta.product, meta.target, crate::text::continued(&e.to_string(), "    "));
            eprintln!(
                "every change of the upgrade is made; only the wait for the new version ran out, and nothing after it happened (what the plugin's notices say stays as it is)"
            );
            eprintln!("once the cause is fixed, wait again and finish: opshost resume {} --config {}", meta.id, a.config.display());
            eprintln!(
                "to return to {} {} instead: opshost rollback --config {} --product {} --run {}",
                meta.product,
                meta.source,
                a.config.display(),
                a.product,
                meta.id
            );
        }
        (Some(e), _) => {
            eprintln!("run {}: rollback failed: {}\nfix the cause and run the same rollback again", meta.id, crate::text::continued(&e.to_string(), "    "))
        }
    }
    Ok(code)
}

pub fn print_plan(plugin: &str, plan: &Plan) {
    super::events::say!("Plan of {plugin}");
    super::events::say!("Found:");
    // A finding of several lines stays under its dash: none of its lines reads as opshost's.
    for f in &plan.findings {
        super::events::say!("  - {}", crate::text::continued(f, "    "));
    }
    super::events::say!("Upgrade steps:");
    for (i, s) in plan.steps.iter().enumerate() {
        super::events::say!("  {:>2}. {:<20} {} {}", i + 1, s.title, if s.changes { "[changes]  " } else { "[read-only]" }, s.detail);
    }
    super::events::say!("Rollback, if needed:");
    for (i, s) in plan.rollback.iter().enumerate() {
        super::events::say!("  {:>2}. {:<20} {}", i + 1, s.title, s.detail);
    }
}
