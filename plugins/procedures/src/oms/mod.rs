//! The OMS CE hop (seeds oms-upgrade-4.1.1-to-4.2.0-single-node.md and
//! oms-upgrade-3.2.2-to-3.3.0.md), parameterised by what differs between releases: one node, or
//! (hops with [`OmsHop::multi_node`], 3.3.1 on; DOMAIN.md's correction) several nodes in regions, where `docker_init.sh`
//! runs once per region whose nodes share one config file, else once per node, and the heartbeat
//! database of every region (as its config.yaml names it) is trimmed, backed up and restored.
//!
//! Files: this one holds the hop's data ([`OmsHop`]) and what the prechecks establish
//! ([`Checked`]); `check.rs` reads the parameters and then probes the deployment; `plan.rs` the
//! manifest and the plan; `upgrade.rs` and `rollback.rs` the two procedures.

mod check;
mod plan;
mod rollback;
mod upgrade;

use crate::bindings::opshost::plugin::docker::ContainerInfo;
use crate::ctx::Result;
use crate::metadb::MetaDb;
use crate::oms_config::OmsConfig;
use crate::{Context, Manifest, Plan};

/// What one OMS release's upgrade procedure is, as data.
pub struct OmsHop {
    /// Plugin name, e.g. "oms-4.2.0".
    pub name: &'static str,
    pub sources: &'static [&'static str],
    pub target: &'static str,
    /// Pass `IS_UPGRADE=true` to the new container (required from 3.3.1 on).
    pub is_upgrade_env: bool,
    /// Turn HA off for the upgrade and back on afterwards (every guide from 3.3.1 on).
    pub ha_step: bool,
    /// Take several nodes in regions (parameters `region_nodes`, `regions_sharing_config`; every
    /// guide from 3.3.1 on): every node's container is swapped, every region's heartbeat database backed up, and
    /// `docker_init.sh` runs once per region that shares one config file, else once per node.
    /// Without `region_nodes` the hop is the single-node one.
    pub multi_node: bool,
    /// What the plan says about where this hop's facts come from (e.g. which vendor page names a
    /// source version where the pages disagree).
    pub notes: &'static [&'static str],
}

impl OmsHop {
    /// What `hop_plugin!(OmsHop { … })` fills in for the fields a plugin leaves out: single node
    /// only. `name`, `sources` and `target` are always given.
    pub const DEFAULTS: OmsHop = OmsHop { name: "", sources: &[], target: "", is_upgrade_env: false, ha_step: false, multi_node: false, notes: &[] };
}

const INIT_SCRIPT: &str = "/root/docker_init.sh";

/// One OMS node: its Docker node, its old container, and the new container's OMS_HOST_IP.
struct OmsNode {
    node: String,
    old: ContainerInfo,
    host_ip: String,
    /// Its config.yaml, read from the old container.
    config: OmsConfig,
}

/// A region (cm_location) of a multi-node OMS; a single-node deployment is one region with no
/// location, whose heartbeat database is `cm_hb_db` itself.
struct Region {
    location: Option<String>,
    /// Indices into [`Checked::nodes`].
    nodes: Vec<usize>,
    /// Its nodes mount one shared config.yaml: docker_init.sh runs once, on its first node.
    shares_config: bool,
    heartbeat_db: String,
    heartbeat_rows: u64,
}

/// Everything the prechecks established; shared by plan and upgrade.
struct Checked {
    nodes: Vec<OmsNode>,
    regions: Vec<Region>,
    new_name: String,
    image: String,
    /// `image` came from the parameter, not derived from the old tag.
    image_given: bool,
    archive: Option<String>,
    metadb: MetaDb,
    trim: bool,
    /// Trim in two passes: most rows before the stop, the rest after it.
    trim_early: bool,
    ha_before: Option<String>,
    stop_timeout_s: u32,
    online_timeout_s: u64,
    poll_s: u64,
    catch_up: String,
    refetch_margin_min: u64,
}

impl Checked {
    fn multi(&self) -> bool {
        self.nodes.len() > 1 || self.regions.iter().any(|r| r.location.is_some())
    }
    /// " on node X" when there are several nodes, else nothing (single-node messages stay as they were).
    fn on(&self, node: &str) -> String {
        if self.multi() {
            format!(" on node {node}")
        } else {
            String::new()
        }
    }
    fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.node.clone()).collect()
    }
    /// "node a" or "nodes a, b, c".
    fn nodes_phrase(&self) -> String {
        nodes_phrase(&self.node_names())
    }
    /// The nodes docker_init.sh runs on, each with why: once per region sharing a config file,
    /// else on every node.
    fn init_targets(&self) -> Vec<(&str, Option<String>)> {
        let mut out = Vec::new();
        for r in &self.regions {
            match (&r.location, r.shares_config) {
                (Some(loc), true) => {
                    out.push((self.nodes[r.nodes[0]].node.as_str(), Some(format!("once for region {loc}, whose nodes share one config.yaml"))))
                }
                (Some(loc), false) => {
                    out.extend(r.nodes.iter().map(|&i| (self.nodes[i].node.as_str(), Some(format!("region {loc}, each node has its own config.yaml")))))
                }
                (None, _) => out.extend(r.nodes.iter().map(|&i| (self.nodes[i].node.as_str(), None))),
            }
        }
        out
    }
}

fn nodes_phrase(nodes: &[String]) -> String {
    if nodes.len() == 1 {
        format!("node {}", nodes[0])
    } else {
        format!("nodes {}", nodes.join(", "))
    }
}

/// The host of a server address as the console lists it (`10.0.0.5`, `10.0.0.5:8088`, `[::1]:8088`).
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => address,
    }
}

impl crate::Hop for OmsHop {
    fn manifest(&self) -> Manifest {
        OmsHop::manifest(self)
    }
    fn plan(&self, ctx: &Context) -> Result<Plan> {
        OmsHop::plan(self, ctx)
    }
    fn upgrade(&self, ctx: &Context) -> Result<()> {
        OmsHop::upgrade(self, ctx)
    }
    fn rollback(&self, ctx: &Context) -> Result<()> {
        OmsHop::rollback(self, ctx)
    }
}
