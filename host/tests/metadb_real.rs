//! MysqlSql against the real MariaDB: exact dump/restore round trips for every column type, a
//! dump the stock client restores to the same checksum, and clear refusals.
//!
//! Over 500 lines: one test per property of the engine (round trips, refusals, paths, sizes),
//! each short; they share one server and its fixtures.

mod support;

use opshost::bindings::Error;
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::{Sql, Value};
use opshost::report::Silent;
use std::sync::Arc;
use support::*;

fn backend(dir: &std::path::Path) -> MysqlSql {
    MysqlSql::new(&connections(), dir.to_path_buf(), Arc::new(Silent)).unwrap()
}

/// A backend whose restores send rows as INSERTs only (no LOAD DATA).
fn inserts_backend(dir: &std::path::Path) -> MysqlSql {
    let mut no_load = connections();
    no_load.get_mut("metadb").unwrap().load_data = false;
    MysqlSql::new(&no_load, dir.to_path_buf(), Arc::new(Silent)).unwrap()
}

/// `<db>_stock`, made anew by the stock client from dump `file`, as a DBA restoring by hand would.
fn stock_copy(db: &str, file: &std::path::Path) -> String {
    let copy = format!("{db}_stock");
    sql(&format!("DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {copy}"));
    let o = mariadb_client(&["-D", &copy, "-e", &format!("source {}", file.display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    copy
}

/// `db` dropped, created again and restored from backup `name` by `backend`, as a rollback does.
async fn restore_anew(backend: &MysqlSql, db: &str, name: &str) -> Result<opshost::capabilities::sql::Backup, Error> {
    backend.drop_database("metadb", db).await?;
    backend.create_database("metadb", db).await?;
    backend.restore_database("metadb", db, name).await
}

const ALL_TYPES: &str = r#"
CREATE TABLE every_type (
  id BIGINT UNSIGNED PRIMARY KEY AUTO_INCREMENT,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT, bi BIGINT, bu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE, dec1 DECIMAL(30,10),
  c CHAR(10), vc VARCHAR(255), t TEXT, lt LONGTEXT, js JSON,
  bn BINARY(4), vb VARBINARY(64), bl BLOB,
  dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), yr YEAR,
  bt BIT(10), en ENUM('a','b','c'), st SET('x','y','z'),
  pt POINT NULL,
  vgen INT AS (i * 2) VIRTUAL, sgen VARCHAR(300) AS (CONCAT(vc, '!')) STORED,
  KEY (vc)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO every_type (ti, si, mi, i, bi, bu, f, d, dec1, c, vc, t, lt, js, bn, vb, bl, dt, dtm, ts, tm, yr, bt, en, st, pt) VALUES
 (-128, 65535, -8388608, -2147483648, -9223372036854775808, 18446744073709551615, 3.4028234e38, 2.2250738585072014e-308, -12345678901234567890.0123456789,
  'abc', 'it''s a "quote" \\ back\\slash; DROP TABLE x;--', 'line1\nline2\r\n\ttab', REPEAT('long ', 2000), '{"enable":true,"n":[1,2.5,null]}',
  X'00FF1A27', X'00010203045C27', X'000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F5C27225C6E',
  '2026-11-23', '2026-11-23 07:20:39.123456', '2026-11-23 07:20:39.654321', '-838:59:59.000000', 2026,
  b'1010101010', 'b', 'x,z', ST_GeomFromText('POINT(120.15 30.28)')),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (0, 0, 0, 0, 0, 0, 0.1, 0.1, 0, '', '', '', '', '[]', X'00000000', X'', X'', '1000-01-01', '1000-01-01 00:00:00', NULL, '00:00:00', 1901, b'0', 'a', '', NULL),
 (1, 1, 1, 1, 1, 1, 1.17549435e-38, 1.7976931348623157e308, 99999999999999999999.9999999999, 'ü', '中文 emoji 🚀 ok', 'Ω', 'x', '"s"', X'FFFFFFFF', X'FF', X'FF', '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '838:59:59.999999', 2155, b'1111111111', 'c', 'x,y,z', ST_GeomFromText('POINT(0 0)'));
CREATE TABLE empty_one (id INT PRIMARY KEY);
CREATE TABLE many (id INT PRIMARY KEY, payload VARCHAR(200));
INSERT INTO many SELECT seq, CONCAT('row-', seq, REPEAT('x', 150)) FROM seq_1_to_20000;
"#;

fn checksum_tables(db: &str) -> String {
    let o = mariadb_client(&["-N", "-D", db, "-e", "CHECKSUM TABLE many, empty_one EXTENDED"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).replace(db, "DB")
}

/// A counter of the whole test server (`SHOW GLOBAL STATUS`), e.g. `Com_load`.
fn global_status(name: &str) -> u64 {
    let o = mariadb_client(&["-N", "-e", &format!("SHOW GLOBAL STATUS LIKE '{name}'")]);
    String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn select_text(db: &str) -> String {
    let o = mariadb_client(&["-N", "-D", db, "-e", "SELECT id, HEX(f), HEX(d), dec1, HEX(vc), HEX(t), MD5(lt), js, HEX(bn), HEX(vb), HEX(bl), dt, dtm, ts, tm, yr, bt+0, en, st, ST_AsText(pt), vgen, sgen FROM every_type ORDER BY id"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A dump file's lines as bytes: a binary string's values are any bytes.
fn dump_lines(path: &std::path::Path) -> Vec<Vec<u8>> {
    std::fs::read(path).unwrap().split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

#[tokio::test]
async fn every_column_type_round_trips_exactly() {
    let db = unique_db("types");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!("USE {db}; {ALL_TYPES}"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let before_sum = s.database_checksum("metadb", &db).await.unwrap();
    let before_rows = select_text(&db);
    let before_stock = checksum_tables(&db);

    let b = s.dump_database("metadb", &db, &format!("{db}.backup")).await.unwrap();
    assert_eq!((b.tables, b.rows, b.checksum.as_str()), (3, 20004, before_sum.as_str()));
    assert!(b.bytes > 3_000_000, "{b:?}");

    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let r = s.restore_database("metadb", &db, &format!("{db}.backup")).await.unwrap();
    assert_eq!(r.checksum, before_sum);
    // Independent of opshost's own hashing: the server's view of every value is unchanged.
    assert_eq!(select_text(&db), before_rows);
    assert_eq!(checksum_tables(&db), before_stock);
    // And the checksum notices a one-bit change in a FLOAT.
    s.execute("metadb", &db, "UPDATE every_type SET f = ? WHERE id = 1", &[Value::Float(3.40282e38)]).await.unwrap();
    assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), before_sum);
    sql(&format!("DROP DATABASE {db}"));
}

/// The OMS backup and its rollback: several databases in one call, read side by side in one
/// snapshot, restored side by side. Each backup is what a dump of its database alone gives, and
/// restores verified; a missing database fails the dump and leaves no backup of the others
/// behind; a missing backup or a database that is not empty fails the restore before anything
/// is replayed.
#[tokio::test]
async fn several_databases_dump_and_restore_side_by_side_all_or_nothing() {
    let (a, b, c) = (unique_db("set_a"), unique_db("set_b"), unique_db("set_c"));
    for db in [&a, &b, &c] {
        sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    }
    sql(&format!("USE {a}; {ALL_TYPES}"));
    // Big enough to be cut into ranges that both readers take.
    sql(&format!("USE {b}; CREATE TABLE beats (id BIGINT AUTO_INCREMENT PRIMARY KEY, info VARCHAR(64)); INSERT INTO beats (info) SELECT MD5(seq) FROM seq_1_to_250000; ANALYZE TABLE beats;"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let mut live = Vec::new();
    for db in [&a, &b, &c] {
        live.push(s.database_checksum("metadb", db).await.unwrap());
    }
    let stock_a = checksum_tables(&a);
    let alone = s.dump_database("metadb", &a, "a_alone").await.unwrap();
    let snapshots = s.bulk_reader_snapshots();

    let set = s.dump_databases("metadb", &[(a.clone(), "a".into()), (b.clone(), "b".into()), (c.clone(), "c".into())]).await.unwrap();
    assert_eq!(set.iter().map(|x| (x.name.as_str(), x.database.as_str())).collect::<Vec<_>>(), [("a", a.as_str()), ("b", b.as_str()), ("c", c.as_str())]);
    assert_eq!(set.iter().map(|x| x.checksum.clone()).collect::<Vec<_>>(), live);
    assert_eq!((set[0].bytes, set[0].rows, set[0].tables), (alone.bytes, alone.rows, alone.tables), "the same file as a dump of {a} alone");
    assert_eq!((set[1].rows, set[1].tables), (250_000, 1));
    assert_eq!((set[2].rows, set[2].tables), (0, 0));
    assert_eq!(s.bulk_reader_snapshots(), snapshots + 1, "one snapshot for the whole set");
    // Verified the way a plugin does after dump-databases: all three read again side by side, in
    // one snapshot, each the checksum it has alone; in the order asked.
    let names = [c.clone(), a.clone(), b.clone()];
    assert_eq!(s.database_checksums("metadb", &names).await.unwrap(), [live[2].clone(), live[0].clone(), live[1].clone()]);
    assert_eq!(s.bulk_reader_snapshots(), snapshots + 2, "one snapshot for the three checksums");
    match s.database_checksums("metadb", &[a.clone(), unique_db("set_absent")]).await {
        Err(Error::NotFound(m)) => assert!(m.contains("set_absent"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Restored side by side, each verified; refused whole, before anything is replayed, when one
    // backup is missing or one database is not empty.
    let tables_in = |db: &str| {
        String::from_utf8_lossy(&mariadb_client(&["-N", "-e", &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'")]).stdout)
            .trim()
            .to_string()
    };
    for db in [&a, &b, &c] {
        s.drop_database("metadb", db).await.unwrap();
        s.create_database("metadb", db).await.unwrap();
    }
    let all: Vec<(String, String)> = vec![(a.clone(), "a".into()), (b.clone(), "b".into()), (c.clone(), "c".into())];
    match s.restore_databases("metadb", &[all[0].clone(), (b.clone(), "no_such_backup".into())]).await {
        Err(Error::NotFound(m)) => assert!(m.contains("no_such_backup"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(tables_in(&a), "0", "nothing replayed into {a}");
    let restored = s.restore_databases("metadb", &all).await.unwrap();
    assert_eq!(restored.iter().map(|x| x.checksum.clone()).collect::<Vec<_>>(), live, "each restored verified, in request order");
    assert_eq!(restored.iter().map(|x| x.rows).collect::<Vec<_>>(), set.iter().map(|x| x.rows).collect::<Vec<_>>());
    assert_eq!(checksum_tables(&a), stock_a, "the server's own CHECKSUM TABLE agrees");
    s.drop_database("metadb", &a).await.unwrap();
    s.create_database("metadb", &a).await.unwrap();
    match s.restore_databases("metadb", &[all[0].clone(), all[1].clone()]).await {
        Err(Error::InvalidInput(m)) => assert!(m.contains(&b) && m.contains("not empty"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(tables_in(&a), "0", "nothing replayed into {a}");

    // A missing database: nothing is kept, not even the backups of the databases that exist.
    let missing = unique_db("set_missing");
    let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    match s.dump_databases("metadb", &[(a.clone(), "a2".into()), (missing.clone(), "m2".into())]).await {
        Err(Error::NotFound(m)) => assert!(m.contains(&missing), "{m}"),
        other => panic!("{other:?}"),
    }
    let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(after.len(), before.len(), "left behind: {after:?}");
    for db in [&a, &b, &c] {
        sql(&format!("DROP DATABASE {db}"));
    }
}

#[tokio::test]
async fn the_stock_client_restores_an_opshost_dump_to_the_same_checksum() {
    let db = unique_db("stock");
    let copy = format!("{db}_copy");
    sql(&format!("DROP DATABASE IF EXISTS {db}; DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4; CREATE DATABASE {copy} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!("USE {db}; {ALL_TYPES}"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "stock").await.unwrap();
    // The seeds' way: mysql -e "source FILE" -D DB
    let file = dir.path().join("stock.sql");
    let o = mariadb_client(&["-e", &format!("source {}", file.display()), "-D", &copy]);
    assert!(o.status.success(), "stock client failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s.database_checksum("metadb", &copy).await.unwrap(), b.checksum);
    assert_eq!(select_text(&copy), select_text(&db));
    sql(&format!("DROP DATABASE {db}; DROP DATABASE {copy}"));
}

#[tokio::test]
async fn a_backup_an_earlier_version_recorded_with_sha256_rows_still_verifies() {
    use opshost::capabilities::sql::checksum::RowHash;
    use opshost::capabilities::sql::mysql::format::Zone;
    let db = unique_db("oldsum");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!("USE {db}; {ALL_TYPES}"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "old").await.unwrap();
    assert!(b.checksum.starts_with("xxh3-stored:"), "{}", b.checksum);
    // The metadata as the version before XXH3 rows wrote it: a `sha256:` checksum.
    let (old_sum, _, _) = s.checksum("metadb", &db, RowHash::Sha256, Zone::Utc).await.unwrap();
    assert!(old_sum.starts_with("sha256:") && old_sum != b.checksum);
    let meta = dir.path().join("old.json");
    let rewrite = |sum: &str| {
        let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        m["checksum"] = sum.into();
        std::fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
    };
    rewrite(&old_sum);
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let r = s.restore_database("metadb", &db, "old").await.unwrap();
    assert_eq!(r.checksum, old_sum, "verified with the algorithm the backup was recorded with");

    // A wrong sha256 checksum is still caught, and an unknown format is refused before any replay.
    for (sum, expect) in [(format!("sha256:{}", "0".repeat(64)), "recorded sha256:000"), ("blake9:00".to_string(), "format this opshost does not know")] {
        rewrite(&sum);
        s.drop_database("metadb", &db).await.unwrap();
        s.create_database("metadb", &db).await.unwrap();
        match s.restore_database("metadb", &db, "old").await {
            Err(Error::Failed(m)) => assert!(m.contains(expect), "{m}"),
            other => panic!("{other:?}"),
        }
        if sum.starts_with("blake9") {
            let n: Vec<Vec<Value>> =
                s.query("metadb", &db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", &[Value::Text(db.clone())]).await.unwrap().rows;
            assert_eq!(n, vec![vec![Value::Int(0)]], "nothing was replayed");
        }
    }
    sql(&format!("DROP DATABASE {db}"));
}

/// A table of generated columns only has rows a dump reads nothing of: they come back all the
/// same, counted in the checksum (before, none was dumped, and both sides counted 0).
#[tokio::test]
async fn a_table_of_generated_columns_only_keeps_its_rows() {
    let db = unique_db("genonly");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE g (a INT AS (1) STORED, b VARCHAR(8) AS ('x') VIRTUAL); \
         INSERT INTO g () VALUES (),(),();"
    ));
    let count = |db: &str| String::from_utf8_lossy(&mariadb_client(&["-N", "-D", db, "-e", "SELECT COUNT(*), SUM(a) FROM g"]).stdout).trim().to_string();
    assert_eq!(count(&db), "3\t3");
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "genonly").await.unwrap();
    assert_eq!(b.rows, 3);
    let inserts = inserts_backend(dir.path());
    for (how, backend) in [("LOAD DATA", &s), ("INSERTs", &inserts)] {
        let r = restore_anew(backend, &db, "genonly").await.unwrap_or_else(|e| panic!("{how}: {e:?}"));
        assert_eq!((r.checksum.as_str(), r.rows), (b.checksum.as_str(), 3), "{how}");
        assert_eq!(count(&db), "3\t3", "{how}");
    }
    // One row fewer is seen.
    sql(&format!("DELETE FROM {db}.g LIMIT 1"));
    assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), b.checksum);
    let copy = stock_copy(&db, &dir.path().join("genonly.sql"));
    assert_eq!(count(&copy), "3\t3", "stock client");
    sql(&format!("DROP DATABASE {copy}; DROP DATABASE {db}"));
}

/// A database's comment (MariaDB 10.5 and later) is in its dump's head and its checksum: the
/// rollback's newly created database had lost it, and nothing noticed.
#[tokio::test]
async fn a_databases_comment_comes_back_and_a_changed_one_is_seen() {
    let db = unique_db("comment");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} COMMENT 'rm''s \\\\ \\n 漢字'; CREATE TABLE {db}.t (id INT PRIMARY KEY);"));
    let comment = |db: &str| value(db, &format!("SELECT HEX(SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"));
    let before = comment(&db);
    assert_eq!(before, hex::encode_upper("rm's \\ \n 漢字"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "comment").await.unwrap();
    let r = restore_anew(&s, &db, "comment").await.unwrap();
    assert_eq!(r.checksum, b.checksum);
    assert_eq!(comment(&db), before);
    let copy = stock_copy(&db, &dir.path().join("comment.sql"));
    assert_eq!(comment(&copy), before, "stock client");
    sql(&format!("ALTER DATABASE {db} COMMENT 'another'"));
    assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), b.checksum);
    sql(&format!("DROP DATABASE {copy}; DROP DATABASE {db}"));
}

/// `SHOW CREATE` prints the name of an index, a constraint, a sequence or a view as it is, line
/// breaks included; a dump is one statement a line, so the restored definition differed and the
/// verification failed inside the rollback. Such a database is refused before anything changes.
#[tokio::test]
async fn names_with_line_breaks_are_refused_before_the_dump() {
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    for (kind, create) in [
        ("index", "CREATE TABLE t (id INT PRIMARY KEY, v INT, KEY `by\nv` (v))"),
        ("constraint", "CREATE TABLE t (id INT PRIMARY KEY, v INT, CONSTRAINT `pos\r` CHECK (v > 0))"),
        ("sequence", "CREATE SEQUENCE `s\nq`"),
        ("view", "CREATE VIEW `two\nlines` AS SELECT 1 AS one"),
    ] {
        let db = unique_db("breaks");
        sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; {create}"));
        match s.dump_database("metadb", &db, "breaks").await {
            Err(Error::Failed(m)) => {
                assert!(m.contains(&format!("the {kind} name")) && m.contains("holds a line break") && m.contains("rename it"), "{kind}: {m}")
            }
            other => panic!("{kind}: {other:?}"),
        }
        sql(&format!("DROP DATABASE {db}"));
    }
}

/// A MERGE table's rows are its MyISAM tables': dumped through it too, the restore wrote them a
/// second time into its last table (INSERT_METHOD=LAST), or was refused (INSERT_METHOD=NO).
/// Like `mariadb-dump`, a dump keeps its definition only, and its checksum hashes none of them.
#[tokio::test]
async fn a_merge_tables_rows_are_kept_once_by_the_tables_that_hold_them() {
    let db = unique_db("merge");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; \
         CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(8)) ENGINE=MyISAM; \
         CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(8)) ENGINE=MyISAM; \
         CREATE TABLE m_last (id INT NOT NULL, v VARCHAR(8), KEY (id)) ENGINE=MRG_MyISAM UNION=(a,b) INSERT_METHOD=LAST; \
         CREATE TABLE m_no (id INT NOT NULL, v VARCHAR(8), KEY (id)) ENGINE=MRG_MyISAM UNION=(a,b) INSERT_METHOD=NO; \
         INSERT INTO a VALUES (1, 'a1'), (2, 'a2'); INSERT INTO b VALUES (3, 'b3'); INSERT INTO m_last VALUES (4, 'via m');"
    ));
    let counts = |db: &str| {
        let o = mariadb_client(&[
            "-N",
            "-D",
            db,
            "-e",
            "SELECT (SELECT COUNT(*) FROM a), (SELECT COUNT(*) FROM b), (SELECT COUNT(*) FROM m_last), (SELECT COUNT(*) FROM m_no)",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(counts(&db), "2\t2\t4\t4\n");
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "merge").await.unwrap();
    let dump = String::from_utf8_lossy(&std::fs::read(dir.path().join("merge.sql")).unwrap()).into_owned();
    assert!(dump.contains("ENGINE=MRG_MyISAM") && !dump.contains("INSERT INTO `m_"), "definitions only: {dump}");
    let inserts = inserts_backend(dir.path());
    for (how, backend) in [("LOAD DATA", &s), ("INSERTs", &inserts)] {
        let r = restore_anew(backend, &db, "merge").await.unwrap_or_else(|e| panic!("{how}: {e:?}"));
        assert_eq!(r.checksum, b.checksum, "{how}");
        assert_eq!(counts(&db), "2\t2\t4\t4\n", "{how}");
    }
    let copy = stock_copy(&db, &dir.path().join("merge.sql"));
    assert_eq!(counts(&copy), "2\t2\t4\t4\n", "stock client");
    sql(&format!("DROP DATABASE {copy}; DROP DATABASE {db}"));
}

/// An `ascii` column takes bytes beyond ASCII from a binary string (strict mode refuses only text):
/// read as utf8mb4 they are `?`, so the dump and the checksum both read them as stored.
#[tokio::test]
async fn bytes_beyond_ascii_in_an_ascii_column_come_back_as_stored_and_a_change_to_them_is_seen() {
    use opshost::capabilities::sql::checksum::RowHash;
    use opshost::capabilities::sql::mysql::format::Zone;
    let db = unique_db("ascii");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4; USE {db}; \
         CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10) CHARACTER SET ascii); \
         INSERT INTO t VALUES (1, UNHEX('C3A980FF')), (2, 'plain');"
    ));
    let stored = |db: &str| {
        let o = mariadb_client(&["-N", "-D", db, "-e", "SELECT id, HEX(a) FROM t ORDER BY id"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = stored(&db);
    assert_eq!(before, "1\tC3A980FF\n2\t706C61696E\n");
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "ascii").await.unwrap();
    let inserts = inserts_backend(dir.path());
    for (how, backend) in [("LOAD DATA", &s), ("INSERTs", &inserts)] {
        let r = restore_anew(backend, &db, "ascii").await.unwrap_or_else(|e| panic!("{how}: {e:?}"));
        assert_eq!(r.checksum, b.checksum, "{how}");
        assert_eq!(stored(&db), before, "{how}");
    }
    let copy = stock_copy(&db, &dir.path().join("ascii.sql"));
    assert_eq!(stored(&copy), before, "stock client");
    // What a utf8mb4 reading would have restored (`??`) is another checksum.
    sql(&format!("UPDATE {db}.t SET a = '???' WHERE id = 1"));
    let (changed, _, _) = s.checksum("metadb", &db, RowHash::Xxh3Stored, Zone::Utc).await.unwrap();
    assert_ne!(changed, b.checksum);
    sql(&format!("DROP DATABASE {copy}; DROP DATABASE {db}"));
}

#[tokio::test]
async fn text_in_a_legacy_character_set_is_dumped_as_stored_and_earlier_backups_of_it_still_verify() {
    use opshost::capabilities::sql::checksum::RowHash;
    use opshost::capabilities::sql::mysql::format::Zone;
    let db = unique_db("legacy");
    // cp1250's unassigned 0x81 and latin1's é: the first has no Unicode equivalent (read as
    // utf8mb4 it is `?`), the second has one.
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4; USE {db}; \
         CREATE TABLE t (id INT PRIMARY KEY, l VARCHAR(10) CHARACTER SET latin1, w VARCHAR(10) CHARACTER SET cp1250); \
         INSERT INTO t VALUES (1, CONVERT(UNHEX('E9') USING latin1), CONVERT(UNHEX('8141') USING cp1250)), (2, 'plain', 'plain');"
    ));
    let stored = |db: &str| {
        let o = mariadb_client(&["-N", "-D", db, "-e", "SELECT id, HEX(l), HEX(w) FROM t ORDER BY id"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = stored(&db);
    assert_eq!(before, "1\tE9\t8141\n2\t706C61696E\t706C61696E\n");
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "legacy").await.unwrap();
    assert!(b.checksum.starts_with("xxh3-stored:"), "{}", b.checksum);
    let sql_path = dir.path().join("legacy.sql");
    let dump = std::fs::read(&sql_path).unwrap();
    let row = |text: &[u8]| dump.windows(text.len()).any(|w| w == text);
    assert!(row(b"(1,_binary'\xe9',_binary'\x81A')"), "the stored bytes, not their utf8mb4 reading: {}", String::from_utf8_lossy(&dump));
    // Restored three ways, every byte back: LOAD DATA, INSERTs, the stock client.
    let inserts = inserts_backend(dir.path());
    for (how, backend) in [("LOAD DATA", &s), ("INSERTs", &inserts)] {
        let r = restore_anew(backend, &db, "legacy").await.unwrap_or_else(|e| panic!("{how}: {e:?}"));
        assert_eq!(r.checksum, b.checksum, "{how}");
        assert_eq!(stored(&db), before, "{how}");
    }
    let copy = stock_copy(&db, &sql_path);
    assert_eq!(stored(&copy), before, "stock client");
    sql(&format!("DROP DATABASE {copy}"));

    // A backup as an earlier version wrote it: the text read as utf8mb4 (`'é'`), its checksum
    // `xxh3:` of that reading. Still replayed converted, and verified the way it was recorded.
    sql(&format!("DELETE FROM {db}.t WHERE id = 1; INSERT INTO {db}.t VALUES (1, CONVERT(UNHEX('E9') USING latin1), 'ok')"));
    let before = stored(&db);
    let b = s.dump_database("metadb", &db, "earlier").await.unwrap();
    let (earlier_sum, _, _) = s.checksum("metadb", &db, RowHash::Xxh3, Zone::Utc).await.unwrap();
    assert!(earlier_sum.starts_with("xxh3:") && earlier_sum[5..] != b.checksum["xxh3-stored:".len()..], "é reads otherwise as utf8mb4");
    let earlier = dir.path().join("earlier.sql");
    let text = std::fs::read(&earlier).unwrap();
    let from: &[u8] = b"(1,_binary'\xe9',_binary'ok')";
    let at = text.windows(from.len()).position(|w| w == from).expect("the row as this version writes it");
    let text = [&text[..at], "(1,'é','ok')".as_bytes(), &text[at + from.len()..]].concat();
    let text = String::from_utf8(text).unwrap().replace("_binary'plain'", "'plain'");
    std::fs::write(&earlier, &text).unwrap();
    let meta = dir.path().join("earlier.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    m["checksum"] = earlier_sum.clone().into();
    m["bytes"] = text.len().into();
    std::fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
    for (how, backend) in [("LOAD DATA", &s), ("INSERTs", &inserts)] {
        let r = restore_anew(backend, &db, "earlier").await.unwrap_or_else(|e| panic!("earlier backup, {how}: {e:?}"));
        assert_eq!(r.checksum, earlier_sum, "{how}");
        assert_eq!(stored(&db), before, "earlier backup, {how}");
    }
    sql(&format!("DROP DATABASE {db}"));
}

#[tokio::test]
async fn rows_restore_as_load_data_and_the_same_with_inserts_or_a_refusing_server() {
    use opshost::capabilities::sql::mysql::load;
    let db = unique_db("load");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    // Without the AUTO_INCREMENT attribute every_type's rows go as LOAD DATA too (with it they
    // go as INSERTs on a server that takes the AUTO-INC table lock for a LOAD).
    sql(&format!("USE {db}; {ALL_TYPES}; ALTER TABLE every_type MODIFY id BIGINT UNSIGNED NOT NULL;"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let before_rows = select_text(&db);
    let b = s.dump_database("metadb", &db, "load").await.unwrap();
    let lines = dump_lines(&dir.path().join("load.sql"));
    assert!(!lines.iter().any(|l| l.windows(15).any(|w| w == b"AUTO_INCREMENT,")));
    // Every row statement of a real dump (every column type) has its LOAD DATA form.
    let inserts: Vec<&Vec<u8>> = lines.iter().filter(|l| l.starts_with(b"INSERT INTO ")).collect();
    assert!(inserts.len() >= 4, "{}", inserts.len());
    for l in &inserts {
        assert!(load::from_insert(l, false).is_some(), "not converted: {}", String::from_utf8_lossy(&l[..l.len().min(200)]));
    }

    // The same backup restored three ways gives the same rows and checksum: LOAD DATA (the
    // default), INSERTs by configuration, and INSERTs after the server refuses LOCAL INFILE.
    let mut inserts_only = connections();
    inserts_only.get_mut("metadb").unwrap().load_data = false;
    let by_insert = MysqlSql::new(&inserts_only, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    for (how, backend) in [("load data", &s), ("inserts", &by_insert), ("refused", &s)] {
        if how == "refused" {
            sql("SET GLOBAL local_infile = 0");
        }
        s.drop_database("metadb", &db).await.unwrap();
        s.create_database("metadb", &db).await.unwrap();
        let r = backend.restore_database("metadb", &db, "load").await;
        if how == "refused" {
            sql("SET GLOBAL local_infile = 1");
        }
        assert_eq!(r.unwrap().checksum, b.checksum, "{how}");
        assert_eq!(select_text(&db), before_rows, "{how}");
    }
    sql(&format!("DROP DATABASE {db}"));
}

#[tokio::test]
async fn query_and_execute_use_exact_binary_values() {
    let db = unique_db("query");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE cfg (cfg_name VARCHAR(64) PRIMARY KEY, cfg_value TEXT, f FLOAT, b VARBINARY(8));"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let n = s
        .execute(
            "metadb",
            &db,
            "INSERT INTO cfg VALUES (?, ?, ?, ?)",
            &[Value::Text("ha.config".into()), Value::Text("{\"enable\":true}".into()), Value::Float(3.4028234e38), Value::Bytes(vec![0, 255])],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let rows = s.query("metadb", &db, "SELECT cfg_value, f, b FROM cfg WHERE cfg_name = ?", &[Value::Text("ha.config".into())]).await.unwrap();
    assert_eq!(rows.columns, vec!["cfg_value", "f", "b"]);
    assert_eq!(rows.rows, vec![vec![Value::Text("{\"enable\":true}".into()), Value::Float(3.4028234663852886e38), Value::Bytes(vec![0, 255])]]);
    sql(&format!("DROP DATABASE {db}"));
}

#[tokio::test]
async fn refusals_are_clear_and_change_nothing() {
    let db = unique_db("refuse");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "r").await.unwrap();
    // Restoring over data is refused.
    assert!(matches!(s.restore_database("metadb", &db, "r").await, Err(Error::InvalidInput(m)) if m.contains("not empty")));
    // A truncated backup is detected before it is trusted.
    let path = dir.path().join("r.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 30]).unwrap();
    let empty = format!("{db}_empty");
    s.create_database("metadb", &empty).await.unwrap();
    assert!(matches!(s.restore_database("metadb", &empty, "r").await, Err(Error::Failed(m)) if m.contains("truncated")));
    assert!(matches!(s.restore_database("metadb", &empty, "nope").await, Err(Error::NotFound(_))));
    assert!(matches!(s.query("metadb", "no_such_db_here", "SELECT 1", &[]).await, Err(Error::NotFound(m)) if m.contains("no_such_db_here")));
    assert!(matches!(s.query("other", &db, "SELECT 1", &[]).await, Err(Error::NotFound(m)) if m.contains("[metadb.other]")));
    assert_eq!(s.database_checksum("metadb", &db).await.unwrap(), b.checksum);
    sql(&format!("DROP DATABASE {db}; DROP DATABASE {empty}"));
}

#[tokio::test]
async fn a_metadb_that_is_down_gets_one_clear_error() {
    let mut c = metadb();
    c.port = 1; // nothing listens there
    let conns = std::collections::BTreeMap::from([("metadb".to_string(), c)]);
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&conns, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    match s.database_exists("metadb", "rm_411").await {
        Err(Error::Failed(m)) => assert!(m.contains("cannot connect to MetaDB metadb") && m.contains("check that it is up"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A wrong password names where the password came from (an environment variable or a file),
/// not "the site config", which holds none.
#[tokio::test]
async fn a_wrong_password_names_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metadb.pw");
    std::fs::write(&file, "not-the-password").unwrap();
    let mut c = metadb();
    c.password_env = None;
    c.password_file = Some(file.clone());
    let s = MysqlSql::new(&std::collections::BTreeMap::from([("metadb".to_string(), c)]), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    match s.database_exists("metadb", "rm_411").await {
        Err(Error::Failed(m)) => {
            assert!(m.contains("Access denied") && m.contains(&format!("check the user in [metadb.metadb] and the password in {}", file.display())), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

/// A database big enough to be read by two connections in key ranges: the dump and checksum
/// equal a one-connection read's, the stock client restores the dump, and the server's own
/// CHECKSUM TABLE agrees. Keys with gaps and negatives, a table without an integer key and an
/// unsigned key beyond the signed range are read whole.
#[tokio::test]
async fn a_parallel_range_read_equals_a_sequential_one() {
    let db = unique_db("ranges");
    let copy = format!("{db}_copy");
    sql(&format!("DROP DATABASE IF EXISTS {db}; DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4; CREATE DATABASE {copy} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!(
        "USE {db};
         CREATE TABLE big (id BIGINT PRIMARY KEY, node VARCHAR(64), beat BIGINT, info TEXT);
         INSERT INTO big SELECT CAST(seq AS SIGNED) * 3 - 200000, CONCAT('10.0.0.', seq % 8), seq, CONCAT('beat ', seq, ' it''s ', MD5(seq)) FROM seq_1_to_260000;
         CREATE TABLE by_name (name VARCHAR(64) PRIMARY KEY, v INT);
         INSERT INTO by_name SELECT CONCAT('n', seq), seq FROM seq_1_to_120000;
         CREATE TABLE huge_keys (id BIGINT UNSIGNED PRIMARY KEY, v INT);
         INSERT INTO huge_keys SELECT 18446744073709551615 - seq, seq FROM seq_1_to_110000;
         CREATE TABLE small (id INT PRIMARY KEY); INSERT INTO small VALUES (1), (2);
         ANALYZE TABLE big, by_name, huge_keys, small;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut one = connections();
    one.get_mut("metadb").unwrap().max_connections = 1;
    let sequential = MysqlSql::new(&one, dir.path().join("one"), Arc::new(Silent)).unwrap();
    let mut two = connections();
    two.get_mut("metadb").unwrap().max_connections = 2;
    let parallel = MysqlSql::new(&two, dir.path().join("two"), Arc::new(Silent)).unwrap();

    let want = sequential.database_checksum("metadb", &db).await.unwrap();
    assert_eq!(parallel.database_checksum("metadb", &db).await.unwrap(), want);
    let a = sequential.dump_database("metadb", &db, "seq").await.unwrap();
    let b = parallel.dump_database("metadb", &db, "par").await.unwrap();
    assert_eq!((a.checksum.as_str(), a.rows, a.tables), (want.as_str(), 490_002, 4));
    assert_eq!((b.checksum.as_str(), b.rows, b.tables), (want.as_str(), 490_002, 4));

    // The parallel dump is a plain SQL file the stock client restores to the same content.
    let o = mariadb_client(&["-e", &format!("source {}", dir.path().join("two/par.sql").display()), "-D", &copy]);
    assert!(o.status.success(), "stock client failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sequential.database_checksum("metadb", &copy).await.unwrap(), want);
    let server_sums = |d: &str| {
        let o = mariadb_client(&["-N", "-D", d, "-e", "CHECKSUM TABLE big, by_name, huge_keys, small EXTENDED"]);
        String::from_utf8_lossy(&o.stdout).replace(d, "DB")
    };
    assert_eq!(server_sums(&copy), server_sums(&db));
    // And opshost's own restore of it verifies the checksum.
    parallel.drop_database("metadb", &copy).await.unwrap();
    parallel.create_database("metadb", &copy).await.unwrap();
    assert_eq!(parallel.restore_database("metadb", &copy, "par").await.unwrap().checksum, want);
    // A pool of one connection restores too (everything on one connection, nothing waits).
    sequential.drop_database("metadb", &copy).await.unwrap();
    sequential.create_database("metadb", &copy).await.unwrap();
    assert_eq!(sequential.restore_database("metadb", &copy, "seq").await.unwrap().checksum, want);
    // A changed row anywhere in a range changes the checksum.
    sql(&format!("UPDATE {db}.big SET info = 'x' WHERE id = 300001"));
    assert_ne!(parallel.database_checksum("metadb", &db).await.unwrap(), want);
    sql(&format!("DROP DATABASE {db}; DROP DATABASE {copy}"));
}

/// The OMS plugins back up their three databases in one call. A site that gives opshost fewer
/// connections than a dump reads on (`max_connections` 1, 2 or 3 in `[metadb.X]`) gets the
/// backup, checksum and restore of several databases, one of them big enough to read in ranges,
/// within what it gives: with 2 or 3 the dump waited forever for a connection it held itself.
#[tokio::test]
async fn several_databases_are_backed_up_and_restored_on_as_few_connections_as_the_site_gives() {
    let (a, b) = (unique_db("few_a"), unique_db("few_b"));
    sql(&format!(
        "DROP DATABASE IF EXISTS {a}; DROP DATABASE IF EXISTS {b}; CREATE DATABASE {a}; CREATE DATABASE {b};
         USE {a}; CREATE TABLE {a}.big (id BIGINT PRIMARY KEY, v VARCHAR(40)); INSERT INTO {a}.big SELECT seq, MD5(seq) FROM seq_1_to_150000; ANALYZE TABLE {a}.big;"
    ));
    for i in 0..40 {
        sql(&format!("CREATE TABLE {b}.t{i} (id INT PRIMARY KEY, v TEXT); INSERT INTO {b}.t{i} VALUES (1, 'x{i}'), (2, NULL);"));
    }
    let pairs = [(a.clone(), "a".to_string()), (b.clone(), "b".to_string())];
    let minutes = std::time::Duration::from_secs(120);
    for n in [1, 2, 3] {
        let mut few = connections();
        few.get_mut("metadb").unwrap().max_connections = n;
        let dir = tempfile::tempdir().unwrap();
        let s = MysqlSql::new(&few, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
        let backups = tokio::time::timeout(minutes, s.dump_databases("metadb", &pairs)).await.expect("the dump waited over two minutes").unwrap();
        assert_eq!(backups.iter().map(|b| b.rows).collect::<Vec<_>>(), [150_000, 80], "{n} connections");
        let sum = tokio::time::timeout(minutes, s.database_checksum("metadb", &a)).await.expect("the checksum waited over two minutes").unwrap();
        assert_eq!(sum, backups[0].checksum);
        sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}; CREATE DATABASE {a}; CREATE DATABASE {b};"));
        let restored = tokio::time::timeout(minutes, s.restore_databases("metadb", &pairs)).await.expect("the restore waited over two minutes").unwrap();
        assert_eq!(restored.iter().map(|r| &r.checksum).collect::<Vec<_>>(), backups.iter().map(|b| &b.checksum).collect::<Vec<_>>(), "{n} connections");
    }
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}"));
}

/// A dump of several databases describes each on a connection of its own, all in the first
/// database. From there the server shows another database's views qualified by its name
/// (`` VIEW `b`.`v` AS select … from `b`.`t` ``): the second database's checksum read with the
/// first's differed from its checksum read alone, and its views were dumped bound to its name,
/// so restored under another name they were made in, and read from, the old one. Each database
/// is now described from inside it.
#[tokio::test]
async fn views_of_a_database_dumped_beside_another_are_dumped_as_alone() {
    let (a, b, c) = (unique_db("beside_a"), unique_db("beside_b"), unique_db("beside_c"));
    for db in [&a, &b] {
        sql(&format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)); \
             INSERT INTO t VALUES (1, '{db}'); CREATE VIEW v AS SELECT id, v FROM t; CREATE VIEW w AS SELECT COUNT(*) AS n FROM v;"
        ));
    }
    sql(&format!("DROP DATABASE IF EXISTS {c}"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let alone = [s.database_checksum("metadb", &a).await.unwrap(), s.database_checksum("metadb", &b).await.unwrap()];
    let together = s.database_checksums("metadb", &[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(together, alone);
    let backups = s.dump_databases("metadb", &[(a.clone(), "a".to_string()), (b.clone(), "b".to_string())]).await.unwrap();
    assert_eq!(backups.iter().map(|k| k.checksum.clone()).collect::<Vec<_>>(), alone);
    let dumped = std::fs::read_to_string(dir.path().join("b.sql")).unwrap();
    assert!(!dumped.contains(&format!("`{b}`.")), "the views of {b} are dumped bound to its name");
    // Restored under another name, its views read the new database's table.
    sql(&format!("CREATE DATABASE {c}"));
    s.restore_database("metadb", &c, "b").await.unwrap();
    sql(&format!("DROP DATABASE {b}"));
    assert_eq!(value(&c, "SELECT v FROM v"), b);
    assert_eq!(value(&c, "SELECT n FROM w"), "1");
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {c}"));
}

/// On a server that tells names apart by case (`lower_case_table_names = 0`, Linux's default),
/// `T0` and `t0` are two tables, but `information_schema` sorts names without case, so the two
/// came back in either order. The checksum hashes the tables in order: the same database could
/// read two ways, and a rollback's restore failed its verification in the downtime (on the code
/// before, in about half of the runs of one pair). Here six pairs of tables and a pair of views
/// and of sequences, made in one order in one database and in the other order in another, read
/// alike, several times; and a backup of them restores and verifies.
#[tokio::test]
async fn tables_whose_names_differ_only_in_case_read_alike_whatever_their_order() {
    assert_eq!(value("mysql", "SELECT @@lower_case_table_names"), "0", "the test server tells names apart by case, as tests/run-all.sh starts it");
    let (a, b) = (unique_db("case_a"), unique_db("case_b"));
    let pair = |p: usize, upper: bool| match upper {
        true => format!(
            "CREATE TABLE T{p} (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO T{p} SELECT seq, CONCAT('upper', seq) FROM seq_1_to_{n}; \
             CREATE TRIGGER T{p}_ins BEFORE INSERT ON T{p} FOR EACH ROW SET NEW.v = UPPER(NEW.v);",
            n = 100 + p
        ),
        false => format!(
            "CREATE TABLE t{p} (id INT PRIMARY KEY AUTO_INCREMENT, w INT, KEY (w)); INSERT INTO t{p} (w) SELECT seq FROM seq_1_to_{n}; \
             CREATE TRIGGER t{p}_ins BEFORE INSERT ON t{p} FOR EACH ROW SET NEW.w = NEW.w + 1;",
            n = 200 + p
        ),
    };
    for (db, upper_first) in [(&a, true), (&b, false)] {
        let mut statements = format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};");
        for p in 0..6 {
            statements += &pair(p, upper_first);
            statements += &pair(p, !upper_first);
        }
        statements += match upper_first {
            true => "CREATE VIEW V AS SELECT 1 AS one; CREATE VIEW v AS SELECT 2 AS two; CREATE SEQUENCE S; CREATE SEQUENCE s START WITH 5;",
            false => "CREATE VIEW v AS SELECT 2 AS two; CREATE VIEW V AS SELECT 1 AS one; CREATE SEQUENCE s START WITH 5; CREATE SEQUENCE S;",
        };
        sql(&statements);
    }
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let first = s.database_checksum("metadb", &a).await.unwrap();
    for _ in 0..3 {
        assert_eq!(s.database_checksum("metadb", &a).await.unwrap(), first);
        assert_eq!(s.database_checksum("metadb", &b).await.unwrap(), first, "the same tables made in the other order");
    }
    let pairs = [(a.clone(), "a".to_string()), (b.clone(), "b".to_string())];
    let backups = s.dump_databases("metadb", &pairs).await.unwrap();
    assert!(backups.iter().all(|k| k.checksum == first), "{first} {backups:?}");
    let tables = |db: &str| {
        let o = mariadb_client(&[
            "-N",
            "-D",
            db,
            "-e",
            "CHECKSUM TABLE T0, t0, T5, t5 EXTENDED; SHOW CREATE TABLE t3; SELECT * FROM v; SELECT * FROM V; SELECT NEXTVAL(s), NEXTVAL(S)",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).replace(db, "DB")
    };
    let before = tables(&a);
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}; CREATE DATABASE {a}; CREATE DATABASE {b};"));
    let restored = s.restore_databases("metadb", &pairs).await.unwrap();
    assert!(restored.iter().all(|r| r.checksum == first));
    assert_eq!(tables(&a), before);
    assert_eq!(value(&a, "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"), "12");
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}"));
}

/// An account held to fewer connections at once (MAX_USER_CONNECTIONS) than `max_connections`
/// lets opshost open is refused at the plan, naming both and the fix: its backup would otherwise
/// be refused a connection midway (as it is here). With `max_connections` at the limit, as the
/// refusal says, the plan passes and the backup and restore are whole.
#[tokio::test]
async fn an_account_held_to_fewer_connections_than_opshost_opens_is_refused_at_the_plan() {
    let (a, b) = (unique_db("capped_a"), unique_db("capped_b"));
    let account = format!("capped{}", std::process::id());
    sql(&format!(
        "DROP DATABASE IF EXISTS {a}; DROP DATABASE IF EXISTS {b}; CREATE DATABASE {a}; CREATE DATABASE {b};
         USE {a}; CREATE TABLE {a}.big (id BIGINT PRIMARY KEY, v VARCHAR(40)); INSERT INTO {a}.big SELECT seq, MD5(seq) FROM seq_1_to_150000; ANALYZE TABLE {a}.big;
         CREATE TABLE {b}.small (id INT PRIMARY KEY); INSERT INTO {b}.small VALUES (1), (2);
         DROP USER IF EXISTS '{account}'@'%'; CREATE USER '{account}'@'%' IDENTIFIED BY 'capped-pw' WITH MAX_USER_CONNECTIONS 2;
         GRANT ALL ON `{a}`.* TO '{account}'@'%'; GRANT ALL ON `{b}`.* TO '{account}'@'%'; GRANT RELOAD ON *.* TO '{account}'@'%';"
    ));
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "capped-pw").unwrap();
    let site = |max_connections: usize| {
        let mut c = metadb();
        (c.user, c.password_env, c.password_file, c.max_connections) = (account.clone(), None, Some(password.clone()), max_connections);
        MysqlSql::new(&std::collections::BTreeMap::from([("metadb".to_string(), c)]), dir.path().join(format!("backups{max_connections}")), Arc::new(Silent))
            .unwrap()
    };
    let pairs = [(a.clone(), "a".to_string()), (b.clone(), "b".to_string())];
    let databases = [a.clone(), b.clone()];

    let four = site(4);
    let plan = four.describe_backup("metadb", &databases).await;
    let says = [
        "may hold only 2 connections at once",
        "opshost opens up to 4 (max_connections in [metadb.metadb])",
        "set max_connections = 2 in [metadb.metadb]",
        "WITH MAX_USER_CONNECTIONS 4",
    ];
    assert!(matches!(&plan, Err(e) if says.iter().all(|w| e.message().contains(w))), "{plan:?}");
    // What the plan foresaw: the backup is refused a connection, and says what to do.
    let dump = four.dump_databases("metadb", &pairs).await;
    assert!(
        matches!(&dump, Err(e) if e.message().contains("max_user_connections") && e.message().contains("set max_connections in [metadb.metadb] to at most that limit")),
        "{dump:?}"
    );

    let two = site(2);
    two.describe_backup("metadb", &databases).await.unwrap();
    let backups = two.dump_databases("metadb", &pairs).await.unwrap();
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}; CREATE DATABASE {a}; CREATE DATABASE {b};"));
    let restored = two.restore_databases("metadb", &pairs).await.unwrap();
    assert_eq!(restored.iter().map(|r| &r.checksum).collect::<Vec<_>>(), backups.iter().map(|b| &b.checksum).collect::<Vec<_>>());
    assert_eq!(backups[0].rows, 150_000);
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}; DROP USER '{account}'@'%'"));
}

/// A big table keyed by two columns, the first an integer (a tenant's rows, say), is cut into
/// ranges of that first column (the server's general log shows the range reads), and the ranges
/// read exactly the rows one read does.
#[tokio::test]
async fn a_key_of_two_columns_is_cut_by_its_first() {
    let _log = GENERAL_LOG.lock().await;
    let db = unique_db("pairkey");
    let copy = format!("{db}_copy");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {db}; CREATE DATABASE {copy};
         USE {db};
         CREATE TABLE tenant_task (tenant INT NOT NULL, id BIGINT NOT NULL, v VARCHAR(40), PRIMARY KEY (tenant, id));
         INSERT INTO tenant_task SELECT seq % 997, seq, MD5(seq) FROM seq_1_to_250000;
         ANALYZE TABLE tenant_task;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut one = connections();
    one.get_mut("metadb").unwrap().max_connections = 1;
    let sequential = MysqlSql::new(&one, dir.path().join("one"), Arc::new(Silent)).unwrap();
    let parallel = backend(&dir.path().join("par"));
    let want = sequential.database_checksum("metadb", &db).await.unwrap();

    let log = GeneralLog::on();
    let dumped = parallel.dump_database("metadb", &db, "par").await;
    let ranges = log.distinct(&format!("%`{db}`.`tenant_task` WHERE `tenant` BETWEEN %"));
    drop(log);
    let b = dumped.unwrap();
    assert!(ranges >= 3, "250 000 rows are read in at least three ranges of `tenant`, not {ranges}");
    assert_eq!((b.checksum.as_str(), b.rows), (want.as_str(), 250_000));
    assert_eq!(parallel.restore_database("metadb", &copy, "par").await.unwrap().checksum, want);
    sql(&format!("DROP DATABASE {db}; DROP DATABASE {copy}"));
}

/// A disk that fills during a dump (the partial file is /dev/full here) fails the dump with the
/// cause and the fix, leaves no partial file behind, and does not hang the readers waiting on a
/// writer that stopped.
#[tokio::test]
async fn a_full_disk_fails_the_dump_instead_of_hanging_it() {
    let db = unique_db("full");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"));
    sql(&format!("USE {db}; CREATE TABLE big (id BIGINT PRIMARY KEY, info TEXT); INSERT INTO big SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_250000; ANALYZE TABLE big;"));
    let dir = tempfile::tempdir().unwrap();
    let mut two = connections();
    two.get_mut("metadb").unwrap().max_connections = 2;
    let s = MysqlSql::new(&two, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("full.sql.partial")).unwrap();
    let r =
        tokio::time::timeout(std::time::Duration::from_secs(120), s.dump_database("metadb", &db, "full")).await.expect("the dump hung after its writer failed");
    match r {
        Err(Error::Failed(m)) => assert!(m.contains("No space left on device") && m.contains("free space in"), "{m}"),
        other => panic!("{other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    sql(&format!("DROP DATABASE {db}"));
}

/// A restore whose every worker fails (each INSERT names a table the dump never created) reports the
/// server's error instead of waiting forever to hand out the next statement.
#[tokio::test]
async fn a_restore_whose_workers_all_fail_reports_the_error() {
    let db = unique_db("missing");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let mut text = String::from("-- hand-made dump\nCREATE TABLE t (id INT PRIMARY KEY);\n");
    for _ in 0..50 {
        text.push_str("INSERT INTO `missing` (`id`) VALUES (1);\n");
    }
    text.push_str("-- opshost dump complete\n");
    std::fs::write(dir.path().join("missing.sql"), &text).unwrap();
    let meta = serde_json::json!({"name": "missing", "database": db, "bytes": text.len(), "tables": 1, "rows": 50, "checksum": "sha256:00"});
    std::fs::write(dir.path().join("missing.json"), meta.to_string()).unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), s.restore_database("metadb", &db, "missing"))
        .await
        .expect("the restore hung after its workers failed");
    match r {
        Err(Error::Failed(m)) => assert!(m.contains("missing' doesn't exist"), "{m}"),
        other => panic!("{other:?}"),
    }
    sql(&format!("DROP DATABASE {db}"));
}

#[tokio::test]
async fn a_row_statement_that_waited_too_long_for_a_lock_is_run_again() {
    use mysql_async::prelude::Queryable;
    use opshost::capabilities::sql::mysql::load;
    let db = unique_db("retry");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT);"));
    let opts = mysql_opts(Some(&db));
    // Every way a restore sends rows: bound to a prepared INSERT (rows of long values), LOAD
    // DATA, and the INSERT itself.
    let forms = |load_data, bind| load::Policy::new(load::Forms { load_data, bind, bytes: true }, Some(16 << 20));
    for (how, policy) in [("bound", forms(true, true)), ("load data", forms(true, false)), ("insert", forms(false, false))] {
        let mut holder = mysql_async::Conn::new(opts.clone()).await.unwrap();
        let mut worker = mysql_async::Conn::new(opts.clone()).await.unwrap();
        worker.query_drop("SET SESSION innodb_lock_wait_timeout = 1").await.unwrap();
        // Another transaction holds the lock on key 1 for 1.6 s: the first attempt gives up
        // after 1 s (1205) and the statement is run again.
        holder.query_drop("START TRANSACTION").await.unwrap();
        holder.query_drop("INSERT INTO t VALUES (1, 'holder')").await.unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
            holder.query_drop("ROLLBACK").await.unwrap();
        });
        let started = std::time::Instant::now();
        let (a, b) = ("a".repeat(3000), "b".repeat(3000));
        let stmt = format!("INSERT INTO `t` (`id`,`v`) VALUES (1,'{a}'),(2,'{b}');");
        let rows = policy.rows(stmt.into_bytes());
        assert_eq!(rows.bound(), how == "bound");
        // Converted ahead, as a restore worker does: the first attempt sends that, the retry
        // converts again.
        let ready = rows.convert(&policy);
        load::insert(&mut worker, rows, &policy, ready).await.unwrap_or_else(|e| panic!("{how}: {e}"));
        release.await.unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_secs(1), "{how}: no lock wait happened");
        let rows: Vec<(i32, String)> = worker.query("SELECT id, v FROM t ORDER BY id").await.unwrap();
        assert_eq!(rows, vec![(1, a), (2, b)], "{how}");
        worker.query_drop("DELETE FROM t").await.unwrap();
    }
    sql(&format!("DROP DATABASE {db}"));
}

/// Every column type, a value of more than 16 MiB (a row the protocol splits over packets), and
/// enough rows that a dump reads in parallel ranges (where the bulk reader is used).
fn bulk_fixture(db: &str) {
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!(
        "USE {db}; {ALL_TYPES}
         INSERT INTO every_type (lt, vb) VALUES (REPEAT('big ', 4400000), X'00FF');
         CREATE TABLE wide (id INT PRIMARY KEY, n BIGINT, f DOUBLE, s VARCHAR(100), b VARBINARY(20), d DATETIME(3), t TIME, y YEAR, dec1 DECIMAL(12,4));
         INSERT INTO wide SELECT seq, -7 * CAST(seq AS SIGNED), seq / 3, CONCAT('row ', seq, IF(seq % 97 = 0, '\\t\\n''\\\\', '')), UNHEX(MD5(seq)), NOW(3) - INTERVAL seq SECOND, SEC_TO_TIME(CAST(seq % 90000 AS SIGNED) - 45000), 1901 + seq % 255, seq / 7 FROM seq_1_to_150000;
         ANALYZE TABLE wide, many, every_type;"
    ));
}

#[tokio::test]
async fn the_bulk_reader_reads_exactly_what_mysql_async_reads() {
    let db = unique_db("bulk");
    let copy = format!("{db}_copy");
    bulk_fixture(&db);
    let (bulk_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bulk = backend(bulk_dir.path());
    let mut off = connections();
    off.get_mut("metadb").unwrap().bulk_reader = false;
    let plain = MysqlSql::new(&off, plain_dir.path().to_path_buf(), Arc::new(Silent)).unwrap();

    let sum = plain.database_checksum("metadb", &db).await.unwrap();
    assert_eq!(bulk.database_checksum("metadb", &db).await.unwrap(), sum);
    let b = bulk.dump_database("metadb", &db, "bulk").await.unwrap();
    let p = plain.dump_database("metadb", &db, "plain").await.unwrap();
    assert_eq!((b.checksum.as_str(), b.rows, b.bytes), (sum.as_str(), p.rows, p.bytes), "same rows, same literals");
    assert_eq!(bulk.bulk_reader_snapshots(), 2, "the checksum and the dump were read by the bulk reader");
    assert_eq!(plain.bulk_reader_snapshots(), 0);

    // The bulk reader's dump, restored by the stock client, is the database it was read from.
    sql(&format!("DROP DATABASE IF EXISTS {copy}; CREATE DATABASE {copy} DEFAULT CHARACTER SET utf8mb4;"));
    let file = bulk_dir.path().join("bulk.sql");
    let o = mariadb_client(&["--max-allowed-packet=256M", "-e", &format!("source {}", file.display()), "-D", &copy]);
    assert!(o.status.success(), "stock client failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(select_text(&copy), select_text(&db));
    assert_eq!(plain.database_checksum("metadb", &copy).await.unwrap(), sum);
    let o = mariadb_client(&["-N", "-e", &format!("CHECKSUM TABLE {db}.wide, {copy}.wide EXTENDED")]);
    let sums: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(|l| l.split('\t').nth(1).unwrap_or("").to_string()).collect();
    assert!(sums.len() == 2 && sums[0] == sums[1] && !sums[0].is_empty(), "{sums:?}");
    sql(&format!("DROP DATABASE {db}; DROP DATABASE {copy}"));
}

/// A table of a few hundred rows of BLOBs is most of a MetaDB's bytes: it is cut into key ranges
/// by its size, not only by its rows, and read on several connections.
#[tokio::test]
async fn a_few_wide_rows_are_read_on_several_connections() {
    let db = unique_db("widerows");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};
         USE {db};
         CREATE TABLE artifact (id INT PRIMARY KEY, content LONGBLOB);
         INSERT INTO artifact SELECT seq, REPEAT(UNHEX(SHA2(seq, 512)), 500) FROM seq_1_to_1500;
         ANALYZE TABLE artifact;"
    ));
    let (bulk_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bulk = backend(bulk_dir.path());
    let mut off = connections();
    off.get_mut("metadb").unwrap().bulk_reader = false;
    let plain = MysqlSql::new(&off, plain_dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let b = bulk.dump_database("metadb", &db, "bulk").await.unwrap();
    assert_eq!(bulk.bulk_reader_snapshots(), 1, "1 500 rows of 32 KB (48 MB) were read in ranges, by the bulk reader");
    let p = plain.dump_database("metadb", &db, "plain").await.unwrap();
    assert_eq!((b.checksum.as_str(), b.rows, b.bytes), (p.checksum.as_str(), 1500, p.bytes), "the same rows as one read");
    sql(&format!("DROP DATABASE {db}"));
}

/// Collects warnings.
#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<String>>);

impl opshost::report::Reporter for Warnings {
    fn log(&self, _: opshost::report::Level, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
    fn progress(&self, _: u64, _: u64, _: opshost::report::Unit, _: &str) {}
    fn notice(&self, _: &str) {}
    fn call(&self, _: &opshost::runtime::record::CallRecord) {}
}

// Two threads: the watcher below runs while the dump does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_whose_bulk_reader_fails_midway_is_read_again_through_mysql_async() {
    let db = unique_db("bulkkill");
    bulk_fixture(&db);
    let dir = tempfile::tempdir().unwrap();
    let warnings = Arc::new(Warnings::default());
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), warnings.clone()).unwrap();
    let sum = s.database_checksum("metadb", &db).await.unwrap();
    // Kill a bulk reader's connection while it reads a range (binary protocol: "Execute"),
    // watching the process list from a connection of its own. Catching one mid-read is timing:
    // on a loaded machine the dump may finish first, so it is tried up to three times.
    let reading = format!("SELECT %FROM `{db}`.%BETWEEN%");
    let mut caught = None;
    for attempt in 0..3 {
        let mut watcher = mysql_async::Conn::new(mysql_opts(None)).await.unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (reading, stop) = (reading.clone(), done.clone());
        let killer = tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id: Option<u64> = watcher
                    .exec_first("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Execute' AND INFO LIKE ? LIMIT 1", (reading.as_str(),))
                    .await
                    .unwrap();
                if let Some(id) = id {
                    if watcher.query_drop(format!("KILL CONNECTION {id}")).await.is_ok() {
                        return true;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_micros(500)).await;
            }
            false
        });
        let b = s.dump_database("metadb", &db, &format!("killed{attempt}")).await.unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        if killer.await.unwrap() {
            caught = Some((b, format!("killed{attempt}")));
            break;
        }
    }
    let (b, name) = caught.expect("no bulk reader was caught reading in three dumps");
    assert_eq!(b.checksum, sum, "the dump read again is whole");
    let said = warnings.0.lock().unwrap().join("\n");
    assert!(said.contains("the bulk reader failed on") && said.contains("reading it again through mysql_async"), "{said}");
    // And it restores, verified.
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    assert_eq!(s.restore_database("metadb", &db, &name).await.unwrap().checksum, sum);
    sql(&format!("DROP DATABASE {db}"));
}

/// A plugin's query whose result passes the sandbox's `max_payload_bytes` is stopped as its rows
/// pass it, and killed on the server: a `SELECT` of a hundred gigabytes does not grow the host
/// by them (before, every row was read into memory, and the limit applied only afterwards). A
/// result within the limit comes whole.
#[tokio::test]
async fn a_query_whose_result_passes_the_limit_is_stopped_as_it_reads() {
    let db = unique_db("flood");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};"));
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path()).with_result_limit(1 << 20);
    let fits = s.query("metadb", &db, "SELECT seq, REPEAT('x', 100) FROM seq_1_to_5000", &[]).await.unwrap();
    assert_eq!(fits.rows.len(), 5000);
    let started = std::time::Instant::now();
    // 100 million rows of a kilobyte.
    let flood = "SELECT seq, REPEAT('x', 1000) AS filler FROM seq_1_to_100000000";
    match s.query("metadb", &db, flood, &[]).await {
        Err(Error::Failed(m)) => assert!(m.contains("passed the sandbox limit of 1048576 bytes") && m.contains("max_payload_bytes"), "{m}"),
        other => panic!("{:?}", other.map(|r| r.rows.len())),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
    // Killed on the server, not left streaming.
    let running = || {
        value(
            "mysql",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%REPEAT(''x'', 1000) AS filler%' AND INFO NOT LIKE '%PROCESSLIST%'",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running() != "0" && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(running(), "0", "the query still runs on the server");
    sql(&format!("DROP DATABASE {db}"));
}

/// Dates a server kept under `ALLOW_INVALID_DATES` (`2024-02-30`: month and day in range, the
/// date not real) replay as they are, through LOAD DATA, INSERTs and the stock client: the dump's
/// mode allows them on MariaDB and MySQL. Before, they became `0000-00-00` and the rollback's
/// restore failed its verification in the outage.
#[tokio::test]
async fn dates_kept_under_allow_invalid_dates_come_back_as_they_are() {
    let db = unique_db("invalid_dates");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; SET SESSION sql_mode = 'ALLOW_INVALID_DATES';
         CREATE TABLE d (id INT PRIMARY KEY, day DATE, at DATETIME(3), note VARCHAR(8));
         INSERT INTO d VALUES (1, '2024-02-30', '2023-04-31 12:00:00.123', 'a'), (2, '2024-02-29', '2024-02-29 00:00:00', 'b'), (3, '2023-02-29', NULL, NULL);"
    ));
    let rows = || value(&db, "SELECT GROUP_CONCAT(id, ' ', day, ' ', IFNULL(at, '-') ORDER BY id SEPARATOR '; ') FROM d");
    let before = rows();
    assert_eq!(before, "1 2024-02-30 2023-04-31 12:00:00.123; 2 2024-02-29 2024-02-29 00:00:00.000; 3 2023-02-29 -");
    let dir = tempfile::tempdir().unwrap();
    let backup = backend(dir.path()).dump_database("metadb", &db, "dates").await.unwrap();
    for (how, s) in [("LOAD DATA", backend(dir.path())), ("INSERTs", inserts_backend(dir.path()))] {
        assert_eq!(restore_anew(&s, &db, "dates").await.unwrap().checksum, backup.checksum, "{how}");
        assert_eq!(rows(), before, "{how}");
    }
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db}"));
    stock_restore(&db, &dir.path().join("dates.sql")).unwrap();
    assert_eq!(rows(), before, "the stock client");
    sql(&format!("DROP DATABASE {db}"));
}

/// Rows into a table with an AUTO_INCREMENT column go one statement at a time, even with both
/// restore workers on its file (the second joins once the small file is done). Under MariaDB's
/// default AUTO-INC lock mode two LOAD DATAs there would take turns on the server; under mode 2
/// they would both run, at about twice the server's CPU. Judged by the server's process list,
/// sampled from a connection of its own while the restore runs: how long each statement and each
/// pair of statements was seen loading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_increment_table_is_loaded_one_statement_at_a_time() {
    let (big, small) = (unique_db("beats"), unique_db("beats_small"));
    sql(&format!(
        "DROP DATABASE IF EXISTS {big}; CREATE DATABASE {big} DEFAULT CHARACTER SET utf8mb4;
         DROP DATABASE IF EXISTS {small}; CREATE DATABASE {small} DEFAULT CHARACTER SET utf8mb4;
         USE {big};
         CREATE TABLE beats (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), module VARCHAR(64), gmt_created BIGINT, info VARCHAR(255));
         INSERT INTO beats (node, module, gmt_created, info) SELECT CONCAT('10.0.0.', seq % 8), 'store', 1767225600000 + seq, CONCAT('beat ', seq, ' ok ', MD5(seq)) FROM seq_1_to_300000;
         CREATE TABLE {small}.host (id INT PRIMARY KEY, ip VARCHAR(64));
         INSERT INTO {small}.host SELECT seq, CONCAT('10.0.1.', seq) FROM seq_1_to_50;"
    ));
    let counter = || value(&big, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'beats'");
    let counter_before = counter();
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let pairs = [(big.clone(), "beats".to_string()), (small.clone(), "beats_small".to_string())];
    let backups = s.dump_databases("metadb", &pairs).await.unwrap();
    let statements = dump_lines(&dir.path().join("beats.sql")).iter().filter(|l| l.starts_with(b"INSERT INTO `beats`")).count();
    assert!(statements >= 6, "enough statements for the second worker to join: {statements}");
    for (db, _) in &pairs {
        s.drop_database("metadb", db).await.unwrap();
        s.create_database("metadb", db).await.unwrap();
    }
    let mut watcher = mysql_async::Conn::new(mysql_opts(None)).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    // LOAD DATA … INTO TABLE `beats`, or INSERT INTO `beats`; not one sending its result: its
    // rows are in and committed, and the next statement may start before the server shows the
    // finished one idle.
    let (db, loading) = (big.clone(), "%INTO %`beats`%");
    let sampler = tokio::spawn(async move {
        use mysql_async::prelude::Queryable;
        use std::collections::BTreeMap;
        use std::time::Instant;
        // When each statement (by its QUERY_ID) was first and last seen loading; the same for each
        // pair of statements seen loading together.
        let mut seen: BTreeMap<u64, (Instant, Instant)> = BTreeMap::new();
        let mut together: BTreeMap<(u64, u64), (Instant, Instant)> = BTreeMap::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let ids: Vec<u64> = watcher
                .exec(
                    "SELECT QUERY_ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND DB = ? AND INFO LIKE ? AND STATE <> 'Writing to net' ORDER BY QUERY_ID",
                    (db.as_str(), loading),
                )
                .await
                .unwrap();
            let now = Instant::now();
            for (k, &a) in ids.iter().enumerate() {
                seen.entry(a).or_insert((now, now)).1 = now;
                for &b in &ids[k + 1..] {
                    together.entry((a, b)).or_insert((now, now)).1 = now;
                }
            }
            tokio::time::sleep(std::time::Duration::from_micros(500)).await;
        }
        let span = |(first, last): &(Instant, Instant)| last.duration_since(*first);
        (seen.values().map(span).collect::<Vec<_>>(), together.values().map(span).collect::<Vec<_>>())
    });
    let restored = s.restore_databases("metadb", &pairs).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, together) = sampler.await.unwrap();
    let restored = restored.unwrap();
    for (r, b) in restored.iter().zip(&backups) {
        assert_eq!((r.checksum.as_str(), r.rows), (b.checksum.as_str(), b.rows));
    }
    // One statement ending as the next starts on another connection can be seen together for a
    // sample: the server shows a statement until it has cleaned up, after its result was sent. Two
    // statements loading side by side would be seen together for much of a statement's time, and
    // for most statements.
    let mut spans = seen.clone();
    spans.sort();
    assert!(spans.len() >= 3, "the sampler saw the table loading ({} statements)", spans.len());
    let typical = spans[spans.len() / 2];
    let overlapping = together.iter().filter(|t| **t >= typical / 2).count();
    assert!(
        overlapping == 0 && together.len() <= 2.max(spans.len() / 10),
        "at most one statement loads the AUTO_INCREMENT table at a time: {} pairs of the {} statements were seen loading together, for {together:?} (a statement is seen for about {typical:?})",
        together.len(),
        spans.len()
    );
    assert_eq!(counter(), counter_before, "the AUTO_INCREMENT counter is where it was");
    sql(&format!("DROP DATABASE {big}; DROP DATABASE {small}"));
}

/// A restore holds plain secondary keys back until the rows are in (where the server builds them
/// from sorted rows), and every table ends exactly as it was: `SHOW CREATE TABLE` equal, keys in
/// their order, the content checksum verified. Tables whose definition needs its keys (the
/// AUTO_INCREMENT column's only index, FULLTEXT, a foreign key) keep them in the CREATE.
#[tokio::test]
async fn secondary_keys_come_back_after_the_rows_exactly_as_they_were() {
    let db = unique_db("keys");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!(
        "USE {db};
         CREATE TABLE keyed (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64), code CHAR(8), v INT, g INT AS (v * 2) VIRTUAL, note TEXT,
           KEY name (name), UNIQUE KEY code (code), KEY `n,v` (name(10), v) COMMENT 'name, then v', KEY g (g), KEY v_desc (v DESC), KEY ignored_one (v) IGNORED,
           KEY note (note(16)) USING BTREE);
         INSERT INTO keyed (name, code, v, note) SELECT CONCAT('n', seq % 977), LPAD(seq, 8, '0'), seq % 101, REPEAT(MD5(seq), 3) FROM seq_1_to_30000;
         CREATE TABLE ai_second (a INT NOT NULL, id INT NOT NULL AUTO_INCREMENT, b INT, PRIMARY KEY (a, id), KEY b (b), KEY id (id));
         INSERT INTO ai_second (a, b) SELECT seq % 7, seq FROM seq_1_to_2000;
         CREATE TABLE ft (id INT PRIMARY KEY, body TEXT, KEY b (body(20)), FULLTEXT KEY f (body));
         INSERT INTO ft SELECT seq, CONCAT('word', seq, ' other') FROM seq_1_to_2000;
         CREATE TABLE parent (id INT PRIMARY KEY);
         INSERT INTO parent SELECT seq FROM seq_1_to_100;
         CREATE TABLE child (id INT PRIMARY KEY, p INT, q INT, KEY q (q), KEY p (p), CONSTRAINT fk FOREIGN KEY (p) REFERENCES parent (id));
         INSERT INTO child SELECT seq, seq % 100 + 1, seq FROM seq_1_to_2000;"
    ));
    let tables = ["keyed", "ai_second", "ft", "parent", "child"];
    let creates = || -> Vec<String> {
        tables
            .iter()
            .map(|t| {
                let o = mariadb_client(&["-N", "-D", &db, "-e", &format!("SHOW CREATE TABLE {t}")]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                String::from_utf8_lossy(&o.stdout).split(' ').filter(|w| !w.starts_with("AUTO_INCREMENT=")).collect::<Vec<_>>().join(" ")
            })
            .collect()
    };
    let before = creates();
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "keys").await.unwrap();
    let alters = || global_status("Com_alter_table");
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let altered = alters();
    let r = s.restore_database("metadb", &db, "keys").await.unwrap();
    assert_eq!(r.checksum, b.checksum);
    assert!(alters() > altered, "no key was added after the rows");
    assert_eq!(creates(), before);
    let o = mariadb_client(&["-N", "-D", &db, "-e", "SELECT COUNT(*) FROM keyed FORCE INDEX (`n,v`) WHERE name = 'n5'"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "31", "the restored key answers");
    sql(&format!("DROP DATABASE {db}"));
}

/// A foreign key may refer to a plain (non-unique) key of its parent, which InnoDB needs as the
/// child is created, even with `FOREIGN_KEY_CHECKS=0`: a restore that held the parent's keys back
/// until its rows were in failed on the child (errno 150) inside the rollback, whether the child
/// is in the same database or in another of the restore. Such a parent keeps its keys. And a
/// foreign key of another database refused the rollback's `DROP DATABASE` of the parent's (1451);
/// now the databases are replaced as the OMS plugins replace them: drop and create each, then
/// restore them all in one call. The children's definitions are not UTF-8 (a binary default of
/// byte 0xFF, shown raw): their foreign keys count all the same.
#[tokio::test]
async fn tables_a_foreign_key_refers_to_keep_their_keys_and_their_databases_can_be_replaced() {
    let (a, b) = (unique_db("fk_parents"), unique_db("fk_children"));
    sql(&format!(
        "DROP DATABASE IF EXISTS {a}; DROP DATABASE IF EXISTS {b}; CREATE DATABASE {a}; CREATE DATABASE {b};
         USE {a};
         CREATE TABLE codes (id INT PRIMARY KEY, code INT, note VARCHAR(32), KEY code (code), KEY note (note));
         INSERT INTO codes SELECT seq, seq % 5000, CONCAT('n', seq) FROM seq_1_to_30000;
         CREATE TABLE orders (id INT PRIMARY KEY, code INT, tag VARBINARY(4) DEFAULT 0xFF, KEY code (code), CONSTRAINT to_code FOREIGN KEY (code) REFERENCES codes (code));
         INSERT INTO orders (id, code) SELECT seq, seq % 5000 FROM seq_1_to_3000;
         CREATE TABLE regions (id INT PRIMARY KEY, zone INT, KEY zone (zone));
         INSERT INTO regions SELECT seq, seq % 300 FROM seq_1_to_30000;
         CREATE TABLE unrelated (id INT PRIMARY KEY, v INT, KEY v (v));
         INSERT INTO unrelated SELECT seq, seq % 77 FROM seq_1_to_30000;
         USE {b};
         CREATE TABLE `lines` (id INT PRIMARY KEY, zone INT, tag VARBINARY(4) DEFAULT 0xFF, KEY zone (zone), CONSTRAINT to_zone FOREIGN KEY (zone) REFERENCES {a}.regions (zone));
         INSERT INTO `lines` (id, zone) SELECT seq, seq % 300 FROM seq_1_to_3000;
         ANALYZE TABLE {a}.codes, {a}.regions, {a}.unrelated;"
    ));
    let creates = || -> Vec<String> {
        [(&a, "codes"), (&a, "orders"), (&a, "regions"), (&a, "unrelated"), (&b, "lines")]
            .iter()
            .map(|(db, t)| {
                let o = mariadb_client(&["-N", "-D", db, "-e", &format!("SHOW CREATE TABLE `{t}`")]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                String::from_utf8_lossy(&o.stdout).into_owned()
            })
            .collect()
    };
    let before = creates();
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let both = [(a.clone(), a.clone()), (b.clone(), b.clone())];
    let backups = s.dump_databases("metadb", &both).await.unwrap();
    for round in 0..3 {
        // `b` refers to `a`: `a` is dropped first, as a plugin may.
        for db in [&a, &b] {
            s.drop_database("metadb", db).await.unwrap_or_else(|e| panic!("dropping {db}: {e:?}"));
        }
        for db in [&a, &b] {
            s.create_database("metadb", db).await.unwrap();
        }
        let alters = global_status("Com_alter_table");
        let restored = s.restore_databases("metadb", &both).await.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(restored.iter().map(|r| &r.checksum).collect::<Vec<_>>(), backups.iter().map(|r| &r.checksum).collect::<Vec<_>>());
        assert!(global_status("Com_alter_table") > alters, "the unreferenced table's keys were held back");
        assert_eq!(creates(), before);
    }
    // The foreign keys hold again.
    let o = mariadb_client(&["-D", &b, "-e", "INSERT INTO `lines` (id, zone) VALUES (99999, 100000)"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("foreign key constraint fails"), "{o:?}");
    sql(&format!("DROP DATABASE {b}; DROP DATABASE {a}"));
}

/// Tables with an AUTO_INCREMENT column load as LOAD DATA too (every value is in the dump), and
/// come back with their counter where it was, above rows deleted at the top (as after the
/// heartbeat trim): the next row the product writes gets the id it would have had.
#[tokio::test]
async fn auto_increment_tables_load_as_data_and_keep_their_counter() {
    let db = unique_db("autoinc");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!(
        "USE {db};
         CREATE TABLE hb (id BIGINT NOT NULL AUTO_INCREMENT, sender VARCHAR(32), doc JSON, PRIMARY KEY (id));
         INSERT INTO hb (sender, doc) SELECT CONCAT('node', seq % 3), JSON_OBJECT('n', seq) FROM seq_1_to_5000;
         DELETE FROM hb WHERE id > 4000;"
    ));
    let create = || {
        let o = mariadb_client(&["-N", "-D", &db, "-e", "SHOW CREATE TABLE hb"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let before = create();
    // Above the 5000 ids used (INSERT … SELECT reserves them in blocks).
    let counter: u64 = before.split("AUTO_INCREMENT=").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("a counter");
    assert!(counter > 5000, "{before}");
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "autoinc").await.unwrap();
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let loads = || global_status("Com_load");
    let loaded = loads();
    let r = s.restore_database("metadb", &db, "autoinc").await.unwrap();
    assert_eq!(r.checksum, b.checksum);
    assert_eq!(r.rows, 4000);
    assert!(loads() > loaded, "the AUTO_INCREMENT table's rows did not go as LOAD DATA");
    assert_eq!(create(), before);
    sql(&format!("USE {db}; INSERT INTO hb (sender) VALUES ('after')"));
    let o = mariadb_client(&["-N", "-D", &db, "-e", "SELECT id FROM hb WHERE sender = 'after'"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), counter.to_string());
    sql(&format!("DROP DATABASE {db}"));
}

/// Many small tables and a big one in two databases, restored in one call: only the big tables
/// hold their keys back (a small table's `ALTER TABLE` costs more than its keys cost it while it
/// loads), the definitions are shared out over the connections, and every table ends as it was.
#[tokio::test]
async fn only_big_tables_hold_their_keys_back_and_every_table_ends_as_it_was() {
    let dbs = [unique_db("smallkeys_a"), unique_db("smallkeys_b")];
    let mut before = Vec::new();
    for db in &dbs {
        let mut script = format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4; USE {db};");
        for t in 0..30 {
            script.push_str(&format!(
                "CREATE TABLE small_{t} (id INT PRIMARY KEY, name VARCHAR(64), value TEXT, KEY name (name), KEY `n,v` (name, value(8)));
                 INSERT INTO small_{t} SELECT seq, CONCAT('name-', seq % 50), REPEAT('v', seq % 20) FROM seq_1_to_{};",
                100 + t * 13
            ));
        }
        script.push_str(
            "CREATE TABLE big (id INT PRIMARY KEY, name VARCHAR(64), KEY name (name));
             INSERT INTO big SELECT seq, CONCAT('big-', seq % 997) FROM seq_1_to_12000;",
        );
        sql(&script);
        let o = mariadb_client(&["-N", "-D", db, "-e", "SHOW TABLES"]);
        let tables: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
        assert_eq!(tables.len(), 31);
        let creates: Vec<String> = tables
            .iter()
            .map(|t| String::from_utf8_lossy(&mariadb_client(&["-N", "-D", db, "-e", &format!("SHOW CREATE TABLE {t}")]).stdout).into_owned())
            .collect();
        before.push((tables, creates));
    }
    let dir = tempfile::tempdir().unwrap();
    let said = Arc::new(Warnings::default());
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), said.clone()).unwrap();
    let pairs: Vec<(String, String)> = dbs.iter().map(|d| (d.clone(), format!("{d}_backup"))).collect();
    let backups = s.dump_databases("metadb", &pairs).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join(format!("{}_backup.sql", dbs[0]))).unwrap();
    // Each definition follows the server's estimate of the table's rows (InnoDB's is close).
    let notes: Vec<u64> = text.lines().filter_map(|l| l.strip_prefix("-- rows (estimate): ")).map(|n| n.parse().unwrap()).collect();
    assert_eq!(notes.len(), 31, "one note per table");
    assert!(notes.iter().any(|&n| (10_800..=13_200).contains(&n)), "the big table's estimate: {notes:?}");
    for db in &dbs {
        s.drop_database("metadb", db).await.unwrap();
        s.create_database("metadb", db).await.unwrap();
    }
    said.0.lock().unwrap().clear();
    let restored = s.restore_databases("metadb", &pairs).await.unwrap();
    for (r, b) in restored.iter().zip(&backups) {
        assert_eq!((r.checksum.as_str(), r.rows), (b.checksum.as_str(), b.rows));
    }
    let log = said.0.lock().unwrap().join("\n");
    assert!(log.contains("building the secondary keys of 2 tables"), "only the two big tables wait for their keys: {log}");
    for (db, (tables, creates)) in dbs.iter().zip(&before) {
        for (t, create) in tables.iter().zip(creates) {
            let now = String::from_utf8_lossy(&mariadb_client(&["-N", "-D", db, "-e", &format!("SHOW CREATE TABLE {t}")]).stdout).into_owned();
            assert_eq!(&now, create, "{db}.{t}");
        }
        sql(&format!("DROP DATABASE {db}"));
    }
}

/// A dump holds a latin1 column's text as its stored bytes, so every table loads its LOAD DATA
/// fields as bytes (the server skips reading them one multibyte character at a time), a latin1
/// column's too: read as utf8mb4 they would be converted. (A backup of an earlier version, its
/// latin1 text read as utf8mb4, converts: see
/// `text_in_a_legacy_character_set_is_dumped_as_stored_and_earlier_backups_of_it_still_verify`.)
/// Tables are told apart by their exact names (two differ only in case). A table with an INET6 or
/// UUID column reads them as utf8mb4 (as bytes, its text would be taken for raw bytes). Every
/// value comes back, as the server itself reads them.
#[tokio::test]
async fn every_table_of_a_dump_loads_as_bytes_latin1_text_as_stored() {
    let _log = GENERAL_LOG.lock().await;
    let db = unique_db("asbytes");
    let rows = |table: &str, columns: &str, values: &str| format!("INSERT INTO `{table}` ({columns}) SELECT {values} FROM seq_1_to_3000;");
    // Four-byte characters, the bytes LOAD DATA and the dump escape, a text `\N`, a binary
    // string holding NUL, tab, newline, backslash, quote and 0xFF, and latin1 letters beyond
    // ASCII.
    let text = r"CONCAT('😀 é\t\\N\\', seq, '\n\r', CHAR(0), '\'')";
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4; USE {db};
         CREATE TABLE `plain` (id INT PRIMARY KEY, s TEXT, j JSON, e ENUM('é', 'ü'), b VARBINARY(64), n DECIMAL(10,2), d DATETIME(6));
         {}
         CREATE TABLE `mixed` (id INT PRIMARY KEY, s TEXT, l VARCHAR(64) CHARACTER SET latin1);
         {}
         CREATE TABLE `Pair` (id INT PRIMARY KEY, s TEXT);
         {}
         CREATE TABLE `pair` (id INT PRIMARY KEY, l TEXT CHARACTER SET latin1);
         {}
         CREATE TABLE `odd``name` (id INT PRIMARY KEY, s VARCHAR(64)) DEFAULT CHARSET=latin1;
         {}
         CREATE TABLE `addresses` (id INT PRIMARY KEY, s TEXT, ip INET6, u UUID);
         {}",
        rows(
            "plain",
            "id, s, j, e, b, n, d",
            &format!(
                "seq, {text}, JSON_OBJECT('k', {text}), ELT(seq % 2 + 1, 'é', 'ü'), CONCAT(UNHEX(MD5(seq)), X'00090A5C27FF'), seq / 7, '2026-11-28 12:00:00.5'"
            )
        ),
        rows("mixed", "id, s, l", &format!(r"seq, {text}, CONCAT('é ü ß ÿ \t\\', seq)")),
        rows("Pair", "id, s", &format!("seq, {text}")),
        rows("pair", "id, l", "seq, CONCAT('é ÿ ', seq)"),
        rows("odd``name", "id, s", "seq, CONCAT('ß ', seq)"),
        rows("addresses", "id, s, ip, u", &format!("seq, {text}, CONCAT('2001:db8::', HEX(seq)), UUID()")),
    ));
    let fingerprint = || {
        let q = "SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT(HEX(s), HEX(j), HEX(e), HEX(b), n, d)) ORDER BY id)) FROM `plain`; \
                 SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT(HEX(s), HEX(l))) ORDER BY id)) FROM `mixed`; \
                 SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(HEX(s)) ORDER BY id)) FROM `Pair`; \
                 SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(HEX(l)) ORDER BY id)) FROM `pair`; \
                 SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(HEX(s)) ORDER BY id)) FROM `odd``name`; \
                 SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT(HEX(s), HEX(ip), HEX(u))) ORDER BY id)) FROM `addresses`";
        let o = mariadb_client(&["-N", "-D", &db, "-e", q]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let before = fingerprint();
    assert!(before.lines().all(|l| l.starts_with("3000\t")), "{before}");
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "asbytes").await.unwrap();
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let log = GeneralLog::on();
    let r = s.restore_database("metadb", &db, "asbytes").await;
    let loads = log.heads("Query", "LOAD DATA LOCAL INFILE _opshost-restore_ INTO TABLE");
    let load = |table: &str, charset: &str| {
        let head = format!("LOAD DATA LOCAL INFILE 'opshost-restore' INTO TABLE {table} CHARACTER SET {charset} ");
        loads.iter().filter(|l| l.starts_with(head.as_bytes())).count()
    };
    let forms = [
        ("`plain`", load("`plain`", "binary"), load("`plain`", "utf8mb4")),
        ("`mixed`", load("`mixed`", "binary"), load("`mixed`", "utf8mb4")),
        ("`Pair`", load("`Pair`", "binary"), load("`Pair`", "utf8mb4")),
        ("`pair`", load("`pair`", "binary"), load("`pair`", "utf8mb4")),
        ("`odd``name`", load("`odd``name`", "binary"), load("`odd``name`", "utf8mb4")),
        // INET6 and UUID take a binary string as their raw bytes, not their text.
        ("`addresses`", load("`addresses`", "utf8mb4"), load("`addresses`", "binary")),
    ];
    drop(log);
    let r = r.unwrap();
    for (table, right, wrong) in forms {
        assert!(right >= 1 && wrong == 0, "{table}: {right} LOAD DATA in its form, {wrong} in the other");
    }
    assert_eq!(r.checksum, b.checksum);
    assert_eq!(fingerprint(), before);
    sql(&format!("DROP DATABASE {db}"));
}

/// A hand-edited backup with a statement among its rows that changes a table (here its text
/// column to latin1): the rows after it are read as utf8mb4 and converted, not as bytes, which
/// would store a latin1 `é` as the two bytes of its UTF-8. The edited backup then fails its
/// verification (its content is not the one recorded), but what went in is what the file says.
#[tokio::test]
async fn a_statement_among_the_rows_that_changes_a_table_stops_fields_read_as_bytes() {
    let db = unique_db("handedit");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;
         USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, s TEXT);
         INSERT INTO t SELECT seq, CONCAT('é ', seq) FROM seq_1_to_100;"
    ));
    let dir = tempfile::tempdir().unwrap();
    // One connection: the statements run in the file's order.
    let mut one = connections();
    one.get_mut("metadb").unwrap().max_connections = 1;
    let s = MysqlSql::new(&one, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    s.dump_database("metadb", &db, "handedit").await.unwrap();
    let path = dir.path().join("handedit.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows = text.lines().find(|l| l.starts_with("INSERT INTO `t`")).expect("the rows");
    let edited =
        text.replacen(rows, &format!("{rows}\nALTER TABLE `t` MODIFY `s` TEXT CHARACTER SET latin1;\nINSERT INTO `t` (`id`,`s`) VALUES (1000,'é after');"), 1);
    std::fs::write(&path, &edited).unwrap();
    let meta = dir.path().join("handedit.json");
    let mut recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    recorded["bytes"] = serde_json::json!(edited.len());
    std::fs::write(&meta, serde_json::to_vec(&recorded).unwrap()).unwrap();
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let r = s.restore_database("metadb", &db, "handedit").await;
    assert!(matches!(&r, Err(e) if e.message().contains("checksum")), "{r:?}");
    assert_eq!(value(&db, "SELECT HEX(s) FROM t WHERE id = 1000"), "E9206166746572", "latin1 `é after`");
    assert_eq!(value(&db, "SELECT HEX(s) FROM t WHERE id = 7"), "E92037", "converted by the ALTER");
    sql(&format!("DROP DATABASE {db}"));
}

/// Rows of long binary values restore bound to prepared INSERTs (the server copies bound bytes
/// for much less than it reads hex or LOAD DATA fields), narrow ones as LOAD DATA, in the same
/// restore; every byte comes back, including the ones the dump and LOAD DATA escape.
#[tokio::test]
async fn rows_of_long_values_restore_bound_and_come_back_exact() {
    let _log = GENERAL_LOG.lock().await;
    let db = unique_db("wideblob");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    sql(&format!(
        "USE {db};
         CREATE TABLE bound_artifact (id BIGINT NOT NULL AUTO_INCREMENT, name VARCHAR(64), content LONGBLOB, PRIMARY KEY (id));
         INSERT INTO bound_artifact (name, content) SELECT CONCAT('a-', seq), CONCAT(X'00090A0D5C27220D1A', REPEAT(UNHEX(SHA2(seq, 512)), 128)) FROM seq_1_to_300;
         CREATE TABLE narrow (id INT PRIMARY KEY, b VARBINARY(16));
         INSERT INTO narrow SELECT seq, UNHEX(MD5(seq)) FROM seq_1_to_5000;"
    ));
    let fingerprint = || {
        let o = mariadb_client(&[
            "-N",
            "-D",
            &db,
            "-e",
            "SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(content) ORDER BY id)) FROM bound_artifact; SELECT COUNT(*), MD5(GROUP_CONCAT(HEX(b) ORDER BY id)) FROM narrow; SHOW CREATE TABLE bound_artifact",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let before = fingerprint();
    let dir = tempfile::tempdir().unwrap();
    let s = backend(dir.path());
    let b = s.dump_database("metadb", &db, "wideblob").await.unwrap();
    let lines = dump_lines(&dir.path().join("wideblob.sql"));
    let (wide, narrow): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) =
        lines.iter().filter(|l| l.starts_with(b"INSERT INTO ")).partition(|l| l.starts_with(b"INSERT INTO `bound_artifact`"));
    // As the restore decides on this server (its packet limit is well above these statements).
    use opshost::capabilities::sql::mysql::load;
    let policy = load::Policy::new(load::Forms { load_data: true, bind: true, bytes: true }, Some(16 << 20));
    assert!(wide.len() >= 2 && wide.iter().all(|l| policy.binds(l)), "the bound_artifact rows are rows of long values");
    assert!(!narrow.is_empty() && narrow.iter().all(|l| !policy.binds(l)), "the narrow rows are not");
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let log = GeneralLog::on();
    let r = s.restore_database("metadb", &db, "wideblob").await;
    let (bound, loaded) =
        (log.count("Prepare", "INSERT INTO `bound_artifact`"), log.count("Query", "LOAD DATA LOCAL INFILE _opshost-restore_ INTO TABLE `narrow`"));
    drop(log);
    let r = r.unwrap();
    assert_eq!(r.checksum, b.checksum);
    assert_eq!(r.rows, 5300);
    // At least (a statement InnoDB chose as a deadlock victim is sent again).
    assert!(bound >= wide.len(), "each INSERT of long values went as a prepared INSERT: {bound} of {}", wide.len());
    assert!(loaded >= narrow.len(), "each INSERT of narrow rows went as LOAD DATA: {loaded} of {}", narrow.len());
    assert_eq!(fingerprint(), before);
    sql(&format!("DROP DATABASE {db}"));
}
