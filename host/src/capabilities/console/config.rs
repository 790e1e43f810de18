//! The console capability's part of a product's site config (`[products.NAME.console]`): which
//! MetaDB connection and database hold its parameters and servers, and its health URLs.

use crate::bindings::Error;
use serde::Deserialize;

/// Where the product keeps its parameters and servers in the MetaDB.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default = "default_connection")]
    pub connection: String,
    /// Database holding `oms_normal_config` (OMS: drc_rm_db). Products without system parameters
    /// (ODC) leave it out.
    #[serde(default)]
    pub rm_db: Option<String>,
    /// Database holding the servers table (OMS: drc_cm_db); optional like `rm_db`.
    #[serde(default)]
    pub cm_db: Option<String>,
    /// Returns (address, status) per server; default the vendor's `SELECT ip, host_status FROM host`.
    #[serde(default = "default_servers_query")]
    pub servers_query: String,
}

fn default_connection() -> String {
    "metadb".into()
}

/// The console's Servers page as the vendor's O&M guide reads it in `drc_cm_db` ("SELECT
/// ip,host_status FROM host", a server being up when its status is `ONLINE`; oms-doc V4.0.0 on,
/// FAQ "OMS host down"). obd's deployer reads no status at all: it waits for the container's log
/// line and `/oms/health`, which the plugins also wait for.
fn default_servers_query() -> String {
    "SELECT ip, host_status FROM host ORDER BY ip".into()
}

impl ConsoleConfig {
    /// The database a console call needs, or a refusal naming the config key to set.
    pub(super) fn db<'a>(&self, db: &'a Option<String>, key: &str, what: &str) -> Result<&'a str, Error> {
        db.as_deref().ok_or_else(|| {
            crate::capabilities::errors::not_found(format!(
                "{what}: the site config's console section names no {key}; set {key} under [products.<product>.console]"
            ))
        })
    }
}
