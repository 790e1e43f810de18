//! Dumps and restores on a MetaDB whose time zone is not UTC (OMS sites often run at +08:00):
//! TIMESTAMP values and defaults come back as the same instants, through opshost and through the
//! stock client, and backups written by earlier versions (read in the server's zone) still
//! restore right. A test binary of its own: it sets the server's global `time_zone`, and cargo
//! runs one test binary at a time, so no other test's connection sees it.

mod support;

use opshost::capabilities::sql::checksum::RowHash;
use opshost::capabilities::sql::mysql::{format::Zone, MysqlSql};
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use std::sync::Arc;
use support::*;

/// The server's global time zone, set for the life of this value and put back after.
struct GlobalZone(String);

impl GlobalZone {
    fn set(zone: &str) -> GlobalZone {
        let o = mariadb_client(&["-N", "-e", "SELECT @@GLOBAL.time_zone"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let before = String::from_utf8_lossy(&o.stdout).trim().to_string();
        sql(&format!("SET GLOBAL time_zone = '{zone}'"));
        GlobalZone(before)
    }
}

impl Drop for GlobalZone {
    fn drop(&mut self) {
        sql(&format!("SET GLOBAL time_zone = '{}'", self.0));
    }
}

/// Every row's instants (zone-free) and its DATETIME, and the table's definition as a session
/// in the server's zone shows it.
fn instants(db: &str) -> String {
    let o = mariadb_client(&["-N", "-D", db, "-e", "SELECT id, UNIX_TIMESTAMP(at), UNIX_TIMESTAMP(made), wall FROM ev ORDER BY id; SHOW CREATE TABLE ev"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn recreate(db: &str) {
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4"));
}

#[tokio::test]
async fn timestamps_survive_a_metadb_whose_time_zone_is_not_utc() {
    let _zone = GlobalZone::set("+08:00");
    let db = unique_db("tz");
    let copy = format!("{db}_copy");
    recreate(&db);
    // Instants given as epoch seconds, so they do not depend on the session's zone. In UTC:
    // row 1 at 2026-01-01 01:00:00.123456 and made 2020-09-13 12:26:40; row 2 made by the
    // default, 2026-01-01 00:00:00 UTC (written here in +08:00).
    sql(&format!(
        "USE {db}; CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP(6) NULL, made TIMESTAMP NOT NULL DEFAULT '2026-01-01 08:00:00', wall DATETIME);
         INSERT INTO ev VALUES (1, FROM_UNIXTIME(1767229200.123456), FROM_UNIXTIME(1600000000), '2019-05-05 05:05:05');
         INSERT INTO ev (id, at, wall) VALUES (2, NULL, '2019-05-05 05:05:05');"
    ));
    let before = instants(&db);
    assert!(before.contains("1767229200.123456") && before.contains("1767225600"), "{before}");
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let sum = s.database_checksum("metadb", &db).await.unwrap();

    let b = s.dump_database("metadb", &db, "tz").await.unwrap();
    assert_eq!(b.checksum, sum);
    let file = dir.path().join("tz.sql");
    let text = std::fs::read_to_string(&file).unwrap();
    // Read in UTC, as the header replays it.
    for utc in ["'2026-01-01 01:00:00.123456'", "'2020-09-13 12:26:40.000000'", "DEFAULT '2026-01-01 00:00:00'"] {
        assert!(text.contains(utc), "{utc} not in the dump:\n{text}");
    }

    // opshost's restore: verified, and the same instants.
    recreate(&db);
    let r = s.restore_database("metadb", &db, "tz").await.unwrap();
    assert_eq!(r.checksum, sum);
    assert_eq!(instants(&db), before);

    // The seeds' way: the stock client restores the same instants.
    recreate(&copy);
    let o = mariadb_client(&["-e", &format!("source {}", file.display()), "-D", &copy]);
    assert!(o.status.success(), "stock client failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(instants(&copy), before);

    // A backup as earlier versions wrote it on this server: no marker, values and defaults in
    // the server's zone under a header that says UTC, checksum read in the server's zone.
    let legacy = text
        .replace("-- timestamps: UTC\n", "")
        .replace("2026-01-01 01:00:00.123456", "2026-01-01 09:00:00.123456")
        .replace("2020-09-13 12:26:40", "2020-09-13 20:26:40")
        .replace("2026-01-01 00:00:00", "2026-01-01 08:00:00");
    assert!(legacy.contains("SET TIME_ZONE='+00:00'"));
    let (legacy_sum, _, _) = s.checksum("metadb", &db, RowHash::Xxh3, Zone::Server).await.unwrap();
    assert_ne!(legacy_sum, sum, "the server's zone reads other text than UTC");
    std::fs::write(dir.path().join("old.sql"), &legacy).unwrap();
    let meta = serde_json::json!({"name": "old", "database": db, "bytes": legacy.len(), "tables": 1, "rows": 2, "checksum": legacy_sum});
    std::fs::write(dir.path().join("old.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    recreate(&db);
    let r = s.restore_database("metadb", &db, "old").await.unwrap();
    assert_eq!(r.checksum, legacy_sum);
    assert_eq!(instants(&db), before, "an earlier version's backup restores the same instants");

    sql(&format!("DROP DATABASE {db}; DROP DATABASE {copy}"));
}
