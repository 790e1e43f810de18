//! The journal's line format: a header, then `begin` / `end` per call.

use crate::runtime::calls::Effect;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub run: String,
    /// "upgrade" or "rollback".
    pub operation: String,
    pub plugin: String,
    pub plugin_hash: String,
    /// sha256 of the site config the run started with.
    pub site_config_hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "kebab-case")]
pub enum Entry {
    Header(Header),
    Begin {
        seq: u64,
        call: String,
        effect: Effect,
        args: Json,
    },
    End {
        seq: u64,
        outcome: Json,
        #[serde(default)]
        injected: bool,
    },
}
