//! FakeDocker: an in-memory Docker engine per node. Containers keep state, spec and log; images
//! appear when a named archive is loaded; `exec` answers from scenario rules; images can carry
//! product behaviour (SQL applied to the fake MetaDB on start and stop, log lines, health).

use super::{ContainerInfo, ContainerState, Docker, ExecResult, Mount, RunSpec, Ulimit};
use crate::bindings::Error;
use crate::capabilities::errors::{failed, invalid, not_found};
use crate::capabilities::services::fake::VirtualClock;
use crate::capabilities::sql::fake::FakeSql;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// SQL a fake product runs against its MetaDB.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlEffect {
    pub database: String,
    pub sql: String,
}

/// An image and how a container of it behaves.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSetup {
    pub name: String,
    /// Nodes where the image is present from the start (none: only after its archive is loaded).
    #[serde(default = "local")]
    pub nodes: Vec<String>,
    #[serde(default = "yes")]
    pub healthy: bool,
    #[serde(default)]
    pub on_start: Vec<SqlEffect>,
    #[serde(default)]
    pub on_stop: Vec<SqlEffect>,
    /// Log lines a container of this image writes when it starts.
    #[serde(default)]
    pub log: Vec<String>,
    /// A container of this image does not stay up: right after it starts (its log lines written,
    /// `on_start` not applied) it is "exited" (it crashed) or "restarting" (it crashed, and a
    /// restart policy starts it again).
    #[serde(default)]
    pub crashes_to: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSetup {
    pub path: String,
    pub images: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSetup {
    #[serde(default = "local_one")]
    pub node: String,
    pub name: String,
    pub image: String,
    #[serde(default = "running")]
    pub state: String,
    /// `KEY=value` strings.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default = "host_net")]
    pub network_mode: String,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    #[serde(default)]
    pub cpu_period: Option<u64>,
    #[serde(default)]
    pub cpu_quota: Option<i64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub command: Vec<String>,
}

/// How `exec` answers: the first rule whose image and command match.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRule {
    /// Substring of the container's image; any image when absent.
    #[serde(default)]
    pub image: Option<String>,
    /// The command, words joined by single spaces.
    pub command: String,
    /// `KEY=value` the container's env must hold, else the command exits 1 saying which.
    #[serde(default)]
    pub requires_env: Vec<String>,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    /// Applied to the fake MetaDB whatever the exit code (a failing script may have done half).
    #[serde(default)]
    pub sql: Vec<SqlEffect>,
    /// Virtual seconds the command takes.
    #[serde(default)]
    pub duration_s: u64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSetup {
    #[serde(default = "local")]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub images: Vec<ImageSetup>,
    #[serde(default)]
    pub archives: Vec<ArchiveSetup>,
    #[serde(default)]
    pub containers: Vec<ContainerSetup>,
    #[serde(default)]
    pub exec: Vec<ExecRule>,
    /// Nodes whose engine refuses `--privileged` containers (an engine inside a container, a
    /// hardened host): a privileged run fails there as on such an engine.
    #[serde(default)]
    pub refuses_privileged: Vec<String>,
    #[serde(default)]
    pub files: Vec<FileSetup>,
}

/// A file on a node's disk, seen by the containers that bind-mount it (or its directory): what
/// `docker.read-file` reads, e.g. the config.yaml an OMS container mounts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSetup {
    /// Nodes whose disk holds this file.
    #[serde(default = "local")]
    pub nodes: Vec<String>,
    /// The path on the node (a mount's source, or a path under it).
    pub path: String,
    pub content: String,
}

fn local() -> Vec<String> {
    vec!["local".into()]
}
fn local_one() -> String {
    "local".into()
}
fn yes() -> bool {
    true
}
fn running() -> String {
    "running".into()
}
fn host_net() -> String {
    "host".into()
}

pub fn parse_state(s: &str) -> Option<ContainerState> {
    Some(match s {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "paused" => ContainerState::Paused,
        "restarting" => ContainerState::Restarting,
        "exited" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        _ => return None,
    })
}

impl ContainerSetup {
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            env: self.env.iter().map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((kv.clone(), String::new()))).collect(),
            mounts: self.mounts.clone(),
            network_mode: self.network_mode.clone(),
            privileged: self.privileged,
            pids_limit: self.pids_limit,
            ulimits: self.ulimits.clone(),
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            memory_bytes: self.memory_bytes,
            interactive: self.interactive,
            tty: self.tty,
            command: self.command.clone(),
            labels: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
struct FakeContainer {
    id: String,
    spec: RunSpec,
    state: ContainerState,
    log: Vec<String>,
}

#[derive(Default)]
struct Engine {
    images: Vec<String>,
    containers: BTreeMap<String, FakeContainer>,
}

pub struct FakeDocker {
    engines: Mutex<BTreeMap<String, Engine>>,
    images: Vec<ImageSetup>,
    archives: Vec<ArchiveSetup>,
    exec_rules: Vec<ExecRule>,
    refuses_privileged: Vec<String>,
    files: Vec<FileSetup>,
    sql: Arc<FakeSql>,
    clock: VirtualClock,
    next_id: Mutex<u64>,
}

impl FakeDocker {
    pub fn new(setup: &DockerSetup, sql: Arc<FakeSql>, clock: VirtualClock) -> Result<Self, Error> {
        let mut engines: BTreeMap<String, Engine> = setup.nodes.iter().map(|n| (n.clone(), Engine::default())).collect();
        for image in &setup.images {
            for node in &image.nodes {
                engines
                    .get_mut(node)
                    .ok_or_else(|| invalid(format!("image {} is on node {node}, which is not in docker.nodes", image.name)))?
                    .images
                    .push(image.name.clone());
            }
        }
        let d = FakeDocker {
            engines: Mutex::new(engines),
            images: setup.images.clone(),
            archives: setup.archives.clone(),
            refuses_privileged: setup.refuses_privileged.clone(),
            files: setup.files.clone(),
            exec_rules: setup.exec.clone(),
            sql,
            clock,
            next_id: Mutex::new(1),
        };
        for c in &setup.containers {
            let state = parse_state(&c.state).ok_or_else(|| invalid(format!("container {}: unknown state {:?}", c.name, c.state)))?;
            let mut engines = d.engines.lock().unwrap();
            let engine =
                engines.get_mut(&c.node).ok_or_else(|| invalid(format!("container {} is on node {}, which is not in docker.nodes", c.name, c.node)))?;
            let id = d.new_id();
            engine.containers.insert(c.name.clone(), FakeContainer { id, spec: c.spec(), state, log: Vec::new() });
        }
        Ok(d)
    }

    fn new_id(&self) -> String {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        format!("{:012x}", *n * 0x9e37_79b9)
    }

    fn behaviour(&self, image: &str) -> Option<&ImageSetup> {
        self.images.iter().find(|i| i.name == image)
    }

    fn with_engine<T>(&self, node: &str, f: impl FnOnce(&mut Engine) -> Result<T, Error>) -> Result<T, Error> {
        let mut engines = self.engines.lock().unwrap();
        let engine = engines.get_mut(node).ok_or_else(|| not_found(format!("no Docker node named {node} in the site config")))?;
        f(engine)
    }

    fn apply(&self, effects: &[SqlEffect]) -> Result<(), Error> {
        for e in effects {
            self.sql.apply(&e.database, &e.sql)?;
        }
        Ok(())
    }

    /// Start a container: state, log lines, and the image's start behaviour.
    fn started(&self, c: &mut FakeContainer) -> Result<(), Error> {
        c.state = ContainerState::Running;
        if let Some(b) = self.behaviour(&c.spec.image) {
            c.log.extend(b.log.iter().cloned());
            match b.crashes_to.as_deref() {
                None => self.apply(&b.on_start)?,
                Some(s) => c.state = parse_state(s).ok_or_else(|| invalid(format!("image {}: crashes_to = {s:?} is not a container state", b.name)))?,
            }
        }
        Ok(())
    }

    fn stopped(&self, c: &mut FakeContainer) -> Result<(), Error> {
        c.state = ContainerState::Exited;
        if let Some(b) = self.behaviour(&c.spec.image) {
            self.apply(&b.on_stop)?;
        }
        Ok(())
    }

    /// Every container: (node, state, spec), for expectations and summaries.
    pub fn containers(&self) -> Vec<(String, ContainerState, RunSpec)> {
        let engines = self.engines.lock().unwrap();
        engines.iter().flat_map(|(node, e)| e.containers.values().map(move |c| (node.clone(), c.state, c.spec.clone()))).collect()
    }

    pub fn images(&self, node: &str) -> Vec<String> {
        self.engines.lock().unwrap().get(node).map(|e| e.images.clone()).unwrap_or_default()
    }

    pub fn node_healthy(&self, node: &str) -> Result<bool, Error> {
        self.with_engine(node, |e| {
            Ok(e.containers.values().any(|c| c.state == ContainerState::Running && self.behaviour(&c.spec.image).map(|b| b.healthy).unwrap_or(false)))
        })
    }
}

fn is_running(s: ContainerState) -> bool {
    matches!(s, ContainerState::Running | ContainerState::Restarting | ContainerState::Paused)
}

#[async_trait]
impl Docker for FakeDocker {
    async fn inspect(&self, node: &str, container: &str) -> Result<Option<ContainerInfo>, Error> {
        self.with_engine(node, |e| Ok(e.containers.get(container).map(|c| ContainerInfo { id: c.id.clone(), state: c.state, spec: c.spec.clone() })))
    }

    async fn stop(&self, node: &str, container: &str, _timeout_s: u32) -> Result<(), Error> {
        self.with_engine(node, |e| {
            let c = e.containers.get_mut(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            if is_running(c.state) {
                self.stopped(c)?;
            }
            Ok(())
        })
    }

    async fn start(&self, node: &str, container: &str) -> Result<(), Error> {
        let privileged = self.with_engine(node, |e| Ok(e.containers.get(container).is_some_and(|c| c.spec.privileged)))?;
        if privileged {
            if let Some(words) = self.refuses_privileged(node, "").await? {
                return Err(failed(format!("starting container {container} on {node}: engine answered 500: {words}")));
            }
        }
        self.with_engine(node, |e| {
            let c = e.containers.get_mut(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            if !is_running(c.state) {
                self.started(c)?;
            }
            Ok(())
        })
    }

    async fn restart(&self, node: &str, container: &str, _timeout_s: u32) -> Result<(), Error> {
        self.with_engine(node, |e| {
            let c = e.containers.get_mut(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            if is_running(c.state) {
                self.stopped(c)?;
            }
            self.started(c)
        })
    }

    async fn remove(&self, node: &str, container: &str, force: bool) -> Result<(), Error> {
        self.with_engine(node, |e| {
            let c = e.containers.get_mut(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            if is_running(c.state) {
                if !force {
                    return Err(invalid(format!("container {container} is running: stop it first, or remove with force")));
                }
                self.stopped(c)?;
            }
            e.containers.remove(container);
            Ok(())
        })
    }

    async fn run(&self, node: &str, spec: &RunSpec, _template: Option<&serde_json::Value>) -> Result<String, Error> {
        if spec.name.is_empty() || spec.image.is_empty() {
            return Err(invalid("a container needs a name and an image"));
        }
        let id = self.create(node, spec, None).await?;
        if let Err(e) = self.start(node, &spec.name).await {
            // As on a real engine: nothing half-made is left behind to block the name.
            let _ = self.with_engine(node, |e| Ok(e.containers.remove(&spec.name)));
            return Err(e);
        }
        Ok(id)
    }

    async fn create(&self, node: &str, spec: &RunSpec, _template: Option<&serde_json::Value>) -> Result<String, Error> {
        if spec.name.is_empty() || spec.image.is_empty() {
            return Err(invalid("a container needs a name and an image"));
        }
        let id = self.new_id();
        self.with_engine(node, |e| {
            if e.containers.contains_key(&spec.name) {
                return Err(invalid(format!(
                    "the container name {} is already in use on node {node}: remove that container or choose another name",
                    spec.name
                )));
            }
            if !e.images.contains(&spec.image) {
                return Err(not_found(format!("image {} is not on node {node}: load its archive first", spec.image)));
            }
            let c = FakeContainer { id: id.clone(), spec: spec.clone(), state: ContainerState::Created, log: Vec::new() };
            e.containers.insert(spec.name.clone(), c);
            Ok(id)
        })
    }

    async fn refuses_privileged(&self, node: &str, _image: &str) -> Result<Option<String>, Error> {
        self.with_engine(node, |_| Ok(()))?;
        Ok(self.refuses_privileged.iter().any(|n| n == node).then(|| {
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted (scenario: refuses_privileged)".to_string()
        }))
    }

    async fn load_image(&self, node: &str, archive: &str) -> Result<Vec<String>, Error> {
        let a =
            self.archives.iter().find(|a| a.path == archive).ok_or_else(|| not_found(format!("image archive {archive} is not named in the site config")))?;
        self.with_engine(node, |e| {
            for image in &a.images {
                if !e.images.contains(image) {
                    e.images.push(image.clone());
                }
            }
            Ok(a.images.clone())
        })
    }

    async fn image_exists(&self, node: &str, image: &str) -> Result<bool, Error> {
        self.with_engine(node, |e| Ok(e.images.iter().any(|i| i == image)))
    }

    async fn exec(&self, node: &str, container: &str, command: &[String]) -> Result<ExecResult, Error> {
        let (image, env) = self.with_engine(node, |e| {
            let c = e.containers.get(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            if c.state != ContainerState::Running {
                return Err(failed(format!("container {container} is not running ({})", c.state.as_str())));
            }
            Ok((c.spec.image.clone(), c.spec.env.clone()))
        })?;
        let line = command.join(" ");
        let Some(rule) = self.exec_rules.iter().find(|r| r.command == line && r.image.as_ref().is_none_or(|i| image.contains(i.as_str()))) else {
            return Ok(ExecResult { exit_code: 127, stdout: String::new(), stderr: format!("{line}: command not found") });
        };
        for required in &rule.requires_env {
            let (k, v) = required.split_once('=').unwrap_or((required, ""));
            if !env.iter().any(|(ek, ev)| ek == k && ev == v) {
                return Ok(ExecResult { exit_code: 1, stdout: String::new(), stderr: format!("{line}: refusing to run without {k}={v}") });
            }
        }
        self.clock.advance(rule.duration_s * 1000);
        self.apply(&rule.sql)?;
        Ok(ExecResult { exit_code: rule.exit_code, stdout: rule.stdout.clone(), stderr: rule.stderr.clone() })
    }

    async fn read_file(&self, node: &str, container: &str, path: &str) -> Result<Vec<u8>, Error> {
        let mounts = self.with_engine(node, |e| {
            let c = e.containers.get(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            Ok(c.spec.mounts.clone())
        })?;
        // The mount whose target holds the path (the longest), and the path on the node's disk.
        let under = |target: &str| path == target || path.starts_with(&format!("{}/", target.trim_end_matches('/')));
        let on_disk = mounts
            .iter()
            .filter(|m| under(&m.target))
            .max_by_key(|m| m.target.len())
            .map(|m| format!("{}{}", m.source.trim_end_matches('/'), &path[m.target.trim_end_matches('/').len()..]));
        let on_node = |f: &&FileSetup| f.nodes.iter().any(|n| n == node);
        let file = on_disk.as_ref().and_then(|p| self.files.iter().filter(on_node).find(|f| &f.path == p));
        let is_dir = on_disk.as_ref().is_some_and(|p| self.files.iter().filter(on_node).any(|f| f.path.starts_with(&format!("{}/", p.trim_end_matches('/')))));
        match file {
            None if is_dir => Err(invalid(format!("{path} in container {container} on node {node} is a directory: name a file"))),
            Some(f) if f.content.len() > super::READ_FILE_MAX => {
                Err(invalid(format!("{path} in container {container} on node {node} is larger than {} bytes", super::READ_FILE_MAX)))
            }
            Some(f) => Ok(f.content.clone().into_bytes()),
            None => Err(not_found(format!("{path} does not exist in container {container} on node {node}"))),
        }
    }

    async fn logs(&self, node: &str, container: &str, tail: u32) -> Result<String, Error> {
        self.with_engine(node, |e| {
            let c = e.containers.get(container).ok_or_else(|| not_found(format!("container {container} does not exist on node {node}")))?;
            let skip = c.log.len().saturating_sub(tail as usize);
            Ok(c.log[skip..].join("\n"))
        })
    }
}
