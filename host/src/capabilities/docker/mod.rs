//! docker capability: the `Docker` trait, its WIT glue, what a plugin's containers may be
//! ([`policy`]), and backends ([`real::BollardDocker`], [`fake::FakeDocker`]).

pub mod archive;
pub mod config;
pub mod conformance;
pub mod fake;
mod glue;
pub mod policy;
pub mod real;

use async_trait::async_trait;

pub use crate::bindings::opshost::plugin::docker::{ContainerInfo, ContainerState, ExecResult, Mount, RunSpec, Ulimit};
use crate::bindings::Error;

/// A set of Docker engines, addressed by node name.
#[async_trait]
pub trait Docker: Send + Sync {
    async fn inspect(&self, node: &str, container: &str) -> Result<Option<ContainerInfo>, Error>;
    async fn stop(&self, node: &str, container: &str, timeout_s: u32) -> Result<(), Error>;
    async fn start(&self, node: &str, container: &str) -> Result<(), Error>;
    async fn restart(&self, node: &str, container: &str, timeout_s: u32) -> Result<(), Error>;
    async fn remove(&self, node: &str, container: &str, force: bool) -> Result<(), Error>;
    /// Create and start `spec`. With a `template` (what [`Docker::template`] gave for the container
    /// this one succeeds), every option of that container that a run spec cannot say (published
    /// ports, restart policy, hostname, log driver, extra hosts, capabilities, devices, DNS, user,
    /// working directory, entrypoint, health check, other ulimits, …) is carried over, and the
    /// spec's fields replace the rest.
    async fn run(&self, node: &str, spec: &RunSpec, template: Option<&serde_json::Value>) -> Result<String, Error>;
    /// Create `spec` as [`Docker::run`] would, without starting it.
    async fn create(&self, node: &str, spec: &RunSpec, template: Option<&serde_json::Value>) -> Result<String, Error>;
    /// A container's whole create options, for a successor; None when it does not exist (or the
    /// backend keeps nothing beyond the run spec).
    async fn template(&self, _node: &str, _container: &str) -> Result<Option<serde_json::Value>, Error> {
        Ok(None)
    }
    /// The names of every container on a node (the host's own checks of the site config, never a
    /// plugin's call); empty where the backend cannot tell.
    async fn container_names(&self, _node: &str) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
    /// Whether the node's engine refuses `--privileged` containers: the engine's words when it
    /// does (the host's own plan-time check, never a plugin's call). The real backend starts a
    /// throwaway privileged container of `image` with no network and an entrypoint that does not
    /// exist, so nothing of the image runs, and removes it; an engine that may not grant every
    /// capability fails it with "unable to apply caps" before it looks for the entrypoint.
    async fn refuses_privileged(&self, _node: &str, _image: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
    async fn load_image(&self, node: &str, archive: &str) -> Result<Vec<String>, Error>;
    async fn image_exists(&self, node: &str, image: &str) -> Result<bool, Error>;
    async fn exec(&self, node: &str, container: &str, command: &[String]) -> Result<ExecResult, Error>;
    async fn logs(&self, node: &str, container: &str, tail: u32) -> Result<String, Error>;
    /// The bytes of one regular file in the container (mounts included), at most [`READ_FILE_MAX`];
    /// the path is already checked by [`policy::check_file_path`].
    async fn read_file(&self, node: &str, container: &str, path: &str) -> Result<Vec<u8>, Error>;
}

/// The largest file `docker.read-file` returns.
pub const READ_FILE_MAX: usize = 1 << 20;

/// What `docker.read-file` puts in place of a secret's value.
pub const HIDDEN: &str = "<hidden by opshost>";

/// A file's text with the value of every `key: value` (or `key = value`) line whose key names a
/// password, secret, token or private key replaced by [`HIDDEN`].
pub fn hide_secret_lines(text: &str) -> String {
    let secret = |key: &str| {
        let k = key.to_ascii_lowercase();
        ["password", "passwd", "pwd", "secret", "token", "private_key", "private-key", "privatekey", "credential"].iter().any(|w| k.contains(w))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        match body.find([':', '=']) {
            Some(i) if !body.trim_start().starts_with('#') && secret(body[..i].trim()) && !body[i + 1..].trim().is_empty() => {
                out.push_str(&body[..i + 1]);
                out.push(' ');
                out.push_str(HIDDEN);
            }
            _ => out.push_str(body),
        }
        out.push_str(ending);
    }
    out
}

/// The label that makes a run a successor: `opshost.successor-of=<container>` creates the new
/// container from that container's whole options (as the run first inspected it) with the run
/// spec's fields on top. The same name re-creates a removed container as it was.
pub const SUCCESSOR_LABEL: &str = "opshost.successor-of";

impl ContainerState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hide_secret_lines, policy::check_file_path, HIDDEN};

    #[test]
    fn secrets_in_a_config_file_are_hidden_and_the_rest_kept_byte_for_byte() {
        let text =
            "oms_meta_host: 10.0.0.9\r\noms_meta_password: s3cret:x\n  tsdb_password = 'p'\n# oms_meta_password: in a comment\napi_token:\nDRC_RM_DB: rm_411";
        let out = hide_secret_lines(text);
        assert_eq!(
            out,
            format!("oms_meta_host: 10.0.0.9\r\noms_meta_password: {HIDDEN}\n  tsdb_password = {HIDDEN}\n# oms_meta_password: in a comment\napi_token:\nDRC_RM_DB: rm_411")
        );
        assert!(!out.contains("s3cret"));
    }

    #[test]
    fn read_file_paths_are_absolute_and_stay_put() {
        assert!(check_file_path("/home/admin/conf/config.yaml").is_ok());
        for bad in ["home/admin/conf/config.yaml", "/home/admin/../../etc/shadow", "/a\0b", ""] {
            assert!(check_file_path(bad).is_err(), "{bad:?}");
        }
    }
}
