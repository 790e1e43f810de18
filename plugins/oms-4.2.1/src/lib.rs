//! opshost plugin: OMS CE 4.2.0 -> 4.2.1, single or multi-node: HA off during the upgrade and back
//! on afterwards, IS_UPGRADE=true (oms-doc V4.2.1 upgrade pages).
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop { name: "oms-4.2.1", sources: &["4.2.0"], target: "4.2.1", is_upgrade_env: true, ha_step: true, multi_node: true });
