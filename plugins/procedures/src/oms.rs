//! The OMS CE hop (seeds oms-upgrade-4.1.1-to-4.2.0-single-node.md and
//! oms-upgrade-3.2.2-to-3.3.0.md), parameterised by what differs between releases: one node, or
//! (hops with [`OmsHop::multi_node`], 4.2.2 on) several nodes in regions, where `docker_init.sh`
//! runs once per region whose nodes share one config file, else once per node, and the heartbeat
//! database of every region (`<cm_hb_db>_<cm_location>`) is trimmed, backed up and restored.

use crate::bindings::opshost::plugin::docker::{ContainerInfo, RunSpec};
use crate::bindings::opshost::plugin::{console, docker, host};
use crate::container::{self, env_value, oms_successor, remove_env, set_env};
use crate::ctx::{failed, info, invalid, not_found, now_ms, recall, record, step, warn, Params, Result, Within};
use crate::metadb::MetaDb;
use crate::oms_config::{self, OmsConfig};
use crate::version::{digits, image_with_version, version_in_image};
use crate::{ha, Context, Error, Manifest, Need, ParameterSpec, Plan, Step};

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
    /// What `oms_plugin!(OmsHop { … })` fills in for the fields a plugin leaves out: single node
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

/// Parameter `region_nodes`: `hangzhou=oms-a,oms-b;shanghai=oms-c`, regions (cm_location) and
/// their Docker nodes, in the order they are handled.
fn parse_region_nodes(text: &str) -> Result<Vec<(String, Vec<String>)>> {
    let bad = |why: String| {
        invalid(format!(
            "parameter region_nodes = {text:?}: {why}; write it as region=node,node;region=node (regions are the cm_location values of config.yaml)"
        ))
    };
    let mut regions: Vec<(String, Vec<String>)> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (region, nodes) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} has no '='")))?;
        let region = region.trim();
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(format!("region {region:?} must be letters, digits and _ (it names the heartbeat database <cm_hb_db>_<cm_location>)")));
        }
        if regions.iter().any(|(r, _)| r == region) {
            return Err(bad(format!("region {region} is listed twice")));
        }
        let nodes: Vec<String> = nodes.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
        if nodes.is_empty() {
            return Err(bad(format!("region {region} lists no node")));
        }
        for n in &nodes {
            if regions.iter().any(|(_, ns)| ns.contains(n)) || nodes.iter().filter(|m| *m == n).count() > 1 {
                return Err(bad(format!("node {n} is listed twice")));
            }
        }
        regions.push((region.to_string(), nodes));
    }
    if regions.is_empty() {
        return Err(bad("no region given".into()));
    }
    Ok(regions)
}

/// The value every one of `members`' config.yaml gives `key` (they must agree), checked against
/// the parameter that may also name it (`param`, empty when none does): a disagreement is a
/// refusal, since the file is what OMS itself uses. None when no file names it.
fn from_config(all: &[OmsNode], members: &[&OmsNode], key: &str, param: &str, given: Option<&str>) -> Result<Option<String>> {
    let multi = all.len() > 1;
    let on = |n: &OmsNode| if multi { format!(" on node {}", n.node) } else { String::new() };
    let mut found: Option<(&OmsNode, &str)> = None;
    for n in members {
        let Some(v) = n.config.get(key) else { continue };
        match found {
            Some((first, fv)) if fv != v => {
                return Err(invalid(format!(
                    "config.yaml{} names {key}: {fv}, but{} it names {key}: {v}: the nodes of one OMS deployment (of one region, for the heartbeat database) use the same databases; correct the config.yaml that is wrong and restart that OMS before upgrading",
                    on(first),
                    on(n)
                )))
            }
            Some(_) => {}
            None => found = Some((n, v)),
        }
    }
    match (given, found) {
        (Some(g), Some((n, v))) if g != v => Err(invalid(format!(
            "parameter {param} = {g}, but config.yaml in container {}{} names {key}: {v}, the database OMS really uses: remove parameter {param} from the site config (config.yaml is read), or correct it",
            n.old.spec.name,
            on(n)
        ))),
        (Some(g), _) => Ok(Some(g.to_string())),
        (None, found) => Ok(found.map(|(_, v)| v.to_string())),
    }
}

/// A region's config.yaml against the site config: each node's `cm_location` is its region's,
/// every server `cm_nodes` lists is run by a node of the region (else an OMS the upgrade does not
/// touch would run the old version on the migrated schema), and nodes said to share one file
/// have the same file.
fn check_region_config(r: &Region, members: &[&OmsNode], multi_node_hop: bool) -> Result<()> {
    let ips: Vec<&str> = members.iter().filter_map(|n| env_value(&n.old.spec, "OMS_HOST_IP")).collect();
    for n in members {
        if let (Some(loc), Some(said)) = (&r.location, n.config.get("cm_location")) {
            if said != loc {
                return Err(invalid(format!(
                    "node {}'s config.yaml says cm_location: {said}, but parameter region_nodes puts it in region {loc}: correct region_nodes (regions are the cm_location values of config.yaml)",
                    n.node
                )));
            }
        }
        let listed = n.config.list("cm_nodes");
        let strangers: Vec<&String> = listed.iter().filter(|ip| !ips.contains(&ip.as_str())).collect();
        if !strangers.is_empty() {
            let region = match &r.location {
                Some(loc) => format!("region {loc}"),
                None => "this deployment".to_string(),
            };
            let fix = if r.location.is_none() && !multi_node_hop {
                "this hop's vendor procedure is for one node: upgrade a multi-node OMS through a hop that supports it, or remove the server from cm_nodes if it is gone".to_string()
            } else if r.location.is_none() {
                "it is a multi-node OMS: set parameter region_nodes to its regions and nodes (each with a [nodes.NAME] section), or remove the server from cm_nodes if it is gone".to_string()
            } else {
                format!(
                    "add its node to region {} in parameter region_nodes (and a [nodes.NAME] section), or remove it from cm_nodes if it is gone",
                    r.location.as_deref().unwrap_or_default()
                )
            };
            return Err(invalid(format!(
                "config.yaml in container {} on node {} lists cm_nodes {}, which no node of {region} in the site config runs (their OMS_HOST_IP: {}): an OMS there would keep running the old version on the schema the upgrade migrates; {fix}",
                n.old.spec.name,
                n.node,
                strangers.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                ips.join(", ")
            )));
        }
    }
    if r.shares_config {
        if let Some(other) = members.iter().find(|n| n.config.text != members[0].config.text) {
            return Err(invalid(format!(
                "parameter regions_sharing_config names region {}, but nodes {} and {} have different config.yaml files, so docker_init.sh must run on each: remove {} from regions_sharing_config",
                r.location.as_deref().unwrap_or_default(),
                members[0].node,
                other.node,
                r.location.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The restrictions the vendor's upgrade overview states for every hop, for the operator to
/// confirm with the plan (opshost cannot see them from the MetaDB).
fn vendor_restrictions(source: &str) -> Vec<String> {
    let mut v = vec![
        "confirm before you answer yes (vendor restriction): the forward switchover of every migration project is finished, and synchronization is in (quasi-)real time".to_string(),
    ];
    if source.starts_with("3.2.") || source == "3.3.0" {
        v.push(format!(
            "confirm before you answer yes (vendor restriction, sources from 3.2.x): connectors of projects with DDL synchronization created on 3.2.1 or 3.2.2 have the dbType parameter (or db_type) in their source settings; add it first if not (from {source})"
        ));
    }
    v
}

impl OmsHop {
    pub fn manifest(&self) -> Manifest {
        let p = |name: &str, description: &str, default: Option<&str>| ParameterSpec {
            name: name.into(),
            description: description.into(),
            default: default.map(Into::into),
        };
        let need = |capability: &str, target: &str, why: &str| Need { capability: capability.into(), target: target.into(), why: why.into() };
        let mut needs = vec![
            need("docker", "oms_*", "stop the old OMS container, run the new one, run docker_init.sh in it"),
            need("image-archive", "*", "load the new OMS image from the archive named in parameter image_archive"),
            need("sql", "*", "trim the heartbeat table, back up and restore the rm, cm and cm_hb databases named in the parameters"),
            need("console", "servers", "wait until every server is online"),
        ];
        if self.ha_step {
            needs.push(need("console", ha::PARAM, "turn HA off during the upgrade and back on afterwards"));
        }
        let mut parameters = vec![
            p("node", "Docker node of the OMS container", Some("local")),
            p("container", "name of the running OMS container (default oms_<source digits>, e.g. oms_411)", None),
            p("new_container", "name for the new container (default oms_<target digits>)", None),
            p("image_archive", "image archive to load, as named in the site config (omit if the image is already loaded)", None),
            p("image", "new image reference (default: the loaded tag for the target version, or the old image with the version replaced)", None),
            p("host_ip", "OMS_HOST_IP for the new container (default: the old container's)", None),
            p("connection", "MetaDB connection name in the site config", Some("metadb")),
            p("config_file", "where the OMS containers mount OMS's config.yaml, read (never changed) for the MetaDB databases, region and servers", Some(oms_config::DEFAULT_PATH)),
            p("rm_db", "drc_rm_db (default: what config.yaml names; a different value is refused)", None),
            p("cm_db", "drc_cm_db (default: what config.yaml names; a different value is refused)", None),
            p("cm_hb_db", "drc_cm_heartbeat_db of a single node (default: what config.yaml names; a different value is refused); for several regions, the base of <cm_hb_db>_<cm_location> where a region's config.yaml names none", None),
            p(
                "trim_heartbeat",
                "delete heatbeat_sequence rows below max(id) before the backup, as the vendor does (they are not restored on rollback)",
                Some("true"),
            ),
            p(
                "ha_catch_up",
                "after re-enabling HA: \"interval\" (refetchStoreIntervalMin > T2 − T1) or \"checkpoint\" (perceiveStoreClientCheckpoint=true)",
                Some("interval"),
            ),
            p("ha_refetch_margin_min", "minutes refetchStoreIntervalMin exceeds the downtime T2 − T1 by (the vendor's FAQ: downtime + 30 minutes)", Some("30")),
            p("stop_timeout_s", "seconds docker stop waits before killing", Some("60")),
            p("online_timeout_s", "seconds to wait for every server to come online", Some("900")),
            p("poll_interval_s", "seconds between server status checks, once the first quick ones (from 250 ms, doubling) found them not online", Some("10")),
        ];
        if self.multi_node {
            parameters.push(p(
                "region_nodes",
                "multi-node OMS: regions (cm_location of config.yaml) and their Docker nodes, e.g. hangzhou=node-a,node-b;shanghai=node-c; the container names are the same on every node, each region's heartbeat database is <cm_hb_db>_<cm_location>, and parameters node and host_ip do not apply (omit for a single node)",
                None,
            ));
            parameters.push(p(
                "region_heartbeat_dbs",
                "multi-node OMS: each region's heartbeat database where its config.yaml does not name it <cm_hb_db>_<cm_location>, e.g. hangzhou=cm_hb1;shanghai=cm_hb2 (the vendor's example)",
                None,
            ));
            parameters.push(p(
                "regions_sharing_config",
                "multi-node OMS: regions (comma-separated) whose nodes mount one shared config.yaml: docker_init.sh runs once there, on the region's first node; in every other region it runs on each node",
                None,
            ));
        }
        Manifest {
            name: self.name.into(),
            product: "oms".into(),
            sources: self.sources.iter().map(|s| s.to_string()).collect(),
            target: self.target.into(),
            needs,
            parameters,
        }
    }

    fn check(&self, ctx: &Context) -> Result<Checked> {
        if !self.sources.contains(&ctx.source_version.as_str()) {
            return Err(invalid(format!(
                "{} upgrades OMS from {} only, but this deployment is at {}: upgrade through the supported hops first (opshost plan --to {} lists the route)",
                self.name,
                self.sources.join(", "),
                ctx.source_version,
                self.target
            )));
        }
        if ctx.target_version != self.target {
            return Err(invalid(format!("{} upgrades to {}, not {}", self.name, self.target, ctx.target_version)));
        }
        let p = Params(ctx);
        let src = digits(&ctx.source_version);
        let cm_hb = p.or("cm_hb_db", format!("cm_hb_{src}"));
        // Regions and their nodes: one region without a location for a single node.
        let layout: Vec<(Option<String>, Vec<String>)> = match p.get("region_nodes").filter(|_| self.multi_node) {
            Some(text) => parse_region_nodes(text)?.into_iter().map(|(r, ns)| (Some(r), ns)).collect(),
            None => vec![(None, vec![p.node()])],
        };
        let sharing: Vec<String> = match p.get("regions_sharing_config").filter(|_| self.multi_node) {
            None => Vec::new(),
            Some(text) => text.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect(),
        };
        // Each region's heartbeat database is what its config.yaml names: by default
        // <cm_hb_db>_<cm_location> (obd's default), or as the operator lists them (cm_hb1, cm_hb2).
        let mut heartbeat_dbs: Vec<(String, String)> = Vec::new();
        if let Some(text) = p.get("region_heartbeat_dbs").filter(|_| self.multi_node) {
            for part in text.split(';').map(str::trim).filter(|x| !x.is_empty()) {
                let Some((region, db)) = part.split_once('=').map(|(r, d)| (r.trim(), d.trim())) else {
                    return Err(invalid(format!(
                        "parameter region_heartbeat_dbs = {text:?}: {part:?} has no '='; write it as region=database;region=database"
                    )));
                };
                if !layout.iter().any(|(l, _)| l.as_deref() == Some(region)) {
                    return Err(invalid(format!("parameter region_heartbeat_dbs names region {region}, which parameter region_nodes does not list")));
                }
                if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                    return Err(invalid(format!("parameter region_heartbeat_dbs: {db:?} for region {region} is not a database name")));
                }
                heartbeat_dbs.push((region.to_string(), db.to_string()));
            }
        }
        for r in &sharing {
            if !layout.iter().any(|(l, _)| l.as_deref() == Some(r.as_str())) {
                return Err(invalid(format!(
                    "parameter regions_sharing_config names region {r}, which parameter region_nodes does not list: add it to region_nodes or remove it from regions_sharing_config"
                )));
            }
        }
        let node_count: usize = layout.iter().map(|(_, ns)| ns.len()).sum();
        if node_count > 1 && p.get("host_ip").is_some() {
            return Err(invalid(format!(
                "parameter host_ip sets one address, but region_nodes lists {node_count} nodes: remove host_ip; each new container takes OMS_HOST_IP from its node's old container"
            )));
        }
        let config_path = p.or("config_file", oms_config::DEFAULT_PATH);
        let old_name = p.or("container", format!("oms_{src}"));
        let new_name = p.or("new_container", format!("oms_{}", digits(self.target)));
        if new_name == old_name {
            return Err(invalid(format!("new_container must differ from container ({old_name}): the old one is kept for rollback")));
        }
        let mut nodes: Vec<OmsNode> = Vec::new();
        let mut regions: Vec<Region> = Vec::new();
        for (location, names) in layout {
            let mut indices = Vec::new();
            for node in names {
                let old = container::require(&node, &old_name, "set parameter container to the running OMS container's name")?;
                match version_in_image(&old.spec.image) {
                    Some(v) if v != ctx.source_version => {
                        return Err(invalid(format!(
                            "container {old_name}{} runs {} (OMS {v}), not OMS {}: correct the version in the site config",
                            if node_count > 1 { format!(" on node {node}") } else { String::new() },
                            old.spec.image,
                            ctx.source_version
                        )))
                    }
                    _ => {}
                }
                container::require_absent(&node, &new_name, "remove it, or set parameter new_container to another name")?;
                let host_ip = match p.get("host_ip").or_else(|| env_value(&old.spec, "OMS_HOST_IP")) {
                    Some(ip) => ip.to_string(),
                    None if node_count > 1 => {
                        return Err(invalid(format!(
                            "container {old_name} on node {node} has no OMS_HOST_IP: set it in that container, the new one takes it from there"
                        )))
                    }
                    None => return Err(invalid(format!("container {old_name} has no OMS_HOST_IP: set parameter host_ip"))),
                };
                let config = oms_config::read(&node, &old_name, &config_path)?;
                indices.push(nodes.len());
                nodes.push(OmsNode { node, old, host_ip, config });
            }
            let shares_config = location.as_ref().is_some_and(|l| sharing.contains(l));
            regions.push(Region { location, nodes: indices, shares_config, heartbeat_db: String::new(), heartbeat_rows: 0 });
        }
        // What the deployment's own config.yaml says, checked against the site config.
        let rm_db = from_config(&nodes, &nodes.iter().collect::<Vec<_>>(), "drc_rm_db", "rm_db", p.get("rm_db"))?.unwrap_or_else(|| format!("rm_{src}"));
        let cm_db = from_config(&nodes, &nodes.iter().collect::<Vec<_>>(), "drc_cm_db", "cm_db", p.get("cm_db"))?.unwrap_or_else(|| format!("cm_{src}"));
        for r in &mut regions {
            let members: Vec<&OmsNode> = r.nodes.iter().map(|&i| &nodes[i]).collect();
            check_region_config(r, &members, self.multi_node)?;
            r.heartbeat_db = match &r.location {
                None => from_config(&nodes, &members, "drc_cm_heartbeat_db", "cm_hb_db", p.get("cm_hb_db"))?.unwrap_or_else(|| cm_hb.clone()),
                Some(loc) => match heartbeat_dbs.iter().find(|(r, _)| r == loc) {
                    // The operator's word over the file's, and the plan says so.
                    Some((_, d)) => d.clone(),
                    None => from_config(&nodes, &members, "drc_cm_heartbeat_db", "", None)?.unwrap_or_else(|| format!("{cm_hb}_{loc}")),
                },
            };
        }
        let archive = p.get("image_archive").map(str::to_string);
        let first = &nodes[0];
        let image = match p.get("image") {
            Some(i) => i.to_string(),
            None => image_with_version(&first.old.spec.image, &ctx.source_version, self.target)
                .ok_or_else(|| invalid(format!("cannot derive the new image from {}: set parameter image", first.old.spec.image)))?,
        };
        if archive.is_none() {
            for n in &nodes {
                if !docker::image_exists(&n.node, &image).within("checking the new image")? {
                    return Err(invalid(format!("image {image} is not on node {}: set parameter image_archive to the OMS {} archive", n.node, self.target)));
                }
            }
        }
        let mut databases = vec![("rm".to_string(), rm_db), ("cm".to_string(), cm_db)];
        for r in &regions {
            let role = match &r.location {
                Some(loc) => format!("cm_hb/{loc}"),
                None => "cm_hb".to_string(),
            };
            databases.push((role, r.heartbeat_db.clone()));
        }
        let metadb = MetaDb { connection: p.or("connection", "metadb"), databases };
        metadb.check_exist()?;
        // Every server the console lists runs on a node the site config names: an OMS elsewhere
        // would keep running the old version on the schema docker_init.sh migrates.
        let mut known: Vec<&str> = nodes.iter().flat_map(|n| [Some(n.host_ip.as_str()), env_value(&n.old.spec, "OMS_HOST_IP")]).flatten().collect();
        known.sort_unstable();
        known.dedup();
        let servers = console::list_servers().within("listing the OMS console's servers")?;
        let strangers: Vec<&str> = servers.iter().map(|s| s.address.as_str()).filter(|a| !known.contains(&host_of(a))).collect();
        if !strangers.is_empty() {
            return Err(invalid(format!(
                "the OMS console lists {} {}, which no node of this deployment runs (its nodes' OMS_HOST_IP: {}): an OMS there would keep running {} on the schema the upgrade migrates; add that node to the site config (region_nodes and its [nodes.NAME] section) and plan again, or remove the server from the console if it is gone",
                if strangers.len() == 1 { "server" } else { "servers" },
                strangers.join(", "),
                known.join(", "),
                ctx.source_version
            )));
        }
        let trim = p.flag("trim_heartbeat", true)?;
        if trim {
            for r in &mut regions {
                r.heartbeat_rows = metadb.heartbeat_rows_to_trim(&r.heartbeat_db)?;
            }
        }
        let ha_before = match self.ha_step {
            true => ha::current()?,
            false => None,
        };
        if let Some(text) = &ha_before {
            ha::is_enabled(text)?;
        }
        let catch_up = p.or("ha_catch_up", "interval");
        if catch_up != "interval" && catch_up != "checkpoint" {
            return Err(invalid(format!("parameter ha_catch_up = {catch_up:?} must be \"interval\" or \"checkpoint\"")));
        }
        Ok(Checked {
            nodes,
            regions,
            new_name,
            image,
            image_given: p.get("image").is_some(),
            archive,
            metadb,
            trim,
            ha_before,
            stop_timeout_s: p.number("stop_timeout_s", 60)? as u32,
            online_timeout_s: p.number("online_timeout_s", 900)?,
            poll_s: p.number("poll_interval_s", 10)?.max(1),
            catch_up,
            refetch_margin_min: p.number("ha_refetch_margin_min", 30)?,
        })
    }

    fn new_spec(&self, c: &Checked, n: &OmsNode) -> RunSpec {
        let mut spec = oms_successor(&n.old.spec, &c.new_name, &c.image);
        set_env(&mut spec, "OMS_HOST_IP", &n.host_ip);
        if self.is_upgrade_env {
            set_env(&mut spec, "IS_UPGRADE", "true");
        } else {
            remove_env(&mut spec, "IS_UPGRADE");
        }
        spec
    }

    pub fn plan(&self, ctx: &Context) -> Result<Plan> {
        let c = self.check(ctx)?;
        let ha_on = match &c.ha_before {
            Some(t) => ha::is_enabled(t)?,
            None => false,
        };
        let dbs = c.metadb.databases.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>().join(", ");
        let old_name = c.nodes[0].old.spec.name.clone();
        let mut findings = Vec::new();
        for n in &c.nodes {
            findings.push(format!(
                "OMS {} in container {} ({}, image {}) on node {}",
                ctx.source_version,
                n.old.spec.name,
                container::state_name(n.old.state),
                n.old.spec.image,
                n.node
            ));
            findings.push(format!("mounts{}: {}", c.on(&n.node), container::describe_mounts(&n.old.spec)));
        }
        // What each config.yaml says (one line for the nodes that show the same file).
        let mut seen: Vec<&str> = Vec::new();
        for n in &c.nodes {
            if seen.contains(&n.config.text.as_str()) {
                continue;
            }
            seen.push(&n.config.text);
            let same: Vec<String> = c.nodes.iter().filter(|m| m.config.text == n.config.text).map(|m| m.node.clone()).collect();
            let whose = if c.multi() { format!(" on {}", nodes_phrase(&same)) } else { String::new() };
            findings.push(format!("config.yaml{whose}: {}", n.config.summary()));
        }
        for r in &c.regions {
            let said = r.nodes.iter().find_map(|&i| c.nodes[i].config.get("drc_cm_heartbeat_db"));
            if let (Some(loc), Some(said)) = (&r.location, said) {
                if said != r.heartbeat_db {
                    findings.push(format!(
                        "region {loc}: heartbeat database {} as parameter region_heartbeat_dbs says, where its config.yaml names {said}",
                        r.heartbeat_db
                    ));
                }
            }
        }
        for r in &c.regions {
            if let Some(loc) = &r.location {
                let names: Vec<String> = r.nodes.iter().map(|&i| c.nodes[i].node.clone()).collect();
                let init = if r.shares_config {
                    format!("share one config.yaml: docker_init.sh runs once, on {}", names[0])
                } else {
                    match names.len() {
                        1 => "has its own config.yaml: docker_init.sh runs on it".to_string(),
                        _ => "have a config.yaml each: docker_init.sh runs on each node".to_string(),
                    }
                };
                findings.push(format!("region {loc}: {} {init}; heartbeat database {}", nodes_phrase(&names), r.heartbeat_db));
            }
        }
        findings.push(format!("MetaDB connection {}: databases {dbs} exist", c.metadb.connection));
        findings.extend(self.notes.iter().map(|n| n.to_string()));
        findings.extend(vendor_restrictions(&ctx.source_version));
        if let Some(t) = &c.ha_before {
            findings.push(format!("ha.config: HA is {} ({t})", if ha_on { "on" } else { "off" }));
        }
        if c.trim {
            for r in &c.regions {
                findings.push(format!("{} heartbeat rows below max(id) in {}.heatbeat_sequence will be deleted and are not restored on rollback (vendor step; trim_heartbeat=false keeps them)", r.heartbeat_rows, r.heartbeat_db));
            }
        }
        let mut steps: Vec<Step> = Vec::new();
        match &c.archive {
            Some(a) => {
                steps.push(step("load image", format!("load archive {a} on {} (before the downtime starts); expect {}", c.nodes_phrase(), c.image), true))
            }
            None => steps.push(step("image present", format!("{} is already on {}", c.image, c.nodes_phrase()), false)),
        }
        for n in &c.nodes {
            // As the host will run it (after site policy), or refused now rather than after the stop.
            let spec = container::check_run(&n.node, &self.new_spec(&c, n))?;
            let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            steps.push(step(
                "create new container",
                format!(
                    "docker create {}{} from {}: {}, env {env}, mounts {} (before anything stops: the engine refuses a taken name or a bad option now; started after the backup)",
                    spec.name,
                    c.on(&n.node),
                    spec.image,
                    container::describe_flags(&spec),
                    container::describe_mounts(&spec)
                ),
                true,
            ));
        }
        if self.ha_step {
            steps.push(step(
                "HA off",
                if ha_on {
                    "set ha.config enable=false, remembering the current value".to_string()
                } else {
                    "HA is already off; remember ha.config".to_string()
                },
                ha_on,
            ));
        }
        let stop_where = if c.multi() { format!(" on {}", c.nodes_phrase()) } else { String::new() };
        steps.push(step("stop old container", format!("docker stop {old_name}{stop_where} (kept for rollback); record T1"), true));
        if c.trim {
            for r in &c.regions {
                steps.push(step("trim heartbeat", format!("delete {} rows below max(id) from {}.heatbeat_sequence", r.heartbeat_rows, r.heartbeat_db), true));
            }
        }
        steps.push(step("back up MetaDB", format!("dump {dbs}; each must be non-empty and match the live database's checksum"), false));
        steps.push(step("start new container", format!("docker start {}{stop_where}", c.new_name), true));
        for (node, why) in c.init_targets() {
            let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
            // rm, cm and the heartbeat database of the node's region (what its config.yaml names).
            let region_hb = c.regions.iter().find(|r| r.nodes.iter().any(|&i| c.nodes[i].node == node)).map(|r| r.heartbeat_db.as_str());
            let touched: Vec<&str> =
                c.metadb.databases.iter().filter(|(role, d)| !role.starts_with("cm_hb") || Some(d.as_str()) == region_hb).map(|(_, d)| d.as_str()).collect();
            steps.push(step(
                "init schema",
                format!(
                    "docker exec {}{} bash {INIT_SCRIPT}{why} (changes the schema of {}); fail on a non-zero exit",
                    c.new_name,
                    c.on(node),
                    touched.join(", ")
                ),
                true,
            ));
        }
        steps.push(step(
            "wait online",
            format!(
                "until {} has logged \"{}\"{stop_where}, every server is online and the console healthy (at most {} s)",
                c.new_name,
                container::OMS_STARTED_LINE,
                c.online_timeout_s
            ),
            false,
        ));
        if self.ha_step && ha_on {
            let how = if c.catch_up == "checkpoint" {
                "perceiveStoreClientCheckpoint=true".to_string()
            } else {
                format!("refetchStoreIntervalMin ≥ (T2 − T1) + {} minutes", c.refetch_margin_min)
            };
            steps.push(step("HA on", format!("set ha.config enable=true, record T2, {how}"), true));
        }
        steps.push(step("notice", "clear the browser cache before logging on to OMS", false));
        let mut rollback = Vec::new();
        if self.ha_step {
            rollback.push(step("HA off", "set ha.config enable=false if it is on", true));
        }
        rollback.push(step("stop new container", format!("docker stop {}{stop_where} if it runs", c.new_name), true));
        rollback.push(step("restore MetaDB", format!("drop, create and restore {dbs} from the verified backups; checksums checked"), true));
        rollback.push(step("restart old container", format!("docker restart {old_name}{stop_where}"), true));
        if self.ha_step {
            let how = if c.catch_up == "checkpoint" {
                "perceiveStoreClientCheckpoint=true".to_string()
            } else {
                format!("refetchStoreIntervalMin ≥ (minutes since T1) + {}", c.refetch_margin_min)
            };
            rollback.push(step(
                "HA on",
                if ha_on {
                    format!("set ha.config as recorded before the upgrade, enable=true, {how} (the vendor's rollback step 6)")
                } else {
                    "set ha.config back to the value recorded before the upgrade (HA off)".to_string()
                },
                true,
            ));
        }
        Ok(Plan { findings, steps, rollback })
    }

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
        let olds: Vec<(String, ContainerInfo)> = c.nodes.iter().map(|n| (n.node.clone(), n.old.clone())).collect();
        let t1 = container::stop_all_recording_t1(&olds, c.stop_timeout_s)?;
        if c.trim {
            for r in &c.regions {
                c.metadb.trim_heartbeat(&r.heartbeat_db)?;
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

/// A whole OMS hop plugin from its [`OmsHop`]: the WIT exports and the component's export glue.
/// Fields left out of `OmsHop { … }` take [`OmsHop::DEFAULTS`] (single node).
///
/// ```ignore
/// opshost_procedures::oms_plugin!(OmsHop { name: "oms-4.2.0", sources: &["4.1.1"], target: "4.2.0", is_upgrade_env: true, ha_step: true });
/// opshost_procedures::oms_plugin!(OmsHop { name: "oms-4.2.2", sources: &["4.2.1"], target: "4.2.2", is_upgrade_env: true, ha_step: true, multi_node: true });
/// ```
#[macro_export]
macro_rules! oms_plugin {
    (@hop $hop:expr) => {
        // `..DEFAULTS` is always appended, also when every field is given.
        #[allow(clippy::needless_update)]
        const HOP: $crate::oms::OmsHop = $hop;

        struct Plugin;

        impl $crate::bindings::Guest for Plugin {
            fn manifest() -> $crate::Manifest {
                HOP.manifest()
            }
            fn plan(ctx: $crate::Context) -> Result<$crate::Plan, $crate::Error> {
                HOP.plan(&ctx)
            }
            fn upgrade(ctx: $crate::Context) -> Result<(), $crate::Error> {
                HOP.upgrade(&ctx)
            }
            fn rollback(ctx: $crate::Context) -> Result<(), $crate::Error> {
                HOP.rollback(&ctx)
            }
        }

        $crate::bindings::export_plugin!(Plugin);
    };
    // `OmsHop { … }` as the plugin wrote it (its own `use … OmsHop`), with the defaults after.
    ($hop_type:ident { $($field:ident : $value:expr),* $(,)? }) => {
        $crate::oms_plugin!(@hop $hop_type { $($field: $value,)* ..$hop_type::DEFAULTS });
    };
    ($hop:expr) => {
        $crate::oms_plugin!(@hop $hop);
    };
}
