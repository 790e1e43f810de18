//! opshost plugin: OMS CE 3.2.2, 3.3.0, 3.3.1 or 4.0.0 -> 4.1.0, single node: IS_UPGRADE=true, no HA step
//! (from 4.2.0 on). Supported sources from the oms-doc repo's 4.1.0 branch (DOMAIN.md).
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::oms_plugin!(OmsHop { name: "oms-4.1.0", sources: &["3.2.2", "3.3.0", "3.3.1", "4.0.0"], target: "4.1.0", is_upgrade_env: true, ha_step: false });
