//! opshost plugin: OMS CE 3.3.0 -> 3.3.1, single or multi-node: IS_UPGRADE=true is introduced and
//! required from this release on, and the vendor's guide (oms-doc V3.3.1, single- and multi-node
//! upgrade pages) has the HA step: HA off before, back on after with refetchStoreIntervalMin over
//! T2 − T1. The procedure lives in opshost-procedures.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop { name: "oms-3.3.1", sources: &["3.3.0"], target: "3.3.1", is_upgrade_env: true, ha_step: true, multi_node: true });
