//! The OMS hop's upgrade: the seeds' procedure in their order, on one node or every node of
//! every region, each step recorded so a rollback knows what to undo.

use super::{OmsHop, INIT_SCRIPT};
use crate::bindings::opshost::plugin::docker::{ContainerInfo, RunSpec};
use crate::bindings::opshost::plugin::{docker, host};
use crate::container::{self};
use crate::ctx::{info, invalid, now_ms, recall, record, Result, Within};
use crate::version::version_in_image;
use crate::{ha, Context, Error};

impl OmsHop {
    pub fn upgrade(&self, ctx: &Context) -> Result<()> {
        if let Some(t) = recall::<u64>("upgrade.finished")? {
            return Err(invalid(format!("this run already finished its upgrade (at {t} ms); start a new run to upgrade again")));
        }
        let mut c = self.check(ctx)?;
        // Whatever the engine or the site's policy would refuse at `docker run` is refused now,
        // before anything changes, not after OMS stopped.
        for n in &c.nodes {
            container::check_run(&n.node, &self.new_spec(&c, n))?;
        }
        record("upgrade.started", &now_ms())?;
        // Before the downtime starts: load the new image on every node.
        for i in 0..c.nodes.len() {
            let n = &c.nodes[i];
            if let Some(archive) = &c.archive {
                let tags = docker::load_image(&n.node, archive).within(&format!("loading image archive {archive}{}", c.on(&n.node)))?;
                info(format!("loaded {}", tags.join(", ")));
                // The tag form changes between releases (feature_3.2.2_ce, feature_4.0.0-ce): when
                // the tag derived from the old one did not load, take the loaded tag of the target.
                if i == 0 && !c.image_given && !tags.contains(&c.image) {
                    if let Some(tag) = tags.iter().find(|t| version_in_image(t).as_deref() == Some(self.target)) {
                        info(format!("{} is not in the archive; using its tag {tag}", c.image));
                        c.image = tag.clone();
                    }
                }
            }
            let n = &c.nodes[i];
            if !docker::image_exists(&n.node, &c.image).within("checking the new image")? {
                return Err(invalid(format!("image {} is not on node {} after loading: set parameter image to one of the archive's tags", c.image, n.node)));
            }
        }
        // Created now, started after the backup: a name in use, a missing image or an option the
        // engine refuses stops the upgrade before HA goes off and OMS stops, and the downtime
        // is shorter by the create.
        let runs: Vec<(String, RunSpec)> = c.nodes.iter().map(|n| (n.node.clone(), self.new_spec(&c, n))).collect();
        container::create_all_recorded(&runs)?;
        if self.ha_step {
            ha::disable_remembering()?;
        }
        if c.trim_early {
            for r in &c.regions {
                c.metadb.trim_heartbeat(&r.heartbeat_db, true)?;
            }
        }
        let olds: Vec<(String, ContainerInfo)> = c.nodes.iter().map(|n| (n.node.clone(), n.old.clone())).collect();
        let t1 = container::stop_all_recording_t1(&olds, c.stop_timeout_s)?;
        if c.trim {
            for r in &c.regions {
                c.metadb.trim_heartbeat(&r.heartbeat_db, false)?;
            }
        }
        c.metadb.backup_and_verify()?;
        container::start_all(&runs)?;
        for (node, why) in c.init_targets() {
            if let Some(why) = &why {
                info(format!("running {INIT_SCRIPT} in {} on node {node}: {why}", c.new_name));
            }
            let done = container::run_init_script(node, &c.new_name, INIT_SCRIPT);
            if c.multi() {
                done.within(&format!("on node {node}"))?
            } else {
                done?
            };
        }
        let n = match container::wait_started_then_online(&c.node_names(), &c.new_name, c.online_timeout_s, c.poll_s) {
            Ok(n) => n,
            Err(e @ Error::Timeout(_)) => {
                // Every change is made; what follows the wait waits for the servers, as the
                // vendor's procedure does. The host makes the run resumable.
                host::notice(&format!(
                    "OMS {} is started but not online within {} s: {}; see docker logs {} and /home/admin/logs in it. Resume the run once it is fixed (it waits again, then finishes), or roll back",
                    self.target,
                    c.online_timeout_s,
                    if self.ha_step {
                        "HA stays off until every server is online (the vendor's order); T1 is recorded, so refetchStoreIntervalMin will cover the whole downtime"
                    } else {
                        "nothing after the wait has happened"
                    },
                    c.new_name
                ));
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        info(format!("{n} servers online"));
        if self.ha_step {
            if let Some(note) = ha::restore_after_upgrade(t1, now_ms(), &c.catch_up, c.refetch_margin_min)? {
                host::notice(&note);
            }
        }
        host::notice(&format!("OMS upgraded to {}: clear the browser cache before you log on to the OMS console", self.target));
        record("upgrade.finished", &now_ms())?;
        Ok(())
    }
}
