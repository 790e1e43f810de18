//! The OMS hop's rollback: the vendor's rollback from what the upgrade recorded, the MetaDB
//! restored from the verified backups before the old version starts again.

use super::OmsHop;
use crate::bindings::opshost::plugin::host;
use crate::container::{self};
use crate::ctx::{failed, info, invalid, not_found, now_ms, recall, record, warn, Params, Result};
use crate::metadb::MetaDb;
use crate::{ha, Context};

impl OmsHop {
    pub fn rollback(&self, ctx: &Context) -> Result<()> {
        if let Some(t) = recall::<u64>("rollback.finished")? {
            return Err(invalid(format!("this run was already rolled back (at {t} ms): rolling back twice would overwrite what the old version wrote since")));
        }
        let old = container::recorded_old()?;
        let ha_before = ha::recorded_before()?;
        if old.is_empty() && ha_before.is_none() {
            if recall::<u64>("upgrade.started")?.is_none() {
                return Err(not_found("no upgrade is recorded for this run: nothing to roll back"));
            }
            container::remove_never_started(&container::recorded_new()?)?;
            info("the upgrade stopped before changing anything: nothing to roll back");
            record("rollback.finished", &now_ms())?;
            return Ok(());
        }
        // Seed step 9.1: HA off. An earlier attempt of this rollback that failed after it began
        // restoring left the databases empty or part-restored, with its new containers stopped:
        // there may be no ha.config to read, and the restore below replaces it anyway.
        if self.ha_step {
            match ha::current() {
                Ok(Some(now)) => {
                    ha::turn_off(&now)?;
                }
                Ok(None) => {}
                Err(e) if MetaDb::restore_began()? => info(format!(
                    "HA not turned off: {} (an earlier attempt of this rollback began restoring the databases, which the restore below replaces)",
                    e.message()
                )),
                Err(e) => return Err(e),
            }
        }
        // 9.2: stop the new containers (T3 when the first stops).
        let new = container::recorded_new()?;
        let mut t3 = false;
        for (node, name) in &new {
            if container::stop_if_running(node, name, 60)? {
                if !t3 {
                    record("t3", &now_ms())?;
                    t3 = true;
                }
                info(if new.len() > 1 { format!("stopped {name} on node {node}") } else { format!("stopped {name}") });
            }
        }
        // 9.3-9.4: drop, create, restore the databases (every region's heartbeat database too)
        // from the verified backups.
        match MetaDb::verified_backups()? {
            Some((connection, backups)) => MetaDb::restore(&connection, &backups)?,
            // Created (before the stop) is not started: nothing new touched the databases.
            None if container::any_started()? => {
                return Err(failed("a new container was started but no verified backup is recorded: the MetaDB cannot be restored automatically; restore the dumps by hand before restarting the old container"));
            }
            None => info("no backup was completed and nothing but the heartbeat trim touched the databases: no restore needed"),
        }
        // 9.5: restart every old container.
        for (node, spec) in &old {
            let how = container::bring_back(node, spec, 60)?;
            info(if old.len() > 1 { format!("old container {} on node {node}: {how}", spec.name) } else { format!("old container {}: {how}", spec.name) });
        }
        // Only those that exist and ran: one created before the stop and never started held
        // nothing, and is removed.
        let kept = container::remove_never_started(&new)?;
        match kept.as_slice() {
            [] => {}
            [(_, name)] => host::notice(&format!("the new container {name} is stopped and kept; remove it (docker rm {name}) before upgrading again")),
            many => {
                let names: Vec<String> = many.iter().map(|(node, name)| format!("{name} on node {node}")).collect();
                host::notice(&format!(
                    "the new containers ({}) are stopped and kept; remove them (docker rm on each node) before upgrading again",
                    names.join(", ")
                ));
            }
        }
        // 9.6: HA as it was; if it was on, on again with refetchStoreIntervalMin covering the time
        // since T1, as the vendor's rollback sets it (rm then differs from before the upgrade in
        // that one value).
        if self.ha_step {
            let p = Params(ctx);
            if let Some(note) =
                ha::restore_after_rollback(recall::<u64>("t1")?, now_ms(), &p.or("ha_catch_up", "interval"), p.number("ha_refetch_margin_min", 30)?)?
            {
                host::notice(&note);
            }
        }
        if !old.is_empty() {
            let p = Params(ctx);
            let nodes: Vec<String> = old.iter().map(|(n, _)| n.clone()).collect();
            if let Err(e) = container::wait_online_all(&nodes, p.number("online_timeout_s", 900)?, p.number("poll_interval_s", 10)?.max(1)) {
                warn(format!("after rollback: {}", e.message()));
                host::notice("rolled back, but not every server came online: check the Servers page of the OMS console");
            }
        }
        record("rollback.finished", &now_ms())?;
        Ok(())
    }
}
