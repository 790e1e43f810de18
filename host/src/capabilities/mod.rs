//! Capabilities: one module per WIT interface, each with its trait, backends and WIT glue.
//!
//! [`Capabilities`] is what a run's plugin can reach. Backends never see grants, the transcript
//! or injected faults: every call passes through [`crate::runtime::host_call`] first.

pub mod console;
pub mod docker;
pub mod errors;
pub mod services;
pub mod sql;

use std::sync::Arc;

/// What a plugin run talks to. Real and fake backends are interchangeable behind these traits.
#[derive(Clone)]
pub struct Capabilities {
    pub docker: Arc<dyn docker::Docker>,
    pub sql: Arc<dyn sql::Sql>,
    pub console: Arc<dyn console::Console>,
    pub services: Arc<dyn services::Services>,
}

impl Capabilities {
    /// Real backends for one product of a site: Docker engines, the MetaDB (backups under
    /// `backup_dir`), the console through the MetaDB and health URLs, the machine's clock.
    pub fn real(
        site: &crate::config::SiteConfig,
        product: &crate::config::ProductConfig,
        backup_dir: std::path::PathBuf,
        reporter: Arc<dyn crate::report::Reporter>,
        assume_yes: bool,
    ) -> anyhow::Result<Capabilities> {
        let sql = Arc::new(
            sql::mysql::MysqlSql::new(&site.metadb, backup_dir, reporter.clone())?
                .with_statement_timeout(std::time::Duration::from_secs(site.limits.call_timeout_s))
                .with_result_limit(site.limits.max_payload_bytes),
        );
        // The product's nodes only: a docker grant without a node names a container on every
        // node of the product, not on another product's.
        let nodes = site.nodes.iter().filter(|(n, _)| product.nodes.contains(n)).map(|(n, c)| (n.clone(), c.clone())).collect();
        let docker = Arc::new(docker::real::BollardDocker::new(nodes, site.allowed_archives(), site.docker_policy.clone(), reporter));
        let console = console::MetaDbConsole {
            config: product.console.metadb.clone(),
            sql: sql.clone(),
            health: Arc::new(console::real::HttpHealth {
                urls: product.console.health_urls.clone(),
                client: console::http::HttpClient::new(&product.console.tls_trust()).map_err(anyhow::Error::msg)?,
            }),
        };
        Ok(Capabilities { docker, sql, console: Arc::new(console), services: Arc::new(services::SystemServices { assume_yes }) })
    }
}
