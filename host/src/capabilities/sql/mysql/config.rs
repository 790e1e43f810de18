//! The sql capability's part of the site config: a MetaDB connection (`[metadb.NAME]`), the
//! engine that serves it ([`Driver`]) and where its password comes from (never from the file
//! itself).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which engine serves a connection (`driver` in `[metadb.X]`). One exists: the MySQL engine
/// (`sql/mysql/`), for MariaDB, MySQL and OceanBase's MySQL mode. Another (PostgreSQL, a native
/// OceanBase path) is a folder beside it and a variant here; an unknown name is refused when the
/// site config is read, naming the ones there are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Mysql,
}

/// A MetaDB connection in the site config (`[metadb.NAME]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The engine that serves this connection; `mysql` (the default) is the only one.
    #[serde(default)]
    pub driver: Driver,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_pool")]
    pub max_connections: usize,
    /// Restore rows in the forms the server takes fastest: `LOAD DATA LOCAL INFILE`, sent from
    /// memory (much faster on text-heavy tables), and on MariaDB rows of long values as prepared
    /// INSERTs with the values bound. `false` runs the dump's INSERT statements as they are. A
    /// server that refuses LOCAL INFILE gets the INSERTs either way.
    #[serde(default = "default_true")]
    pub load_data: bool,
    /// Read dumps and checksums with opshost's own row reader (about a third less CPU per row
    /// than mysql_async's). It falls back to mysql_async by itself when the server wants an
    /// authentication it does not speak; `false` never uses it.
    #[serde(default = "default_true")]
    pub bulk_reader: bool,
}

fn default_true() -> bool {
    true
}

fn default_port() -> u16 {
    3306
}

fn default_pool() -> usize {
    4
}

impl ConnectionConfig {
    /// The password, from the environment or a file; None means no password.
    pub fn password(&self, name: &str) -> anyhow::Result<Option<String>> {
        if let Some(var) = &self.password_env {
            let v = std::env::var(var).map_err(|_| anyhow::anyhow!("MetaDB connection {name}: environment variable {var} (password_env) is not set"))?;
            return Ok(Some(v));
        }
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("MetaDB connection {name}: reading password_file {}: {e}", f.display()))?;
            return Ok(Some(text.lines().next().unwrap_or("").to_string()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_is_mysql_unless_named_and_an_unknown_one_is_refused_naming_the_known() {
        let c: ConnectionConfig = toml::from_str("host = \"db\"\nuser = \"u\"").unwrap();
        assert_eq!(c.driver, Driver::Mysql);
        let c: ConnectionConfig = toml::from_str("driver = \"mysql\"\nhost = \"db\"\nuser = \"u\"").unwrap();
        assert_eq!(c.driver, Driver::Mysql);
        let e = toml::from_str::<ConnectionConfig>("driver = \"postgres\"\nhost = \"db\"\nuser = \"u\"").unwrap_err().to_string();
        assert!(e.contains("postgres") && e.contains("mysql"), "{e}");
    }
}
