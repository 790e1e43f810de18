//! The ODC hop (seeds odc-upgrade-overview.md and odc-rollback-after-failed-upgrade.md), single
//! node or HA, parameterised by [`OdcHop`]. Every ODC node's container is inspected (its whole
//! run spec recorded before anything changes); then, in the vendor's order, every node is stopped
//! and removed, the MetaDB is backed up and verified once with nothing writing (ODC migrates its
//! schema when it starts), and the new image runs on each node with the same `DATABASE_*`,
//! `ODC_*`, mounts, limits, ports and restart policy, each awaited until its
//! `/api/v1/heartbeat/isHealthy` answers (`ha_order = "rolling"` goes node by node instead); then,
//! optionally, the nginx container is swapped the same way. Rollback restores the MetaDB *before*
//! the old image starts (the vendor's newer rollback page does too; the old ODC refuses a schema
//! the new one migrated), then runs the old containers from their recorded specs and waits until
//! each answers healthy.

use crate::bindings::opshost::plugin::docker::{self, ContainerInfo, ContainerState, RunSpec};
use crate::bindings::opshost::plugin::{console, host, sql};
use crate::container::{self, env_value, state_name};
use crate::ctx::{failed, info, invalid, not_found, now_ms, recall, record, step, wait_until, warn, Params, Result, Within};
use crate::metadb::MetaDb;
use crate::version::{image_with_version, version_in_image};
use crate::{Context, Manifest, Need, ParameterSpec, Plan, Step};

/// What one ODC release's upgrade is, as data.
pub struct OdcHop {
    /// Plugin name, e.g. "odc-4.3.0".
    pub name: &'static str,
    pub sources: &'static [&'static str],
    pub target: &'static str,
    /// What the plan says about where this hop's facts come from (which vendor page names the
    /// sources).
    pub notes: &'static [&'static str],
}

impl OdcHop {
    /// What `odc_plugin!(OdcHop { … })` fills in for the fields a plugin leaves out.
    pub const DEFAULTS: OdcHop = OdcHop { name: "", sources: &[], target: "", notes: &[] };
}

/// ODC releases of the 4.x line the vendor's release notes name (4.1.0 to 4.3.x): every ODC
/// release note says "You can directly upgrade ODC V2.0.0 and later to this version".
pub const ODC_4_RELEASES_BEFORE_4_3: &[&str] = &["4.1.0", "4.1.1", "4.1.2", "4.1.3", "4.2.0", "4.2.1", "4.2.2", "4.2.3", "4.2.4"];

/// What the vendor's release notes ask an operator to read first when the source is older than
/// 4.2.0 (its "Considerations"): what does not survive the upgrade.
fn considerations(source: &str) -> Option<String> {
    (schema_key(source) < schema_key("4.2.0")).then(|| {
        format!(
            "confirm before you answer yes (vendor's release notes, Considerations, for sources before 4.2.0; this one is {source}): connections become data sources and the private_connection and apply_connection roles are dropped; partitioning plans and SQL plans created before 4.2.0 stop running; data desensitization configured before 4.2.0 stops taking effect"
        )
    })
}

/// The vendor's `docker run` limits: `--cpu-period 100000 --cpu-quota 400000 --memory 8G`.
pub const CPU_PERIOD: u64 = 100_000;
pub const CPU_QUOTA: i64 = 400_000;
pub const MEMORY: u64 = 8 << 30;

const OLD_KEY: &str = "odc.old";
const NGINX_OLD_KEY: &str = "odc.nginx.old";
const NEW_STARTED_KEY: &str = "odc.new-started";
const NGINX_SWAPPED_KEY: &str = "odc.nginx.swapped";
/// What an ODC server container must have in its environment.
const REQUIRED_ENV: &[&str] = &["DATABASE_HOST", "DATABASE_PORT", "DATABASE_USERNAME", "DATABASE_NAME"];

/// One ODC node: its Docker node (and console health key) and its running container.
struct OdcNode {
    node: String,
    old: ContainerInfo,
}

struct Nginx {
    node: String,
    old: ContainerInfo,
    /// The image to upgrade it to; none: nginx is left as it is.
    image: Option<String>,
    archive: Option<String>,
    /// A key of the console's health URLs that goes through nginx.
    health: Option<String>,
}

/// Everything the prechecks established; shared by plan and upgrade.
struct Checked {
    nodes: Vec<OdcNode>,
    image: String,
    archive: Option<String>,
    metadb: MetaDb,
    schema: Option<String>,
    nginx: Option<Nginx>,
    cpu_period: Option<u64>,
    cpu_quota: Option<i64>,
    memory: Option<u64>,
    stop_timeout_s: u32,
    healthy_timeout_s: u64,
    poll_s: u64,
    /// Every node stops before the backup and before any new ODC starts (the vendor's order);
    /// false: node by node, the backup after the first stop ("rolling").
    all_at_once: bool,
}

impl Checked {
    fn database(&self) -> &str {
        &self.metadb.databases[0].1
    }
    fn ha(&self) -> bool {
        self.nodes.len() > 1
    }
    /// "node a" or "nodes a, b".
    fn nodes_phrase(&self) -> String {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.node.as_str()).collect();
        if names.len() == 1 {
            format!("node {}", names[0])
        } else {
            format!("nodes {}", names.join(", "))
        }
    }
    /// The new container of a node: the old spec with the new image, on the host network, with
    /// the CPU and memory limits (parameter, else the old container's, else the vendor's).
    /// The new ODC: the old container's options (network, published ports, restart policy, … all
    /// carried over by the host), the new image, and the vendor's limits where the old had none.
    fn new_spec(&self, old: &RunSpec) -> RunSpec {
        let mut spec = old.clone();
        container::successor_of(&mut spec, &old.name);
        spec.image = self.image.clone();
        spec.interactive = true;
        spec.command = Vec::new();
        spec.cpu_period = Some(self.cpu_period.or(old.cpu_period).unwrap_or(CPU_PERIOD));
        spec.cpu_quota = Some(self.cpu_quota.or(old.cpu_quota).unwrap_or(CPU_QUOTA));
        spec.memory_bytes = Some(self.memory.or(old.memory_bytes).unwrap_or(MEMORY));
        spec
    }
}

fn nginx_spec(old: &RunSpec, image: &str) -> RunSpec {
    let mut spec = old.clone();
    container::successor_of(&mut spec, &old.name);
    spec.image = image.to_string();
    spec.command = Vec::new();
    spec
}

/// `8G`, `512m`, `1073741824`: bytes.
pub fn parse_memory(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

fn memory_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b => format!("{b}"),
    }
}

/// `docker run` as an operator would type it, secrets masked.
fn describe_run(spec: &RunSpec) -> String {
    let mut words = vec!["docker run -d -i".to_string(), format!("--net {}", spec.network_mode)];
    if let (Some(p), Some(q)) = (spec.cpu_period, spec.cpu_quota) {
        words.push(format!("--cpu-period {p} --cpu-quota {q}"));
    }
    if let Some(m) = spec.memory_bytes {
        words.push(format!("--memory {}", memory_text(m)));
    }
    words.push(format!("--name {}", spec.name));
    for (k, v) in &spec.env {
        words.push(format!("-e {k}={}", if k.contains("PASSWORD") { "***" } else { v.as_str() }));
    }
    for m in &spec.mounts {
        words.push(format!("-v {}:{}{}", m.source, m.target, if m.read_only { ":ro" } else { "" }));
    }
    words.push(spec.image.clone());
    words.join(" ")
}

/// `node=container,node=container`.
fn parse_node_containers(text: &str) -> Result<Vec<(String, String)>> {
    let bad = |why: String| {
        invalid(format!("parameter node_containers = {text:?}: {why}; write it as node=container,node=container (nodes as named in the site config)"))
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (node, name) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} has no '='")))?;
        let (node, name) = (node.trim(), name.trim());
        if node.is_empty() || name.is_empty() {
            return Err(bad(format!("{part:?} lacks a node or a container")));
        }
        if out.iter().any(|(n, c)| n == node && c == name) {
            return Err(bad(format!("{node}={name} is listed twice")));
        }
        if out.iter().any(|(n, _)| n == node) {
            return Err(bad(format!("node {node} is listed twice (its health is checked per node: give each ODC container its own node name)")));
        }
        out.push((node.to_string(), name.to_string()));
    }
    if out.is_empty() {
        return Err(bad("no node given".into()));
    }
    Ok(out)
}

fn schema_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The newest successful migration in `migrate_schema_history`, if the table is there.
fn schema_version(connection: &str, database: &str) -> Option<String> {
    let rows = sql::query(connection, database, "SELECT version FROM migrate_schema_history WHERE success = 1", &[]).ok()?;
    rows.rows
        .into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(sql::Value::Text(t)) => Some(t),
            _ => None,
        })
        .max_by_key(|v| schema_key(v))
}

fn running(s: ContainerState) -> bool {
    matches!(s, ContainerState::Running | ContainerState::Restarting)
}

/// Wait until `container` on `node` runs and the console's health URL `health` answers healthy;
/// fail at once, with its last log lines, if the container stops instead.
fn wait_healthy(node: &str, container: &str, health: Option<&str>, timeout_s: u64, poll_s: u64) -> Result<()> {
    let what = match health {
        Some(h) => format!("{container} on node {node} answering healthy (health URL {h})"),
        None => format!("{container} on node {node} running"),
    };
    wait_until(&what, timeout_s, poll_s, || {
        let c = container::inspect(node, container)?
            .ok_or_else(|| failed(format!("container {container} disappeared from node {node} while starting: run rollback")))?;
        container::fail_if_not_running(node, &c)?;
        match health {
            None => Ok(Some(())),
            Some(h) => Ok(console::health(h).within(&format!("checking the health of {container} on node {node}"))?.then_some(())),
        }
    })
}

/// Stop (if running) and remove a container.
fn stop_and_remove(node: &str, name: &str, timeout_s: u32) -> Result<()> {
    if let Some(c) = container::inspect(node, name)? {
        if matches!(c.state, ContainerState::Running | ContainerState::Restarting | ContainerState::Paused) {
            docker::stop(node, name, timeout_s).within(&format!("stopping {name} on node {node}"))?;
        }
        docker::remove(node, name, false).within(&format!("removing {name} on node {node}"))?;
    }
    Ok(())
}

/// Load an archive on a node (once per node) and check the image is there.
fn load(node: &str, archive: &Option<String>, image: &str, loaded: &mut Vec<(String, String)>) -> Result<()> {
    if let Some(a) = archive {
        if !loaded.iter().any(|(n, l)| n == node && l == a) {
            let tags = docker::load_image(node, a).within(&format!("loading image archive {a} on node {node}"))?;
            info(format!("loaded {} on node {node}", tags.join(", ")));
            loaded.push((node.to_string(), a.clone()));
        }
    }
    if !docker::image_exists(node, image).within(&format!("checking image {image} on node {node}"))? {
        return Err(invalid(format!(
            "image {image} is not on node {node} after loading {}: set parameter image (or nginx_image) to one of the archive's tags",
            archive.as_deref().unwrap_or("nothing")
        )));
    }
    Ok(())
}

impl OdcHop {
    pub fn manifest(&self) -> Manifest {
        let p = |name: &str, description: &str, default: Option<&str>| ParameterSpec {
            name: name.into(),
            description: description.into(),
            default: default.map(Into::into),
        };
        let need = |capability: &str, target: &str, why: &str| Need { capability: capability.into(), target: target.into(), why: why.into() };
        Manifest {
            name: self.name.into(),
            product: "odc".into(),
            sources: self.sources.iter().map(|s| s.to_string()).collect(),
            target: self.target.into(),
            needs: vec![
                need("docker", "*odc*", "inspect, stop and remove the ODC containers, run the new ones (and the old ones again on rollback)"),
                need("docker", "*nginx*", "swap the nginx container in front of an HA ODC (parameter nginx_container)"),
                need("image-archive", "*", "load the new ODC (and nginx) image from the archives named in parameters image_archive and nginx_image_archive"),
                need("sql", "*", "back up the ODC MetaDB before the new ODC migrates it, restore it on rollback"),
                need("console", "servers", "wait until each ODC node answers /api/v1/heartbeat/isHealthy"),
            ],
            parameters: vec![
                p("container", "name of the ODC container on every node", Some("obodc")),
                p("node_containers", "HA ODC whose containers are named differently per node: node=container,node=container (nodes as named in the site config, upgraded in this order); default: every node of the product with parameter container", None),
                p("image_archive", "new ODC image archive, as named in the site config, loaded on every node before the downtime (omit if the image is already loaded)", None),
                p("image", "new ODC image reference (default: the old image with the version replaced, e.g. odc-server:4.2.2 -> odc-server:<target>)", None),
                p("connection", "MetaDB connection name in the site config", Some("metadb")),
                p("database", "the ODC MetaDB database (default: DATABASE_NAME of the ODC containers)", None),
                p("cpu_period", "--cpu-period of the new containers (default: the old container's, else 100000)", None),
                p("cpu_quota", "--cpu-quota of the new containers (default: the old container's, else 400000)", None),
                p("memory", "--memory of the new containers, e.g. 8G (default: the old container's, else 8G)", None),
                p("nginx_container", "HA: the nginx container in front of the ODC nodes (omit when there is none)", None),
                p("nginx_node", "node of the nginx container (default: the first ODC node)", None),
                p("nginx_image", "new nginx image; without it the nginx container is left as it is", None),
                p("nginx_image_archive", "archive holding nginx_image, as named in the site config", None),
                p("nginx_health", "a node name of the console's health_urls whose URL goes through nginx, checked after the nginx swap", None),
                p("stop_timeout_s", "seconds docker stop waits before killing", Some("30")),
                p("healthy_timeout_s", "seconds to wait for each ODC node to answer healthy", Some("600")),
                p("poll_interval_s", "seconds between health checks, once the first quick ones (from 250 ms, doubling) found it not ready", Some("5")),
                p("ha_order", "HA ODC: \"vendor\" stops every node, backs up the MetaDB once, then starts the new version on every node (the vendor's process: no old node writes after the backup or serves on a migrated schema); \"rolling\" goes node by node (shorter outage, but the backup is taken while the other old nodes still write)", Some("vendor")),
            ],
        }
    }

    fn check(&self, ctx: &Context) -> Result<Checked> {
        if !self.sources.contains(&ctx.source_version.as_str()) {
            return Err(invalid(format!(
                "{} upgrades ODC from {} only, but this deployment is at {}: upgrade through the supported hops first (opshost plan --to {} lists the route), or correct the version in the site config",
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
        let layout: Vec<(String, String)> = match p.get("node_containers") {
            Some(text) => parse_node_containers(text)?,
            None => {
                let name = p.or("container", "obodc");
                let nodes = if ctx.nodes.is_empty() { vec!["local".to_string()] } else { ctx.nodes.clone() };
                nodes.into_iter().map(|n| (n, name.clone())).collect()
            }
        };
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
        let connection = p.or("connection", "metadb");
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
            None => {
                for k in ["nginx_node", "nginx_image", "nginx_image_archive", "nginx_health"] {
                    if p.get(k).is_some() {
                        return Err(invalid(format!(
                            "parameter {k} is set but nginx_container is not: set nginx_container to the nginx container's name, or remove {k}"
                        )));
                    }
                }
                None
            }
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
                if archive.is_some() && image.is_none() {
                    return Err(invalid("parameter nginx_image_archive is set but nginx_image is not: set nginx_image to the tag in that archive"));
                }
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
        Ok(Checked {
            nodes,
            image,
            archive,
            metadb: MetaDb { connection, databases: vec![("odc".into(), database)] },
            schema,
            nginx,
            cpu_period: p.get("cpu_period").map(|_| p.number("cpu_period", CPU_PERIOD)).transpose()?,
            cpu_quota,
            memory,
            stop_timeout_s: p.number("stop_timeout_s", 30)? as u32,
            healthy_timeout_s: p.number("healthy_timeout_s", 600)?,
            poll_s: p.number("poll_interval_s", 5)?.max(1),
            all_at_once: match p.or("ha_order", "vendor").as_str() {
                "vendor" => true,
                "rolling" => false,
                other => {
                    return Err(invalid(format!(
                        "parameter ha_order = {other:?} must be \"vendor\" (stop every node, back up, start every node: the vendor's order) or \"rolling\""
                    )))
                }
            },
        })
    }

    pub fn plan(&self, ctx: &Context) -> Result<Plan> {
        let c = self.check(ctx)?;
        let db = c.database().to_string();
        let mut findings = Vec::new();
        for n in &c.nodes {
            let s = &n.old.spec;
            findings.push(format!(
                "ODC {} in container {} ({}, image {}) on node {}: MetaDB {}:{}/{}, profile {}, port {}",
                ctx.source_version,
                s.name,
                state_name(n.old.state),
                s.image,
                n.node,
                env_value(s, "DATABASE_HOST").unwrap_or("?"),
                env_value(s, "DATABASE_PORT").unwrap_or("?"),
                env_value(s, "DATABASE_NAME").unwrap_or("?"),
                env_value(s, "ODC_PROFILE_MODE").unwrap_or("default"),
                env_value(s, "ODC_SERVER_PORT").unwrap_or("8989"),
            ));
            if !s.mounts.is_empty() {
                findings.push(format!("mounts of {} on node {}: {} (kept)", s.name, n.node, container::describe_mounts(s)));
            }
        }
        findings.extend(self.notes.iter().map(|n| n.to_string()));
        findings.extend(considerations(&ctx.source_version));
        findings.push(match &c.schema {
            Some(v) => format!(
                "MetaDB connection {}: database {db} exists, schema version {v} (migrate_schema_history); ODC {} migrates it when it starts",
                c.metadb.connection, self.target
            ),
            None => format!("MetaDB connection {}: database {db} exists (no migrate_schema_history found)", c.metadb.connection),
        });
        if c.ha() && c.all_at_once {
            findings.push(format!(
                "HA: {} ODC nodes, in the vendor's order: every node stops, the MetaDB is backed up once with nothing writing, then the new version starts on each node in turn (ha_order = \"rolling\" goes node by node instead)",
                c.nodes.len()
            ));
        } else if c.ha() {
            findings.push(format!(
                "HA: {} ODC nodes, upgraded one at a time (ha_order = \"rolling\"); each is healthy again before the next goes down. The MetaDB is backed up once the first node is down, while the others still run: what they write after the backup is lost if you roll back, and old nodes serve on the schema the first new one migrated",
                c.nodes.len()
            ));
        }
        match &c.nginx {
            Some(x) => findings.push(match &x.image {
                Some(i) => format!("nginx container {} ({}) on node {}: upgraded to {i} after the ODC nodes", x.old.spec.name, x.old.spec.image, x.node),
                None => format!("nginx container {} ({}) on node {}: left as it is (set nginx_image to upgrade it)", x.old.spec.name, x.old.spec.image, x.node),
            }),
            None if c.ha() => findings.push("no nginx container given (parameter nginx_container): only the ODC nodes are upgraded".into()),
            None => {}
        }
        let mut steps: Vec<Step> = Vec::new();
        match &c.archive {
            Some(a) => steps.push(step("load image", format!("load archive {a} on {} before the downtime; expect {}", c.nodes_phrase(), c.image), true)),
            None => steps.push(step("image present", format!("{} is already on {}", c.image, c.nodes_phrase()), false)),
        }
        if let Some(Nginx { image: Some(i), archive: Some(a), node, .. }) = &c.nginx {
            steps.push(step("load nginx image", format!("load archive {a} on node {node}; expect {i}"), true));
        }
        steps.push(step(
            "record",
            format!(
                "the run spec of every container ({}) in the run records, for rollback",
                c.nodes.iter().map(|n| format!("{} on {}", n.old.spec.name, n.node)).collect::<Vec<_>>().join(", ")
            ),
            false,
        ));
        let backup =
            step("back up MetaDB", format!("dump {db} before any new ODC starts; the dump must be non-empty and match the live database's checksum"), false);
        if c.all_at_once {
            for n in &c.nodes {
                let name = &n.old.spec.name;
                steps.push(step("stop and remove", format!("docker stop {name} and docker rm {name} on node {}", n.node), true));
            }
            steps.push(backup.clone());
        }
        for (i, n) in c.nodes.iter().enumerate() {
            let name = &n.old.spec.name;
            if !c.all_at_once {
                steps.push(step("stop and remove", format!("docker stop {name} and docker rm {name} on node {}", n.node), true));
                if i == 0 {
                    steps.push(backup.clone());
                }
            }
            let spec = container::check_run(&n.node, &c.new_spec(&n.old.spec))?;
            steps.push(step(
                "run new ODC",
                format!("on node {}: {}{}", n.node, describe_run(&spec), if i == 0 { format!(" (migrates the schema of {db})") } else { String::new() }),
                true,
            ));
            steps.push(step(
                "wait healthy",
                format!("GET /api/v1/heartbeat/isHealthy of node {} answers {{\"data\":true}} (at most {} s)", n.node, c.healthy_timeout_s),
                false,
            ));
        }
        if let Some(Nginx { image: Some(i), node, old, health, .. }) = &c.nginx {
            let name = &old.spec.name;
            let spec = container::check_run(node, &nginx_spec(&old.spec, i))?;
            steps.push(step("swap nginx", format!("docker stop {name} and docker rm {name} on node {node}, then {}", describe_run(&spec)), true));
            steps.push(step(
                "wait nginx",
                match health {
                    Some(h) => format!("{name} runs and the health URL of {h} answers healthy through it"),
                    None => format!("{name} runs"),
                },
                false,
            ));
        }
        steps.push(step("notice", "clear the browser cache before logging on to ODC", false));
        let mut rollback = vec![
            step("stop new containers", format!("docker stop and docker rm the new ODC containers on {}", c.nodes_phrase()), true),
            step("restore MetaDB", format!("drop, create and restore {db} from the verified backup, checksum checked, before any old ODC starts (ODC {} migrated the schema; ODC {} refuses to start on it)", self.target, ctx.source_version), true),
            step("run old ODC", format!("on {}: the old image with the recorded options, each waited for until healthy", c.nodes_phrase()), true),
        ];
        if let Some(Nginx { image: Some(_), old, .. }) = &c.nginx {
            rollback.push(step("nginx back", format!("{} from {} with its recorded options", old.spec.name, old.spec.image), true));
        }
        Ok(Plan { findings, steps, rollback })
    }

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

/// A whole ODC hop plugin from its [`OdcHop`]: the WIT exports and the component's export glue.
///
/// ```ignore
/// opshost_procedures::odc_plugin!(OdcHop { name: "odc-4.3.0", sources: &["4.2.2"], target: "4.3.0" });
/// ```
#[macro_export]
macro_rules! odc_plugin {
    // `OdcHop { … }` as the plugin wrote it (its own `use … OdcHop`), with the defaults after.
    ($hop_type:ident { $($field:ident : $value:expr),* $(,)? }) => {
        $crate::odc_plugin!(@hop $hop_type { $($field: $value,)* ..$hop_type::DEFAULTS });
    };
    ($hop:expr) => {
        $crate::odc_plugin!(@hop $hop);
    };
    (@hop $hop:expr) => {
        // `..DEFAULTS` is always appended, also when every field is given.
        #[allow(clippy::needless_update)]
        const HOP: $crate::odc::OdcHop = $hop;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("8G"), Some(8 << 30));
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("8 GB"), Some(8 << 30));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(memory_text(8 << 30), "8G");
        assert_eq!(memory_text(1536 << 20), "1536M");
    }

    #[test]
    fn node_containers() {
        assert_eq!(parse_node_containers("a=obodc, b=obodc2").unwrap(), vec![("a".into(), "obodc".into()), ("b".into(), "obodc2".into())]);
        assert!(parse_node_containers("a=obodc,a=other").unwrap_err().message().contains("node a is listed twice"));
        assert!(parse_node_containers("obodc").unwrap_err().message().contains("has no '='"));
    }

    #[test]
    fn schema_versions_order_numerically() {
        assert!(schema_key("4.3.0.10") > schema_key("4.3.0.2"));
        assert!(schema_key("4.10.0.1") > schema_key("4.9.9.9"));
    }
}
