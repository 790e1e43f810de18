//! opshost plugin: OMS CE 4.2.4 or 4.2.5 -> 4.2.6, single or multi-node: HA off during the upgrade, IS_UPGRADE=true,
//! the multi-node rule of every hop from 3.3.1 on.
//!
//! Sources: the vendor's pages disagree. The upgrade overview page names 4.2.4 as the source, the
//! multi-node upgrade page names 4.2.5 (DOMAIN.md). The procedure is the same either way, so this
//! hop accepts both; a route from 4.2.4 need not pass through 4.2.5.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop {
    name: "oms-4.2.6",
    sources: &["4.2.4", "4.2.5"],
    target: "4.2.6",
    is_upgrade_env: true,
    ha_step: true,
    multi_node: true,
    notes: &["sources 4.2.4 and 4.2.5: the vendor's 4.2.6 upgrade overview names 4.2.4, its multi-node upgrade page 4.2.5; both are accepted"],
});
