//! The behaviour every Docker backend must share, as one suite over `dyn Docker`. It runs on
//! FakeDocker and on BollardDocker against a real engine (host/tests/docker.rs), so the fake stays
//! honest. `image` must run `sleep` and `sh`; the fake gets exec rules for the commands used here.

use super::{ContainerState, Docker, Mount, RunSpec, Ulimit};
use crate::bindings::Error;

pub const EXEC_PROBE: &str = "echo out; echo err >&2; exit 3";

/// The file the caller puts at `<mount_source>/conf.yaml` before the suite: `docker.read-file`
/// reads it through the container's mount, running or stopped.
pub const FILE_PROBE: &str = "drc_rm_db: rm_411\ncm_nodes:\n  - 10.0.0.5\n# the end, no newline after\ncm_location: hz";

pub fn probe_spec(name: &str, image: &str, mount_source: &str) -> RunSpec {
    RunSpec {
        name: name.into(),
        image: image.into(),
        env: vec![("OMS_HOST_IP".into(), "127.0.0.1".into()), ("IS_UPGRADE".into(), "true".into())],
        mounts: vec![Mount { source: mount_source.into(), target: "/home/ds/store".into(), read_only: false }],
        network_mode: "host".into(),
        privileged: false,
        pids_limit: Some(200),
        ulimits: vec![Ulimit { name: "nproc".into(), soft: 65535, hard: 65535 }],
        cpu_period: Some(100_000),
        cpu_quota: Some(50_000),
        memory_bytes: Some(64 << 20),
        interactive: true,
        tty: false,
        command: vec!["sleep".into(), "3601".into()],
        labels: vec![("opshost.test".into(), "conformance".into())],
    }
}

fn expect<T: std::fmt::Debug>(what: &str, r: Result<T, Error>, ok: impl Fn(&Error) -> bool) {
    match r {
        Err(e) if ok(&e) => {}
        other => panic!("{what}: unexpected {other:?}"),
    }
}

/// Run the suite with containers named `{prefix}-…` on `node`.
pub async fn suite(d: &dyn Docker, node: &str, image: &str, prefix: &str, mount_source: &str) {
    let name = format!("{prefix}-probe");
    assert!(d.inspect(node, &name).await.unwrap().is_none(), "a leftover {name} exists");
    let spec = probe_spec(&name, image, mount_source);
    let id = d.run(node, &spec, None).await.unwrap();
    assert!(!id.is_empty());

    let info = d.inspect(node, &name).await.unwrap().expect("running container is found");
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.spec.name, name);
    assert_eq!(info.spec.image, image);
    for kv in &spec.env {
        assert!(info.spec.env.contains(kv), "env {kv:?} missing from {:?}", info.spec.env);
    }
    assert_eq!(info.spec.mounts, spec.mounts);
    assert_eq!(info.spec.network_mode, "host");
    assert_eq!(info.spec.pids_limit, Some(200));
    assert_eq!(info.spec.ulimits, spec.ulimits);
    assert_eq!((info.spec.cpu_period, info.spec.cpu_quota, info.spec.memory_bytes), (Some(100_000), Some(50_000), Some(64 << 20)));
    assert!(info.spec.interactive);
    assert_eq!(info.spec.command, spec.command);
    assert!(info.spec.labels.contains(&("opshost.test".to_string(), "conformance".to_string())));

    // A successor built from the inspected spec runs the same: what rollback relies on.
    expect("same name again", d.run(node, &spec, None).await, |e| matches!(e, Error::InvalidInput(m) if m.contains(&name)));
    let mut missing = spec.clone();
    missing.name = format!("{prefix}-missing-image");
    missing.image = "opshost-test/no-such-image:0".into();
    expect("missing image", d.run(node, &missing, None).await, |e| matches!(e, Error::NotFound(m) if m.contains("opshost-test/no-such-image:0")));
    assert!(d.inspect(node, &missing.name).await.unwrap().is_none(), "a failed run leaves nothing behind");

    // Created before the stop, started after: created is not running, start runs it as `run`
    // would, a name in use or a missing image is refused at create, before anything started.
    let mut early = spec.clone();
    early.name = format!("{prefix}-created");
    expect("create: same name", d.create(node, &spec, None).await, |e| matches!(e, Error::InvalidInput(m) if m.contains(&name)));
    expect("create: missing image", d.create(node, &missing, None).await, |e| matches!(e, Error::NotFound(m) if m.contains("opshost-test/no-such-image:0")));
    assert!(!d.create(node, &early, None).await.unwrap().is_empty());
    let created = d.inspect(node, &early.name).await.unwrap().expect("a created container is found");
    assert_eq!(created.state, ContainerState::Created);
    d.start(node, &early.name).await.unwrap();
    let started = d.inspect(node, &early.name).await.unwrap().unwrap();
    assert_eq!(started.state, ContainerState::Running);
    assert_eq!((started.spec.mounts, started.spec.env.len() >= spec.env.len()), (info.spec.mounts.clone(), true), "created with the run's options");
    d.remove(node, &early.name, true).await.unwrap();

    // A prefix of its ID does not name it, though the engine takes one where a name is asked: a
    // plugin granted names like `db*` would reach a container whose ID begins `db12…`.
    let by_id = &info.id[..12];
    assert!(d.inspect(node, by_id).await.unwrap().is_none(), "{by_id}, a prefix of {name}'s ID, named it");
    let refused = |e: &Error| matches!(e, Error::NotFound(m) if m.contains(by_id));
    expect("exec by an ID prefix", d.exec(node, by_id, &["true".into()]).await, refused);
    expect("logs by an ID prefix", d.logs(node, by_id, 10).await, refused);
    expect("read a file by an ID prefix", d.read_file(node, by_id, "/home/ds/store/conf.yaml").await, refused);
    expect("stop by an ID prefix", d.stop(node, by_id, 1).await, refused);
    expect("restart by an ID prefix", d.restart(node, by_id, 1).await, refused);
    expect("remove by an ID prefix", d.remove(node, by_id, true).await, refused);
    assert!(d.template(node, by_id).await.unwrap().is_none());
    assert_eq!(d.inspect(node, &name).await.unwrap().unwrap().state, ContainerState::Running, "untouched");

    let out = d.exec(node, &name, &["sh".into(), "-c".into(), EXEC_PROBE.into()]).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));

    // A file through the container's mount, byte for byte; a missing one, a directory and a
    // missing container are errors of their own kinds.
    let conf = "/home/ds/store/conf.yaml";
    assert_eq!(d.read_file(node, &name, conf).await.unwrap(), FILE_PROBE.as_bytes());
    expect("read a missing file", d.read_file(node, &name, "/home/ds/store/none.yaml").await, |e| matches!(e, Error::NotFound(_)));
    expect("read a directory", d.read_file(node, &name, "/home/ds/store").await, |e| matches!(e, Error::InvalidInput(m) if m.contains("directory")));

    d.stop(node, &name, 1).await.unwrap();
    assert_eq!(d.inspect(node, &name).await.unwrap().unwrap().state, ContainerState::Exited);
    assert_eq!(d.read_file(node, &name, conf).await.unwrap(), FILE_PROBE.as_bytes(), "a stopped container's files can be read");
    d.stop(node, &name, 1).await.expect("stopping a stopped container is a no-op");
    assert!(d.exec(node, &name, &["true".into()]).await.is_err(), "exec in a stopped container fails");

    d.restart(node, &name, 1).await.unwrap();
    let again = d.inspect(node, &name).await.unwrap().unwrap();
    assert_eq!(again.state, ContainerState::Running);
    assert_eq!(again.spec, info.spec, "restart keeps every option");

    expect("remove running", d.remove(node, &name, false).await, |e| matches!(e, Error::InvalidInput(_)));
    d.remove(node, &name, true).await.unwrap();
    assert!(d.inspect(node, &name).await.unwrap().is_none());
    expect("stop missing", d.stop(node, &name, 1).await, |e| matches!(e, Error::NotFound(m) if m.contains(&name)));
    expect("restart missing", d.restart(node, &name, 1).await, |e| matches!(e, Error::NotFound(_)));
    expect("exec missing", d.exec(node, &name, &["true".into()]).await, |e| matches!(e, Error::NotFound(_)));
    expect("read in a missing container", d.read_file(node, &name, conf).await, |e| matches!(e, Error::NotFound(m) if m.contains(&name)));

    assert!(d.image_exists(node, image).await.unwrap());
    assert!(!d.image_exists(node, "opshost-test/no-such-image:0").await.unwrap());
    expect("unknown node", d.inspect("no-such-node", &name).await, |e| matches!(e, Error::NotFound(m) if m.contains("no-such-node")));
    expect(
        "archive not in the site config",
        d.load_image(node, "/etc/passwd").await,
        |e| matches!(e, Error::NotFound(m) if m.contains("not named in the site config")),
    );
}
