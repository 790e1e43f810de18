//! opshost-procedures: the shared guest library every plugin builds on.
//!
//! - [`bindings`]: the WIT world `upgrade-plugin`, generated once here; plugins export through
//!   [`export_plugin!`].
//! - [`ctx`]: parameters, errors with context, run records, the clock and waiting.
//! - [`metadb`]: heartbeat trim, verified backups of a product's databases, restore.
//! - [`ha`]: OMS `ha.config` toggling with T1/T2 bookkeeping.
//! - [`container`]: container swap (stop the old one, run its successor with the same mounts).
//! - [`oms`]: the whole OMS CE hop, one node or several in regions, parameterised by [`oms::OmsHop`].
//! - [`oms_config`]: OMS's own config.yaml, read from its containers.
//! - [`odc`]: the whole ODC hop, single node or HA behind nginx, parameterised by [`odc::OdcHop`].

/// Generated from the WIT; its signatures are the contract's (some take many arguments).
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "upgrade-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_plugin",
        default_bindings_module: "opshost_procedures::bindings",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub mod container;
pub mod ctx;
pub mod ha;
pub mod metadb;
pub mod odc;
pub mod oms;
pub mod oms_config;
pub mod version;

pub use bindings::opshost::plugin::types::Error;
pub use bindings::{Context, Manifest, Need, ParameterSpec, Plan, Step};
