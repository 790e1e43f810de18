//! Scenario files (TOML): the initial state of a fake deployment, faults to inject, and what
//! must hold after plan, upgrade and rollback. See `plugins/oms-4.2.0/scenarios/` for examples.

use crate::capabilities::console::config::ConsoleConfig;
use crate::capabilities::docker::fake::DockerSetup;
use crate::runtime::record::FaultRule;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A scenario file this one builds on (relative path): its tables merge, lists replace.
    #[serde(default)]
    pub base: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub product: String,
    pub source: String,
    pub target: String,
    /// Which exports to call, in order: "plan", "upgrade", "rollback".
    #[serde(default = "default_steps")]
    pub steps: Vec<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default = "default_nodes")]
    pub nodes: Vec<String>,
    /// What the operator answers to confirmations.
    #[serde(default = "yes")]
    pub confirm: bool,
    #[serde(default = "default_clock")]
    pub clock_start_ms: u64,
    #[serde(default)]
    pub docker: DockerSetup,
    #[serde(default)]
    pub sql: SqlSetup,
    pub console: ConsoleConfig,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// What the site grants the plugin (capability -> patterns); absent: all its manifest needs.
    #[serde(default)]
    pub grants: Option<crate::grants::GrantTable>,
    /// Sandbox limits for this scenario (default: the host's defaults).
    #[serde(default)]
    pub limits: Option<crate::config::Limits>,
    #[serde(default)]
    pub expect: Expectations,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSetup {
    #[serde(default = "default_connections")]
    pub connections: Vec<String>,
    /// Database name -> SQL script creating and filling it.
    #[serde(default)]
    pub databases: BTreeMap<String, String>,
}

impl Default for SqlSetup {
    fn default() -> Self {
        SqlSetup { connections: default_connections(), databases: BTreeMap::new() }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    pub plan: Option<Expect>,
    pub upgrade: Option<Expect>,
    pub rollback: Option<Expect>,
}

/// What must hold after one step.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// "ok" or "error".
    #[serde(default = "ok")]
    pub outcome: String,
    /// Text the error message must contain.
    #[serde(default)]
    pub error_contains: Option<String>,
    /// Error kind: denied, not-found, invalid-input, failed, timeout.
    #[serde(default)]
    pub error_kind: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerExpect>,
    /// Parameter name -> exact value.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Parameters whose value must equal the one before the scenario ran.
    #[serde(default)]
    pub parameters_as_initial: Vec<String>,
    /// JSON parameters that must equal their value before the scenario ran but for the named
    /// fields, e.g. `{ "ha.config" = ["refetchStoreIntervalMin"] }` (the vendor's rollback sets it).
    #[serde(default)]
    pub parameters_as_initial_except: BTreeMap<String, Vec<String>>,
    /// Databases whose content checksum must equal the one before the scenario ran; parameters
    /// this step expects at new values (`parameters`, `parameters_as_initial_except`) are
    /// compared as they were before.
    #[serde(default)]
    pub databases_as_initial: Vec<String>,
    #[serde(default)]
    pub queries: Vec<QueryExpect>,
    #[serde(default)]
    pub notices_contain: Vec<String>,
    /// Text no notice may contain.
    #[serde(default)]
    pub notices_absent: Vec<String>,
    /// Text the plan's findings or steps must contain.
    #[serde(default)]
    pub plan_contains: Vec<String>,
    /// Calls (by name) that must have happened in this step, in this order (others may interleave).
    #[serde(default)]
    pub calls_in_order: Vec<String>,
    /// Calls that must not have happened in this step.
    #[serde(default)]
    pub calls_absent: Vec<String>,
    /// How many times a call happened in this step, e.g. docker_init.sh per node:
    /// `{ call = "docker.exec", matching = '"node":"hz-1"', count = 1 }`.
    #[serde(default)]
    pub call_counts: Vec<CallCount>,
    /// Images that must be present on node "local".
    #[serde(default)]
    pub images: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerExpect {
    #[serde(default = "local")]
    pub node: String,
    pub name: String,
    /// running, exited, …, or "absent".
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// `KEY=value` entries the env must hold.
    #[serde(default)]
    pub env: Vec<String>,
    /// `KEY` entries the env must not hold.
    #[serde(default)]
    pub env_absent: Vec<String>,
    /// Its whole spec (image, env, mounts, options) equals what it was before the scenario.
    #[serde(default)]
    pub unchanged: bool,
    /// Its mounts equal those this other container had before the scenario.
    #[serde(default)]
    pub mounts_as: Option<String>,
    #[serde(default)]
    pub network_mode: Option<String>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub privileged: Option<bool>,
    /// e.g. "nproc=65535:65535".
    #[serde(default)]
    pub ulimits: Vec<String>,
}

/// The number of calls of one name, optionally only those whose JSON arguments contain a text.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallCount {
    /// WIT call name, e.g. "docker.exec".
    pub call: String,
    /// Only calls whose JSON arguments contain this text count (as in `faults`).
    #[serde(default)]
    pub matching: Option<String>,
    pub count: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryExpect {
    pub database: String,
    pub sql: String,
    /// Rows as text; NULL is "NULL".
    pub rows: Vec<Vec<String>>,
}

fn default_steps() -> Vec<String> {
    vec!["plan".into(), "upgrade".into(), "rollback".into()]
}
fn default_nodes() -> Vec<String> {
    vec!["local".into()]
}
fn default_connections() -> Vec<String> {
    vec!["metadb".into()]
}
fn default_clock() -> u64 {
    // 2026-01-01T00:00:00Z
    1_767_225_600_000
}
fn yes() -> bool {
    true
}
fn ok() -> String {
    "ok".into()
}
fn local() -> String {
    "local".into()
}

/// Merge `top` over `base`: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(b), toml::Value::Table(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

impl Scenario {
    /// Parse layers in order (a base first, the scenario last).
    pub fn parse_layers(layers: &[&str], origin: &str) -> Result<Scenario> {
        let mut value = toml::Value::Table(Default::default());
        for text in layers {
            let layer: toml::Value = toml::from_str(text).with_context(|| format!("scenario {origin} is not valid TOML"))?;
            merge(&mut value, layer);
        }
        let s: Scenario = value.try_into().with_context(|| format!("scenario {origin} is not valid"))?;
        s.validate(origin)?;
        Ok(s)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Scenario> {
        Self::parse_layers(&[text], origin)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        for step in &self.steps {
            anyhow::ensure!(matches!(step.as_str(), "plan" | "upgrade" | "rollback"), "scenario {origin}: unknown step {step:?} (plan, upgrade, rollback)");
        }
        for (name, e) in [("plan", &self.expect.plan), ("upgrade", &self.expect.upgrade), ("rollback", &self.expect.rollback)] {
            if let Some(e) = e {
                anyhow::ensure!(self.steps.iter().any(|x| x == name), "scenario {origin}: expectations for {name}, which the scenario does not run");
                anyhow::ensure!(matches!(e.outcome.as_str(), "ok" | "error"), "scenario {origin}: expect.{name}.outcome must be \"ok\" or \"error\"");
            }
        }
        Ok(())
    }

    /// Load a scenario file and, recursively, the files it names as `base`.
    pub fn load(path: &Path) -> Result<Scenario> {
        let mut layers = Vec::new();
        let mut next = Some(path.to_path_buf());
        while let Some(p) = next.take() {
            anyhow::ensure!(layers.len() < 8, "scenario {}: more than 8 levels of base", path.display());
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading scenario {}", p.display()))?;
            let value: toml::Value = toml::from_str(&text).with_context(|| format!("scenario {} is not valid TOML", p.display()))?;
            if let Some(base) = value.get("base").and_then(|b| b.as_str()) {
                next = Some(p.parent().unwrap_or(Path::new(".")).join(base));
            }
            layers.push(text);
        }
        layers.reverse();
        let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
        Self::parse_layers(&refs, &path.display().to_string())
    }
}
