//! console capability: the `Console` trait (system parameters, servers, health), its WIT glue,
//! and [`MetaDbConsole`], which reads and writes OMS parameters and servers through the MetaDB
//! (there is no documented console API for them) over any [`Sql`] backend, real or fake.

pub mod config;
pub mod fake;
mod glue;
pub mod http;
pub mod real;

use async_trait::async_trait;
use std::sync::Arc;

pub use crate::bindings::opshost::plugin::console::Server;
use crate::bindings::Error;
use crate::capabilities::sql::{fake::value_text, Sql, Value};
use config::ConsoleConfig;

#[async_trait]
pub trait Console: Send + Sync {
    async fn get_parameter(&self, name: &str) -> Result<Option<String>, Error>;
    async fn set_parameter(&self, name: &str, value: &str) -> Result<(), Error>;
    async fn list_servers(&self) -> Result<Vec<Server>, Error>;
    async fn health(&self, node: &str) -> Result<bool, Error>;
}

/// Whether the product answers healthy on a node (HTTP on a real node, container state on the fake).
#[async_trait]
pub trait HealthProbe: Send + Sync {
    async fn healthy(&self, node: &str) -> Result<bool, Error>;
}

pub struct MetaDbConsole {
    pub config: ConsoleConfig,
    pub sql: Arc<dyn Sql>,
    pub health: Arc<dyn HealthProbe>,
}

#[async_trait]
impl Console for MetaDbConsole {
    async fn get_parameter(&self, name: &str) -> Result<Option<String>, Error> {
        let c = &self.config;
        let rm_db = c.db(&c.rm_db, "rm_db", "system parameters")?;
        let rows = self.sql.query(&c.connection, rm_db, "SELECT cfg_value FROM oms_normal_config WHERE cfg_name = ?", &[Value::Text(name.into())]).await?;
        Ok(rows.rows.first().and_then(|r| r.first()).filter(|v| **v != Value::Null).map(value_text))
    }
    async fn set_parameter(&self, name: &str, value: &str) -> Result<(), Error> {
        let c = &self.config;
        let rm_db = c.db(&c.rm_db, "rm_db", "system parameters")?;
        if self.get_parameter(name).await?.is_some() {
            self.sql
                .execute(
                    &c.connection,
                    rm_db,
                    "UPDATE oms_normal_config SET cfg_value = ? WHERE cfg_name = ?",
                    &[Value::Text(value.into()), Value::Text(name.into())],
                )
                .await?;
        } else {
            self.sql
                .execute(
                    &c.connection,
                    rm_db,
                    "INSERT INTO oms_normal_config (cfg_name, cfg_value) VALUES (?, ?)",
                    &[Value::Text(name.into()), Value::Text(value.into())],
                )
                .await?;
        }
        Ok(())
    }
    async fn list_servers(&self) -> Result<Vec<Server>, Error> {
        let c = &self.config;
        let cm_db = c.db(&c.cm_db, "cm_db", "the server list")?;
        let rows = self.sql.query(&c.connection, cm_db, &c.servers_query, &[]).await?;
        Ok(rows
            .rows
            .iter()
            .map(|r| Server { address: r.first().map(value_text).unwrap_or_default(), status: r.get(1).map(value_text).unwrap_or_default() })
            .collect())
    }
    async fn health(&self, node: &str) -> Result<bool, Error> {
        self.health.healthy(node).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::sql::fake::FakeSql;

    struct NeverHealthy;
    #[async_trait]
    impl HealthProbe for NeverHealthy {
        async fn healthy(&self, _: &str) -> Result<bool, Error> {
            Ok(false)
        }
    }

    /// ODC has no system parameters or server table: its console section names neither database,
    /// and a plugin that asks anyway gets a refusal naming the key to set.
    #[tokio::test]
    async fn a_console_without_databases_names_the_missing_key() {
        let config: ConsoleConfig = toml::from_str("").unwrap();
        let console = MetaDbConsole { config, sql: Arc::new(FakeSql::new(["metadb".to_string()])), health: Arc::new(NeverHealthy) };
        let e = console.get_parameter("ha.config").await.unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m.contains("names no rm_db; set rm_db under [products.<product>.console]")), "{e:?}");
        let e = console.list_servers().await.unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m.contains("names no cm_db")), "{e:?}");
        assert!(!console.health("local").await.unwrap());
    }
}
