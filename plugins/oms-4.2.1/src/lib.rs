//! opshost plugin: OMS CE 4.2.0 -> 4.2.1, single node: HA off during the upgrade and back on afterwards (as the
//! 4.2.0 seed requires from 4.2.0 on), IS_UPGRADE=true.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::oms_plugin!(OmsHop { name: "oms-4.2.1", sources: &["4.2.0"], target: "4.2.1", is_upgrade_env: true, ha_step: true });
