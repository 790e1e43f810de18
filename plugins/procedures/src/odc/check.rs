//! The ODC hop's prechecks, in two parts: [`OdcHop::parameters`] reads and checks what the site
//! config's parameters ask for, without asking the deployment anything; [`OdcHop::probe`] then
//! looks at the deployment (every node's container, the MetaDB, images, nginx) and establishes
//! [`Checked`].

use super::*;
use crate::bindings::opshost::plugin::docker::{self, RunSpec};
use crate::bindings::opshost::plugin::sql;
use crate::container::{self, env_value, state_name};
use crate::ctx::{invalid, not_found, Params, Result, Within};
use crate::metadb::MetaDb;
use crate::version::{check_hop, image_with_version, version_in_image};
use crate::Context;

/// What the site config's parameters ask for ([`OdcHop::parameters`]).
struct Wanted {
    /// Each node and its ODC container.
    layout: Vec<(String, String)>,
    connection: String,
    cpu_period: Option<u64>,
    cpu_quota: Option<i64>,
    memory: Option<u64>,
    stop_timeout_s: u32,
    healthy_timeout_s: u64,
    poll_s: u64,
    all_at_once: bool,
}

impl OdcHop {
    /// The prechecks: the parameters first, then the deployment.
    pub(super) fn check(&self, ctx: &Context) -> Result<Checked> {
        let wanted = self.parameters(ctx)?;
        self.probe(ctx, wanted)
    }

    /// What the site config's parameters ask for, read and checked without asking the
    /// deployment anything: versions, nodes and containers, nginx's parameters, limits, numbers.
    fn parameters(&self, ctx: &Context) -> Result<Wanted> {
        check_hop("ODC", self.name, self.sources, self.target, ctx, ", or correct the version in the site config")?;
        let p = Params(ctx);
        let layout: Vec<(String, String)> = match p.get("node_containers") {
            Some(text) => parse_node_containers(text)?,
            None => {
                let name = p.or("container", "obodc");
                let nodes = if ctx.nodes.is_empty() { vec!["local".to_string()] } else { ctx.nodes.clone() };
                nodes.into_iter().map(|n| (n, name.clone())).collect()
            }
        };
        if p.get("nginx_container").is_none() {
            for k in ["nginx_node", "nginx_image", "nginx_image_archive", "nginx_health"] {
                if p.get(k).is_some() {
                    return Err(invalid(format!(
                        "parameter {k} is set but nginx_container is not: set nginx_container to the nginx container's name, or remove {k}"
                    )));
                }
            }
        }
        if p.get("nginx_image_archive").is_some() && p.get("nginx_image").is_none() {
            return Err(invalid("parameter nginx_image_archive is set but nginx_image is not: set nginx_image to the tag in that archive"));
        }
        let memory = match p.get("memory") {
            None => None,
            Some(m) => {
                Some(parse_memory(m).ok_or_else(|| invalid(format!("parameter memory = {m:?} is not a size: write it as docker does, e.g. 8G or 512M")))?)
            }
        };
        let cpu_quota = match p.get("cpu_quota") {
            None => None,
            Some(q) => Some(q.parse::<i64>().map_err(|_| invalid(format!("parameter cpu_quota = {q:?} is not a whole number of microseconds")))?),
        };
        let all_at_once = match p.or("ha_order", "vendor").as_str() {
            "vendor" => true,
            "rolling" => false,
            other => {
                return Err(invalid(format!(
                    "parameter ha_order = {other:?} must be \"vendor\" (stop every node, back up, start every node: the vendor's order) or \"rolling\""
                )))
            }
        };
        Ok(Wanted {
            layout,
            connection: p.or("connection", "metadb"),
            cpu_period: p.get("cpu_period").map(|_| p.number("cpu_period", CPU_PERIOD)).transpose()?,
            cpu_quota,
            memory,
            stop_timeout_s: p.number("stop_timeout_s", 30)? as u32,
            healthy_timeout_s: p.number("healthy_timeout_s", 600)?,
            poll_s: p.number("poll_interval_s", 5)?.max(1),
            all_at_once,
        })
    }

    /// The deployment as the parameters describe it: every node's running ODC container and
    /// their one MetaDB, the new image on every node, the nginx container; refused with what to
    /// change when it is not as described.
    fn probe(&self, ctx: &Context, w: Wanted) -> Result<Checked> {
        let p = Params(ctx);
        let layout = w.layout.clone();
        let many = layout.len() > 1;
        let mut nodes: Vec<OdcNode> = Vec::new();
        for (node, name) in layout {
            let fix = if many {
                "set parameter node_containers to each node's ODC container (node=container,…)"
            } else {
                "set parameter container to the ODC container's name (docker ps on that node)"
            };
            let old = container::require(&node, &name, fix)?;
            if !running(old.state) {
                return Err(invalid(format!(
                    "container {name} on node {node} is {}, not running: start it (docker start {name}) so the upgrade starts from a working ODC",
                    state_name(old.state)
                )));
            }
            match version_in_image(&old.spec.image) {
                Some(v) if v != ctx.source_version => {
                    return Err(invalid(format!(
                        "container {name} on node {node} runs {} (ODC {v}), not ODC {}: correct the version in the site config",
                        old.spec.image, ctx.source_version
                    )))
                }
                _ => {}
            }
            for key in REQUIRED_ENV {
                if env_value(&old.spec, key).is_none() {
                    return Err(invalid(format!("container {name} on node {node} has no {key} in its environment: it is not an ODC server container; set parameter container (or node_containers) to the ODC container")));
                }
            }
            nodes.push(OdcNode { node, old });
        }
        // Every node must use one MetaDB: that is what makes them one HA ODC.
        let first = &nodes[0];
        let where_of = |s: &RunSpec| ["DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME"].map(|k| env_value(s, k).unwrap_or("").to_string()).join(" ");
        for n in &nodes[1..] {
            if where_of(&n.old.spec) != where_of(&first.old.spec) {
                return Err(invalid(format!(
                    "container {} on node {} uses MetaDB {} but {} on node {} uses {}: the nodes of one ODC share one MetaDB; list only one deployment's nodes in node_containers",
                    n.old.spec.name,
                    n.node,
                    where_of(&n.old.spec),
                    first.old.spec.name,
                    first.node,
                    where_of(&first.old.spec)
                )));
            }
        }
        let env_db = env_value(&first.old.spec, "DATABASE_NAME").unwrap_or_default().to_string();
        let database = p.or("database", env_db.clone());
        if database != env_db {
            return Err(invalid(format!(
                "parameter database = {database} but container {} on node {} uses DATABASE_NAME={env_db}: set parameter database to {env_db} (or leave it out)",
                first.old.spec.name, first.node
            )));
        }
        let connection = w.connection.clone();
        if !sql::database_exists(&connection, &database).within(&format!("checking the ODC MetaDB {database}"))? {
            return Err(not_found(format!(
                "database {database} (DATABASE_NAME of {}) does not exist on MetaDB connection {connection}: point [metadb.{connection}] of the site config at the MetaDB the ODC containers use ({}:{}), or set parameter connection",
                first.old.spec.name,
                env_value(&first.old.spec, "DATABASE_HOST").unwrap_or("?"),
                env_value(&first.old.spec, "DATABASE_PORT").unwrap_or("?")
            )));
        }
        let schema = schema_version(&connection, &database);
        let image = match p.get("image") {
            Some(i) => i.to_string(),
            None => image_with_version(&first.old.spec.image, &ctx.source_version, self.target)
                .ok_or_else(|| invalid(format!("cannot derive the new image from {}: set parameter image", first.old.spec.image)))?,
        };
        for n in &nodes {
            if n.old.spec.image == image {
                return Err(invalid(format!("container {} on node {} already runs {image}: correct the version in the site config", n.old.spec.name, n.node)));
            }
        }
        let archive = p.get("image_archive").map(str::to_string);
        if archive.is_none() {
            for n in &nodes {
                if !docker::image_exists(&n.node, &image).within(&format!("checking image {image} on node {}", n.node))? {
                    return Err(not_found(format!(
                        "image {image} is not on node {} and parameter image_archive is not set: set image_archive to the ODC {} image archive (and name it in the site config), or docker load it on that node",
                        n.node, self.target
                    )));
                }
            }
        }
        let nginx = match p.get("nginx_container") {
            None => None,
            Some(name) => {
                let node = p.get("nginx_node").map(str::to_string).unwrap_or_else(|| nodes[0].node.clone());
                if nodes.iter().any(|n| n.node == node && n.old.spec.name == name) {
                    return Err(invalid(format!(
                        "nginx_container {name} on node {node} is an ODC node's container: set nginx_container to the nginx container"
                    )));
                }
                let old = container::require(
                    &node,
                    name,
                    "set parameter nginx_container to the nginx container's name (and nginx_node to its node), or leave it out when there is no nginx",
                )?;
                let image = p.get("nginx_image").map(str::to_string);
                let archive = p.get("nginx_image_archive").map(str::to_string);
                if let Some(i) = &image {
                    if *i == old.spec.image {
                        return Err(invalid(format!("nginx container {name} on node {node} already runs {i}: leave nginx_image out")));
                    }
                    if archive.is_none() && !docker::image_exists(&node, i).within(&format!("checking image {i} on node {node}"))? {
                        return Err(not_found(format!("image {i} is not on node {node} and parameter nginx_image_archive is not set: set nginx_image_archive to its archive (named in the site config), or docker load it there")));
                    }
                }
                Some(Nginx { node, old, image, archive, health: p.get("nginx_health").map(str::to_string) })
            }
        };
        Ok(Checked {
            nodes,
            image,
            archive,
            metadb: MetaDb { connection, databases: vec![("odc".into(), database)] },
            schema,
            nginx,
            cpu_period: w.cpu_period,
            cpu_quota: w.cpu_quota,
            memory: w.memory,
            stop_timeout_s: w.stop_timeout_s,
            healthy_timeout_s: w.healthy_timeout_s,
            poll_s: w.poll_s,
            all_at_once: w.all_at_once,
        })
    }
}
