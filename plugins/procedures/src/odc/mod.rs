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
//!
//! Files: this one holds the hop's data ([`OdcHop`]), what the prechecks establish ([`Checked`])
//! and the steps both procedures share; `check.rs` reads the parameters and then probes the
//! deployment; `plan.rs` the manifest and the plan; `upgrade.rs` and `rollback.rs` the procedures.

mod check;
mod plan;
mod rollback;
mod upgrade;

use crate::bindings::opshost::plugin::docker::{self, ContainerInfo, ContainerState, RunSpec};
use crate::bindings::opshost::plugin::{console, sql};
use crate::container::{self};
use crate::ctx::{failed, info, invalid, wait_until, Result, Within};
use crate::metadb::MetaDb;
use crate::{Context, Manifest, Plan};

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
    /// What `hop_plugin!(OdcHop { … })` fills in for the fields a plugin leaves out.
    pub const DEFAULTS: OdcHop = OdcHop { name: "", sources: &[], target: "", notes: &[] };
}

/// ODC releases of the 4.x line the vendor's release notes name (4.0.0 to 4.3.x; odc-doc's
/// `en-US/1400.odc-rn/`): every ODC release note says "You can directly upgrade ODC V2.0.0 and
/// later to this version".
pub const ODC_4_RELEASES_BEFORE_4_3: &[&str] = &["4.0.0", "4.0.2", "4.1.0", "4.1.1", "4.1.2", "4.1.3", "4.2.0", "4.2.1", "4.2.2", "4.2.3", "4.2.4"];

/// What the vendor's release notes ask an operator to read first when the source is older than
/// 4.2.0 (its "Considerations"): what does not survive the upgrade.
fn considerations(source: &str) -> Option<String> {
    (schema_key(source) < schema_key("4.2.0")).then(|| {
        format!(
            "confirm before you answer yes (vendor's release notes, Considerations, for sources before 4.2.0; this one is {source}): connections become data sources, and of a public connection's read-only and read/write accounts only the read/write one is kept; the private_connection and apply_connection roles, resource groups and connection access privileges no longer take effect (access is by project); system settings, the task process and session history are obsolete; tickets show only their own initiator's; partitioning plans and SQL plans created before 4.2.0 stop running; data desensitization configured before 4.2.0 stops taking effect"
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

impl crate::Hop for OdcHop {
    fn manifest(&self) -> Manifest {
        OdcHop::manifest(self)
    }
    fn plan(&self, ctx: &Context) -> Result<Plan> {
        OdcHop::plan(self, ctx)
    }
    fn upgrade(&self, ctx: &Context) -> Result<()> {
        OdcHop::upgrade(self, ctx)
    }
    fn rollback(&self, ctx: &Context) -> Result<()> {
        OdcHop::rollback(self, ctx)
    }
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
