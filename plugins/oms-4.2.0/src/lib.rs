//! opshost plugin: OMS CE 4.1.1 -> 4.2.0, single node
//! (seed oms-upgrade-4.1.1-to-4.2.0-single-node.md). The procedure lives in opshost-procedures;
//! this crate states what is particular to the release.

use opshost_procedures::oms::OmsHop;
use opshost_procedures::{Context, Error, Manifest, Plan};

const HOP: OmsHop = OmsHop {
    name: "oms-4.2.0",
    sources: &["4.1.1"],
    target: "4.2.0",
    is_upgrade_env: true,
    ha_step: true,
};

struct Plugin;

impl opshost_procedures::bindings::Guest for Plugin {
    fn manifest() -> Manifest {
        HOP.manifest()
    }
    fn plan(ctx: Context) -> Result<Plan, Error> {
        HOP.plan(&ctx)
    }
    fn upgrade(ctx: Context) -> Result<(), Error> {
        HOP.upgrade(&ctx)
    }
    fn rollback(ctx: Context) -> Result<(), Error> {
        HOP.rollback(&ctx)
    }
}

opshost_procedures::bindings::export_plugin!(Plugin);
