//! The Docker conformance suite on the fake engine and on the real one (bollard).

mod support;

use opshost::capabilities::docker::config::{NodeConfig, RunPolicy};
use opshost::capabilities::docker::conformance::{suite, EXEC_PROBE, FILE_PROBE};
use opshost::capabilities::docker::fake::{DockerSetup, ExecRule, FakeDocker, FileSetup, ImageSetup};
use opshost::capabilities::docker::real::BollardDocker;
use opshost::capabilities::services::fake::VirtualClock;
use opshost::capabilities::sql::fake::FakeSql;
use opshost::report::Silent;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::*;

#[tokio::test]
async fn fake_docker_conforms() {
    let setup = DockerSetup {
        nodes: vec!["local".into()],
        images: vec![ImageSetup {
            name: BUSYBOX.into(),
            nodes: vec!["local".into()],
            healthy: true,
            on_start: vec![],
            on_stop: vec![],
            log: vec![],
            crashes_to: None,
        }],
        archives: vec![],
        containers: vec![],
        exec: vec![ExecRule {
            image: None,
            command: format!("sh -c {EXEC_PROBE}"),
            requires_env: vec![],
            exit_code: 3,
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            sql: vec![],
            duration_s: 0,
        }],
        refuses_privileged: vec![],
        files: vec![FileSetup { nodes: vec!["local".into()], path: "/data/oms/oms_store/conf.yaml".into(), content: FILE_PROBE.into() }],
    };
    let d = FakeDocker::new(&setup, Arc::new(FakeSql::new(Vec::<String>::new())), VirtualClock::starting_at(0)).unwrap();
    suite(&d, "local", BUSYBOX, "fake", "/data/oms/oms_store").await;
}

#[tokio::test]
async fn bollard_docker_conforms_on_the_real_engine() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("opshost-conf-{}", std::process::id());
    std::fs::write(dir.path().join("conf.yaml"), FILE_PROBE).unwrap();
    let d = BollardDocker::new(BTreeMap::from([("local".to_string(), NodeConfig::default())]), vec![], RunPolicy::default(), Arc::new(Silent));
    suite(&d, "local", BUSYBOX, &prefix, dir.path().to_str().unwrap()).await;
}

#[tokio::test]
async fn an_engine_that_is_not_there_gets_one_clear_error() {
    let d = BollardDocker::new(
        BTreeMap::from([("far".to_string(), NodeConfig { docker: Some("unix:///nonexistent/docker.sock".into()) })]),
        vec![],
        RunPolicy::default(),
        Arc::new(Silent),
    );
    match opshost::capabilities::docker::Docker::inspect(&d, "far", "oms_411").await {
        Err(opshost::bindings::Error::Failed(m)) => assert!(m.contains("node far") && m.contains("dockerd"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_plain_tar_archive_named_in_the_site_config_loads_with_its_tags() {
    require_docker();
    let images = std::env::var("OPSHOST_TEST_IMAGES").expect("OPSHOST_TEST_IMAGES is not set: run tests/run-all.sh");
    let archive = std::path::Path::new(&images).join("oms-feature_3.3.0_ce.tar");
    let image = "reg.example.com/oceanbase/oms:feature_3.3.0_ce";
    let _ = std::process::Command::new("docker").args(["rmi", "-f", image]).output();
    let d = BollardDocker::new(BTreeMap::from([("local".to_string(), NodeConfig::default())]), vec![archive.clone()], RunPolicy::default(), Arc::new(Silent));
    use opshost::capabilities::docker::Docker;
    assert!(!d.image_exists("local", image).await.unwrap());
    let tags = d.load_image("local", archive.to_str().unwrap()).await.unwrap();
    assert_eq!(tags, vec![image.to_string()]);
    assert!(d.image_exists("local", image).await.unwrap());
    // Loading it again finds its tag naming its own image: nothing moves, so it loads.
    assert_eq!(d.load_image("local", archive.to_str().unwrap()).await.unwrap(), vec![image.to_string()]);
}

fn image_id(image: &str) -> String {
    let out = std::process::Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An archive that also carries a tag already naming another image on the node (as a mistaken
/// or hostile archive could carry `mariadb:10.6`, or the old version's own tag) is refused
/// before the engine sees it: `docker load` would move the tag without a word.
#[tokio::test]
async fn an_archive_that_would_move_a_tag_is_refused_before_anything_loads() {
    require_docker();
    let images = std::env::var("OPSHOST_TEST_IMAGES").expect("OPSHOST_TEST_IMAGES is not set: run tests/run-all.sh");
    let moved = format!("opshost-test/moved:{}", std::process::id());
    let fresh = format!("opshost-test/fresh:{}", std::process::id());
    let docker = |args: &[&str]| assert!(std::process::Command::new("docker").args(args).status().unwrap().success(), "docker {args:?}");
    docker(&["tag", BUSYBOX, &moved]);
    let _untag = RemoveImagesOnDrop(vec![moved.clone(), fresh.clone()]);
    let busybox = image_id(BUSYBOX);
    // The stand-in 3.3.0 archive, its manifest made to tag the image `moved` and `fresh` too, packed
    // again by GNU tar with `./` names.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let plain = std::path::Path::new(&images).join("oms-feature_3.3.0_ce.tar");
    tar(&["-xf", plain.to_str().unwrap(), "-C", tree.to_str().unwrap()]);
    let manifest = tree.join("manifest.json");
    let mut entries: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let tags = entries[0]["RepoTags"].as_array_mut().unwrap();
    tags.push(fresh.clone().into());
    tags.push(moved.clone().into());
    std::fs::write(&manifest, serde_json::to_vec(&entries).unwrap()).unwrap();
    let archive = dir.path().join("moving.tar.gz");
    tar(&["-czf", archive.to_str().unwrap(), "-C", tree.to_str().unwrap(), "."]);

    let d = BollardDocker::new(BTreeMap::from([("local".to_string(), NodeConfig::default())]), vec![archive.clone()], RunPolicy::default(), Arc::new(Silent));
    use opshost::capabilities::docker::Docker;
    match d.load_image("local", archive.to_str().unwrap()).await {
        Err(opshost::bindings::Error::InvalidInput(m)) => {
            // Named as the engine names it.
            assert!(m.contains(&format!("under tag docker.io/{moved}, which already names image {busybox} on node local")), "{m}");
            assert!(m.contains("Nothing was loaded") && m.contains(&format!("docker rmi docker.io/{moved}")), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(image_id(&moved), busybox, "the tag still names the image it named");
    assert!(!d.image_exists("local", &fresh).await.unwrap(), "the archive's other tags were not loaded either");
}

/// `tar` with the given arguments, which must succeed.
fn tar(args: &[&str]) {
    assert!(std::process::Command::new("tar").args(args).status().unwrap().success(), "tar {args:?}");
}

/// Removes the named image tags when dropped.
struct RemoveImagesOnDrop(Vec<String>);

impl Drop for RemoveImagesOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").arg("rmi").args(&self.0).output();
    }
}

/// Removes the named containers when dropped, also when the test panics.
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").arg("rm").arg("-f").args(&self.0).output();
    }
}

/// A container with every option `docker run` can set (that this engine allows), then its
/// successor through the capability from its run spec and template: the two inspections must
/// agree field by field, but for the name and what the engine assigns itself.
#[tokio::test]
async fn a_successor_keeps_every_option_of_the_old_container() {
    require_docker();
    let (old, new) = (format!("opshost-succ-old-{}", std::process::id()), format!("opshost-succ-new-{}", std::process::id()));
    let docker = |args: &[&str]| std::process::Command::new("docker").args(args).output().unwrap();
    let _ = docker(&["rm", "-f", &old, &new]);
    // Whatever happens below, neither container outlives the test: one left behind with
    // `--restart always` would come back with the engine and hold its port.
    let _cleanup = RemoveOnDrop(vec![old.clone(), new.clone()]);
    // A port nobody holds now, rather than a fixed one another process may have.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let publish = format!("127.0.0.1:{port}:8989");
    #[rustfmt::skip]
    let o = docker(&[
        "run", "-d", "--name", &old, "-p", &publish, "--restart", "always", "--hostname", "odc-host",
        "--log-opt", "max-size=10m", "--add-host", "db.local:10.1.2.3", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
        "--dns", "10.0.0.2", "--dns-search", "example.com", "--user", "1000:1000", "--workdir", "/tmp", "--entrypoint", "sleep",
        "--health-cmd", "true", "--health-interval", "30s", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=512:512",
        "--label", "a=b", "--env", "K=V", "--memory", "64m", "--cpu-period", "100000", "--cpu-quota", "50000", "--pids-limit", "100",
        "--shm-size", "128m", "--stop-signal", "SIGINT", "--stop-timeout", "20", "--tmpfs", "/run:size=1m", "--device", "/dev/null:/dev/xnull",
        "-v", "/tmp:/data:ro", BUSYBOX, "3600",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = BollardDocker::new(BTreeMap::from([("local".to_string(), NodeConfig::default())]), vec![], RunPolicy::default(), Arc::new(Silent));
    use opshost::capabilities::docker::Docker;
    let info = d.inspect("local", &old).await.unwrap().unwrap();
    let template = d.template("local", &old).await.unwrap().unwrap();
    let mut spec = info.spec.clone();
    spec.name = new.clone();
    d.stop("local", &old, 5).await.unwrap();
    d.run("local", &spec, Some(&template)).await.unwrap();
    let inspect = |c: &str| -> serde_json::Value { serde_json::from_slice::<serde_json::Value>(&docker(&["inspect", c]).stdout).unwrap()[0].clone() };
    let (a, b) = (inspect(&old), inspect(&new));
    assert_eq!(b["State"]["Status"], "running", "{b:#}");
    let mut differ = Vec::new();
    for section in ["HostConfig", "Config"] {
        for (k, v) in a[section].as_object().unwrap() {
            // What the engine sets for each container itself.
            if section == "Config" && k == "Hostname" && v == "odc-host" && b[section][k] == "odc-host" {
                continue;
            }
            if &b[section][k] != v {
                differ.push(format!("{section}.{k}: {v} -> {}", b[section][k]));
            }
        }
    }
    assert!(differ.is_empty(), "the successor lost options:\n{}", differ.join("\n"));
}
