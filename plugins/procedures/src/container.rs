//! Container swap: look up the old container(s), stop them keeping them for rollback (T1), run
//! their successors with the same mounts, run the init script, wait until the servers are online.
//! Works on one node or several (`*_all` functions and the `old.containers` / `new.containers`
//! run records).

use crate::bindings::opshost::plugin::console;
use crate::bindings::opshost::plugin::docker::{self, ContainerInfo, ContainerState, RunSpec, Ulimit};
use crate::ctx::{failed, info, invalid, not_found, now_ms, recall, record, wait_until, Result, Within};

pub fn inspect(node: &str, name: &str) -> Result<Option<ContainerInfo>> {
    docker::inspect(node, name).within(&format!("inspecting container {name} on node {node}"))
}

pub fn require(node: &str, name: &str, fix: &str) -> Result<ContainerInfo> {
    inspect(node, name)?.ok_or_else(|| not_found(format!("container {name} does not exist on node {node}: {fix}")))
}

pub fn require_absent(node: &str, name: &str, fix: &str) -> Result<()> {
    match inspect(node, name)? {
        None => Ok(()),
        Some(c) => Err(invalid(format!("a container named {name} already exists on node {node} ({}): {fix}", state_name(c.state)))),
    }
}

pub fn env_value<'a>(spec: &'a RunSpec, key: &str) -> Option<&'a str> {
    spec.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub fn set_env(spec: &mut RunSpec, key: &str, value: &str) {
    match spec.env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => spec.env.push((key.to_string(), value.to_string())),
    }
}

pub fn remove_env(spec: &mut RunSpec, key: &str) {
    spec.env.retain(|(k, _)| k != key);
}

/// The host's label for a successor: the new container is made from `old`'s whole options (ports,
/// restart policy, log driver, capabilities, … as the run first inspected it), with the spec's
/// fields on top. A container re-created under its own name gets its options back the same way.
pub const SUCCESSOR_LABEL: &str = "opshost.successor-of";

pub fn successor_of(spec: &mut RunSpec, old: &str) {
    spec.labels.retain(|(k, _)| k != SUCCESSOR_LABEL);
    spec.labels.push((SUCCESSOR_LABEL.to_string(), old.to_string()));
}

/// The OMS run options of the vendor procedure (`docker run -dit --net host --privileged=true
/// --pids-limit -1 --ulimit nproc=65535:65535`), keeping the old container's mounts and env.
pub fn oms_successor(old: &RunSpec, name: &str, image: &str) -> RunSpec {
    let mut spec = old.clone();
    spec.name = name.to_string();
    spec.image = image.to_string();
    spec.network_mode = "host".into();
    spec.privileged = true;
    spec.pids_limit = Some(-1);
    spec.ulimits = vec![Ulimit { name: "nproc".into(), soft: 65535, hard: 65535 }];
    spec.interactive = true;
    spec.tty = true;
    spec.command = Vec::new();
    spec.labels = Vec::new();
    successor_of(&mut spec, &old.name);
    spec
}

/// What the host will run for `spec` on `node`, after the site's policy (`--privileged` dropped
/// under `deny_privileged`), or the refusal `run` would meet: asked in `plan`, so that a denied
/// option or an engine that refuses `--privileged` stops the upgrade before anything changes.
pub fn check_run(node: &str, spec: &RunSpec) -> Result<RunSpec> {
    docker::check_run(node, spec).within(&format!("the new container {} could not start on node {node}", spec.name))
}

/// The `docker run` flags of a spec that the vendor's procedures set, as the plan shows them.
pub fn describe_flags(spec: &RunSpec) -> String {
    let mut f = vec![format!("--net {}", if spec.network_mode.is_empty() { "default" } else { &spec.network_mode })];
    if spec.privileged {
        f.push("--privileged".into());
    }
    if let Some(p) = spec.pids_limit {
        f.push(format!("--pids-limit {p}"));
    }
    f.extend(spec.ulimits.iter().map(|u| format!("--ulimit {}={}:{}", u.name, u.soft, u.hard)));
    f.join(" ")
}

/// Stop the old container (kept for rollback) and record T1, the moment the service went down.
pub fn stop_recording_t1(node: &str, old: &ContainerInfo, timeout_s: u32) -> Result<u64> {
    record("old.container", &(node, &old.spec))?;
    if old.state == ContainerState::Running || old.state == ContainerState::Restarting {
        docker::stop(node, &old.spec.name, timeout_s).within(&format!("stopping {}", old.spec.name))?;
    }
    let t1 = now_ms();
    record("t1", &t1)?;
    info(format!("stopped {} on node {node} (T1 recorded)", old.spec.name));
    Ok(t1)
}

/// `docker exec CONTAINER bash /root/docker_init.sh`; a non-zero exit fails the upgrade.
pub fn run_init_script(node: &str, container: &str, script: &str) -> Result<()> {
    let out = match docker::exec(node, container, &["bash".to_string(), script.to_string()]) {
        Ok(out) => out,
        Err(e) => {
            // A container that exited (or crash-loops) says why in its log, not in exec's error.
            if let Ok(Some(c)) = inspect(node, container) {
                fail_unless_running(node, &c, &format!("so {script} could not run in it"))?;
            }
            return Err(e.within(&format!("running {script} in {container}")));
        }
    };
    if out.exit_code != 0 {
        let tail: String = out.stderr.lines().chain(out.stdout.lines()).rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        return Err(failed(format!(
            "{script} in {container} exited with {}: {tail}; see /home/admin/logs/docker_init*.log in the container, then run rollback",
            out.exit_code
        )));
    }
    record("init.done", &true)?;
    info(format!("{script} finished in {container}"));
    Ok(())
}

/// Wait until the console lists servers and all are online, and the node answers healthy.
pub fn wait_online(node: &str, timeout_s: u64, interval_s: u64) -> Result<usize> {
    wait_online_all(&[node.to_string()], timeout_s, interval_s)
}

/// Wait until the console lists servers and all are online, and every node answers healthy.
pub fn wait_online_all(nodes: &[String], timeout_s: u64, interval_s: u64) -> Result<usize> {
    wait_until("all servers online and the console healthy", timeout_s, interval_s, || online_and_healthy(nodes))
}

/// The console lists servers, all online, and every node answers healthy: how many servers.
fn online_and_healthy(nodes: &[String]) -> Result<Option<usize>> {
    let servers = console::list_servers().within("listing servers")?;
    let offline: Vec<_> = servers.iter().filter(|s| !s.status.trim().eq_ignore_ascii_case("online")).map(|s| format!("{} ({})", s.address, s.status)).collect();
    if servers.is_empty() || !offline.is_empty() {
        info(format!("servers not online yet: {}", if servers.is_empty() { "none listed".into() } else { offline.join(", ") }));
        return Ok(None);
    }
    for node in nodes {
        if !console::health(node).within("checking health")? {
            info(format!("servers online, node {node} not healthy yet"));
            return Ok(None);
        }
    }
    Ok(Some(servers.len()))
}

/// A new container that should be starting: an error with its last log lines if it is not
/// running. `restarting` counts as failed: it exited, and its restart policy starts it again (a
/// crash loop never becomes healthy, and waiting out the timeout would only lengthen the downtime).
pub fn fail_if_not_running(node: &str, c: &ContainerInfo) -> Result<()> {
    fail_unless_running(node, c, "instead of becoming healthy")
}

/// [`fail_if_not_running`] with the consequence in words ("instead of becoming healthy").
fn fail_unless_running(node: &str, c: &ContainerInfo, consequence: &str) -> Result<()> {
    if c.state == ContainerState::Running {
        return Ok(());
    }
    let name = &c.spec.name;
    let tail = docker::logs(node, name, 10).unwrap_or_default();
    let tail = tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
    let why = match c.state {
        ContainerState::Restarting => " (it exited, and its restart policy starts it again)",
        _ => "",
    };
    Err(failed(format!("container {name} on node {node} {}{why} {consequence}; its last log lines: {tail}; run rollback", state_name(c.state))))
}

/// The line OMS writes to its container's log once its services are up: the vendor's deployer
/// waits for it before it reports OMS started.
pub const OMS_STARTED_LINE: &str = "OMS service start successfully";

/// Wait until `container` logged [`OMS_STARTED_LINE`] on every node, then until the console
/// lists servers, all online, and every node answers healthy.
pub fn wait_started_then_online(nodes: &[String], container: &str, timeout_s: u64, interval_s: u64) -> Result<usize> {
    let mut started: Vec<&str> = Vec::new();
    let what = format!("\"{OMS_STARTED_LINE}\" in the log of {container}, all servers online and the console healthy");
    wait_until(&what, timeout_s, interval_s, || {
        for node in nodes {
            // A new OMS that exited (or crash-loops) never comes online: say so now.
            match inspect(node, container)? {
                Some(c) => fail_if_not_running(node, &c)?,
                None => return Err(failed(format!("container {container} disappeared from node {node} while starting: run rollback"))),
            }
            // Remembered once seen: a busy log may push the line out of a later tail.
            if started.contains(&node.as_str()) {
                continue;
            }
            if docker::logs(node, container, 1000).within(&format!("reading the log of {container} on node {node}"))?.contains(OMS_STARTED_LINE) {
                started.push(node);
            } else {
                info(format!("{container} on node {node} has not logged \"{OMS_STARTED_LINE}\" yet"));
                return Ok(None);
            }
        }
        online_and_healthy(nodes)
    })
}

const OLD_CONTAINERS: &str = "old.containers";
const NEW_CONTAINERS: &str = "new.containers";

/// Several nodes: record every old container (node, spec) first, then stop each, keeping them
/// for rollback. T1, the moment the service went down, is recorded when the first one stopped.
pub fn stop_all_recording_t1(olds: &[(String, ContainerInfo)], timeout_s: u32) -> Result<u64> {
    let specs: Vec<(&str, &RunSpec)> = olds.iter().map(|(n, c)| (n.as_str(), &c.spec)).collect();
    record(OLD_CONTAINERS, &specs)?;
    let mut t1 = None;
    for (node, old) in olds {
        if old.state == ContainerState::Running || old.state == ContainerState::Restarting {
            let on = if olds.len() > 1 { format!(" on node {node}") } else { String::new() };
            docker::stop(node, &old.spec.name, timeout_s).within(&format!("stopping {}{on}", old.spec.name))?;
        }
        if t1.is_none() {
            let now = now_ms();
            record("t1", &now)?;
            t1 = Some(now);
        }
        info(format!("stopped {} on node {node} (T1 recorded)", old.spec.name));
    }
    t1.ok_or_else(|| invalid("no old container to stop: the deployment lists no node"))
}

/// Several nodes: create each successor without starting it, recording the ones created so far
/// (node, name) before each `create`, so that a rollback finds them even if one fails. Done before
/// anything stops: the engine refuses a name in use, a missing image or a bad option while the
/// old version still serves.
pub fn create_all_recorded(runs: &[(String, RunSpec)]) -> Result<()> {
    let mut created: Vec<(&str, &str)> = Vec::new();
    for (node, spec) in runs {
        created.push((node, &spec.name));
        record(NEW_CONTAINERS, &created)?;
        let on = if runs.len() > 1 { format!(" on node {node}") } else { String::new() };
        docker::create(node, spec).within(&format!("creating {} from {}{on} (before anything stops)", spec.name, spec.image))?;
        info(format!("created {} from {} on node {node}; it starts after the backup", spec.name, spec.image));
    }
    Ok(())
}

const NEW_STARTED: &str = "new.started";

/// Start the successors [`create_all_recorded`] created; recorded first, so that a rollback
/// knows a new version may have touched the MetaDB.
pub fn start_all(runs: &[(String, RunSpec)]) -> Result<()> {
    record(NEW_STARTED, &true)?;
    for (node, spec) in runs {
        let on = if runs.len() > 1 { format!(" on node {node}") } else { String::new() };
        docker::start(node, &spec.name).within(&format!("starting {}{on}", spec.name))?;
        info(format!("started {} from {} on node {node}", spec.name, spec.image));
    }
    Ok(())
}

/// Rollback: the old containers the upgrade recorded (node, spec): [`stop_all_recording_t1`]'s
/// list, or the single one [`stop_recording_t1`] records.
pub fn recorded_old() -> Result<Vec<(String, RunSpec)>> {
    if let Some(all) = recall(OLD_CONTAINERS)? {
        return Ok(all);
    }
    Ok(recall::<(String, RunSpec)>("old.container")?.into_iter().collect())
}

/// Rollback: remove each new container that was created before the stop and never started (it
/// held nothing); returns those that exist and ran (node, name), to be kept for a look.
pub fn remove_never_started(new: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let mut ran = Vec::new();
    for (node, name) in new {
        match inspect(node, name)? {
            Some(c) if c.state == ContainerState::Created => {
                docker::remove(node, name, false).within(&format!("removing {name}, created and never started"))?;
                info(format!("removed {name} on node {node}: it was created before the stop and never started"));
            }
            Some(_) => ran.push((node.clone(), name.clone())),
            None => {}
        }
    }
    Ok(ran)
}

/// Rollback: whether the upgrade started (or tried to start) a new container.
pub fn any_started() -> Result<bool> {
    Ok(recall::<bool>(NEW_STARTED)?.unwrap_or(false))
}

/// Rollback: the new containers the upgrade created or tried to create (node, name).
pub fn recorded_new() -> Result<Vec<(String, String)>> {
    if let Some(all) = recall(NEW_CONTAINERS)? {
        return Ok(all);
    }
    Ok(recall::<(String, String)>("new.container")?.into_iter().collect())
}

/// Rollback: make sure the old container runs again: `docker restart` it (the seed's step), or
/// re-create it from its recorded spec if it was removed.
pub fn bring_back(node: &str, old: &RunSpec, timeout_s: u32) -> Result<&'static str> {
    match inspect(node, &old.name)? {
        Some(c) if c.state == ContainerState::Running => Ok("already running"),
        Some(_) => {
            docker::restart(node, &old.name, timeout_s).within(&format!("restarting {}", old.name))?;
            Ok("restarted")
        }
        None => {
            let mut spec = old.clone();
            successor_of(&mut spec, &old.name);
            docker::run(node, &spec).within(&format!("re-creating {} from its recorded options", old.name))?;
            Ok("re-created from its recorded options")
        }
    }
}

/// Rollback: stop the successor if it runs; returns whether it was stopped now.
pub fn stop_if_running(node: &str, name: &str, timeout_s: u32) -> Result<bool> {
    match inspect(node, name)? {
        Some(c) if matches!(c.state, ContainerState::Running | ContainerState::Restarting | ContainerState::Paused) => {
            docker::stop(node, name, timeout_s).within(&format!("stopping {name}"))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

pub fn describe_mounts(spec: &RunSpec) -> String {
    spec.mounts.iter().map(|m| format!("{}:{}{}", m.source, m.target, if m.read_only { ":ro" } else { "" })).collect::<Vec<_>>().join(", ")
}

pub fn state_name(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
    }
}
