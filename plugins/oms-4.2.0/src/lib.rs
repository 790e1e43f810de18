//! opshost plugin: OMS CE 4.1.1 -> 4.2.0, single node (seed oms-upgrade-4.1.1-to-4.2.0-single-node.md)
//! or multi-node (oms-doc V4.2.0's multi-node page): HA off during the upgrade, IS_UPGRADE=true.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop { name: "oms-4.2.0", sources: &["4.1.1"], target: "4.2.0", is_upgrade_env: true, ha_step: true, multi_node: true });
