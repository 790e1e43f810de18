//! opshost plugin: OMS CE 3.2.2, 3.3.0 or 3.3.1 -> 4.0.0, single or multi-node: IS_UPGRADE=true
//! (required from 3.3.1 on) and the HA step, as the vendor's 4.0.0 guides (oms-doc V4.0.0) have
//! them. Supported sources from that branch (DOMAIN.md, "OMS CE supported upgrade hops").
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop {
    name: "oms-4.0.0",
    sources: &["3.2.2", "3.3.0", "3.3.1"],
    target: "4.0.0",
    is_upgrade_env: true,
    ha_step: true,
    multi_node: true
});
