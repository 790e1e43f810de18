//! opshost plugin: ODC 4.2.2 -> 4.3.0, single node or HA (seeds odc-upgrade-overview.md and
//! odc-rollback-after-failed-upgrade.md): every node in turn, MetaDB backed up before the first
//! new ODC migrates it, optional nginx swap; rollback restores the MetaDB before the old image runs.
//! The procedure lives in opshost-procedures; this states what is particular to the release.

use opshost_procedures::odc::OdcHop;

opshost_procedures::odc_plugin!(OdcHop { name: "odc-4.3.0", sources: &["4.2.2"], target: "4.3.0" });
