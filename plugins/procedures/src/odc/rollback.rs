//! The ODC hop's rollback: the MetaDB restored before the old image starts, then the old
//! containers from their recorded specs, each awaited until healthy.

use super::*;
use crate::bindings::opshost::plugin::docker::{self, RunSpec};
use crate::bindings::opshost::plugin::host;
use crate::container::{self};
use crate::ctx::{failed, info, invalid, not_found, now_ms, recall, record, warn, Params, Result, Within};
use crate::metadb::MetaDb;
use crate::Context;

impl OdcHop {
    pub fn rollback(&self, ctx: &Context) -> Result<()> {
        if let Some(t) = recall::<u64>("rollback.finished")? {
            return Err(invalid(format!("this run was already rolled back (at {t} ms): rolling back twice would overwrite what the old version wrote since")));
        }
        let Some(old) = recall::<Vec<(String, String, RunSpec)>>(OLD_KEY)? else {
            if recall::<u64>("upgrade.started")?.is_none() {
                return Err(not_found("no upgrade is recorded for this run: nothing to roll back"));
            }
            info("the upgrade stopped before changing anything: nothing to roll back");
            record("rollback.finished", &now_ms())?;
            return Ok(());
        };
        let p = Params(ctx);
        let (timeout_s, poll_s, stop_s) = (p.number("healthy_timeout_s", 600)?, p.number("poll_interval_s", 5)?.max(1), p.number("stop_timeout_s", 30)? as u32);
        let touched_db = recall::<bool>(NEW_STARTED_KEY)? == Some(true);
        // 1. Stop and remove every new container; with a MetaDB to restore, stop the old ones
        //    that were not reached yet too, so that nothing uses it while it is replaced.
        for (node, id, spec) in &old {
            match container::inspect(node, &spec.name)? {
                Some(c) if c.id == *id && touched_db && running(c.state) => {
                    docker::stop(node, &spec.name, stop_s).within(&format!("stopping {} on node {node} for the MetaDB restore", spec.name))?;
                    info(format!("stopped {} on node {node} (not upgraded yet) while the MetaDB is restored", spec.name));
                }
                // The old container, untouched, and nothing to restore: leave it.
                Some(c) if c.id == *id => {}
                Some(c) => {
                    stop_and_remove(node, &spec.name, stop_s)?;
                    info(format!("stopped and removed the new {} ({}) on node {node}", spec.name, c.spec.image));
                }
                None => {}
            }
        }
        // 2. The MetaDB as it was before the new ODC migrated it.
        if touched_db {
            match MetaDb::verified_backups()? {
                Some((connection, backups)) => MetaDb::restore(&connection, &backups)?,
                None => {
                    return Err(failed(
                        "a new ODC was started but no verified MetaDB backup is recorded: restore the MetaDB by hand before starting the old ODC (it refuses a migrated schema), then run the old containers with the options in this run's records",
                    ))
                }
            }
        } else {
            info("no new ODC was started: the MetaDB is as it was, no restore needed");
        }
        // 3. The old ODC on every node, from its recorded options; each healthy before the next.
        for (node, id, spec) in &old {
            match container::inspect(node, &spec.name)? {
                Some(c) if c.id == *id && running(c.state) => info(format!("{} on node {node} was never stopped: left running", spec.name)),
                Some(c) if c.id == *id => {
                    docker::start(node, &spec.name).within(&format!("starting {} on node {node}", spec.name))?;
                    info(format!("started {} again on node {node}", spec.name));
                }
                Some(c) => {
                    return Err(failed(format!(
                        "container {} on node {node} runs {} although it was just removed: something else re-created it; remove it and run rollback again",
                        spec.name, c.spec.image
                    )))
                }
                None => {
                    let mut again = spec.clone();
                    container::successor_of(&mut again, &spec.name);
                    docker::run(node, &again).within(&format!("running the old {} from {} on node {node}", spec.name, spec.image))?;
                    info(format!("ran {} from {} on node {node} with its recorded options", spec.name, spec.image));
                }
            }
            wait_healthy(node, &spec.name, Some(node), timeout_s, poll_s).within("after restoring the MetaDB")?;
        }
        // 4. nginx as it was, if the upgrade got to it.
        if let (Some((node, id, spec)), Some(true)) = (recall::<(String, String, RunSpec)>(NGINX_OLD_KEY)?, recall::<bool>(NGINX_SWAPPED_KEY)?) {
            match container::inspect(&node, &spec.name)? {
                Some(c) if c.id == id => {
                    if !running(c.state) {
                        docker::start(&node, &spec.name).within(&format!("starting {} on node {node}", spec.name))?;
                    }
                }
                found => {
                    if found.is_some() {
                        stop_and_remove(&node, &spec.name, stop_s)?;
                    }
                    let mut again = spec.clone();
                    container::successor_of(&mut again, &spec.name);
                    docker::run(&node, &again).within(&format!("running the old {} from {} on node {node}", spec.name, spec.image))?;
                }
            }
            let health = p.get("nginx_health").map(str::to_string);
            wait_healthy(&node, &spec.name, health.as_deref(), timeout_s, poll_s)?;
            info(format!("nginx {} on node {node} runs {} again", spec.name, spec.image));
        }
        if touched_db {
            warn("the MetaDB is back to its state at the backup: what ODC wrote since is gone");
        }
        host::notice(&format!("ODC rolled back to {}: clear the browser cache before you log on to ODC", ctx.source_version));
        record("rollback.finished", &now_ms())?;
        Ok(())
    }
}
