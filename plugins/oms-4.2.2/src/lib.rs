//! opshost plugin: OMS CE 4.2.1 -> 4.2.2, single or multi-node: HA off during the upgrade, IS_UPGRADE=true, and
//! the multi-node rule of every hop from 3.3.1 on (DOMAIN.md): on several nodes, docker_init.sh runs once per
//! region whose nodes share one config file, else once per node, and the heartbeat database of
//! every region (as its config.yaml names it) is backed up. Parameters region_nodes and
//! regions_sharing_config describe the nodes; without them the hop is the single-node one.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::oms::OmsHop;

opshost_procedures::hop_plugin!(OmsHop { name: "oms-4.2.2", sources: &["4.2.1"], target: "4.2.2", is_upgrade_env: true, ha_step: true, multi_node: true });
