//! The ODC hop's upgrade in the vendor's order: every node stopped and removed, the MetaDB
//! backed up once with nothing writing, the new image on every node (or node by node), nginx.

use super::*;
use crate::bindings::opshost::plugin::docker::{self, RunSpec};
use crate::bindings::opshost::plugin::host;
use crate::container::{self};
use crate::ctx::{info, invalid, now_ms, recall, record, Result, Within};
use crate::Context;

impl OdcHop {
    pub fn upgrade(&self, ctx: &Context) -> Result<()> {
        if let Some(t) = recall::<u64>("upgrade.finished")? {
            return Err(invalid(format!("this run already finished its upgrade (at {t} ms); start a new run to upgrade again")));
        }
        let c = self.check(ctx)?;
        // Whatever the engine or the site's policy would refuse at `docker run` is refused now,
        // before anything changes.
        for n in &c.nodes {
            container::check_run(&n.node, &c.new_spec(&n.old.spec))?;
        }
        if let Some(Nginx { image: Some(i), node, old, .. }) = &c.nginx {
            container::check_run(node, &nginx_spec(&old.spec, i))?;
        }
        record("upgrade.started", &now_ms())?;
        // Before anything changes: every container's whole run spec, for rollback.
        let olds: Vec<(&str, &str, &RunSpec)> = c.nodes.iter().map(|n| (n.node.as_str(), n.old.id.as_str(), &n.old.spec)).collect();
        record(OLD_KEY, &olds)?;
        if let Some(x) = &c.nginx {
            record(NGINX_OLD_KEY, &(x.node.as_str(), x.old.id.as_str(), &x.old.spec))?;
        }
        let mut recorded: Vec<String> = c.nodes.iter().map(|n| format!("{} on node {}", n.old.spec.name, n.node)).collect();
        recorded.extend(c.nginx.iter().map(|x| format!("{} on node {}", x.old.spec.name, x.node)));
        info(format!("recorded the run specs of {}", recorded.join(", ")));
        // Before the downtime: the new images on every node.
        let mut loaded = Vec::new();
        for n in &c.nodes {
            load(&n.node, &c.archive, &c.image, &mut loaded)?;
        }
        if let Some(Nginx { image: Some(i), archive, node, .. }) = &c.nginx {
            load(node, archive, i, &mut loaded)?;
        }
        // The vendor's order: every old node stops first, so the backup is taken with nothing
        // writing, and no old node serves on the schema the first new one migrates.
        if c.all_at_once {
            for n in &c.nodes {
                stop_and_remove(&n.node, &n.old.spec.name, c.stop_timeout_s)?;
                info(format!("stopped and removed {} on node {}", n.old.spec.name, n.node));
            }
            c.metadb.backup_and_verify()?;
        }
        for (i, n) in c.nodes.iter().enumerate() {
            let name = &n.old.spec.name;
            if !c.all_at_once {
                stop_and_remove(&n.node, name, c.stop_timeout_s)?;
                info(format!("stopped and removed {name} on node {}", n.node));
                if i == 0 {
                    c.metadb.backup_and_verify()?;
                }
            }
            record(NEW_STARTED_KEY, &true)?;
            let spec = c.new_spec(&n.old.spec);
            docker::run(&n.node, &spec).within(&format!("starting {name} from {} on node {}", spec.image, n.node))?;
            info(format!("started {name} from {} on node {}", spec.image, n.node));
            wait_healthy(&n.node, name, Some(&n.node), c.healthy_timeout_s, c.poll_s)?;
            info(format!("ODC {} on node {} is healthy", self.target, n.node));
        }
        if let Some(Nginx { image: Some(i), node, old, health, .. }) = &c.nginx {
            let name = &old.spec.name;
            record(NGINX_SWAPPED_KEY, &true)?;
            stop_and_remove(node, name, c.stop_timeout_s)?;
            docker::run(node, &nginx_spec(&old.spec, i)).within(&format!("starting {name} from {i} on node {node}"))?;
            wait_healthy(node, name, health.as_deref(), c.healthy_timeout_s, c.poll_s)?;
            info(format!("nginx {name} on node {node} runs {i}"));
        }
        host::notice(&format!("ODC upgraded to {}: clear the browser cache before you log on to ODC", self.target));
        record("upgrade.finished", &now_ms())?;
        Ok(())
    }
}
