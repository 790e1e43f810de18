//! The site config (TOML): nodes and their Docker engines, MetaDB connections, products, the
//! plugin, state and backup directories, sandbox limits and run policy. Credentials are named
//! (an environment variable or a file), never written in it.

use crate::capabilities::console::config::ConsoleConfig;
use crate::capabilities::docker::config::{NodeConfig, RunPolicy};
use crate::capabilities::sql::mysql::config::ConnectionConfig;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Run records, locks (default: ~/.local/state/opshost).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Where dumps go, one folder per run.
    pub backup_dir: PathBuf,
    #[serde(default)]
    pub plugins_dir: Option<PathBuf>,
    /// Public keys (PEM) of the vendors and of this site; a plugin must be signed by one of them.
    /// A key may be scoped to plugin names: `{ key = "vendor.pub", plugins = ["oms-*"] }`.
    #[serde(default)]
    pub trust: Vec<crate::registry::signature::TrustEntry>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub docker_policy: RunPolicy,
    /// Image archives plugins may load, besides each product's `image_archive` parameter.
    #[serde(default)]
    pub archives: Vec<PathBuf>,
    #[serde(default = "default_nodes")]
    pub nodes: BTreeMap<String, NodeConfig>,
    #[serde(default)]
    pub metadb: BTreeMap<String, ConnectionConfig>,
    #[serde(default)]
    pub products: BTreeMap<String, ProductConfig>,
    /// What each plugin (by manifest name) may touch: capability -> patterns.
    #[serde(default)]
    pub grants: BTreeMap<String, crate::grants::GrantTable>,
}

fn default_nodes() -> BTreeMap<String, NodeConfig> {
    BTreeMap::from([("local".to_string(), NodeConfig::default())])
}

/// One deployed product (`[products.oms]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// "oms" or "odc" (default: the section name).
    #[serde(default)]
    pub product: Option<String>,
    /// The version deployed before opshost's first upgrade; later runs track it.
    pub version: String,
    /// Nodes it runs on; the first is the primary.
    #[serde(default = "local")]
    pub nodes: Vec<String>,
    /// Passed to the plugin as its parameters (container, image_archive, rm_db, …).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Per-hop overrides of `parameters`, by the hop's target version: on a route
    /// 3.2.2 -> 3.3.0 -> 3.3.1 each hop needs its own `image_archive`, e.g.
    /// `[products.oms.hops."3.3.1"] image_archive = "/data/oms-3.3.1.tar.gz"`.
    #[serde(default)]
    pub hops: BTreeMap<String, BTreeMap<String, String>>,
    pub console: ProductConsole,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConsole {
    #[serde(flatten)]
    pub metadb: ConsoleConfig,
    /// Node name -> health URL, e.g. { local = "http://127.0.0.1:8089/oms/health" } (or https://).
    #[serde(default)]
    pub health_urls: BTreeMap<String, String>,
    /// PEM file of the CA that signed the product's HTTPS certificate (default: the Mozilla roots).
    #[serde(default)]
    pub health_ca_file: Option<PathBuf>,
    /// Do not verify the product's HTTPS certificate; every plan says so.
    #[serde(default)]
    pub health_insecure_tls: bool,
}

impl ProductConsole {
    /// How the health probe trusts an HTTPS answer.
    pub fn tls_trust(&self) -> crate::capabilities::console::http::TlsTrust {
        use crate::capabilities::console::http::TlsTrust;
        match (&self.health_ca_file, self.health_insecure_tls) {
            (_, true) => TlsTrust::Insecure,
            (Some(ca), false) => TlsTrust::CaFile(ca.clone()),
            (None, false) => TlsTrust::WebRoots,
        }
    }
}

fn local() -> Vec<String> {
    vec!["local".into()]
}

impl SiteConfig {
    pub fn load(path: &Path) -> Result<SiteConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading site config {}", path.display()))?;
        let c: SiteConfig = toml::from_str(&text).with_context(|| format!("site config {} is not valid", path.display()))?;
        for (name, p) in &c.products {
            for n in &p.nodes {
                anyhow::ensure!(c.nodes.contains_key(n), "site config: product {name} runs on node {n}, which has no [nodes.{n}] section");
            }
            anyhow::ensure!(
                c.metadb.contains_key(&p.console.metadb.connection),
                "site config: product {name} uses MetaDB connection {}, which has no [metadb.{}] section",
                p.console.metadb.connection,
                p.console.metadb.connection
            );
        }
        for (name, m) in &c.metadb {
            m.password(name)?;
        }
        Ok(c)
    }

    pub fn product(&self, name: &str) -> Result<&ProductConfig> {
        self.products.get(name).with_context(|| {
            format!("the site config has no [products.{name}] section; it has: {}", self.products.keys().cloned().collect::<Vec<_>>().join(", "))
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(|| PathBuf::from("."))
                .join("opshost")
        })
    }

    /// Every archive a plugin may load: `[archives]` and each product's `image_archive`.
    pub fn allowed_archives(&self) -> Vec<PathBuf> {
        let mut v = self.archives.clone();
        for p in self.products.values() {
            for params in std::iter::once(&p.parameters).chain(p.hops.values()) {
                if let Some(a) = params.get("image_archive") {
                    v.push(PathBuf::from(a));
                }
            }
        }
        v
    }
}

impl ProductConfig {
    pub fn kind<'a>(&'a self, section: &'a str) -> &'a str {
        self.product.as_deref().unwrap_or(section)
    }

    /// The parameters of the hop to `target`: `parameters` with `hops."<target>"` on top.
    pub fn parameters_for(&self, target: &str) -> BTreeMap<String, String> {
        let mut merged = self.parameters.clone();
        if let Some(over) = self.hops.get(target) {
            merged.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
    }
}

/// Sandbox limits; `[limits]` in the site config, with safe defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory a plugin may grow to, all its memories together.
    pub memory_mb: u64,
    /// CPU time the plugin's own code may use per call (time in host calls does not count).
    pub cpu_seconds: u64,
    /// Deadline of an ordinary host call.
    pub call_timeout_s: u64,
    /// Deadline of dumps, restores, image loads, exec and waits.
    pub long_call_timeout_s: u64,
    /// Largest arguments or result one host call may carry (JSON bytes).
    pub max_payload_bytes: usize,
    /// Longest single sleep a plugin may ask for.
    pub max_sleep_ms: u64,
    /// Sleep a plugin may ask for in total within one of its calls (plan, upgrade, rollback).
    pub max_total_sleep_s: u64,
    /// Host calls a plugin may make within one of its calls.
    pub max_host_calls: u64,
    /// Wall-clock deadline of one plugin call (plan, upgrade, rollback), host calls included.
    pub export_timeout_s: u64,
    /// Notices a plugin may leave for the operator in one call; more are dropped with a warning.
    pub max_notices: usize,
    /// What a plugin may write to the run log in one call (log lines and progress labels, as
    /// written); more is dropped with a warning.
    pub max_log_mb: u64,
    /// Table elements, in all of a plugin's tables together.
    pub max_table_elements: u64,
    /// Size of the run journal (one operation); past it the run stops at the next call.
    pub max_journal_mb: u64,
    /// Backups one run may take, and their bytes together: a plugin cannot fill the backup disk
    /// by dumping its databases over and over.
    pub max_backups: u32,
    pub max_backup_gb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 256,
            cpu_seconds: 60,
            call_timeout_s: 300,
            long_call_timeout_s: 6 * 3600,
            max_payload_bytes: 16 << 20,
            max_sleep_ms: 600_000,
            max_total_sleep_s: 4 * 3600,
            max_host_calls: 100_000,
            export_timeout_s: 24 * 3600,
            max_notices: 100,
            max_log_mb: 64,
            max_table_elements: 1 << 20,
            max_journal_mb: 1024,
            max_backups: 64,
            max_backup_gb: 1024,
        }
    }
}

impl Limits {
    /// Cut a plugin-provided string for output to a sane size.
    pub fn clip(&self, mut s: String) -> String {
        const MAX: usize = 64 * 1024;
        if s.len() > MAX {
            let mut end = MAX;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str(" …[clipped]");
        }
        s
    }
}
