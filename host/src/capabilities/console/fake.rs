//! FakeConsole: the real [`MetaDbConsole`] logic over the fake MetaDB, with health read from the
//! fake Docker engine (a running container of an image the scenario declares healthy).

use super::config::ConsoleConfig;
use super::{HealthProbe, MetaDbConsole};
use crate::bindings::Error;
use crate::capabilities::docker::fake::FakeDocker;
use crate::capabilities::sql::fake::FakeSql;
use async_trait::async_trait;
use std::sync::Arc;

pub type FakeConsole = MetaDbConsole;

pub fn fake_console(config: ConsoleConfig, sql: Arc<FakeSql>, docker: Arc<FakeDocker>) -> FakeConsole {
    MetaDbConsole { config, sql, health: docker }
}

#[async_trait]
impl HealthProbe for FakeDocker {
    async fn healthy(&self, node: &str) -> Result<bool, Error> {
        self.node_healthy(node)
    }
}
