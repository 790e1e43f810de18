//! opshost plugin: OMS CE 4.2.2 or 4.1.0 -> 4.2.3, single or multi-node: HA off during the upgrade,
//! IS_UPGRADE=true, the multi-node procedure. Sources: the vendor's 4.2.3 upgrade page says "only
//! OMS Community Edition of the following two versions can be directly upgraded to V4.2.3 … V4.2.2
//! … V4.1.0" (en.oceanbase.com, OMS CE 4.2.3, multi-node upgrade; no single-node page was found).
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop {
    name: "oms-4.2.3",
    sources: &["4.2.2", "4.1.0"],
    target: "4.2.3",
    is_upgrade_env: true,
    ha_step: true,
    multi_node: true,
    notes: &["sources 4.2.2 and 4.1.0: the vendor's OMS CE 4.2.3 upgrade page (multi-node) names both; the oms-doc repository has no 4.2.3 branch"],
});
