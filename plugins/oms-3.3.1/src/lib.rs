//! opshost plugin: OMS CE 3.3.0 -> 3.3.1, single node: IS_UPGRADE=true is introduced and
//! required from this release on (DOMAIN.md); no HA step. The procedure lives in opshost-procedures.

use opshost_procedures::oms::OmsHop;

opshost_procedures::oms_plugin!(OmsHop { name: "oms-3.3.1", sources: &["3.3.0"], target: "3.3.1", is_upgrade_env: true, ha_step: false });
