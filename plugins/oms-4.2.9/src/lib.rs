//! opshost plugin: OMS CE 4.2.0 … 4.2.8 -> 4.2.9, single or multi-node: the first release the vendor lets jump
//! several versions at once (DOMAIN.md). HA off during the upgrade, IS_UPGRADE=true, the
//! multi-node rule of every hop from 3.3.1 on.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop {
    name: "oms-4.2.9",
    sources: &["4.2.0", "4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.2.5", "4.2.6", "4.2.7", "4.2.8"],
    target: "4.2.9",
    is_upgrade_env: true,
    ha_step: true,
    multi_node: true
});
