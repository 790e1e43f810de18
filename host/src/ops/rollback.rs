//! Rollback on a real deployment: the named run, or the run on top with the rest of its route,
//! newest first; every plugin, context, grant and backup checked before the first one starts.

use super::events::{emit, say};
use super::runs::{standing_above, to_unwind, Lock, RunMeta, RunStatus};
use super::site::{Hop, Site};
use super::upgrade::{console_reporter, finish, run_log};
use super::{RollbackRequest, Setup};
use crate::capabilities::services::{Services, SystemServices};
use crate::registry::find_by_hash;
use crate::report::Tee;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub async fn rollback(setup: &Setup, a: &RollbackRequest) -> Result<i32> {
    let site = Site::open(&a.site)?;
    let _lock = Lock::take(&site.config.state_dir(), &site.section)?;
    let runtime = setup.runtime()?;
    let history = site.runs.history(&site.section)?;
    // What to undo, newest first: the named run, or the run on top with the rest of its route.
    let runs: Vec<RunMeta> = match &a.run {
        Some(id) => {
            let meta = site.runs.load(id)?;
            if meta.product != site.section {
                anyhow::bail!("run {} is of {}, not {}", meta.id, meta.product, site.section);
            }
            if meta.status == RunStatus::RolledBack {
                eprintln!(
                    "refused: run {} was already rolled back; rolling back twice would overwrite what {} {} wrote since",
                    meta.id, meta.product, meta.source
                );
                return Ok(1);
            }
            let above = standing_above(&history, &meta.id);
            if !above.is_empty() {
                eprintln!(
                    "refused: {} run(s) after {} still stand ({}); roll back newest first: opshost rollback --config {} --product {} (unwinds a whole route)",
                    above.len(),
                    meta.id,
                    above.iter().map(|m| format!("{} {} -> {}", m.id, m.source, m.target)).collect::<Vec<_>>().join(", "),
                    site.path.display(),
                    site.section
                );
                return Ok(1);
            }
            vec![meta]
        }
        None => {
            let runs = to_unwind(&history);
            if runs.is_empty() {
                if history.is_empty() {
                    eprintln!("refused: no run of {} in {}: nothing to roll back", site.section, site.runs.dir.display());
                } else {
                    eprintln!(
                        "refused: nothing to roll back: every run of {} is already rolled back (opshost runs list --config {})",
                        site.section,
                        site.path.display()
                    );
                }
                return Ok(1);
            }
            runs
        }
    };
    // Everything each rollback needs, checked before the first one starts.
    let mut prepared = Vec::new();
    for meta in &runs {
        let plugin = find_by_hash(&runtime, &site.plugins_dir(setup), &meta.plugin_hash, &meta.plugin, &setup.policy(&site.config.trust)?).await?;
        let ctx = or_refuse!(site.context(&plugin, &meta.source, &meta.target));
        let grants = or_refuse!(site.grants(&plugin));
        prepared.push(Hop { plugin, ctx, grants });
    }
    // Every backup the runs took is whole before anything is touched: a damaged file found by
    // the restore would leave the product stopped half way.
    for meta in &runs {
        or_refuse!(site.backups_intact(meta), "refused before any change");
    }
    let reporter = console_reporter(a.transcript, a.json, a.yes)?;
    let question = if runs.len() == 1 {
        let m = &runs[0];
        format!(
            "Roll back run {} ({} {} -> {}, {}): restore the MetaDB from its backups and restart {} {}?",
            m.id,
            m.product,
            m.source,
            m.target,
            m.status.words(),
            m.product,
            m.source
        )
    } else {
        say!("Rollback of the route {} -> {}, newest hop first:", runs.last().unwrap().source, runs[0].target);
        for (i, m) in runs.iter().enumerate() {
            say!("  {}. run {}: {} -> {} ({}), back to {}", i + 1, m.id, m.source, m.target, m.status.words(), m.source);
        }
        format!(
            "Roll back these {} runs: restore each hop's MetaDB backups and containers, ending at {} {}?",
            runs.len(),
            site.section,
            runs.last().unwrap().source
        )
    };
    if !(SystemServices { assume_yes: a.yes }).confirm(&question).await {
        eprintln!("not confirmed: nothing was changed");
        return Ok(1);
    }
    let _metadb_lock = or_refuse!(site.take_run_lock(&reporter).await?, "refused before any change");
    for (mut meta, hop) in runs.into_iter().zip(prepared) {
        let run_dir = site.runs.run_dir(&meta.id);
        let journal_path = next_rollback_journal(&run_dir);
        meta.status = RunStatus::RollingBack;
        site.runs.save(&meta)?;
        eprintln!("rolling back run {} ({} -> {})", meta.id, meta.source, meta.target);
        emit("run", serde_json::json!({ "run": meta.id, "operation": "rollback", "dir": run_dir }));
        let log = run_log(
            &run_dir,
            &format!("rollback {} {} -> {} with {} (journal {})", meta.product, meta.target, meta.source, meta.plugin, journal_path.display()),
        )?;
        let env = site.journaled_env(&meta, &journal_path, "rollback", Arc::new(Tee(vec![reporter.clone(), log])), a.yes, &hop.grants)?;
        let outcome = hop.plugin.loaded.rollback(&env, &hop.ctx).await;
        site.save_transcript(&meta, &env, "rollback-calls.json", &outcome);
        let code = finish(&site, meta, outcome.map(|o| (o.result, o.notices)), RunStatus::RolledBack, RunStatus::RollbackFailed, &a.site)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

/// `rollback.journal`, or `rollback-N.journal` for a later attempt.
pub(super) fn next_rollback_journal(run_dir: &Path) -> PathBuf {
    let mut n = 1;
    loop {
        let p = if n == 1 { run_dir.join("rollback.journal") } else { run_dir.join(format!("rollback-{n}.journal")) };
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}
