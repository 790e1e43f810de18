//! Resume a run the host stopped in: where it stopped and what resume or rollback would do, in
//! plain words ([`explain`]), then the interrupted operation replayed from its journal and
//! continued live. A call in doubt is never run again unless the operator says so.

use super::events::{emit, say};
use super::runs::{Lock, RunMeta, RunStatus, Runs};
use super::site::Site;
use super::upgrade::{console_reporter, finish, run_log};
use super::{ResumeRequest, Setup, SiteRef};
use crate::capabilities::services::RunRecords;
use crate::config::SiteConfig;
use crate::journal::{Journal, Replay};
use crate::registry::find_by_hash;
use crate::report::{Reporter, Tee};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The journal of the operation a run was in when it stopped (the latest rollback attempt's).
pub(super) fn interrupted_journal(run_dir: &Path, status: RunStatus) -> Option<PathBuf> {
    match status {
        RunStatus::Upgrading | RunStatus::UpgradeTimedOut => Some(run_dir.join("upgrade.journal")),
        RunStatus::RollingBack => {
            let mut latest = None;
            let mut n = 1;
            loop {
                let p = if n == 1 { run_dir.join("rollback.journal") } else { run_dir.join(format!("rollback-{n}.journal")) };
                if !p.exists() {
                    return latest;
                }
                latest = Some(p);
                n += 1;
            }
        }
        _ => None,
    }
}

/// Where a run stopped and what resume or rollback would do, in plain words.
pub fn explain(site_args: &str, meta: &RunMeta, run_dir: &Path) -> Vec<String> {
    let mut out = vec![format!("run {}: {} {} -> {} with plugin {} — {}", meta.id, meta.product, meta.source, meta.target, meta.plugin, meta.status.words())];
    if let Some(e) = &meta.error {
        out.push(format!("error: {e}"));
    }
    let Some(path) = interrupted_journal(run_dir, meta.status) else {
        match meta.status {
            RunStatus::UpgradeFailed | RunStatus::RollbackFailed => {
                out.push(format!("next: opshost rollback {site_args} --run {} (restores from the backups this run recorded)", meta.id))
            }
            RunStatus::Upgraded => out.push(format!("next: nothing; to undo it: opshost rollback {site_args} --run {}", meta.id)),
            _ => {}
        }
        return out;
    };
    match Replay::load(&path) {
        Ok((h, r)) => {
            out.push(format!(
                "the host stopped during the {} after {} completed calls{}",
                h.operation,
                r.completed(),
                if r.truncated_tail { " (the last journal line was cut off and is ignored)" } else { "" }
            ));
            if let Some(last) = r.calls.iter().rev().find(|c| c.outcome.is_some()) {
                // JSON leaves DEL and C1 controls as they are: escaped before a terminal sees them.
                out.push(format!("last completed: #{} {} {}", last.seq, last.call, crate::text::one_line(last.args.get())));
            }
            match r.in_doubt() {
                Some(c) if c.effect == crate::runtime::calls::Effect::Write => {
                    out.push(format!("in doubt: #{} {} {} started, and it is not known whether it finished; check by hand whether it happened, then resume with --rerun-in-doubt to run it again, or roll back", c.seq, c.call, crate::text::one_line(c.args.get())))
                }
                Some(c) => out.push(format!("in doubt: #{} {} started; it is safe to repeat, resume runs it again", c.seq, c.call)),
                None => {}
            }
            out.push(format!(
                "resume: opshost resume {} {site_args} replays those {} calls without touching anything, then continues the {} live",
                meta.id,
                r.completed(),
                h.operation
            ));
            out.push(format!("or roll back: opshost rollback {site_args} --run {} (from the backups and settings recorded so far)", meta.id));
        }
        Err(e) => out.push(format!("its journal cannot be read ({e:#}); roll back: opshost rollback {site_args} --run {}", meta.id)),
    }
    out
}

pub async fn resume(setup: &Setup, a: &ResumeRequest) -> Result<i32> {
    let config = SiteConfig::load(&a.config)?;
    let runs = Runs::new(&config.state_dir());
    let mut meta = runs.load(&a.run)?;
    let site = Site::open(&SiteRef { config: a.config.clone(), product: meta.product.clone() })?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let run_dir = runs.run_dir(&meta.id);
    let Some(path) = interrupted_journal(&run_dir, meta.status) else {
        eprintln!(
            "refused: run {} is {}: there is nothing to resume{}",
            meta.id,
            meta.status.words(),
            if meta.status == RunStatus::UpgradeFailed { " (the upgrade failed: roll it back)" } else { "" }
        );
        return Ok(1);
    };
    let (journal, header) = Journal::reopen(&path)?;
    let journal = journal.limited_to(site.config.limits.max_journal_mb);
    if header.plugin_hash != meta.plugin_hash {
        anyhow::bail!(
            "the journal of run {} was written by plugin {} {}, the run says {}: refusing to resume",
            meta.id,
            header.plugin,
            header.plugin_hash,
            meta.plugin_hash
        );
    }
    if header.site_config_hash != site.config_hash()? && !a.allow_config_change {
        eprintln!("refused: the site config {} changed since run {} started; resume with the config it ran with, or pass --allow-config-change if the change is deliberate", a.config.display(), meta.id);
        return Ok(1);
    }
    let runtime = setup.runtime()?;
    let plugin = find_by_hash(&runtime, &site.plugins_dir(setup), &meta.plugin_hash, &meta.plugin, &setup.policy(&site.config.trust)?).await?;
    let ctx = or_refuse!(site.context(&plugin, &meta.source, &meta.target));
    let grants = or_refuse!(site.grants(&plugin));
    let journal = if meta.status == RunStatus::UpgradeTimedOut {
        // The wait that ran out starts again: its polls are dropped, never a change.
        drop(journal);
        let dropped = Journal::drop_trailing_reads(&path)?;
        eprintln!(
            "run {}: the wait that timed out starts again ({dropped} polls after the last change are made anew; the journal as it was is kept beside it)",
            meta.id
        );
        Journal::reopen(&path)?.0.limited_to(site.config.limits.max_journal_mb)
    } else {
        journal
    };
    let site_args = format!("--config {} --product {}", a.config.display(), meta.product);
    for line in explain(&site_args, &meta, &run_dir) {
        eprintln!("{line}");
    }
    let log = run_log(&run_dir, &format!("resume of the {} in {} ({} {} -> {})", header.operation, path.display(), meta.product, meta.source, meta.target))?;
    let reporter: Arc<dyn Reporter> = Arc::new(Tee(vec![console_reporter(a.transcript, a.json, a.yes)?, log]));
    let _metadb_lock = or_refuse!(site.take_run_lock(&reporter).await?, "refused before any change");
    emit("run", serde_json::json!({ "run": meta.id, "operation": "resume", "dir": run_dir }));
    let mut env = site.env(site.config.backup_dir.join(&meta.id), RunRecords::in_run(&run_dir)?, reporter, a.yes, &grants, Some(Arc::new(journal)))?;
    env.rerun_in_doubt = a.rerun_in_doubt;
    let upgrading = header.operation == "upgrade";
    let outcome = if upgrading { plugin.loaded.upgrade(&env, &ctx).await } else { plugin.loaded.rollback(&env, &ctx).await };
    site.save_transcript(&meta, &env, if upgrading { "resume-upgrade-calls.json" } else { "resume-rollback-calls.json" }, &outcome);
    meta.error = None;
    let sa = SiteRef { config: a.config.clone(), product: meta.product.clone() };
    if upgrading {
        let route = meta.route.clone().filter(|r| r.target != meta.target);
        let code = finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::Upgraded, RunStatus::UpgradeFailed, &sa)?;
        if let (0, Some(r)) = (code, route) {
            say!(
                "this run is one hop of the route to {}: continue it with opshost upgrade --config {} --product {} --to {}",
                r.target,
                a.config.display(),
                sa.product,
                r.target
            );
        }
        Ok(code)
    } else {
        finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &sa)
    }
}
