//! The OMS hop's prechecks, in two parts: [`OmsHop::parameters`] reads and checks what the site
//! config's parameters ask for, without asking the deployment anything; [`OmsHop::probe`] then
//! looks at the deployment (containers, their config.yaml, images, databases, the console's
//! servers, heartbeat rows, HA) and establishes [`Checked`].

use super::{host_of, Checked, OmsHop, OmsNode, Region};
use crate::bindings::opshost::plugin::{console, docker};
use crate::container::{self, env_value};
use crate::ctx::{invalid, Params, Result, Within};
use crate::metadb::MetaDb;
use crate::oms_config::{self};
use crate::version::{check_hop, digits, image_with_version, version_in_image};
use crate::{ha, Context};

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

/// What the site config's parameters ask for ([`OmsHop::parameters`]).
struct Wanted {
    /// Regions (None: the single node's) and their nodes.
    layout: Vec<(Option<String>, Vec<String>)>,
    /// Regions whose nodes share one config.yaml.
    sharing: Vec<String>,
    /// Heartbeat databases the operator named per region.
    heartbeat_dbs: Vec<(String, String)>,
    node_count: usize,
    cm_hb: String,
    config_path: String,
    old_name: String,
    new_name: String,
    trim: bool,
    trim_early: bool,
    catch_up: String,
    stop_timeout_s: u32,
    online_timeout_s: u64,
    poll_s: u64,
    refetch_margin_min: u64,
}

impl OmsHop {
    /// The prechecks: the parameters first, then the deployment.
    pub(super) fn check(&self, ctx: &Context) -> Result<Checked> {
        let wanted = self.parameters(ctx)?;
        self.probe(ctx, wanted)
    }

    /// What the site config's parameters ask for, read and checked without asking the
    /// deployment anything: versions, the region layout, names, flags and numbers.
    fn parameters(&self, ctx: &Context) -> Result<Wanted> {
        check_hop("OMS", self.name, self.sources, self.target, ctx, "")?;
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
        let trim = p.flag("trim_heartbeat", true)?;
        // Read (and a bad value refused) whether or not the trim runs.
        let trim_early = p.flag("trim_heartbeat_early", true)? && trim;
        let catch_up = p.or("ha_catch_up", "interval");
        if catch_up != "interval" && catch_up != "checkpoint" {
            return Err(invalid(format!("parameter ha_catch_up = {catch_up:?} must be \"interval\" or \"checkpoint\"")));
        }
        Ok(Wanted {
            layout,
            sharing,
            heartbeat_dbs,
            node_count,
            cm_hb,
            config_path,
            old_name,
            new_name,
            trim,
            trim_early,
            catch_up,
            stop_timeout_s: p.number("stop_timeout_s", 60)? as u32,
            online_timeout_s: p.number("online_timeout_s", 900)?,
            poll_s: p.number("poll_interval_s", 10)?.max(1),
            refetch_margin_min: p.number("ha_refetch_margin_min", 30)?,
        })
    }

    /// The deployment as the parameters describe it: every node's old container and its
    /// config.yaml, the new image, the databases, the console's servers, the heartbeat rows to
    /// trim and HA; refused with what to change when it is not as described.
    fn probe(&self, ctx: &Context, w: Wanted) -> Result<Checked> {
        let p = Params(ctx);
        let src = digits(&ctx.source_version);
        let Wanted { layout, sharing, heartbeat_dbs, node_count, cm_hb, config_path, old_name, new_name, trim, catch_up, .. } = w;
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
        Ok(Checked {
            nodes,
            regions,
            new_name,
            image,
            image_given: p.get("image").is_some(),
            archive,
            metadb,
            trim,
            trim_early: w.trim_early,
            ha_before,
            stop_timeout_s: w.stop_timeout_s,
            online_timeout_s: w.online_timeout_s,
            poll_s: w.poll_s,
            catch_up,
            refetch_margin_min: w.refetch_margin_min,
        })
    }
}
