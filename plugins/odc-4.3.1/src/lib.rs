//! opshost plugin: ODC 4.0.0 to 4.3.0 -> 4.3.1, single node or HA (seeds odc-upgrade-overview.md and
//! odc-rollback-after-failed-upgrade.md): in the vendor's order, every node stopped, the MetaDB
//! backed up once, the new version started on every node, optional nginx swap; rollback restores
//! the MetaDB before the old image runs. The procedure lives in opshost-procedures; this states
//! what is particular to the release.

use opshost_procedures::odc::OdcHop;

/// Every 4.x release before 4.3.1 the vendor names: the 4.3.1 release notes allow a direct upgrade
/// from V2.0.0 on.
const SOURCES: &[&str] = &["4.0.0", "4.0.2", "4.1.0", "4.1.1", "4.1.2", "4.1.3", "4.2.0", "4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.3.0"];

opshost_procedures::hop_plugin!(OdcHop {
    name: "odc-4.3.1",
    sources: SOURCES,
    target: "4.3.1",
    notes: &["sources: the vendor's ODC 4.3.1 release notes (\"You can directly upgrade ODC V2.0.0 and later to this version\"); the 4.x releases they name are listed here (4.0.0 to 4.3.0)"],
});
