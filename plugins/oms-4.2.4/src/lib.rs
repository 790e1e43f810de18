//! opshost plugin: OMS CE 4.2.3 -> 4.2.4, single or multi-node: HA off during the upgrade, IS_UPGRADE=true, and
//! the multi-node rule of every hop from 3.3.1 on (docker_init.sh once per region sharing a config
//! file, else per node; every region's heartbeat database backed up).
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop { name: "oms-4.2.4", sources: &["4.2.3"], target: "4.2.4", is_upgrade_env: true, ha_step: true, multi_node: true });
