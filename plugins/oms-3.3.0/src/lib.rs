//! opshost plugin: OMS CE 3.2.2 -> 3.3.0, single node (seed oms-upgrade-3.2.2-to-3.3.0.md):
//! no IS_UPGRADE variable yet, no HA step. The procedure lives in opshost-procedures.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop { name: "oms-3.3.0", sources: &["3.2.2"], target: "3.3.0", is_upgrade_env: false, ha_step: false });
