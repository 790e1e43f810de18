//! opshost plugin: OMS CE 4.2.4 -> 4.2.5, single or multi-node: HA off during the upgrade,
//! IS_UPGRADE=true, the multi-node procedure, as every OMS guide from 3.3.1 on has them. Source:
//! no vendor page for 4.2.5 was found; the 4.2.6 multi-node upgrade page's "from V4.2.5" implies
//! 4.2.5 was reached from 4.2.4, the hop the DOMAIN notes list. The plan says so.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop {
    name: "oms-4.2.5",
    sources: &["4.2.4"],
    target: "4.2.5",
    is_upgrade_env: true,
    ha_step: true,
    multi_node: true,
    notes: &["source 4.2.4: no vendor upgrade page for 4.2.5 was found; the procedure is the one every OMS guide from 3.3.1 on has (check the vendor's 4.2.5 release notes before a production upgrade)"],
});
