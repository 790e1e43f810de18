//! OMS's own `config.yaml`, read from inside each OMS container (`docker.read-file`, which `plan`
//! may call): the deployment says which MetaDB databases it uses, its region (`cm_location`,
//! `cm_region`) and the servers of its region (`cm_nodes`). The file is the flat YAML of the
//! vendor's template: `key: value` lines and `key:` followed by `- item` lines; anything nested
//! deeper is kept as text and not interpreted.

use crate::bindings::opshost::plugin::docker;
use crate::ctx::{invalid, Result};
use crate::Error;
use std::collections::BTreeMap;

/// Where the vendor's `docker run` mounts the file.
pub const DEFAULT_PATH: &str = "/home/admin/conf/config.yaml";

/// One node's config.yaml, as far as the upgrade needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct OmsConfig {
    /// The file's text (secrets hidden by the host); equal texts on the nodes of a region that
    /// shares one file.
    pub text: String,
    scalars: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
}

impl OmsConfig {
    /// A top-level `key: value`, unquoted; None when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.scalars.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
    /// A top-level list (`key:` then `- item` lines, or `key: [a, b]`); a scalar counts as a
    /// list of one.
    pub fn list(&self, key: &str) -> Vec<String> {
        match (self.lists.get(key), self.get(key)) {
            (Some(l), _) => l.clone(),
            (None, Some(v)) => vec![v.to_string()],
            (None, None) => Vec::new(),
        }
    }
    /// The facts the plan shows, e.g. "drc_rm_db rm_411, drc_cm_db cm_411, cm_location hangzhou".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = ["drc_rm_db", "drc_cm_db", "drc_cm_heartbeat_db", "cm_location", "cm_region"]
            .iter()
            .filter_map(|k| self.get(k).map(|v| format!("{k} {v}")))
            .collect();
        let nodes = self.list("cm_nodes");
        if !nodes.is_empty() {
            parts.push(format!("cm_nodes {}", nodes.join(", ")));
        }
        if parts.is_empty() {
            "none of drc_rm_db, drc_cm_db, drc_cm_heartbeat_db, cm_location, cm_nodes".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A scalar as YAML writes it: comments after ` #` dropped, quotes removed.
fn scalar(raw: &str) -> String {
    let raw = raw.trim();
    for q in ['"', '\''] {
        if raw.starts_with(q) {
            if let Some(end) = raw[1..].find(q) {
                return raw[1..1 + end].to_string();
            }
        }
    }
    let cut = raw.find(" #").map_or(raw, |i| &raw[..i]);
    cut.trim().to_string()
}

/// Parse the flat YAML of OMS's config.yaml; a line that is none of the shapes it has is an error
/// naming the line.
pub fn parse(text: &str) -> core::result::Result<OmsConfig, String> {
    let mut scalars = BTreeMap::new();
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The key whose indented lines follow (a block list, or a nested map kept uninterpreted).
    let mut open: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_end();
        let content = body.trim_start();
        if content.is_empty() || content.starts_with('#') || content == "---" {
            continue;
        }
        let indented = body.len() != content.len();
        if indented || content.starts_with("- ") || content == "-" {
            let Some(key) = &open else {
                return Err(format!("line {}: {content:?} is indented under no key", i + 1));
            };
            if let Some(item) = content.strip_prefix('-') {
                lists.entry(key.clone()).or_default().push(scalar(item));
            }
            continue;
        }
        let Some((key, value)) = content.split_once(':') else {
            return Err(format!("line {}: {content:?} is not `key: value`", i + 1));
        };
        let key = key.trim().to_string();
        let value = value.trim();
        if value.is_empty() || value.starts_with('#') {
            open = Some(key.clone());
            scalars.insert(key, String::new());
        } else if let Some(flow) = value.strip_prefix('[').and_then(|v| v.split(']').next()) {
            open = None;
            lists.insert(key.clone(), flow.split(',').map(scalar).filter(|s| !s.is_empty()).collect());
        } else {
            open = None;
            scalars.insert(key, scalar(value));
        }
    }
    Ok(OmsConfig { text: text.to_string(), scalars, lists })
}

/// The config.yaml of container `container` on `node`, read through the host (the container may
/// be stopped); errors name the container and the fix.
pub fn read(node: &str, container: &str, path: &str) -> Result<OmsConfig> {
    let text = docker::read_file(node, container, path).map_err(|e| match e {
        Error::NotFound(m) => invalid(format!(
            "cannot read OMS's config file in container {container} on node {node} ({m}): the vendor mounts it at {DEFAULT_PATH}; set parameter config_file to where this deployment mounts it"
        )),
        other => other.within(&format!("reading {path} in container {container} on node {node}")),
    })?;
    parse(&text).map_err(|why| invalid(format!("{path} in container {container} on node {node} is not the YAML OMS reads ({why}): correct the file")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_template_reads_as_written() {
        let text = "# OMS MetaDB\noms_meta_host: 10.0.0.9\noms_meta_password: <hidden by opshost>\ndrc_rm_db: rm_411   # rm\ndrc_cm_db: 'cm_411'\ndrc_cm_heartbeat_db: \"cm_hb1\"\ncm_url: http://10.0.1.1:8088\ncm_location: hangzhou\ncm_region: cn-hangzhou\ncm_is_default: true\ncm_nodes:\n - 10.0.1.1\n - 10.0.1.2 # second\ntsdb_enabled: false\nextra: [a, 'b']\nnested:\n  key: 1\n";
        let c = parse(text).unwrap();
        assert_eq!(c.get("drc_rm_db"), Some("rm_411"));
        assert_eq!(c.get("drc_cm_db"), Some("cm_411"));
        assert_eq!(c.get("drc_cm_heartbeat_db"), Some("cm_hb1"));
        assert_eq!(c.get("cm_url"), Some("http://10.0.1.1:8088"));
        assert_eq!(c.list("cm_nodes"), vec!["10.0.1.1", "10.0.1.2"]);
        assert_eq!(c.list("extra"), vec!["a", "b"]);
        assert_eq!(c.list("cm_location"), vec!["hangzhou"]);
        assert_eq!(c.get("nested"), None);
        assert!(c.summary().contains("cm_nodes 10.0.1.1, 10.0.1.2"));
    }

    #[test]
    fn what_is_not_flat_yaml_is_an_error_naming_the_line() {
        assert!(parse("  - 10.0.0.1\n").unwrap_err().contains("line 1"));
        assert!(parse("drc_rm_db: rm\njust words\n").unwrap_err().contains("line 2"));
        assert_eq!(parse("").unwrap().summary(), "none of drc_rm_db, drc_cm_db, drc_cm_heartbeat_db, cm_location, cm_nodes");
    }
}
