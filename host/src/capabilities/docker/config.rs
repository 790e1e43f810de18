//! The docker capability's part of the site config: `[nodes.NAME]` and `[docker_policy]`.

use serde::{Deserialize, Serialize};

/// A node in the site config (`[nodes.NAME]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2375` or `http://host:2375`; default: `DOCKER_HOST`, else the local socket.
    #[serde(default)]
    pub docker: Option<String>,
}

/// What the site allows containers to be run with, whatever a plugin asks (`[docker_policy]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunPolicy {
    /// Run containers without `--privileged` even when a plugin asks for it (e.g. where the engine refuses it).
    #[serde(default)]
    pub deny_privileged: bool,
    /// Environment variables that hold credentials, besides those whose names say so
    /// (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*KEY*`): plugins see a reference, never the value.
    #[serde(default)]
    pub secret_env: Vec<String>,
}

impl RunPolicy {
    /// What the plan shows about overrides.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.deny_privileged {
            v.push("site policy deny_privileged: containers run without --privileged even where the plugin asks for it".to_string());
        }
        v
    }
}
