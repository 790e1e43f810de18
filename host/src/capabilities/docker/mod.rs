//! docker capability: the `Docker` trait, its WIT glue, what a plugin's containers may be
//! ([`policy`]), and backends ([`real::BollardDocker`], [`fake::FakeDocker`]).

pub mod conformance;
pub mod fake;
pub mod policy;
pub mod real;

use async_trait::async_trait;
use serde_json::json;

use crate::bindings::opshost::plugin::docker as wit;
pub use crate::bindings::opshost::plugin::docker::{ContainerInfo, ContainerState, ExecResult, Mount, RunSpec, Ulimit};
use crate::bindings::Error;
use crate::grants::Target;
use crate::runtime::calls::{self, HostCall};
use crate::runtime::state::HostState;
use std::sync::Arc;

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

fn template_key(node: &str, container: &str) -> String {
    format!("opshost.template.{node}/{container}")
}

/// A node and container name from a plugin, in the grammar Docker and the site config use.
fn check_names(node: &str, container: &str) -> Result<(), Error> {
    policy::check_node_name(node)?;
    policy::check_container_name(container)
}

impl HostState {
    /// The host-call path of the calls that name one container.
    async fn on_container<T, F, Fut>(
        &mut self,
        spec: &'static HostCall,
        node: String,
        container: String,
        mut args: serde_json::Value,
        op: F,
    ) -> wasmtime::Result<Result<T, Error>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce(Arc<dyn Docker>, String, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let d = self.caps.docker.clone();
        args["node"] = json!(node);
        args["container"] = json!(container);
        self.call(spec, Target::Container(node.clone(), container.clone()), args, async move {
            check_names(&node, &container)?;
            op(d, node, container).await
        })
        .await
    }

    /// Remember what a granted container or archive showed, in memory and in the run records.
    fn approve(&mut self, change: impl FnOnce(&mut policy::Approved) -> bool) -> Result<(), Error> {
        let mut approved = self.approved.lock().unwrap();
        if change(&mut approved) || approved.dirty {
            approved.dirty = false;
            let text = serde_json::to_string(&*approved).expect("approved set serialises");
            self.records.set_host(policy::RECORD_KEY, &text)?;
        }
        Ok(())
    }

    /// `docker.run` or `docker.create`: the spec checked against the grants and the site's
    /// policy, secrets put back, a successor made from its predecessor's whole options.
    async fn run_or_create(&mut self, call: &'static calls::HostCall, node: String, spec: RunSpec) -> wasmtime::Result<Result<String, Error>> {
        let d = self.caps.docker.clone();
        let args = json!({"node": node, "spec": spec});
        // A successor is made from its predecessor's whole options, as first inspected.
        let template = spec
            .labels
            .iter()
            .find(|(k, _)| k == SUCCESSOR_LABEL)
            .and_then(|(_, of)| self.records.get(&template_key(&node, of)))
            .and_then(|t| serde_json::from_str(&t).ok());
        // A container re-created under its own name keeps its labels as they were.
        let mut asked = spec;
        let name = asked.name.clone();
        asked.labels.retain(|(k, v)| !(k == SUCCESSOR_LABEL && *v == name));
        // What the host will run: decided here, refused (after the grant check) if not allowed.
        let checked = policy::check_node_name(&node).and_then(|_| {
            let approved = self.approved.lock().unwrap().clone();
            let run = self.site_rules(|site| approved.check_run(&node, &asked, site))?;
            let mut revealed = run.clone();
            approved.reveal(&node, &mut revealed)?;
            Ok(revealed)
        });
        let reporter = self.reporter.clone();
        self.call(call, Target::Container(node.clone(), name), args, async move {
            let run = checked?;
            if asked.privileged && !run.privileged {
                reporter.log(crate::capabilities::services::Level::Warn, &format!("{}: running without --privileged (site policy deny_privileged)", run.name));
            }
            if call == calls::DOCKER_CREATE {
                d.create(&node, &run, template.as_ref()).await
            } else {
                d.run(&node, &run, template.as_ref()).await
            }
        })
        .await
    }

    fn site_rules<R>(&self, f: impl FnOnce(&policy::SiteRules) -> R) -> R {
        let grants = self.grants.clone();
        let allows = move |key: &str, object: &str| grants.site_allows(key, object);
        f(&policy::SiteRules { allows: &allows, deny_privileged: self.site.deny_privileged })
    }
}

impl wit::Host for HostState {
    async fn inspect(&mut self, node: String, container: String) -> wasmtime::Result<Result<Option<ContainerInfo>, Error>> {
        let n = node.clone();
        let (approved, secret_env) = (self.approved.clone(), self.site.secret_env.clone());
        let r = self
            .on_container(calls::DOCKER_INSPECT, node, container, json!({}), |d, node, c| async move {
                // The plugin (and the journal and transcript) see references, never the values.
                let mut info = d.inspect(&node, &c).await?;
                if let Some(i) = &mut info {
                    approved.lock().unwrap().hide_secrets(&node, &mut i.spec, &secret_env);
                }
                Ok(info)
            })
            .await?;
        if let Ok(Some(info)) = &r {
            if let Err(e) = self.approve(|a| a.saw_container(&n, &info.spec)) {
                return Ok(Err(e));
            }
            // Its whole options, as first seen in this run: what a successor (or, on rollback, the
            // container itself re-created) carries over.
            let key = template_key(&n, &info.spec.name);
            if self.records.get(&key).is_none() {
                if let Ok(Some(t)) = self.caps.docker.template(&n, &info.spec.name).await {
                    if let Err(e) = self.records.set_host(&key, &t.to_string()) {
                        return Ok(Err(e));
                    }
                }
            }
        }
        Ok(r)
    }
    async fn stop(&mut self, node: String, container: String, timeout_s: u32) -> wasmtime::Result<Result<(), Error>> {
        self.on_container(calls::DOCKER_STOP, node, container, json!({"timeout_s": timeout_s}), |d, node, c| async move { d.stop(&node, &c, timeout_s).await })
            .await
    }
    async fn start(&mut self, node: String, container: String) -> wasmtime::Result<Result<(), Error>> {
        self.on_container(calls::DOCKER_START, node, container, json!({}), |d, node, c| async move { d.start(&node, &c).await }).await
    }
    async fn restart(&mut self, node: String, container: String, timeout_s: u32) -> wasmtime::Result<Result<(), Error>> {
        self.on_container(
            calls::DOCKER_RESTART,
            node,
            container,
            json!({"timeout_s": timeout_s}),
            |d, node, c| async move { d.restart(&node, &c, timeout_s).await },
        )
        .await
    }
    async fn remove(&mut self, node: String, container: String, force: bool) -> wasmtime::Result<Result<(), Error>> {
        self.on_container(calls::DOCKER_REMOVE, node, container, json!({"force": force}), |d, node, c| async move { d.remove(&node, &c, force).await }).await
    }
    async fn run(&mut self, node: String, spec: RunSpec) -> wasmtime::Result<Result<String, Error>> {
        self.run_or_create(calls::DOCKER_RUN, node, spec).await
    }
    async fn create(&mut self, node: String, spec: RunSpec) -> wasmtime::Result<Result<String, Error>> {
        self.run_or_create(calls::DOCKER_CREATE, node, spec).await
    }
    async fn check_run(&mut self, node: String, spec: RunSpec) -> wasmtime::Result<Result<RunSpec, Error>> {
        let d = self.caps.docker.clone();
        let args = json!({"node": node, "spec": spec});
        // The container it succeeds (or itself, re-created), whose image the node has.
        let predecessor = spec.labels.iter().find(|(k, _)| k == SUCCESSOR_LABEL).map(|(_, of)| of.clone());
        let mut asked = spec;
        let name = asked.name.clone();
        asked.labels.retain(|(k, v)| !(k == SUCCESSOR_LABEL && *v == name));
        // The same decision as `run`'s, but the image is `run`'s to check: an archive's image is
        // loaded (and so approved) only during the upgrade.
        let checked = policy::check_node_name(&node).and_then(|_| {
            let mut approved = self.approved.lock().unwrap().clone();
            approved.loaded(&node, std::slice::from_ref(&asked.image));
            self.site_rules(|site| approved.check_run(&node, &asked, site))
        });
        // The engine's own refusal of --privileged, asked with an image the node has: the spec's,
        // else that of the container it succeeds.
        self.call(calls::DOCKER_CHECK_RUN, Target::Container(node.clone(), name), args, async move {
            let run = checked?;
            if run.privileged {
                let mut image = run.image.clone();
                if !d.image_exists(&node, &image).await.unwrap_or(false) {
                    if let Some(old) = predecessor.as_deref() {
                        if let Ok(Some(c)) = d.inspect(&node, old).await {
                            image = c.spec.image;
                        }
                    }
                }
                if let Some(words) = d.refuses_privileged(&node, &image).await? {
                    return Err(Error::Failed(format!(
                        "container {}: node {node}'s Docker engine refuses --privileged containers ({}), so it could not start: set deny_privileged = true in [docker_policy] of the site config (containers then run without --privileged), or run on an engine that permits them",
                        run.name,
                        words.trim()
                    )));
                }
            }
            Ok(run)
        })
        .await
    }
    async fn load_image(&mut self, node: String, archive: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let d = self.caps.docker.clone();
        let n = node.clone();
        let r = self
            .call(calls::DOCKER_LOAD_IMAGE, Target::Archive(archive.clone()), json!({"node": node, "archive": archive}), async move {
                policy::check_node_name(&node)?;
                d.load_image(&node, &archive).await
            })
            .await?;
        if let Ok(tags) = &r {
            if let Err(e) = self.approve(|a| a.loaded(&n, tags)) {
                return Ok(Err(e));
            }
        }
        Ok(r)
    }
    async fn image_exists(&mut self, node: String, image: String) -> wasmtime::Result<Result<bool, Error>> {
        let d = self.caps.docker.clone();
        let checked = policy::check_node_name(&node).and_then(|_| {
            let approved = self.approved.lock().unwrap().clone();
            self.site_rules(|site| approved.check_image(&node, &image, site))
        });
        self.call(calls::DOCKER_IMAGE_EXISTS, Target::Free, json!({"node": node, "image": image}), async move {
            checked?;
            d.image_exists(&node, &image).await
        })
        .await
    }
    async fn exec(&mut self, node: String, container: String, command: Vec<String>) -> wasmtime::Result<Result<ExecResult, Error>> {
        self.on_container(calls::DOCKER_EXEC, node, container, json!({"command": command}), |d, node, c| async move { d.exec(&node, &c, &command).await }).await
    }
    async fn logs(&mut self, node: String, container: String, tail: u32) -> wasmtime::Result<Result<String, Error>> {
        self.on_container(calls::DOCKER_LOGS, node, container, json!({"tail": tail}), |d, node, c| async move { d.logs(&node, &c, tail).await }).await
    }
    async fn read_file(&mut self, node: String, container: String, path: String) -> wasmtime::Result<Result<String, Error>> {
        self.on_container(calls::DOCKER_READ_FILE, node, container, json!({"path": path}), |d, node, c| async move {
            policy::check_file_path(&path)?;
            let bytes = d.read_file(&node, &c, &path).await?;
            let text = String::from_utf8(bytes).map_err(|_| Error::InvalidInput(format!("{path} in container {c} on node {node} is not UTF-8 text")))?;
            Ok(hide_secret_lines(&text))
        })
        .await
    }
}

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
