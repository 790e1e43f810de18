//! docker capability: the `Docker` trait, its WIT glue, and backends ([`fake::FakeDocker`]).

pub mod conformance;
pub mod fake;
pub mod real;

use async_trait::async_trait;
use serde_json::json;

pub use crate::bindings::opshost::plugin::docker::{ContainerInfo, ContainerState, ExecResult, Mount, RunSpec, Ulimit};
use crate::bindings::opshost::plugin::docker as wit;
use crate::bindings::Error;
use crate::grants::Target;
use crate::runtime::host_call::Effect;
use crate::runtime::state::HostState;

/// A set of Docker engines, addressed by node name.
#[async_trait]
pub trait Docker: Send + Sync {
    async fn inspect(&self, node: &str, container: &str) -> Result<Option<ContainerInfo>, Error>;
    async fn stop(&self, node: &str, container: &str, timeout_s: u32) -> Result<(), Error>;
    async fn start(&self, node: &str, container: &str) -> Result<(), Error>;
    async fn restart(&self, node: &str, container: &str, timeout_s: u32) -> Result<(), Error>;
    async fn remove(&self, node: &str, container: &str, force: bool) -> Result<(), Error>;
    async fn run(&self, node: &str, spec: &RunSpec) -> Result<String, Error>;
    async fn load_image(&self, node: &str, archive: &str) -> Result<Vec<String>, Error>;
    async fn image_exists(&self, node: &str, image: &str) -> Result<bool, Error>;
    async fn exec(&self, node: &str, container: &str, command: &[String]) -> Result<ExecResult, Error>;
    async fn logs(&self, node: &str, container: &str, tail: u32) -> Result<String, Error>;
}

impl wit::Host for HostState {
    async fn inspect(&mut self, node: String, container: String) -> wasmtime::Result<Result<Option<ContainerInfo>, Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.inspect", Effect::Read, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container}), async move { d.inspect(&node, &container).await }).await
    }
    async fn stop(&mut self, node: String, container: String, timeout_s: u32) -> wasmtime::Result<Result<(), Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.stop", Effect::IdempotentWrite, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container, "timeout_s": timeout_s}), async move { d.stop(&node, &container, timeout_s).await }).await
    }
    async fn start(&mut self, node: String, container: String) -> wasmtime::Result<Result<(), Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.start", Effect::IdempotentWrite, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container}), async move { d.start(&node, &container).await }).await
    }
    async fn restart(&mut self, node: String, container: String, timeout_s: u32) -> wasmtime::Result<Result<(), Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.restart", Effect::IdempotentWrite, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container, "timeout_s": timeout_s}), async move { d.restart(&node, &container, timeout_s).await }).await
    }
    async fn remove(&mut self, node: String, container: String, force: bool) -> wasmtime::Result<Result<(), Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.remove", Effect::Write, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container, "force": force}), async move { d.remove(&node, &container, force).await }).await
    }
    async fn run(&mut self, node: String, spec: RunSpec) -> wasmtime::Result<Result<String, Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.run", Effect::Write, Target::Container(node.clone(), spec.name.clone()), json!({"node": node, "spec": spec}), async move { d.run(&node, &spec).await }).await
    }
    async fn load_image(&mut self, node: String, archive: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.load-image", Effect::IdempotentWrite, Target::Archive(archive.clone()), json!({"node": node, "archive": archive}), async move { d.load_image(&node, &archive).await }).await
    }
    async fn image_exists(&mut self, node: String, image: String) -> wasmtime::Result<Result<bool, Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.image-exists", Effect::Read, Target::Free, json!({"node": node, "image": image}), async move { d.image_exists(&node, &image).await }).await
    }
    async fn exec(&mut self, node: String, container: String, command: Vec<String>) -> wasmtime::Result<Result<ExecResult, Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.exec", Effect::Write, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container, "command": command}), async move { d.exec(&node, &container, &command).await }).await
    }
    async fn logs(&mut self, node: String, container: String, tail: u32) -> wasmtime::Result<Result<String, Error>> {
        let d = self.caps.docker.clone();
        self.call("docker.logs", Effect::Read, Target::Container(node.clone(), container.clone()), json!({"node": node, "container": container, "tail": tail}), async move { d.logs(&node, &container, tail).await }).await
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
