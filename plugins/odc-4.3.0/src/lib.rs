//! opshost plugin: ODC 4.0.0 to 4.2.4 -> 4.3.0, single node or HA (seeds odc-upgrade-overview.md and
//! odc-rollback-after-failed-upgrade.md): in the vendor's order, every node stopped, the MetaDB
//! backed up once, the new version started on every node, optional nginx swap; rollback restores
//! the MetaDB before the old image runs. The procedure lives in opshost-procedures; this states
//! what is particular to the release.

use opshost_procedures::odc::OdcHop;

opshost_procedures::hop_plugin!(OdcHop {
    name: "odc-4.3.0",
    sources: opshost_procedures::odc::ODC_4_RELEASES_BEFORE_4_3,
    target: "4.3.0",
    notes: &["sources: the vendor's ODC 4.3.0 release notes (\"You can directly upgrade ODC V2.0.0 and later to this version\"); the 4.x releases they name are listed here (4.0.0 to 4.2.4)"],
});
