//! opshost plugin: OMS CE 3.2.2, 3.3.0, 3.3.1 or 4.0.0 -> 4.1.0, single or multi-node:
//! IS_UPGRADE=true and the HA step, as the vendor's 4.1.0 guides (oms-doc V4.1.0) have them.
//! Supported sources from that branch (DOMAIN.md).
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop {
    name: "oms-4.1.0",
    sources: &["3.2.2", "3.3.0", "3.3.1", "4.0.0"],
    target: "4.1.0",
    is_upgrade_env: true,
    ha_step: true,
    multi_node: true
});
