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
//! - [`Hop`] and [`hop_plugin!`]: a hop's four exports, and the one macro that makes a plugin of
//!   any hop type (`hop_plugin!(OmsHop { … })`, `hop_plugin!(OdcHop { … })`).

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

/// One product version hop as a plugin exports it. [`oms::OmsHop`] and [`odc::OdcHop`] are the
/// two this library has; a new product's hop is a type implementing this, with a `DEFAULTS`
/// constant, and [`hop_plugin!`] makes a plugin of it.
pub trait Hop {
    fn manifest(&self) -> Manifest;
    fn plan(&self, ctx: &Context) -> Result<Plan, Error>;
    fn upgrade(&self, ctx: &Context) -> Result<(), Error>;
    fn rollback(&self, ctx: &Context) -> Result<(), Error>;
}

/// A whole hop plugin from a value of a [`Hop`] type, written as the type's struct literal: the
/// WIT exports and the component's export glue. Fields left out take the type's `DEFAULTS`
/// ([`oms::OmsHop::DEFAULTS`]: single node; [`odc::OdcHop::DEFAULTS`]).
///
/// ```ignore
/// use opshost_procedures::oms::OmsHop;
/// opshost_procedures::hop_plugin!(OmsHop { name: "oms-4.2.0", sources: &["4.1.1"], target: "4.2.0", is_upgrade_env: true, ha_step: true });
/// ```
#[macro_export]
macro_rules! hop_plugin {
    // `OmsHop { … }` as the plugin wrote it (its own `use … OmsHop`), with the defaults after.
    ($hop_type:ident { $($field:ident : $value:expr),* $(,)? }) => {
        // `..DEFAULTS` is always appended, also when every field is given.
        #[allow(clippy::needless_update)]
        const HOP: $hop_type = $hop_type { $($field: $value,)* ..$hop_type::DEFAULTS };

        struct Plugin;

        impl $crate::bindings::Guest for Plugin {
            fn manifest() -> $crate::Manifest {
                $crate::Hop::manifest(&HOP)
            }
            fn plan(ctx: $crate::Context) -> Result<$crate::Plan, $crate::Error> {
                $crate::Hop::plan(&HOP, &ctx)
            }
            fn upgrade(ctx: $crate::Context) -> Result<(), $crate::Error> {
                $crate::Hop::upgrade(&HOP, &ctx)
            }
            fn rollback(ctx: $crate::Context) -> Result<(), $crate::Error> {
                $crate::Hop::rollback(&HOP, &ctx)
            }
        }

        $crate::bindings::export_plugin!(Plugin);
    };
}
