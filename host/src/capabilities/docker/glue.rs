//! The docker capability's WIT glue: each `opshost:plugin/docker` function as one line through
//! the host-call path ([`crate::runtime::host_call`]): its entry in the table of host calls, the
//! grant it needs, its journal arguments, the container policy ([`super::policy`]). Backends
//! ([`super::real`], [`super::fake`]) never see any of this.

use serde_json::json;
use std::sync::Arc;

use super::{hide_secret_lines, policy, ContainerInfo, Docker, ExecResult, RunSpec, SUCCESSOR_LABEL};
use crate::bindings::opshost::plugin::docker as wit;
use crate::bindings::Error;
use crate::grants::Target;
use crate::runtime::calls::{self, HostCall};
use crate::runtime::host_call::{check_list_len, MAX_LIST_ITEMS};
use crate::runtime::state::HostState;

impl HostState {
    /// The host-call path of the calls that name one container.
    async fn on_container<T, F, Fut>(
        &mut self,
        spec: &'static HostCall<calls::Container>,
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
        let d = self.env.caps.docker.clone();
        args["node"] = json!(node);
        args["container"] = json!(container);
        self.call(spec, (node.clone(), container.clone()), args, async move {
            check_names(&node, &container)?;
            op(d, node, container).await
        })
        .await
    }

    /// Remember what a granted container or archive showed, in memory and in the run records.
    fn approve(&mut self, change: impl FnOnce(&mut policy::Approved) -> bool) -> Result<(), Error> {
        let mut approved = self.env.approved.lock().unwrap();
        if change(&mut approved) || approved.dirty {
            approved.dirty = false;
            let text = serde_json::to_string(&*approved).expect("approved set serialises");
            self.env.records.set_host(policy::RECORD_KEY, &text)?;
        }
        Ok(())
    }

    /// `docker.run` or `docker.create`: the spec checked against the grants and the site's
    /// policy, secrets put back, a successor made from its predecessor's whole options.
    async fn run_or_create(&mut self, call: &'static HostCall<calls::Container>, node: String, spec: RunSpec) -> wasmtime::Result<Result<String, Error>> {
        if let Err(e) = check_spec_lists(call.name, &spec) {
            return Ok(Err(e));
        }
        let d = self.env.caps.docker.clone();
        let args = json!({"node": node, "spec": spec});
        // A successor is made from its predecessor's whole options, as first inspected.
        let template = spec
            .labels
            .iter()
            .find(|(k, _)| k == SUCCESSOR_LABEL)
            .and_then(|(_, of)| self.env.records.get(&template_key(&node, of)))
            .and_then(|t| serde_json::from_str(&t).ok());
        // A container re-created under its own name keeps its labels as they were.
        let mut asked = spec;
        let name = asked.name.clone();
        asked.labels.retain(|(k, v)| !(k == SUCCESSOR_LABEL && *v == name));
        // What the host will run: decided here, refused (after the grant check) if not allowed.
        let checked = policy::check_node_name(&node).and_then(|_| {
            let approved = self.env.approved.lock().unwrap().clone();
            let run = self.site_rules(|site| approved.check_run(&node, &asked, site))?;
            let mut revealed = run.clone();
            approved.reveal(&node, &mut revealed)?;
            Ok(revealed)
        });
        let reporter = self.env.reporter.clone();
        self.call(call, (node.clone(), name), args, async move {
            let run = checked?;
            if asked.privileged && !run.privileged {
                reporter.log(crate::report::Level::Warn, &format!("{}: running without --privileged (site policy deny_privileged)", run.name));
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
        let grants = self.env.grants.clone();
        let allows = move |key: &str, object: &str| grants.site_allows(key, object);
        f(&policy::SiteRules { allows: &allows, deny_privileged: self.env.site.deny_privileged })
    }
}

impl wit::Host for HostState {
    async fn inspect(&mut self, node: String, container: String) -> wasmtime::Result<Result<Option<ContainerInfo>, Error>> {
        let n = node.clone();
        let (approved, secret_env, credentials) = (self.env.approved.clone(), self.env.site.secret_env.clone(), self.env.site.credentials.clone());
        let r = self
            .on_container(calls::DOCKER_INSPECT, node, container, json!({}), |d, node, c| async move {
                // The plugin (and the journal and transcript) see references, never the values.
                let mut info = d.inspect(&node, &c).await?;
                if let Some(i) = &mut info {
                    approved.lock().unwrap().hide_secrets(&node, &mut i.spec, &secret_env, &credentials);
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
            if self.env.records.get(&key).is_none() {
                if let Ok(Some(t)) = self.env.caps.docker.template(&n, &info.spec.name).await {
                    if let Err(e) = self.env.records.set_host(&key, &t.to_string()) {
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
        if let Err(e) = check_spec_lists(calls::DOCKER_CHECK_RUN.name, &spec) {
            return Ok(Err(e));
        }
        let d = self.env.caps.docker.clone();
        let args = json!({"node": node, "spec": spec});
        // The container it succeeds (or itself, re-created), whose image the node has.
        let predecessor = spec.labels.iter().find(|(k, _)| k == SUCCESSOR_LABEL).map(|(_, of)| of.clone());
        let mut asked = spec;
        let name = asked.name.clone();
        asked.labels.retain(|(k, v)| !(k == SUCCESSOR_LABEL && *v == name));
        // The same decision as `run`'s, but the image is `run`'s to check: an archive's image is
        // loaded (and so approved) only during the upgrade.
        let (checked, image_approved) = match policy::check_node_name(&node) {
            Err(e) => (Err(e), false),
            Ok(()) => {
                let mut approved = self.env.approved.lock().unwrap().clone();
                let image_approved = self.site_rules(|site| approved.check_image(&node, &asked.image, site)).is_ok();
                approved.loaded(&node, std::slice::from_ref(&asked.image));
                (self.site_rules(|site| approved.check_run(&node, &asked, site)), image_approved)
            }
        };
        // The container it succeeds lends its image to the probe below only if the plugin may
        // inspect it.
        let predecessor = predecessor.filter(|old| self.env.grants.check(calls::DOCKER_INSPECT.name, &Target::Container(node.clone(), old.clone())).is_ok());
        // The engine's own refusal of --privileged, asked with an image the node has and the run
        // may use already (the plan comes before any archive is loaded): the spec's, else that of
        // the granted container it succeeds; with neither, the engine is asked when the
        // container is created.
        self.call(calls::DOCKER_CHECK_RUN, (node.clone(), name), args, async move {
            let run = checked?;
            if run.privileged {
                let mut image = image_approved.then(|| run.image.clone());
                if !matches!(&image, Some(i) if d.image_exists(&node, i).await.unwrap_or(false)) {
                    image = None;
                    if let Some(old) = predecessor.as_deref() {
                        if let Ok(Some(c)) = d.inspect(&node, old).await {
                            image = Some(c.spec.image);
                        }
                    }
                }
                let refused = match image {
                    Some(image) => d.refuses_privileged(&node, &image).await?,
                    None => None,
                };
                if let Some(words) = refused {
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
        let d = self.env.caps.docker.clone();
        let n = node.clone();
        let r = self
            .call(calls::DOCKER_LOAD_IMAGE, archive.clone(), json!({"node": node, "archive": archive}), async move {
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
        let d = self.env.caps.docker.clone();
        let checked = policy::check_node_name(&node).and_then(|_| {
            let approved = self.env.approved.lock().unwrap().clone();
            self.site_rules(|site| approved.check_image(&node, &image, site))
        });
        self.call(calls::DOCKER_IMAGE_EXISTS, (), json!({"node": node, "image": image}), async move {
            checked?;
            d.image_exists(&node, &image).await
        })
        .await
    }
    async fn exec(&mut self, node: String, container: String, command: Vec<String>) -> wasmtime::Result<Result<ExecResult, Error>> {
        if let Err(e) = check_list_len(calls::DOCKER_EXEC.name, "command", command.len(), MAX_LIST_ITEMS) {
            return Ok(Err(e));
        }
        let secrets = self.secrets_seen();
        self.on_container(calls::DOCKER_EXEC, node, container, json!({"command": command}), |d, node, c| async move {
            let out = d.exec(&node, &c, &command).await?;
            let secrets = secrets.of(&*d, &node, &c).await;
            Ok(ExecResult { stdout: hide_secrets(&out.stdout, &secrets), stderr: hide_secrets(&out.stderr, &secrets), ..out })
        })
        .await
    }
    async fn logs(&mut self, node: String, container: String, tail: u32) -> wasmtime::Result<Result<String, Error>> {
        let secrets = self.secrets_seen();
        self.on_container(calls::DOCKER_LOGS, node, container, json!({"tail": tail}), |d, node, c| async move {
            let text = d.logs(&node, &c, tail).await?;
            Ok(hide_secrets(&text, &secrets.of(&*d, &node, &c).await))
        })
        .await
    }
    async fn read_file(&mut self, node: String, container: String, path: String) -> wasmtime::Result<Result<String, Error>> {
        let secrets = self.secrets_seen();
        self.on_container(calls::DOCKER_READ_FILE, node, container, json!({"path": path}), |d, node, c| async move {
            policy::check_file_path(&path)?;
            let bytes = d.read_file(&node, &c, &path).await?;
            let text = String::from_utf8(bytes).map_err(|_| Error::InvalidInput(format!("{path} in container {c} on node {node} is not UTF-8 text")))?;
            Ok(hide_secrets(&text, &secrets.of(&*d, &node, &c).await))
        })
        .await
    }
}

/// Text from a container (a file, a command's output, its log) as the plugin gets it: the value
/// of every secret line hidden ([`hide_secret_lines`]), and every secret value the host knows
/// (the run's, the container's, the site's credentials) replaced by what stands for it.
fn hide_secrets(text: &str, secrets: &[(String, String)]) -> String {
    policy::hide_secret_values(&hide_secret_lines(text), secrets)
}

/// The secret values a run has seen, and the site's secret variables: with a container's own
/// ([`Secrets::of`]), what its exec and log output must not show.
struct Secrets {
    seen: Vec<(String, String)>,
    site: Vec<String>,
}

impl Secrets {
    /// The run's, and those in the environment of `container` as the engine shows it now (a
    /// container the plugin never inspected has them too).
    async fn of(self, d: &dyn Docker, node: &str, container: &str) -> Vec<(String, String)> {
        let mut all = self.seen;
        if let Ok(Some(info)) = d.inspect(node, container).await {
            all.extend(policy::secrets_in(&info.spec, &self.site));
        }
        all
    }
}

impl HostState {
    fn secrets_seen(&self) -> Secrets {
        let mut seen = self.env.approved.lock().unwrap().known_secrets();
        seen.extend(self.env.site.credentials.iter().cloned());
        Secrets { seen, site: self.env.site.secret_env.clone() }
    }
}

/// A run spec's lists within [`MAX_LIST_ITEMS`] each.
fn check_spec_lists(call: &str, spec: &RunSpec) -> Result<(), Error> {
    check_list_len(call, "env", spec.env.len(), MAX_LIST_ITEMS)?;
    check_list_len(call, "mounts", spec.mounts.len(), MAX_LIST_ITEMS)?;
    check_list_len(call, "ulimits", spec.ulimits.len(), MAX_LIST_ITEMS)?;
    check_list_len(call, "command", spec.command.len(), MAX_LIST_ITEMS)?;
    check_list_len(call, "labels", spec.labels.len(), MAX_LIST_ITEMS)
}

fn template_key(node: &str, container: &str) -> String {
    format!("opshost.template.{node}/{container}")
}

/// A node and container name from a plugin, in the grammar Docker and the site config use.
fn check_names(node: &str, container: &str) -> Result<(), Error> {
    policy::check_node_name(node)?;
    policy::check_container_name(container)
}
