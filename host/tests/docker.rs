//! The Docker conformance suite on the fake engine and on the real one (bollard).

mod support;

use opshost::capabilities::docker::conformance::{suite, EXEC_PROBE};
use opshost::capabilities::docker::fake::{DockerSetup, ExecRule, FakeDocker, ImageSetup};
use opshost::capabilities::docker::real::{BollardDocker, NodeConfig, RunPolicy};
use opshost::capabilities::services::fake::VirtualClock;
use opshost::capabilities::sql::fake::FakeSql;
use opshost::runtime::report::Silent;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::*;

#[tokio::test]
async fn fake_docker_conforms() {
    let setup = DockerSetup {
        nodes: vec!["local".into()],
        images: vec![ImageSetup { name: BUSYBOX.into(), nodes: vec!["local".into()], healthy: true, on_start: vec![], on_stop: vec![], log: vec![] }],
        archives: vec![],
        containers: vec![],
        exec: vec![ExecRule { image: None, command: format!("sh -c {EXEC_PROBE}"), requires_env: vec![], exit_code: 3, stdout: "out\n".into(), stderr: "err\n".into(), sql: vec![], duration_s: 0 }],
    };
    let d = FakeDocker::new(&setup, Arc::new(FakeSql::new(Vec::<String>::new())), VirtualClock::starting_at(0)).unwrap();
    suite(&d, "local", BUSYBOX, "fake", "/data/oms/oms_store").await;
}

#[tokio::test]
async fn bollard_docker_conforms_on_the_real_engine() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("opshost-conf-{}", std::process::id());
    let d = BollardDocker::new(BTreeMap::from([("local".to_string(), NodeConfig::default())]), vec![], RunPolicy::default(), Arc::new(Silent));
    suite(&d, "local", BUSYBOX, &prefix, dir.path().to_str().unwrap()).await;
}

#[tokio::test]
async fn an_engine_that_is_not_there_gets_one_clear_error() {
    let d = BollardDocker::new(BTreeMap::from([("far".to_string(), NodeConfig { docker: Some("unix:///nonexistent/docker.sock".into()) })]), vec![], RunPolicy::default(), Arc::new(Silent));
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
}
