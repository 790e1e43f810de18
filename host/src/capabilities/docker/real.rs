//! BollardDocker: the docker capability on real engines through bollard. One engine per node
//! (the local socket, `DOCKER_HOST`, or the node's endpoint from the site config), API version
//! negotiated on first use (Debian's engine speaks 1.41 at most). Image archives must be named in
//! the site config and are streamed to the engine with progress. Engine errors become typed
//! errors naming the container or image.
//!
//! Over 500 lines: one engine client covers the whole docker interface (inspect to logs, image
//! loads with progress, the privileged probe) with one mapping of engine errors to typed ones.

use super::archive::{normalized, read_archive, run_settings, ArchiveImage, EngineImage};
use super::config::{NodeConfig, RunPolicy};
use super::{ContainerInfo, ContainerState, Docker, ExecResult, Mount, RunSpec, Ulimit};
use crate::bindings::Error;
use crate::capabilities::errors::{failed, invalid, not_found};
use crate::report::Reporter;
use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptions, ImportImageOptions, InspectContainerOptions, LogsOptions, RemoveContainerOptions, RestartContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

pub struct BollardDocker {
    nodes: BTreeMap<String, (NodeConfig, OnceCell<bollard::Docker>)>,
    archives: Vec<PathBuf>,
    policy: RunPolicy,
    reporter: Arc<dyn Reporter>,
    /// Node -> whether its engine refused the privileged probe (asked once per node).
    privileged_refused: std::sync::Mutex<HashMap<String, Option<String>>>,
}

/// Most output kept from an exec or a log read.
const MAX_OUTPUT: usize = 1 << 20;

impl BollardDocker {
    pub fn new(nodes: BTreeMap<String, NodeConfig>, archives: Vec<PathBuf>, policy: RunPolicy, reporter: Arc<dyn Reporter>) -> Self {
        let nodes = nodes.into_iter().map(|(n, c)| (n, (c, OnceCell::new()))).collect();
        BollardDocker { nodes, archives, policy, reporter, privileged_refused: Default::default() }
    }

    async fn engine(&self, node: &str) -> Result<&bollard::Docker, Error> {
        let (cfg, cell) = self.nodes.get(node).ok_or_else(|| {
            not_found(format!("no node named {node} among the product's nodes (nodes = [...] of the product in the site config, each with its [nodes.{node}])"))
        })?;
        cell.get_or_try_init(|| async {
            let d = match cfg.docker.as_deref() {
                None => bollard::Docker::connect_with_local_defaults(),
                Some(e) if e.starts_with("unix://") => bollard::Docker::connect_with_socket(e, 120, bollard::API_DEFAULT_VERSION),
                Some(e) => bollard::Docker::connect_with_http(e, 120, bollard::API_DEFAULT_VERSION),
            }
            .map_err(|e| failed(format!("node {node}: cannot reach the Docker engine ({e}): check [nodes.{node}] docker and that dockerd runs")))?;
            d.negotiate_version().await.map_err(|e| failed(format!("node {node}: the Docker engine does not answer ({e}): is dockerd running?")))
        })
        .await
    }

    /// The images an archive holds, after checking that loading it moves no tag: a tag it sets
    /// that already names another image on the node is refused before the engine sees the
    /// archive (`docker load` would move it without a word).
    async fn check_archive_tags(&self, d: &bollard::Docker, node: &str, path: &std::path::Path, total: u64, name: &str) -> Result<Vec<ArchiveImage>, Error> {
        let reporter = self.reporter.clone();
        let label = format!("read tags of {name}");
        let file = path.to_path_buf();
        let images =
            tokio::task::spawn_blocking(move || read_archive(&file, &mut |read| reporter.progress(read.min(total), total, crate::report::Unit::Bytes, &label)))
                .await
                .map_err(|e| failed(format!("reading image archive {}: {e}", path.display())))?
                .map_err(|why| invalid(format!("image archive {} cannot be loaded: {why}", path.display())))?;
        for image in &images {
            for tag in &image.tags {
                let existing = match d.inspect_image(tag.as_str()).await {
                    Ok(existing) => existing,
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => continue,
                    Err(e) => return Err(engine_err(&format!("inspecting image {tag} on {node}"), e)),
                };
                let settings = run_settings(serde_json::to_value(&existing.config).ok().as_ref());
                let engine = EngineImage {
                    id: existing.id.as_deref(),
                    digest: existing.descriptor.as_ref().and_then(|d| d.digest.as_deref()),
                    layers: existing.root_fs.as_ref().and_then(|r| r.layers.as_deref()),
                    settings,
                };
                if !image.is(&engine) {
                    return Err(invalid(format!(
                        "image archive {} holds another image under tag {tag}, which already names image {} on node {node}: loading it would move the tag without a word (a container or a rollback that starts {tag} would get the archive's image). Nothing was loaded. If the archive's image is the one to keep, remove the tag first (`docker rmi {tag}` on {node}; with -f where a container uses the image, which keeps it for that container); otherwise name the right archive in the site config",
                        path.display(),
                        existing.id.as_deref().unwrap_or("?")
                    )));
                }
            }
        }
        Ok(images)
    }
}

impl BollardDocker {
    /// What `opshost check` says of a node's engine: its version, API and platform, or why it
    /// cannot be reached.
    pub async fn engine_version(&self, node: &str) -> Result<String, Error> {
        let d = self.engine(node).await?;
        let v = d.version().await.map_err(|e| failed(format!("node {node}: the Docker engine does not answer ({e}): is dockerd running?")))?;
        Ok(format!(
            "Docker {} (API {}), {}/{}",
            v.version.unwrap_or_else(|| "?".into()),
            v.api_version.unwrap_or_else(|| "?".into()),
            v.os.unwrap_or_else(|| "?".into()),
            v.arch.unwrap_or_else(|| "?".into())
        ))
    }
}

/// The entrypoint of the privileged probe: a path no image has, so nothing of the image runs.
const PROBE_ENTRYPOINT: &str = "/opshost-privileged-probe-runs-nothing";

/// Whether a failed start means the engine may not grant what `--privileged` asks (runc's "unable
/// to apply caps: operation not permitted", a seccomp or AppArmor refusal), rather than the probe's
/// missing entrypoint.
fn privileges_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    !m.contains(PROBE_ENTRYPOINT)
        && (m.contains("apply caps") || m.contains("operation not permitted") || m.contains("permission denied") || m.contains("privileged"))
}

/// The one regular file of a tar archive as the engine's archive endpoint sends it (extended
/// headers skipped); why not, in words that follow the file's name.
fn file_in_tar(tar: &[u8]) -> Result<Vec<u8>, String> {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let h = &tar[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |r: std::ops::Range<usize>| String::from_utf8_lossy(&h[r]).trim_end_matches(['\0', ' ']).trim_start().to_string();
        let size = if h[124] & 0x80 != 0 {
            return Err(format!("is larger than {} bytes", super::READ_FILE_MAX));
        } else {
            usize::from_str_radix(&field(124..136), 8).map_err(|_| "came in an archive the engine sent malformed".to_string())?
        };
        let data = at + 512;
        let end = data.checked_add(size).filter(|&e| e <= tar.len()).ok_or("came in a truncated archive")?;
        match h[156] {
            b'0' | 0 | b'7' => {
                if size > super::READ_FILE_MAX {
                    return Err(format!("is larger than {} bytes", super::READ_FILE_MAX));
                }
                return Ok(tar[data..end].to_vec());
            }
            b'5' => return Err("is a directory: name a file".into()),
            b'1' | b'2' => return Err(format!("is a link to {}: name the file it points to", field(157..257))),
            b'x' | b'g' | b'L' | b'K' => at = data + size.div_ceil(512) * 512,
            other => return Err(format!("is not a regular file (tar type {:?})", other as char)),
        }
    }
    Err("came in an archive that holds no file".into())
}

/// An engine error as a typed error that names the object.
fn engine_err(what: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError { status_code: 404, message } => not_found(format!("{what}: {message}")),
        B::DockerResponseServerError { status_code: 409, message } => invalid(format!("{what}: {message}")),
        B::DockerResponseServerError { status_code, message } => failed(format!("{what}: engine answered {status_code}: {message}")),
        other => failed(format!("{what}: {other}")),
    }
}

/// Whether an inspected container is the one named `container`. The engine takes a container's
/// ID, or any unique prefix of it, where a name is asked: a plugin granted names like `db*`
/// would reach a container whose ID begins `db12…`. opshost names containers by name only, as
/// the fake engine does.
fn is_named(r: &bollard::models::ContainerInspectResponse, container: &str) -> bool {
    r.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(container)
}

/// `container` inspected as the engine resolves it (a name, an ID or a prefix of one); None when
/// nothing matches.
async fn inspect_any(d: &bollard::Docker, node: &str, container: &str) -> Result<Option<bollard::models::ContainerInspectResponse>, Error> {
    match d.inspect_container(container, None::<InspectContainerOptions>).await {
        Ok(r) => Ok(Some(r)),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        Err(e) => Err(engine_err(&format!("inspecting container {container} on {node}"), e)),
    }
}

/// Refuses `container` when the engine would take it as another container's ID (or a prefix of
/// one) rather than its name; a name no container has is left to the call, which says so.
async fn only_by_name(d: &bollard::Docker, node: &str, container: &str) -> Result<(), Error> {
    match inspect_any(d, node, container).await? {
        Some(r) if !is_named(&r, container) => Err(not_found(format!(
            "no container is named {container} on node {node} (the engine would take it as the ID of {}; opshost names containers by name only)",
            r.name.as_deref().unwrap_or("another container").trim_start_matches('/')
        ))),
        _ => Ok(()),
    }
}

fn state_of(s: Option<ContainerStateStatusEnum>) -> ContainerState {
    match s {
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) | Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Dead,
        _ => ContainerState::Created,
    }
}

fn parse_bind(b: &str) -> Mount {
    let parts: Vec<&str> = b.split(':').collect();
    match parts.as_slice() {
        [s, t] => Mount { source: s.to_string(), target: t.to_string(), read_only: false },
        [s, t, opts, ..] => Mount { source: s.to_string(), target: t.to_string(), read_only: opts.split(',').any(|o| o == "ro") },
        _ => Mount { source: b.to_string(), target: b.to_string(), read_only: false },
    }
}

fn bind_of(m: &Mount) -> String {
    format!("{}:{}{}", m.source, m.target, if m.read_only { ":ro" } else { "" })
}

fn truncate_front(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut cut = s.len() - MAX_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("…{}", &s[cut..]);
    }
    s
}

/// What [`Docker::template`] keeps of a container: its config and host config as the engine has
/// them, and its image's config (to tell what the container set from what the image gave).
#[derive(Serialize, Deserialize)]
struct Template {
    id: String,
    config: bollard::models::ContainerConfig,
    host_config: HostConfig,
    image_config: bollard::models::ImageConfig,
}

/// The engine's create request for `spec`: from the template when there is one (every option the
/// old container had), with the spec's fields on top.
fn create_body(spec: &RunSpec, privileged: bool, template: Option<Template>) -> ContainerCreateBody {
    let (mut body, mut host) = match template {
        None => (ContainerCreateBody::default(), HostConfig::default()),
        Some(Template { id, config: c, host_config, image_config: img }) => {
            // What the container set itself, not what its image (which the successor replaces) gave.
            let own = |v: Option<Vec<String>>, image: &Option<Vec<String>>| v.filter(|v| Some(v) != image.as_ref());
            let hostname = c.hostname.filter(|h| !h.is_empty() && !id.starts_with(h.as_str()));
            let body = ContainerCreateBody {
                hostname,
                domainname: c.domainname.filter(|d| !d.is_empty()),
                user: c.user.filter(|u| !u.is_empty() && Some(u) != img.user.as_ref()),
                working_dir: c.working_dir.filter(|w| !w.is_empty() && Some(w) != img.working_dir.as_ref()),
                entrypoint: own(c.entrypoint, &img.entrypoint),
                healthcheck: c.healthcheck.filter(|h| Some(h) != img.healthcheck.as_ref()),
                exposed_ports: c.exposed_ports.filter(|p| Some(p) != img.exposed_ports.as_ref()),
                stop_signal: c.stop_signal.filter(|s| Some(s) != img.stop_signal.as_ref()),
                stop_timeout: c.stop_timeout,
                shell: own(c.shell, &img.shell),
                ..Default::default()
            };
            // Port bindings need their ports exposed; the old image may have exposed some.
            let mut body = body;
            if let Some(bindings) = &host_config.port_bindings {
                let mut ports = body.exposed_ports.take().unwrap_or_default();
                ports.extend(bindings.keys().filter(|k| !ports.contains(k)).cloned().collect::<Vec<_>>());
                body.exposed_ports = Some(ports);
            }
            (body, HostConfig { mounts: None, ..host_config })
        }
    };
    host.binds = Some(spec.mounts.iter().map(bind_of).collect());
    host.network_mode = Some(spec.network_mode.clone());
    host.privileged = Some(privileged);
    host.pids_limit = spec.pids_limit;
    // The spec's ulimits replace the template's of the same name; the others stay.
    let mut ulimits: Vec<ResourcesUlimits> =
        host.ulimits.take().unwrap_or_default().into_iter().filter(|u| !spec.ulimits.iter().any(|s| Some(&s.name) == u.name.as_ref())).collect();
    ulimits.extend(spec.ulimits.iter().map(|u| ResourcesUlimits { name: Some(u.name.clone()), soft: Some(u.soft), hard: Some(u.hard) }));
    host.ulimits = (!ulimits.is_empty()).then_some(ulimits);
    host.cpu_period = spec.cpu_period.map(|p| p as i64);
    host.cpu_quota = spec.cpu_quota;
    host.memory = spec.memory_bytes.map(|m| m as i64);
    body.image = Some(spec.image.clone());
    body.env = Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect());
    body.cmd = (!spec.command.is_empty()).then(|| spec.command.clone());
    body.labels = (!spec.labels.is_empty()).then(|| spec.labels.iter().cloned().collect::<HashMap<_, _>>());
    body.open_stdin = Some(spec.interactive);
    body.tty = Some(spec.tty);
    body.host_config = Some(host);
    body
}

#[async_trait]
impl Docker for BollardDocker {
    async fn inspect(&self, node: &str, container: &str) -> Result<Option<ContainerInfo>, Error> {
        let d = self.engine(node).await?;
        let Some(r) = inspect_any(d, node, container).await?.filter(|r| is_named(r, container)) else { return Ok(None) };
        let config = r.config.unwrap_or_default();
        let host = r.host_config.unwrap_or_default();
        // `docker inspect` merges the image's ENV, labels and CMD into the container's config. A run
        // spec holds what the container was run with: keep only what differs from the image, so
        // a successor on a newer image gets that image's defaults, not the old one's.
        let image_config = match &r.image {
            Some(id) => d.inspect_image(id).await.ok().and_then(|i| i.config),
            None => None,
        };
        let image_env: Vec<String> = image_config.as_ref().and_then(|c| c.env.clone()).unwrap_or_default();
        let image_labels: HashMap<String, String> = image_config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let image_cmd: Vec<String> = image_config.as_ref().and_then(|c| c.cmd.clone()).unwrap_or_default();
        let mounts = match host.binds {
            Some(binds) if !binds.is_empty() => binds.iter().map(|b| parse_bind(b)).collect(),
            _ => r
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|m| Mount { source: m.source.or(m.name).unwrap_or_default(), target: m.destination.unwrap_or_default(), read_only: m.rw == Some(false) })
                .collect(),
        };
        let mut labels: Vec<(String, String)> = config.labels.unwrap_or_default().into_iter().filter(|(k, v)| image_labels.get(k) != Some(v)).collect();
        labels.sort();
        let spec = RunSpec {
            name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
            image: config.image.unwrap_or_default(),
            env: config
                .env
                .unwrap_or_default()
                .iter()
                .filter(|kv| !image_env.contains(kv))
                .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((kv.clone(), String::new())))
                .collect(),
            mounts,
            network_mode: host.network_mode.unwrap_or_else(|| "default".into()),
            privileged: host.privileged.unwrap_or(false),
            pids_limit: host.pids_limit.filter(|p| *p != 0),
            ulimits: host
                .ulimits
                .unwrap_or_default()
                .into_iter()
                .map(|u| Ulimit { name: u.name.unwrap_or_default(), soft: u.soft.unwrap_or(0), hard: u.hard.unwrap_or(0) })
                .collect(),
            cpu_period: host.cpu_period.filter(|p| *p > 0).map(|p| p as u64),
            cpu_quota: host.cpu_quota.filter(|q| *q != 0),
            memory_bytes: host.memory.filter(|m| *m > 0).map(|m| m as u64),
            interactive: config.open_stdin.unwrap_or(false),
            tty: config.tty.unwrap_or(false),
            command: config.cmd.filter(|c| *c != image_cmd).unwrap_or_default(),
            labels,
        };
        Ok(Some(ContainerInfo { id: r.id.unwrap_or_default(), state: state_of(r.state.and_then(|s| s.status)), spec }))
    }

    async fn stop(&self, node: &str, container: &str, timeout_s: u32) -> Result<(), Error> {
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        match d.stop_container(container, Some(StopContainerOptions { t: Some(timeout_s as i32), ..Default::default() })).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(engine_err(&format!("stopping container {container} on {node}"), e)),
        }
    }

    async fn start(&self, node: &str, container: &str) -> Result<(), Error> {
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        match d.start_container(container, None::<StartContainerOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(engine_err(&format!("starting container {container} on {node}"), e)),
        }
    }

    async fn restart(&self, node: &str, container: &str, timeout_s: u32) -> Result<(), Error> {
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        d.restart_container(container, Some(RestartContainerOptions { t: Some(timeout_s as i32), ..Default::default() }))
            .await
            .map_err(|e| engine_err(&format!("restarting container {container} on {node}"), e))
    }

    async fn remove(&self, node: &str, container: &str, force: bool) -> Result<(), Error> {
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        d.remove_container(container, Some(RemoveContainerOptions { force, ..Default::default() }))
            .await
            .map_err(|e| engine_err(&format!("removing container {container} on {node}"), e))
    }

    async fn container_names(&self, node: &str) -> Result<Vec<String>, Error> {
        let d = self.engine(node).await?;
        let list = d
            .list_containers(Some(bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).build()))
            .await
            .map_err(|e| engine_err(&format!("listing containers on {node}"), e))?;
        let mut names: Vec<String> = list.into_iter().flat_map(|c| c.names.unwrap_or_default()).map(|n| n.trim_start_matches('/').to_string()).collect();
        names.sort();
        Ok(names)
    }

    async fn refuses_privileged(&self, node: &str, image: &str) -> Result<Option<String>, Error> {
        if let Some(known) = self.privileged_refused.lock().unwrap().get(node) {
            return Ok(known.clone());
        }
        let d = self.engine(node).await?;
        let name = format!(
            "opshost-privileged-probe-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_millis()).unwrap_or(0)
        );
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec![PROBE_ENTRYPOINT.to_string()]),
            cmd: Some(Vec::new()),
            network_disabled: Some(true),
            labels: Some(HashMap::from([("opshost.probe".to_string(), "privileged".to_string())])),
            host_config: Some(HostConfig { privileged: Some(true), network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        d.create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body).await.map_err(|e| {
            engine_err(&format!("creating a throwaway privileged container of {image} on {node} (to learn whether the engine permits --privileged)"), e)
        })?;
        let started = d.start_container(&name, None::<StartContainerOptions>).await;
        let _ = d.remove_container(&name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        let refused = match started {
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) if privileges_refused(&message) => Some(message),
            // Started, or failed the way an unprivileged start of a missing entrypoint fails: the
            // engine granted the privileges.
            _ => None,
        };
        self.privileged_refused.lock().unwrap().insert(node.to_string(), refused.clone());
        Ok(refused)
    }

    async fn template(&self, node: &str, container: &str) -> Result<Option<serde_json::Value>, Error> {
        let d = self.engine(node).await?;
        let Some(r) = inspect_any(d, node, container).await?.filter(|r| is_named(r, container)) else { return Ok(None) };
        let image_config = match &r.image {
            Some(id) => d.inspect_image(id).await.ok().and_then(|i| i.config),
            None => None,
        };
        let t = Template {
            id: r.id.unwrap_or_default(),
            config: r.config.unwrap_or_default(),
            host_config: r.host_config.unwrap_or_default(),
            image_config: image_config.unwrap_or_default(),
        };
        serde_json::to_value(&t).map(Some).map_err(|e| failed(format!("container {container} on {node}: {e}")))
    }

    async fn create(&self, node: &str, spec: &RunSpec, template: Option<&serde_json::Value>) -> Result<String, Error> {
        if spec.name.is_empty() || spec.image.is_empty() {
            return Err(invalid("a container needs a name and an image"));
        }
        let d = self.engine(node).await?;
        let privileged = spec.privileged && !self.policy.deny_privileged;
        if spec.privileged && !privileged {
            self.reporter.log(crate::report::Level::Warn, &format!("{}: running without --privileged (site policy deny_privileged)", spec.name));
        }
        let template: Option<Template> = template
            .map(|t| serde_json::from_value(t.clone()))
            .transpose()
            .map_err(|e| failed(format!("the recorded options of the container {} succeeds are unreadable: {e}", spec.name)))?;
        let body = create_body(spec, privileged, template);
        let created =
            d.create_container(Some(CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() }), body).await.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => {
                    not_found(format!("image {} is not on node {node}: load its archive first ({message})", spec.image))
                }
                bollard::errors::Error::DockerResponseServerError { status_code: 409, message } => invalid(format!(
                    "the container name {} is already in use on node {node}: remove that container or choose another name ({message})",
                    spec.name
                )),
                e => engine_err(&format!("creating container {} on {node}", spec.name), e),
            })?;
        Ok(created.id)
    }

    async fn run(&self, node: &str, spec: &RunSpec, template: Option<&serde_json::Value>) -> Result<String, Error> {
        let id = self.create(node, spec, template).await?;
        let d = self.engine(node).await?;
        if let Err(e) = d.start_container(&spec.name, None::<StartContainerOptions>).await {
            // Leave nothing half-made behind: a created-but-unstartable container would block the name.
            let _ = d.remove_container(&spec.name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
            return Err(engine_err(&format!("starting container {} on {node}", spec.name), e));
        }
        Ok(id)
    }

    async fn load_image(&self, node: &str, archive: &str) -> Result<Vec<String>, Error> {
        let path = PathBuf::from(archive);
        if !self.archives.contains(&path) {
            return Err(not_found(format!("image archive {archive} is not named in the site config: add it to image_archive of the product or to [archives]")));
        }
        let d = self.engine(node).await?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| not_found(format!("image archive {archive}: {e}")))?;
        let total = file.metadata().await.map(|m| m.len()).unwrap_or(0).max(1);
        let reporter = self.reporter.clone();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let expected = self.check_archive_tags(d, node, &path, total, &name).await?;
        let label = format!("load {name}");
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map(move |chunk| {
            if let Ok(c) = &chunk {
                sent += c.len() as u64;
                reporter.progress(sent.min(total), total, crate::report::Unit::Bytes, &label);
            }
            chunk
        });
        let mut out = d.import_image_stream(ImportImageOptions { quiet: true, ..Default::default() }, stream, None);
        let mut tags = Vec::new();
        while let Some(item) = out.next().await {
            let info = item.map_err(|e| engine_err(&format!("loading image archive {archive} on {node}"), e))?;
            if let Some(err) = info.error_detail.and_then(|e| e.message) {
                return Err(failed(format!("loading image archive {archive} on {node}: {err}")));
            }
            for line in info.stream.iter().chain(info.status.iter()) {
                for l in line.lines() {
                    if let Some(t) = l.strip_prefix("Loaded image: ").or_else(|| l.strip_prefix("Loaded image ID: ")) {
                        tags.push(t.trim().to_string());
                    }
                }
            }
        }
        if tags.is_empty() {
            return Err(failed(format!("image archive {archive} loaded no image: is it a `docker save` archive?")));
        }
        if let Some(t) = tags.iter().find(|t| !t.starts_with("sha256:") && !expected.iter().any(|e| e.tags.contains(&normalized(t)))) {
            return Err(failed(format!(
                "loading image archive {archive} on {node} set tag {t}, which its manifest does not name: check what `docker image ls {t}` now shows before going on"
            )));
        }
        Ok(tags)
    }

    async fn image_exists(&self, node: &str, image: &str) -> Result<bool, Error> {
        let d = self.engine(node).await?;
        match d.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(engine_err(&format!("inspecting image {image} on {node}"), e)),
        }
    }

    async fn exec(&self, node: &str, container: &str, command: &[String]) -> Result<ExecResult, Error> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        let what = format!("exec in container {container} on {node}");
        let created = d
            .create_exec(
                container,
                CreateExecOptions { cmd: Some(command.to_vec()), attach_stdout: Some(true), attach_stderr: Some(true), ..Default::default() },
            )
            .await
            .map_err(|e| engine_err(&what, e))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        match d.start_exec(&created.id, None).await.map_err(|e| engine_err(&what, e))? {
            StartExecResults::Attached { mut output, .. } => {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(|e| engine_err(&what, e))? {
                        bollard::container::LogOutput::StdErr { message } => stderr.push_str(&String::from_utf8_lossy(&message)),
                        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                    if stdout.len() > 2 * MAX_OUTPUT {
                        stdout = truncate_front(stdout);
                    }
                    if stderr.len() > 2 * MAX_OUTPUT {
                        stderr = truncate_front(stderr);
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspected = d.inspect_exec(&created.id).await.map_err(|e| engine_err(&what, e))?;
        let exit_code = inspected.exit_code.ok_or_else(|| failed(format!("{what}: the engine reported no exit code")))? as i32;
        Ok(ExecResult { exit_code, stdout: truncate_front(stdout), stderr: truncate_front(stderr) })
    }

    async fn read_file(&self, node: &str, container: &str, path: &str) -> Result<Vec<u8>, Error> {
        use bollard::query_parameters::DownloadFromContainerOptions;
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        let what = format!("{path} in container {container} on node {node}");
        // GET /containers/{id}/archive: the file as one tar entry, read through mounts, running or not.
        let mut s = d.download_from_container(container, Some(DownloadFromContainerOptions { path: path.to_string() }));
        let mut tar = Vec::new();
        while let Some(chunk) = s.next().await {
            tar.extend_from_slice(&chunk.map_err(|e| engine_err(&what, e))?);
            if tar.len() > super::READ_FILE_MAX + 64 * 1024 {
                return Err(invalid(format!("{what} is larger than {} bytes", super::READ_FILE_MAX)));
            }
        }
        file_in_tar(&tar).map_err(|why| invalid(format!("{what} {why}")))
    }

    async fn logs(&self, node: &str, container: &str, tail: u32) -> Result<String, Error> {
        let d = self.engine(node).await?;
        only_by_name(d, node, container).await?;
        let mut s = d.logs(container, Some(LogsOptions { stdout: true, stderr: true, tail: tail.to_string(), ..Default::default() }));
        let mut out = String::new();
        while let Some(chunk) = s.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| engine_err(&format!("logs of container {container} on {node}"), e))?.into_bytes()));
            // Cut as it streams, as exec does: a container's log can be gigabytes, whatever `tail` asks.
            if out.len() > 2 * MAX_OUTPUT {
                out = truncate_front(out);
            }
        }
        Ok(truncate_front(out))
    }
}

#[cfg(test)]
mod tests {
    use super::file_in_tar;

    /// A tar of `entries` made by the system's tar, as the engine's archive endpoint would send one.
    fn tar_of(setup: impl FnOnce(&std::path::Path), entry: &str, extra: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let out = std::process::Command::new("tar").args(extra).arg("-cf").arg("-").arg("-C").arg(dir.path()).arg(entry).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    #[test]
    fn the_one_file_of_an_archive_and_what_is_not_a_file() {
        let text = "drc_rm_db: rm_411\n".repeat(100);
        let t = tar_of(|d| std::fs::write(d.join("config.yaml"), &text).unwrap(), "config.yaml", &[]);
        assert_eq!(file_in_tar(&t).unwrap(), text.as_bytes());
        // A long name comes with an extended header first (pax), which is skipped.
        let long = "c".repeat(150);
        let t = tar_of(|d| std::fs::write(d.join(&long), "x: 1\n").unwrap(), &long, &["--format=pax"]);
        assert_eq!(file_in_tar(&t).unwrap(), b"x: 1\n");
        let t = tar_of(|d| std::fs::create_dir(d.join("conf")).unwrap(), "conf", &["--no-recursion"]);
        assert!(file_in_tar(&t).unwrap_err().contains("is a directory"));
        let t = tar_of(|d| std::os::unix::fs::symlink("/etc/real.yaml", d.join("config.yaml")).unwrap(), "config.yaml", &[]);
        assert!(file_in_tar(&t).unwrap_err().contains("is a link to /etc/real.yaml"));
        assert!(file_in_tar(&[0u8; 1024]).unwrap_err().contains("holds no file"));
        let big = vec![b'a'; super::super::READ_FILE_MAX + 1];
        let t = tar_of(|d| std::fs::write(d.join("big"), &big).unwrap(), "big", &[]);
        assert!(file_in_tar(&t).unwrap_err().contains("larger than"));
        assert!(file_in_tar(&t[..600]).unwrap_err().contains("truncated"));
    }
}
