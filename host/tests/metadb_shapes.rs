//! MetaDBs of shapes a product's schema might take that the other suites do not build: a
//! sequence, invisible and generated columns, spatial and BIT columns, odd identifiers, a table
//! without a key holding duplicate rows, other engines, partitions, foreign keys, an
//! AUTO_INCREMENT counter ahead of the rows, keys of every kind built after the rows, triggers in
//! a set order, views in an order their names do not give, objects made under another collation,
//! a procedure in Oracle's syntax, an event in another time zone, rows their CHECK refuses,
//! system-versioned tables with their history, text in gbk, big5, sjis, utf16 and every byte of
//! latin1, rows of long values (which a restore binds to a prepared INSERT) beside a short value
//! of every type, a database whose name needs quoting and whose default collation is not the
//! server's;
//! and servers whose globals would change what a session reads or writes (ANSI_QUOTES,
//! sql_select_limit, autocommit, statement time limits, a 16 MB packet, InnoDB's strict mode,
//! read_only, a primary key forced or an engine enforced after the tables were made, explicit
//! TIMESTAMP defaults turned off). opshost's backup and restore bring each back exactly, judged by the server itself
//! (definitions, `CHECKSUM TABLE`, counts, every version of every row, information_schema), not
//! by opshost's own checksum, through opshost's restore and the stock client. What no client
//! could write back, and a read-only server, are refused at the plan, which also asks for room
//! enough for a dump of binary data. On the real MariaDB.

mod support;

use mysql_async::prelude::*;
use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use std::sync::Arc;
use support::*;

const SETUP: &[&str] = &[
    "CREATE SEQUENCE seq START WITH 100 INCREMENT BY 5",
    "SELECT NEXTVAL(seq), NEXTVAL(seq), NEXTVAL(seq)",
    // Counting down, and one that has wrapped around twice.
    "CREATE SEQUENCE down START WITH -10 INCREMENT BY -3 MINVALUE -1000 MAXVALUE -1 CACHE 2",
    "SELECT NEXTVAL(down), NEXTVAL(down), NEXTVAL(down)",
    "CREATE SEQUENCE wraps START WITH 1 MINVALUE 1 MAXVALUE 3 CYCLE NOCACHE",
    "SELECT NEXTVAL(wraps), NEXTVAL(wraps), NEXTVAL(wraps), NEXTVAL(wraps), NEXTVAL(wraps), NEXTVAL(wraps), NEXTVAL(wraps), NEXTVAL(wraps)",
    "CREATE TABLE inv (id INT PRIMARY KEY, a INT, secret VARCHAR(8) INVISIBLE DEFAULT 'x')",
    "INSERT INTO inv (id, a, secret) VALUES (1, 1, 'hidden'), (2, 2, NULL), (3, 3, 'z')",
    "CREATE TABLE gen (id INT PRIMARY KEY AUTO_INCREMENT, a INT, b INT AS (a * 2) VIRTUAL, c VARCHAR(20) AS (CONCAT('n', a)) STORED, KEY (c))",
    "INSERT INTO gen (a) VALUES (1), (2), (NULL)",
    "CREATE TABLE geo (id INT PRIMARY KEY, p POINT, g GEOMETRY, poly POLYGON NOT NULL, SPATIAL KEY (poly))",
    "INSERT INTO geo VALUES (1, POINT(1.5, -2.25), ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)'), ST_GeomFromText('POLYGON((0 0,0 3,3 3,0 0))')), (2, NULL, NULL, ST_GeomFromText('POLYGON((1 1,1 2,2 2,1 1))', 4326))",
    "CREATE TABLE bits (id INT PRIMARY KEY, b1 BIT(1), b64 BIT(64), e ENUM('', 'a', 'b c'), s SET('x', 'y', 'z'))",
    "INSERT INTO bits VALUES (1, b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '', 'x,z'), (2, b'0', 0, 'b c', ''), (3, NULL, NULL, NULL, NULL)",
    // The ENUM's error value (index 0, stored from a bad value under a non-strict sql_mode),
    // beside its member '' (index 1): both read as ''. And a SET's member '', alone (which reads
    // as the empty set does), first, and between others.
    "INSERT INTO bits (id) VALUES (4)",
    "UPDATE IGNORE bits SET e = 0 WHERE id = 4",
    "CREATE TABLE sets (id INT PRIMARY KEY, first SET('', 'x', 'y'), mid SET('x', '', 'y'))",
    "INSERT INTO sets VALUES (1, 1, 2), (2, 3, 3), (3, 7, 7), (4, 0, 0), (5, 6, 5), (6, NULL, 6)",
    "CREATE TABLE `we``ird name;` (`col umn` INT PRIMARY KEY, `select` TEXT, `表` VARCHAR(10))",
    "INSERT INTO `we``ird name;` VALUES (1, 'a\\\\b\\'c\\n\\r\\0\\Z end', '中文'), (2, '', '😀')",
    "CREATE TABLE nokey (a INT, b VARCHAR(10))",
    "INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (NULL, NULL), (2, 'x')",
    "CREATE TABLE myisam_t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(10)) ENGINE=MyISAM",
    "INSERT INTO myisam_t (v) VALUES ('m1'), ('m2')",
    "CREATE TABLE aria_t (id INT PRIMARY KEY, v BLOB) ENGINE=Aria",
    "INSERT INTO aria_t VALUES (1, 0x00FF10), (2, '')",
    "CREATE TABLE parts (id INT PRIMARY KEY, v INT, KEY (v)) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
    "INSERT INTO parts VALUES (1, 1), (15, 2), (100, 3)",
    "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(10) UNIQUE)",
    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, note VARCHAR(10), KEY (note), CONSTRAINT fk FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)",
    "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')",
    "INSERT INTO child VALUES (1, 1, 'c1'), (2, 2, 'c2'), (3, NULL, 'c3')",
    "CREATE TABLE ahead (id BIGINT PRIMARY KEY AUTO_INCREMENT, v INT, KEY (v)) AUTO_INCREMENT = 5000",
    "INSERT INTO ahead (v) VALUES (1), (2)",
    "ALTER TABLE ahead AUTO_INCREMENT = 9000",
    "CREATE TABLE checked (id INT PRIMARY KEY, qty INT CHECK (qty >= 0), at DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), d DOUBLE, f FLOAT, m DECIMAL(65,30), CONSTRAINT positive CHECK (id > 0))",
    "INSERT INTO checked VALUES (1, 0, '2020-01-01 00:00:00.123', -0.0, 3.4028234e38, -12345678901234567890123456789012345.123456789012345678901234567890), (2, 5, '1999-12-31 23:59:59.999', 1e-308, 1.17549435e-38, 0)",
    // A row its CHECK refuses, written while the server did not check (as a backup holds it).
    "SET SESSION check_constraint_checks = 0",
    "INSERT INTO checked (id, qty) VALUES (3, -7)",
    "SET SESSION check_constraint_checks = 1",
    "CREATE TABLE latin (id INT PRIMARY KEY, v VARCHAR(10), every_byte TEXT) DEFAULT CHARSET=latin1",
    "INSERT INTO latin VALUES (1, 'caf\u{e9}', NULL), (2, '\u{a3}5', NULL)",
    // UTF-8 bytes an application wrote through a latin1 connection, and every other byte.
    "INSERT INTO latin (id, every_byte) SELECT 3, CONVERT(CAST(CONCAT(UNHEX('E8BF81E7A7BB'), UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR ''))) AS BINARY) USING latin1) FROM seq_1_to_255",
    "CREATE TABLE empty_t (id INT PRIMARY KEY, v JSON)",
    // Compressed columns and pages, and table options of every sort.
    "CREATE TABLE packed (id INT PRIMARY KEY, doc BLOB COMPRESSED, note VARCHAR(500) COMPRESSED) PAGE_COMPRESSED=1 STATS_PERSISTENT=0 STATS_AUTO_RECALC=0 CHECKSUM=1 MAX_ROWS=100000 COMMENT='packed'",
    "INSERT INTO packed VALUES (1, REPEAT('abc', 5000), REPEAT('x', 400)), (2, NULL, ''), (3, 0x00ff00, 'n')",
    // Big enough for a restore to build its plain keys after the rows: keys of every kind.
    "CREATE TABLE keyed (id INT PRIMARY KEY, a VARCHAR(200), b INT, c TEXT, d DATETIME, KEY by_prefix (a(10)), KEY by_b_desc (b DESC, id), KEY ignored_one (d) IGNORED, KEY commented (b) COMMENT 'a ''key''', KEY by_btree (d, b) USING BTREE, UNIQUE KEY long_unique (c) USING HASH)",
    "INSERT INTO keyed SELECT seq, CONCAT('name-', seq), seq % 97, CONCAT('text ', seq), '2020-01-01' + INTERVAL seq MINUTE FROM seq_1_to_12000",
    "ANALYZE TABLE keyed",
    "CREATE TABLE charsets (id INT PRIMARY KEY, g VARCHAR(20) CHARACTER SET gbk, u16 VARCHAR(20) CHARACTER SET utf16, u3 VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin, b5 TEXT CHARACTER SET big5, sj VARCHAR(20) CHARACTER SET sjis)",
    "INSERT INTO charsets VALUES (1, '迁移服务', '😀 surrogate pair', 'ascii and é', '繁體中文', 'ﾃｽﾄ日本'), (2, '', '', '', NULL, '\\\\表ソ')",
    "CREATE TABLE log (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(20))",
    "CREATE TRIGGER log_b BEFORE INSERT ON parent FOR EACH ROW INSERT INTO log (what) VALUES ('b')",
    "CREATE TRIGGER log_a BEFORE INSERT ON parent FOR EACH ROW PRECEDES log_b INSERT INTO log (what) VALUES ('a')",
    "CREATE TABLE numbered (id BIGINT PRIMARY KEY DEFAULT NEXTVAL(seq), v VARCHAR(10))",
    "INSERT INTO numbered (v) VALUES ('first'), ('second')",
    "CREATE TABLE bins (k BINARY(16) PRIMARY KEY, vb VARBINARY(20), t TIME(6), y YEAR, d DATE)",
    "INSERT INTO bins VALUES (0x00, 0x0000, '-838:59:59.000000', 1901, '0000-00-00'), (0xff00, '', '838:59:59.999999', NULL, '9999-12-31'), (0x0a0d5c27, 0x5c, '-00:00:00.000001', 2155, NULL)",
    "CREATE TABLE pairs (a INT, b VARCHAR(10), c INT, PRIMARY KEY (b, a), FULLTEXT KEY (b), KEY (c))",
    "INSERT INTO pairs VALUES (1, 'x', 1), (2, 'x', NULL), (1, 'y', 3)",
    "CREATE TABLE uniq (a INT NULL, b INT NOT NULL, UNIQUE KEY (a), UNIQUE KEY (b))",
    "INSERT INTO uniq VALUES (NULL, 1), (NULL, 2), (5, 3)",
    "CREATE TABLE UpperCase (Id INT PRIMARY KEY, `Value` TEXT COMMENT 'a ''quoted'' comment') COMMENT 'table; comment'",
    "INSERT INTO UpperCase VALUES (1, REPEAT('long text ', 2000)), (2, '\t\ttabs\tand\nnewlines\\N')",
    // History: rows changed and deleted, with hidden and with named period columns.
    "CREATE TABLE versioned (id INT PRIMARY KEY, a INT, KEY (a)) WITH SYSTEM VERSIONING",
    "INSERT INTO versioned VALUES (1, 1), (2, 2), (3, 3)",
    "UPDATE versioned SET a = 10 WHERE id = 1",
    "DELETE FROM versioned WHERE id = 3",
    "CREATE TABLE periods (id INT PRIMARY KEY, a VARCHAR(10), since TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE, until TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME (since, until)) WITH SYSTEM VERSIONING",
    "INSERT INTO periods (id, a) VALUES (1, 'x'), (2, 'y')",
    "UPDATE periods SET a = 'z'",
    "CREATE FUNCTION tripled(x INT) RETURNS INT DETERMINISTIC RETURN x * 3",
    // Its parameter takes the database's default collation.
    "CREATE FUNCTION shout(s VARCHAR(20)) RETURNS VARCHAR(21) DETERMINISTIC RETURN CONCAT(UPPER(s), '!')",
    "CREATE VIEW checked_v AS SELECT id, qty FROM checked WHERE qty >= 0 WITH CASCADED CHECK OPTION",
    "CREATE ALGORITHM=TEMPTABLE SQL SECURITY INVOKER VIEW `weird view` AS SELECT `col umn` AS c FROM `we``ird name;`",
    "CREATE EVENT keep ON SCHEDULE AT '2035-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE COMMENT 'kept' DO DELETE FROM log",
    // Objects made by a connection of another collation keep it, and compare by it.
    "SET SESSION collation_connection = 'utf8mb4_unicode_ci'",
    "CREATE VIEW by_unicode AS SELECT 'ß' = 'ss' AS same",
    "CREATE PROCEDURE noop() SELECT 1",
    "SET SESSION collation_connection = 'utf8mb4_general_ci'",
    // An event made in another time zone keeps its zone and its times.
    "SET SESSION time_zone = '+08:00'",
    "CREATE EVENT zoned ON SCHEDULE EVERY 90 MINUTE STARTS '2031-06-01 12:00:00' ENDS '2032-01-01 00:00:00' ON COMPLETION PRESERVE DISABLE DO DELETE FROM log WHERE id < 0",
    "SET SESSION time_zone = DEFAULT",
    // A procedure in Oracle's syntax, which only its own sql_mode parses.
    "SET SESSION sql_mode = 'ORACLE'",
    "CREATE PROCEDURE ora_p (n IN NUMBER) AS x VARCHAR2(10) := 'a' || 'b'; BEGIN IF n > 0 THEN x := x || n; END IF; END",
    "SET SESSION sql_mode = DEFAULT",
    // Rows of long values, which a restore sends bound to a prepared INSERT (every value of the
    // statement bound as a string, hex as binary): beside them a short value of every type.
    "CREATE TABLE long_values (id INT PRIMARY KEY, body LONGTEXT, latin TEXT CHARACTER SET latin1, g TEXT CHARACTER SET gbk, u16 VARCHAR(400) CHARACTER SET utf16, bin BLOB, shape GEOMETRY, doc JSON, vb VARBINARY(300), ch CHAR(20), n BIGINT UNSIGNED, i INT, d DOUBLE, f FLOAT, m DECIMAL(65,30), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, t TIME(6), y YEAR, b BIT(64), e ENUM('', 'a', 'b c'), s SET('x', 'y'), day DATE)",
    "INSERT INTO long_values VALUES \
     (1, REPEAT('it\\'s \\\\ a\\n b\\r \\0 \\Z\\t 中文 😀 ', 40), NULL, REPEAT('迁移服务', 80), REPEAT('😀 pair ', 40), NULL, ST_GeomFromText('POLYGON((0 0,0 1,0 2,0 3,0 4,0 5,0 6,0 7,0 8,0 9,1 9,2 9,3 9,4 9,5 9,6 9,7 9,8 9,9 9,9 0,0 0))', 4326), JSON_OBJECT('k', REPEAT('x\"\\\\', 100), 'n', 1), REPEAT(0x00ff5c27, 75), 'padded  ', 18446744073709551615, -2147483648, -0.0, 3.4028234e38, -12345678901234567890123456789012345.123456789012345678901234567890, '9999-12-31 23:59:59.999999', '2037-06-01 12:00:00.5', '-838:59:59.000000', 0, b'1111111111111111111111111111111111111111111111111111111111111111', 'b c', 'x,y', '0000-00-00'), \
     (2, REPEAT('second ', 100), NULL, '', '', NULL, POINT(1.5, -2.25), '[]', '', '', 0, 0, 1e-308, 1.17549435e-38, 0, '1000-01-01 00:00:00', NULL, '-00:00:00.000001', 2155, 0, '', '', '1000-01-01'), \
     (3, REPEAT('third ', 100), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    // Every byte of latin1 and of a BLOB, twice.
    "UPDATE long_values SET latin = (SELECT CONVERT(CAST(REPEAT(UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR '')), 2) AS BINARY) USING latin1) FROM seq_1_to_255), \
     bin = (SELECT REPEAT(UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR '')), 2) FROM seq_0_to_255) WHERE id = 1",
    // Names in the reverse order of what each needs.
    "CREATE VIEW z_base AS SELECT id, tripled(a) AS t FROM inv",
    "CREATE VIEW a_top AS SELECT t + 1 AS u FROM z_base",
];

async fn setup(db: &str) {
    // A default collation other than the one a rollback's CREATE DATABASE gives.
    sql(&format!("DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"));
    run_each(db, SETUP).await;
}

/// What the server says of every object of `db`: definitions, every table's `CHECKSUM TABLE` and
/// row count (invisible columns included), the sequence's next value, the triggers' order, and
/// what the views return.
async fn described(db: &str) -> Vec<String> {
    let mut c = mysql_async::Conn::new(mysql_opts(Some(db))).await.unwrap();
    // Read the same whatever the server's global mode (one test sets ANSI_QUOTES).
    c.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    let mut out = Vec::new();
    let tables: Vec<(String, String)> =
        c.exec("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (db,)).await.unwrap();
    for (name, kind) in tables {
        let quoted = format!("`{}`", name.replace('`', "``"));
        let create: Option<mysql_async::Row> = c.query_first(format!("SHOW CREATE TABLE {quoted}")).await.unwrap();
        out.push(format!("{kind} {name}: {}", create.unwrap().get::<String, _>(1).unwrap()));
        if kind == "BASE TABLE" {
            let sum: Option<(String, Option<u64>)> = c.query_first(format!("CHECKSUM TABLE {quoted} EXTENDED")).await.unwrap();
            let count: Option<u64> = c.query_first(format!("SELECT COUNT(*) FROM {quoted}")).await.unwrap();
            out.push(format!("{name}: checksum {:?}, {} rows", sum.unwrap().1, count.unwrap()));
        } else if kind == "SEQUENCE" {
            // Where the sequence stands: the next value it would hand out after a restart.
            let row: Option<(i64, i64)> = c.query_first(format!("SELECT next_not_cached_value, cycle_count FROM {quoted}")).await.unwrap();
            out.push(format!("{name}: at {:?}", row.unwrap()));
        }
    }
    let defaults: Option<(String, String)> =
        c.exec_first("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,)).await.unwrap();
    out.push(format!("database defaults {defaults:?}"));
    let parameters: Vec<(String, Option<String>, Option<String>)> = c
        .exec("SELECT CONCAT(SPECIFIC_NAME, '.', ORDINAL_POSITION), CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = ? ORDER BY 1", (db,))
        .await
        .unwrap();
    out.push(format!("routine parameters {parameters:?}"));
    let collations: Vec<(String, String)> = c
        .exec(
            "SELECT CONCAT('view ', TABLE_NAME), COLLATION_CONNECTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? \
             UNION ALL SELECT CONCAT('routine ', ROUTINE_NAME), COLLATION_CONNECTION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? \
             UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME), COLLATION_CONNECTION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1",
            (db, db, db),
        )
        .await
        .unwrap();
    out.push(format!("objects' collations {collations:?}"));
    let routines: Vec<(String, String, String)> =
        c.exec("SELECT ROUTINE_NAME, SQL_MODE, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1", (db,)).await.unwrap();
    out.push(format!("routines {routines:?}"));
    out.push(events(&mut c, db).await);
    let same: Vec<u8> = c.query("SELECT same FROM by_unicode").await.unwrap();
    out.push(format!("by_unicode {same:?}"));
    let triggers: Vec<(String, u64)> =
        c.exec("SELECT TRIGGER_NAME, ACTION_ORDER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME", (db,)).await.unwrap();
    out.push(format!("triggers {triggers:?}"));
    let top: Vec<u64> = c.query("SELECT u FROM a_top ORDER BY u").await.unwrap();
    out.push(format!("a_top {top:?}"));
    let secrets: Vec<Option<String>> = c.query("SELECT secret FROM inv ORDER BY id").await.unwrap();
    out.push(format!("inv.secret {secrets:?}"));
    // Every version of every row, with its period (CHECKSUM TABLE sees the current rows only).
    let history: Vec<(i32, Option<i32>, String, String)> =
        c.query("SELECT id, a, CAST(ROW_START AS CHAR), CAST(ROW_END AS CHAR) FROM versioned FOR SYSTEM_TIME ALL ORDER BY id, ROW_START").await.unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    out.push(format!("versioned history {history:?}"));
    let history: Vec<(i32, String, String, String)> =
        c.query("SELECT id, a, CAST(since AS CHAR), CAST(until AS CHAR) FROM periods FOR SYSTEM_TIME ALL ORDER BY id, since").await.unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    out.push(format!("periods history {history:?}"));
    c.disconnect().await.unwrap();
    out
}

#[tokio::test]
async fn every_shape_comes_back_as_the_server_describes_it() {
    let _globals = GLOBALS.lock().await;
    // A name that needs quoting, as a site may choose.
    let db = format!("{}-shapes.x", unique_db("site"));
    setup(&db).await;
    let before = described(&db).await;
    // A server whose global sql_mode quotes names with double quotes (and pads CHAR values):
    // what the server shows a reading session must still replay in the dump's own mode.
    let mode = value("mysql", "SELECT @@GLOBAL.sql_mode");
    let _back = GlobalBack("sql_mode", format!("'{mode}'"));
    sql(&format!("SET GLOBAL sql_mode = '{mode},ANSI_QUOTES,PAD_CHAR_TO_FULL_LENGTH'"));
    let (dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "shapes").await.unwrap();

    sql(&format!("DROP DATABASE `{db}`; CREATE DATABASE `{db}` DEFAULT CHARACTER SET utf8mb4;"));
    let alters =
        || value("mysql", "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_ALTER_TABLE'").parse::<u64>().unwrap();
    let alters_before = alters();
    // Which form each table's rows took, from the server's general log.
    let log = GeneralLog::on();
    let restored = s.restore_database("metadb", &db, "shapes").await;
    let (bound, loaded) =
        (log.count("Prepare", "INSERT INTO `long_values`"), log.count("Query", "LOAD DATA LOCAL INFILE _opshost-restore_ INTO TABLE `keyed`"));
    drop(log);
    assert_eq!(restored.unwrap().checksum, backup.checksum);
    assert!(bound >= 1, "the rows of long values went as a prepared INSERT");
    assert!(loaded >= 1, "the narrow rows of `keyed` went as LOAD DATA");
    assert!(alters() > alters_before, "the keys of `keyed` were built after its rows");
    let after = described(&db).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "after opshost's restore");
    }
    assert_eq!(before.len(), after.len(), "{before:#?}\n{after:#?}");
    // The sequence goes on from where it stood, not from its start.
    assert_ne!(value(&db, "SELECT NEXTVAL(seq)"), "100");

    // The stock client, from the same file.
    sql(&format!("DROP DATABASE `{db}`; CREATE DATABASE `{db}` DEFAULT CHARACTER SET utf8mb4;"));
    stock_restore(&db, &dir.path().join("shapes.sql")).unwrap();
    assert_eq!(described(&db).await, before, "after the stock client's restore");
    sql(&format!("DROP DATABASE `{db}`"));
}

/// A table versioned by transaction id: its history cannot be written back by any client, so the
/// plan refuses it, naming the table and what to do, and a dump refuses it without a file. So
/// is a name with a line break.
#[tokio::test]
async fn a_history_no_client_can_write_back_is_refused_before_anything_changes() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("trx_history");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.kept (id INT PRIMARY KEY, s BIGINT UNSIGNED GENERATED ALWAYS AS ROW START, e BIGINT UNSIGNED GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME (s, e)) WITH SYSTEM VERSIONING ENGINE=InnoDB; INSERT INTO {db}.kept (id) VALUES (1);"
    ));
    let (dir, s) = engine();
    refused_before_anything_changes(&s, dir.path(), &db, &[&format!("table {db}.kept keeps its history by transaction id"), "back it up by hand"]).await;
    // Versioned by TIMESTAMP instead, it is described with its history.
    sql(&format!("DROP TABLE {db}.kept; CREATE TABLE {db}.kept (id INT PRIMARY KEY) WITH SYSTEM VERSIONING;"));
    let plan = s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap();
    assert!(plan.iter().any(|l| l.starts_with(&format!("backup of {db}: 1 tables (1 system-versioned, with their history)"))), "{plan:?}");
    // A name with a line break cannot be carried by a dump of one statement a line.
    sql(&format!("CREATE TABLE {db}.`two\nlines` (id INT)"));
    let plan = s.describe_backup("metadb", std::slice::from_ref(&db)).await;
    assert!(matches!(&plan, Err(e) if e.message().contains("holds a line break") && e.message().contains("rename it")), "{plan:?}");
    sql(&format!("DROP TABLE {db}.`two\nlines`"));
    sql(&format!("DROP DATABASE {db}"));
}

/// ENUM and SET members that are one value under the column's collation (`'a'` and `'A'`, `'é'`
/// and `'e'`, `'ss'` and `'ß'`), as a table made under a non-strict sql_mode has them (the server
/// only warns). Written back as text, a value became the first member equal to it, and the
/// rollback's verification failed in the outage. Such a value is now written as its position,
/// which the server takes as that member: through opshost's restore and the stock client, in
/// latin1 columns (read as their stored bytes) too, beside an ENUM's `''` member and its error
/// value, and an ENUM whose two members are the same.
/// A column whose member reads as a number, which a position would be taken for, is refused at the
/// plan, naming the column and what to do; a member with a digit among letters (`'v2'`) is not one.
#[tokio::test]
async fn enum_and_set_members_equal_under_their_collation_come_back_as_they_were() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("folded");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; SET SESSION sql_mode = ''; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, e ENUM('a', 'A', 'é', 'e', ''), s SET('x', 'X', 'ß', 'ss', ''), l ENUM('a', 'A', 'b') CHARACTER SET latin1, twice ENUM('y', 'y'), le SET('é', 'É', 'ü') CHARACTER SET latin1, d ENUM('v1', 'V1', 'v2')) DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci; \
         INSERT INTO {db}.t VALUES (1, 2, 2, 2, 2, 2, 2), (2, 3, 19, 1, 1, 5, 3), (3, 4, 12, 3, 2, 4, 1), (4, 0, 0, 0, 0, 0, 0), (5, 5, 16, NULL, NULL, 1, NULL), (6, 1, 8, 2, 1, 6, 2), (7, NULL, NULL, NULL, NULL, NULL, NULL);"
    ));
    let stored = "SELECT GROUP_CONCAT(CONCAT_WS(':', id, e + 0, s + 0, l + 0, twice + 0, le + 0, d + 0) ORDER BY id SEPARATOR ' ') FROM t";
    let before = value(&db, stored);
    assert_eq!(before, "1:2:2:2:2:2:2 2:3:19:1:1:5:3 3:4:12:3:2:4:1 4:0:0:0:0:0:0 5:5:16:1 6:1:8:2:1:6:2 7");
    let (dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "folded").await.unwrap();
    restored_both_ways(&s, dir.path(), &db, &backup, |restore| {
        assert_eq!(value(&db, stored), before, "every value the member it was, after {restore}");
    })
    .await;

    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db}; SET SESSION sql_mode = ''; CREATE TABLE {db}.n (id INT PRIMARY KEY, e ENUM('a', '1', 'A'));"));
    let (dir, s) = engine();
    refused_before_anything_changes(&s, dir.path(), &db, &[&format!("table {db}.n: column e has members that are one value"), "make the members distinct"])
        .await;
    sql(&format!("DROP DATABASE {db}"));
}

/// A binary column's default with a byte of 0x80 or more: MariaDB's `SHOW CREATE TABLE` gives
/// its raw bytes (`DEFAULT '\xff\0'`), so the definition is not text. The dump carries it as those
/// bytes, as `mariadb-dump` does (before, it panicked in the driver reading it, and later refused
/// the table), and both opshost's restore and the stock client bring every default back exact:
/// the checksum (which hashes the definition's bytes) and a row inserted after, which takes them.
#[tokio::test]
async fn a_binary_default_the_server_shows_raw_comes_back_exact() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("binary_default");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT AUTO_INCREMENT PRIMARY KEY, b VARBINARY(8) DEFAULT 0x0AFF0027E95C, f BINARY(2) DEFAULT 0xC3A9, a VARBINARY(4) DEFAULT 0x4100, l VARCHAR(8) CHARACTER SET latin1 DEFAULT 'café', KEY (a)); \
         INSERT INTO {db}.t (id) VALUES (1);"
    ));
    let defaults = "SELECT CONCAT_WS(' ', HEX(b), HEX(f), HEX(a), HEX(l)) FROM t WHERE id = 2";
    let (dir, s) = engine();
    let plan = s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap();
    assert!(plan.iter().any(|l| l.starts_with(&format!("backup of {db}: 1 tables"))), "{plan:?}");
    let backup = s.dump_database("metadb", &db, "binary_default").await.unwrap();
    let file = dir.path().join("binary_default.sql");
    let dumped = std::fs::read(&file).unwrap();
    assert!(
        dumped.split(|&b| b == b'\n').any(|l| l.starts_with(b"CREATE TABLE `t`") && l.contains(&0xFF) && std::str::from_utf8(l).is_err()),
        "the definition's raw bytes are in the file"
    );
    restored_both_ways(&s, dir.path(), &db, &backup, |restore| {
        sql(&format!("INSERT INTO {db}.t (id) VALUES (2)"));
        assert_eq!(value(&db, defaults), "0AFF0027E95C C3A9 4100 636166E9", "every default as it was, after {restore}");
    })
    .await;
    sql(&format!("DROP DATABASE {db}"));
}

/// MariaDB shows a view's string literal with a character set introducer as its raw bytes
/// (`_latin1'\xE9'`), not UTF-8. Read as text (before), the backup held another literal (EF BF BD)
/// and its checksum, read the same way on both sides, matched. The dump carries the definition as
/// its bytes, and opshost's restore and the stock client both bring the view back exact.
#[tokio::test]
async fn a_view_literal_the_server_shows_raw_comes_back_exact() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("raw_view");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY); INSERT INTO {db}.t VALUES (1); \
         CREATE VIEW {db}.v AS SELECT id, _latin1 X'E9' AS e, _binary X'FF00' AS b FROM {db}.t;"
    ));
    let literals = "SELECT CONCAT_WS(' ', id, HEX(CONVERT(e USING latin1)), HEX(b)) FROM v";
    assert_eq!(value(&db, literals), "1 E9 FF00");
    let (dir, s) = engine();
    s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap();
    let backup = s.dump_database("metadb", &db, "raw_view").await.unwrap();
    restored_both_ways(&s, dir.path(), &db, &backup, |restore| {
        assert_eq!(value(&db, literals), "1 E9 FF00", "the view's literals as they were, after {restore}");
    })
    .await;
    // The checksum reads the definition's bytes: the literal changed is another checksum.
    sql(&format!("CREATE OR REPLACE VIEW {db}.v AS SELECT id, _latin1 X'E8' AS e, _binary X'FF00' AS b FROM {db}.t;"));
    assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), backup.checksum);
    sql(&format!("DROP DATABASE {db}"));
}

/// An event the server's scheduler runs writes whenever it fires, and a backup verified against
/// the live database inside the downtime then no longer matches: the plan warns, naming the event,
/// its schedule and the fix. A disabled event, or a scheduler that is off, gets no warning.
#[tokio::test]
async fn the_plan_warns_of_an_event_the_scheduler_runs() {
    let _globals = GLOBALS.lock().await;
    let _back = GlobalBack("event_scheduler", value("mysql", "SELECT @@GLOBAL.event_scheduler"));
    let db = unique_db("scheduled");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.log (id INT PRIMARY KEY); \
         CREATE EVENT {db}.purge ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DO DELETE FROM {db}.log; \
         CREATE EVENT {db}.idle ON SCHEDULE EVERY 1 HOUR STARTS '2035-01-01 00:00:00' DISABLE DO DELETE FROM {db}.log;"
    ));
    let (_dir, s) = engine();
    let warnings = |lines: Vec<String>| lines.into_iter().filter(|l| l.starts_with("warning:")).collect::<Vec<_>>();
    sql("SET GLOBAL event_scheduler = OFF");
    let plan = s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap();
    assert!(plan.iter().any(|l| l.contains("2 events")), "{plan:?}");
    assert_eq!(warnings(plan), Vec::<String>::new());
    sql("SET GLOBAL event_scheduler = ON");
    let w = warnings(s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap());
    assert_eq!(w.len(), 1, "only the enabled event: {w:?}");
    for says in [format!("event `{db}`.`purge` is enabled"), "every 1 day".to_string(), format!("ALTER EVENT `{db}`.`purge` DISABLE")] {
        assert!(w[0].contains(&says), "{says}: {w:?}");
    }
    sql(&format!("DROP DATABASE {db}"));
}

/// What the server says of `db`'s events: schedule, status, completion, body and mode.
async fn events(c: &mut mysql_async::Conn, db: &str) -> String {
    let events: Vec<mysql_async::Row> = c
        .exec(
            "SELECT EVENT_NAME, TIME_ZONE, CAST(STARTS AS CHAR), CAST(ENDS AS CHAR), CAST(EXECUTE_AT AS CHAR), INTERVAL_VALUE, INTERVAL_FIELD, STATUS, ON_COMPLETION, EVENT_DEFINITION, SQL_MODE, EVENT_COMMENT, DEFINER \
             FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY 1",
            (db,),
        )
        .await
        .unwrap();
    let events: Vec<Vec<Option<String>>> = events.into_iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i).flatten()).collect()).collect();
    format!("events {events:?}")
}

/// Events whose time has passed, kept by a server whose scheduler is off (MariaDB's default):
/// one that ended before the backup and one that ends between the backup and the restore, as a
/// rollback runs later. A server drops such an event as it creates it (`ON COMPLETION NOT
/// PRESERVE`) or creates it disabled; each comes back as it stood, through opshost's restore and
/// the stock client, judged by the server (information_schema) and by the checksum.
#[tokio::test]
async fn events_whose_time_has_passed_come_back_as_they_stood() {
    let _globals = GLOBALS.lock().await;
    let _back = GlobalBack("event_scheduler", value("mysql", "SELECT @@GLOBAL.event_scheduler"));
    sql("SET GLOBAL event_scheduler = OFF");
    let db = unique_db("ended_events");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE log (id INT PRIMARY KEY); \
         CREATE EVENT gone_once ON SCHEDULE AT NOW() + INTERVAL 1 SECOND DO DELETE FROM log; \
         CREATE EVENT kept_once ON SCHEDULE AT NOW() + INTERVAL 1 SECOND ON COMPLETION PRESERVE COMMENT 'kept' DO DELETE FROM log; \
         CREATE EVENT ended ON SCHEDULE EVERY 1 HOUR STARTS NOW() - INTERVAL 1 DAY ENDS NOW() + INTERVAL 1 SECOND DISABLE ON SLAVE DO DELETE FROM log;"
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    sql(&format!(
        "USE {db}; CREATE EVENT soon ON SCHEDULE AT NOW() + INTERVAL 2 SECOND DO DELETE FROM log; \
         CREATE EVENT forever ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DO DELETE FROM log;"
    ));
    let mut c = mysql_async::Conn::new(mysql_opts(Some(&db))).await.unwrap();
    let before = events(&mut c, &db).await;
    let (dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "ended").await.unwrap();
    // `soon`'s time passes too.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for restore in ["opshost", "the stock client"] {
        sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
        if restore == "opshost" {
            assert_eq!(s.restore_database("metadb", &db, &backup.name).await.unwrap().checksum, backup.checksum, "{restore}");
        } else {
            stock_restore(&db, &dir.path().join("ended.sql")).unwrap();
            assert_eq!(s.database_checksum("metadb", &db).await.unwrap(), backup.checksum, "{restore}");
        }
        assert_eq!(events(&mut c, &db).await, before, "after {restore}");
    }
    let events = value(&db, "SELECT GROUP_CONCAT(CONCAT_WS(' ', EVENT_NAME, STATUS, ON_COMPLETION) ORDER BY EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()");
    assert_eq!(
        events,
        "ended SLAVESIDE_DISABLED NOT PRESERVE,forever ENABLED NOT PRESERVE,gone_once ENABLED NOT PRESERVE,kept_once ENABLED PRESERVE,soon ENABLED NOT PRESERVE"
    );
    sql(&format!("DROP DATABASE {db}"));
}

/// With the server's scheduler on, an enabled event runs as soon as a restore creates it: an
/// overdue one at once (and then disables itself), a recurring one within its interval, each
/// writing to the restored tables. The verification that followed then failed inside the
/// rollback. opshost's restore creates them disabled, verifies, and only then enables each as it
/// stood (definer, `sql_mode`, time zone, client character set and collation); then the
/// scheduler runs them.
#[tokio::test]
async fn events_the_scheduler_runs_wait_for_the_restores_verification() {
    let _globals = GLOBALS.lock().await;
    let _back = GlobalBack("event_scheduler", value("mysql", "SELECT @@GLOBAL.event_scheduler"));
    sql("SET GLOBAL event_scheduler = OFF");
    let db = unique_db("scheduler_on");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE ran (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(16)); \
         CREATE EVENT overdue ON SCHEDULE AT NOW() + INTERVAL 1 SECOND ON COMPLETION PRESERVE DO INSERT INTO ran (what) VALUES ('overdue'); \
         SET SESSION sql_mode = 'ANSI_QUOTES'; SET NAMES utf8mb3 COLLATE utf8mb3_unicode_ci; SET SESSION time_zone = '+03:00'; \
         CREATE DEFINER = CURRENT_USER EVENT \"tick`s\" ON SCHEDULE EVERY 1 SECOND STARTS '2020-01-01 00:00:00' DO INSERT INTO ran (what) VALUES ('tick'); \
         SET SESSION sql_mode = DEFAULT; SET NAMES utf8mb4; SET SESSION time_zone = DEFAULT; \
         CREATE EVENT later ON SCHEDULE AT NOW() + INTERVAL 1 DAY DO INSERT INTO ran (what) VALUES ('later'); \
         CREATE EVENT idle ON SCHEDULE EVERY 1 HOUR DISABLE DO INSERT INTO ran (what) VALUES ('idle');"
    ));
    // `overdue`'s time passes; with the scheduler off the server keeps it, enabled.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let sessions = format!("SELECT GROUP_CONCAT(CONCAT_WS(' ', EVENT_NAME, CHARACTER_SET_CLIENT, COLLATION_CONNECTION) ORDER BY EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}'");
    let sessions_before = value(&db, &sessions);
    assert!(sessions_before.contains("tick`s utf8mb3 utf8mb3_unicode_ci"), "{sessions_before}");
    let mut c = mysql_async::Conn::new(mysql_opts(Some(&db))).await.unwrap();
    let before = events(&mut c, &db).await;
    assert!(before.contains(r#"Some("overdue"), "#) && before.matches(r#"Some("ENABLED")"#).count() == 3, "{before}");
    let (_dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "scheduler_on").await.unwrap();

    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
    sql("SET GLOBAL event_scheduler = ON");
    let restored = s.restore_database("metadb", &db, &backup.name).await.unwrap();
    assert_eq!(restored.checksum, backup.checksum);
    // Enabled as they stood, then run by the scheduler: the overdue one once (after which the
    // server disables it), the recurring one every second.
    let ran = |what: &str| value(&db, &format!("SELECT COUNT(*) FROM ran WHERE what = '{what}'"));
    let waited = std::time::Instant::now();
    while (ran("overdue") == "0" || ran("tick") == "0") && waited.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((ran("overdue").as_str(), ran("tick") != "0"), ("1", true), "the scheduler ran the restored events");
    assert_eq!(ran("later"), "0");
    assert_eq!(ran("idle"), "0");
    sql("SET GLOBAL event_scheduler = OFF");
    let others = |events: &str| events.split("], [").filter(|e| !e.starts_with(r#"Some("overdue")"#)).collect::<Vec<_>>().join("], [");
    assert_eq!(others(&events(&mut c, &db).await), others(&before));
    assert_eq!(value(&db, &format!("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}' AND EVENT_NAME = 'overdue'")), "DISABLED");
    assert_eq!(value(&db, &sessions), sessions_before);
    sql(&format!("DROP DATABASE {db}"));
}

/// Settings turned on after some tables were made, under which the server would not create those
/// tables again as they are: `innodb_force_primary_key` refuses an InnoDB table without a primary
/// key (1173), and `enforce_storage_engine` makes a table or sequence of another engine in its own.
/// A rollback's restore would meet that with the databases dropped, in the outage. The plan
/// refuses such a MetaDB, naming the table, the setting and the fix, and passes what the settings
/// leave alone (a unique key on NOT NULL columns is InnoDB's primary key); with the setting off
/// again, as the refusal says, the restore is whole. On a server of the test's own: the settings
/// would refuse the other tests' tables. `A_keyless`, keyed, is another table than `a_keyless`
/// (names are told apart by case): its key is not `a_keyless`'s.
#[tokio::test]
async fn tables_the_server_as_set_now_would_not_create_again_are_refused_at_the_plan() {
    let server = OwnServer::start(&[]);
    server.root(
        "CREATE USER 'op'@'%' IDENTIFIED BY 'op-pw'; GRANT ALL ON *.* TO 'op'@'%'; CREATE DATABASE shaped; USE shaped; \
         CREATE TABLE a_keyless (a INT, b VARCHAR(8)); INSERT INTO a_keyless VALUES (1, 'x'), (1, 'x'); \
         CREATE TABLE A_keyless (id INT PRIMARY KEY); \
         CREATE TABLE b_promoted (a INT NOT NULL, UNIQUE KEY (a)); INSERT INTO b_promoted VALUES (1), (2); \
         CREATE TABLE c_keyed (id INT PRIMARY KEY, v INT, KEY (v)); INSERT INTO c_keyed VALUES (1, 1); \
         CREATE TABLE d_myisam (id INT PRIMARY KEY) ENGINE=MyISAM; INSERT INTO d_myisam VALUES (7); \
         CREATE SEQUENCE e_seq ENGINE=Aria;",
    );
    let db = "shaped".to_string();
    let engines = || {
        String::from_utf8(
            server
                .client(&[
                    "-N",
                    "-e",
                    "SELECT GROUP_CONCAT(TABLE_NAME, ' ', ENGINE ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shaped'",
                ])
                .stdout,
        )
        .unwrap()
    };
    let engines_before = engines();
    let backup = server.opshost("op", "op-pw").dump_database("metadb", &db, "before").await.unwrap();
    for (setting, off, says, the_restore_meets) in [
        (
            "innodb_force_primary_key = ON",
            "innodb_force_primary_key = OFF",
            &[
                "table shaped.a_keyless has no primary key",
                "innodb_force_primary_key ON",
                "error 1173",
                "SET GLOBAL innodb_force_primary_key = OFF for the upgrade and its rollback window",
            ][..],
            "requires a primary key",
        ),
        (
            "enforce_storage_engine = 'InnoDB'",
            "enforce_storage_engine = NULL",
            &[
                "table shaped.d_myisam is MyISAM",
                "create it as InnoDB",
                "SET GLOBAL enforce_storage_engine = NULL for the upgrade",
                "(and 1 more tables of shaped alike)",
            ][..],
            "but backup before recorded",
        ),
    ] {
        server.root(&format!("SET GLOBAL {setting}"));
        // Connections made from now on, as a rollback's are, take the setting.
        let s = server.opshost("op", "op-pw");
        let plan = s.describe_backup("metadb", std::slice::from_ref(&db)).await;
        assert!(matches!(&plan, Err(e) if says.iter().all(|w| e.message().contains(w))), "{setting}: {plan:?}");
        // What the plan foresaw: the restore fails on it.
        server.root("DROP DATABASE shaped; CREATE DATABASE shaped");
        let restored = s.restore_database("metadb", &db, "before").await;
        assert!(matches!(&restored, Err(e) if e.message().contains(the_restore_meets)), "{setting}: {restored:?}");
        // The fix the refusal names: the restore is whole, and the plan passes.
        server.root(&format!("SET GLOBAL {off}"));
        let s = server.opshost("op", "op-pw");
        server.root("DROP DATABASE shaped; CREATE DATABASE shaped");
        assert_eq!(s.restore_database("metadb", &db, "before").await.unwrap().checksum, backup.checksum, "{off}");
        assert_eq!(engines(), engines_before);
        s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap();
    }
    assert!(engines_before.contains("d_myisam MyISAM") && engines_before.contains("e_seq Aria"), "{engines_before}");
}

/// A `timestamp NOT NULL` column made while explicit TIMESTAMP defaults were on (MariaDB's
/// default from 10.10, or a client's session) shows no default. On a server where they are now
/// off, replaying that definition would give it `DEFAULT current_timestamp() ON UPDATE
/// current_timestamp()`, failing a rollback's verification in the outage: the restore's session
/// turns them on. Columns made with them off (their defaults shown in full) come back the same.
/// On a server of the test's own: the setting would change the other tests' tables.
#[tokio::test]
async fn timestamp_columns_come_back_whatever_the_servers_explicit_defaults() {
    let server = OwnServer::start(&[]);
    server.root(
        "CREATE USER 'op'@'%' IDENTIFIED BY 'op-pw'; GRANT ALL ON *.* TO 'op'@'%'; CREATE DATABASE stamps; USE stamps; \
         SET SESSION explicit_defaults_for_timestamp = ON; \
         CREATE TABLE made_on (id INT PRIMARY KEY, ts TIMESTAMP NOT NULL, maybe TIMESTAMP); \
         INSERT INTO made_on VALUES (1, '2024-05-06 07:08:09', NULL), (2, '2030-01-01 00:00:00', '2020-02-02 02:02:02'); \
         SET SESSION explicit_defaults_for_timestamp = OFF; \
         CREATE TABLE made_off (id INT PRIMARY KEY, ts TIMESTAMP NOT NULL, later TIMESTAMP); \
         INSERT INTO made_off VALUES (1, '2024-05-06 07:08:09', '2021-01-01 00:00:00');",
    );
    let definitions = || String::from_utf8(server.client(&["-N", "-e", "SHOW CREATE TABLE stamps.made_on; SHOW CREATE TABLE stamps.made_off"]).stdout).unwrap();
    let before = definitions();
    assert!(before.contains("`ts` timestamp NOT NULL,") && before.contains("ON UPDATE current_timestamp()"), "{before}");
    server.root("SET GLOBAL explicit_defaults_for_timestamp = OFF");
    let s = server.opshost("op", "op-pw");
    let backup = s.dump_database("metadb", "stamps", "stamps").await.unwrap();
    server.root("DROP DATABASE stamps; CREATE DATABASE stamps");
    assert_eq!(s.restore_database("metadb", "stamps", "stamps").await.unwrap().checksum, backup.checksum);
    assert_eq!(definitions(), before);
}

/// A server set with `sql_quote_show_create = 0` shows definitions with bare names, which the
/// dump's readers of a definition know by their backquotes: a view of a view could come before
/// it (the restore of a rollback then fails on it in the outage), and a table default taking
/// `NEXTVAL` of a dropped sequence passed the plan. opshost's sessions quote names whatever the
/// setting. A trigger the server keeps with its definer as the creating session quoted it
/// (bare or backquoted), so each is created again under its own quoting: through opshost's
/// restore and the stock client, the definitions come back as they were. On a server of the
/// test's own: the setting would change what the other tests' sessions read.
#[tokio::test]
async fn definitions_come_back_whatever_the_servers_sql_quote_show_create() {
    let server = OwnServer::start(&[]);
    server.root(
        "CREATE USER 'op'@'%' IDENTIFIED BY 'op-pw'; GRANT ALL ON *.* TO 'op'@'%' WITH GRANT OPTION; CREATE DATABASE quoting; USE quoting; \
         CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 10), (2, 20); \
         CREATE VIEW b_middle AS SELECT v AS one FROM t; CREATE VIEW a_top AS SELECT one FROM b_middle; \
         SET SESSION sql_quote_show_create = 0; \
         CREATE TRIGGER bare BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.v + 1; \
         SET SESSION sql_quote_show_create = 1; \
         CREATE TRIGGER quoted AFTER INSERT ON t FOR EACH ROW SET @x = 1; \
         CREATE DATABASE numbered; CREATE SEQUENCE numbered.gone; \
         CREATE TABLE numbered.n (id INT PRIMARY KEY, k BIGINT DEFAULT NEXTVAL(numbered.gone)); DROP SEQUENCE numbered.gone;",
    );
    server.root("SET GLOBAL sql_quote_show_create = 0");
    let definitions = |db: &str| {
        let o = server.client(&["-N", "-D", db, "-e", "SHOW CREATE TRIGGER bare; SHOW CREATE TRIGGER quoted; SELECT * FROM a_top ORDER BY one"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Each trigger's statement and its settings; not its creation time.
        String::from_utf8(o.stdout).unwrap().lines().map(|l| l.split('\t').take(6).collect::<Vec<_>>().join("\t")).collect::<Vec<_>>().join("\n")
    };
    let before = definitions("quoting");
    assert!(before.contains("CREATE DEFINER=root@localhost TRIGGER bare") && before.contains("CREATE DEFINER=`root`@`localhost` TRIGGER quoted"), "{before}");
    let s = server.opshost("op", "op-pw");
    // The plan sees the default's sequence is gone.
    match s.describe_backup("metadb", &["numbered".to_string()]).await {
        Err(opshost::bindings::Error::Failed(m)) => {
            assert!(m.contains("table numbered.n") && m.contains("sequence numbered.gone, which no longer exists"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    s.describe_backup("metadb", &["quoting".to_string()]).await.unwrap();
    let backup = s.dump_database("metadb", "quoting", "quoting").await.unwrap();
    let dump = std::fs::read_to_string(server.dir.path().join("backups/quoting.sql")).unwrap();
    assert!(dump.find("VIEW `b_middle`") < dump.find("VIEW `a_top`"), "the view a_top selects from comes first:\n{dump}");
    server.root("DROP DATABASE quoting; CREATE DATABASE quoting");
    assert_eq!(s.restore_database("metadb", "quoting", "quoting").await.unwrap().checksum, backup.checksum);
    assert_eq!(definitions("quoting"), before);
    // The stock client replays the same dump to the same definitions.
    server.root("CREATE DATABASE copied");
    let o = server.client(&["-D", "copied", "-e", &format!("source {}", server.dir.path().join("backups/quoting.sql").display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(definitions("copied"), before);
}

/// A view that refers to a table, a column or a function that is gone no longer works, and no
/// server would create it again: the plan and a dump refuse it, naming it and the fix, where the
/// restore of a rollback would have failed on it in the outage. A checksum still reads it, and a
/// view whose definer is gone (which a restore can create) is not refused.
#[tokio::test]
async fn a_view_that_no_longer_works_is_refused_before_anything_changes() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("broken_view");
    let (dir, s) = engine();
    for (setup, breaks) in [
        ("CREATE TABLE gone (id INT); CREATE VIEW v AS SELECT id FROM gone", "DROP TABLE gone"),
        ("CREATE TABLE cols (a INT, b INT); CREATE VIEW v AS SELECT b FROM cols", "ALTER TABLE cols DROP COLUMN b"),
        ("CREATE FUNCTION f() RETURNS INT RETURN 1; CREATE VIEW v AS SELECT f() AS x", "DROP FUNCTION f"),
    ] {
        sql(&format!(
            "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY); \
             CREATE DEFINER = 'nobody_here'@'%' VIEW no_definer AS SELECT id FROM t; {setup};"
        ));
        s.describe_backup("metadb", std::slice::from_ref(&db)).await.unwrap();
        sql(&format!("USE {db}; {breaks}"));
        refused_before_anything_changes(&s, dir.path(), &db, &[&format!("view {db}.v no longer works"), "references invalid", "drop the view"]).await;
        s.database_checksum("metadb", &db).await.unwrap();
    }
    sql(&format!("DROP DATABASE {db}"));
}

/// `db` dropped and restored from `backup` (in `dir`) twice, through opshost's restore and then
/// through the stock client, each time to the backup's checksum; `check` then looks at what came
/// back (given which restore it was).
async fn restored_both_ways(s: &MysqlSql, dir: &std::path::Path, db: &str, backup: &opshost::capabilities::sql::Backup, check: impl Fn(&str)) {
    for restore in ["opshost", "the stock client"] {
        sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
        if restore == "opshost" {
            assert_eq!(s.restore_database("metadb", db, &backup.name).await.unwrap().checksum, backup.checksum, "{restore}");
        } else {
            stock_restore(db, &dir.join(format!("{}.sql", backup.name))).unwrap();
            assert_eq!(s.database_checksum("metadb", db).await.unwrap(), backup.checksum, "{restore}");
        }
        check(restore);
    }
}

/// The plan and a dump of `db` both refuse it, each with a message that says every one of
/// `says`, and the dump leaves no file in `dir`.
async fn refused_before_anything_changes(s: &MysqlSql, dir: &std::path::Path, db: &str, says: &[&str]) {
    let plan = s.describe_backup("metadb", &[db.to_string()]).await;
    assert!(matches!(&plan, Err(e) if says.iter().all(|w| e.message().contains(w))), "{plan:?}");
    let dump = s.dump_database("metadb", db, "refused").await;
    assert!(matches!(&dump, Err(e) if says.iter().all(|w| e.message().contains(w))), "{dump:?}");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "no file is left");
}

/// opshost's MySQL engine on the test MariaDB, its backups in a directory of their own.
fn engine() -> (tempfile::TempDir, MysqlSql) {
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    (dir, s)
}

/// Tests here set the server's globals (autocommit, sql_mode, …), which every session of the
/// shared server takes: one at a time, and every test on that server waits its turn.
static GLOBALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Puts a global variable of the server back (to a value written as SQL) however the test ends.
struct GlobalBack(&'static str, String);

impl Drop for GlobalBack {
    fn drop(&mut self) {
        sql(&format!("SET GLOBAL {} = {}", self.0, self.1));
    }
}

/// Under MariaDB's default `max_allowed_packet` (16 MB), a 9 MB binary value, most of it bytes a
/// string escapes, is an 18 MB INSERT in the dump, and 14 MB of quotes and backslashes a 25 MB one: opshost's restore carries each across
/// packets as LOAD DATA and brings it back exact. A restore that cannot use LOAD DATA says which
/// limit to raise, before it changes anything of that table.
#[tokio::test]
async fn a_value_bigger_than_the_packet_once_escaped_comes_back() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("packet");
    let _back = GlobalBack("max_allowed_packet", value("mysql", "SELECT @@GLOBAL.max_allowed_packet"));
    sql(&format!(
        "SET GLOBAL max_allowed_packet = 16777216; DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.big (id INT PRIMARY KEY AUTO_INCREMENT, b LONGBLOB, t LONGTEXT);"
    ));
    sql(&format!(
        "INSERT INTO {db}.big (b) VALUES (RANDOM_BYTES(1024)); UPDATE {db}.big SET b = CONCAT(REPEAT(b, 1024), REPEAT(UNHEX('00275C0A0D1A'), 1398101), 'xx'); INSERT INTO {db}.big (t) VALUES (REPEAT('\\'\\\\\\\\x', 3500000)), ('small');"
    ));
    let (dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "big").await.unwrap();
    assert!(backup.bytes > 40 << 20, "{backup:?}");

    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
    let restored = s.restore_database("metadb", &db, "big").await.unwrap();
    assert_eq!(restored.checksum, backup.checksum);
    assert_eq!(
        value(&db, "SELECT GROUP_CONCAT(IFNULL(LENGTH(b), 0), '+', IFNULL(LENGTH(t), 0) ORDER BY id) FROM big"),
        format!("{}+0,0+14000000,0+5", 9 << 20)
    );

    let mut no_load_data = connections();
    no_load_data.get_mut("metadb").unwrap().load_data = false;
    let s = MysqlSql::new(&no_load_data, dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
    let refused = s.restore_database("metadb", &db, "big").await;
    assert!(
        matches!(&refused, Err(e) if e.message().contains("over the server's max_allowed_packet (16 MB)") && e.message().contains("SET GLOBAL max_allowed_packet = ")),
        "{refused:?}"
    );
    assert_eq!(value(&db, "SELECT COUNT(*) FROM big"), "0", "no part of the big row went in");
    sql(&format!("DROP DATABASE {db}"));
}

/// Globals that would change what a session reads or writes change nothing of a backup or a
/// restore: a server that stops long statements (MariaDB's `max_statement_time`, here 20 ms; a
/// dump reads a table in one SELECT, a restore loads and indexes it in statements each longer
/// than that), returns at most 1000 rows a SELECT (`sql_select_limit`: the dump and its checksum
/// would be cut alike), and leaves statements uncommitted (`autocommit = 0`).
#[tokio::test]
async fn server_globals_on_sessions_change_no_backup_or_restore() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("statement_time");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.rows_t (id INT PRIMARY KEY, v VARCHAR(100), KEY (v)); USE {db}; INSERT INTO {db}.rows_t SELECT seq, REPEAT(MD5(seq), 3) FROM seq_1_to_300000;"
    ));
    let _back = GlobalBack("max_statement_time", value("mysql", "SELECT @@GLOBAL.max_statement_time"));
    let _back_limit = GlobalBack("sql_select_limit", value("mysql", "SELECT @@GLOBAL.sql_select_limit"));
    let _back_commit = GlobalBack("autocommit", value("mysql", "SELECT @@GLOBAL.autocommit"));
    sql("SET GLOBAL max_statement_time = 0.02, sql_select_limit = 1000, autocommit = 0");
    // The limit is in force for a session that does not lift it.
    let o = mariadb_client(&["-N", "-D", &db, "-e", "SELECT COUNT(*) FROM rows_t WHERE v LIKE '%x%' AND SLEEP(0.0001) = 0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("max_statement_time"), "{o:?}");

    let (_dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "rows").await.unwrap();
    assert_eq!(backup.rows, 300_000);
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
    let restored = s.restore_database("metadb", &db, "rows").await.unwrap();
    assert_eq!(restored.checksum, backup.checksum);
    drop((_back, _back_limit, _back_commit));
    // Every row is in, and committed: another session sees them.
    assert_eq!(value(&db, "SELECT COUNT(*) FROM rows_t"), "300000");
    sql(&format!("DROP DATABASE {db}"));
}

/// A plugin's statement is checked as MySQL reads it, where `"x"` is a string, and runs as the
/// plugin wrote it. On a server whose global sql_mode has ANSI_QUOTES (where `"x"` names a column
/// or table), its session drops that flag and keeps the rest; under a global `autocommit = 0` its
/// change is committed (it was rolled back as the connection closed), and under a global
/// `sql_select_limit` its SELECT gets every row.
#[tokio::test]
async fn a_plugin_statement_runs_as_written_whatever_the_servers_globals() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("ansi_quotes");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (x VARCHAR(10)); INSERT INTO {db}.t VALUES ('column');"));
    let mode = value("mysql", "SELECT @@GLOBAL.sql_mode");
    let _back = GlobalBack("sql_mode", format!("'{mode}'"));
    let _back_commit = GlobalBack("autocommit", value("mysql", "SELECT @@GLOBAL.autocommit"));
    let _back_limit = GlobalBack("sql_select_limit", value("mysql", "SELECT @@GLOBAL.sql_select_limit"));
    sql(&format!("SET GLOBAL sql_mode = '{mode},ANSI_QUOTES,PIPES_AS_CONCAT', autocommit = 0, sql_select_limit = 1"));
    let (_dir, s) = engine();
    use opshost::capabilities::sql::Value;
    assert_eq!(s.execute("metadb", &db, "INSERT INTO t VALUES ('second')", &[]).await.unwrap(), 1);
    let rows = s.query("metadb", &db, "SELECT \"x\" || 'y' AS v, @@SESSION.sql_mode AS m FROM t", &[]).await.unwrap();
    assert_eq!(rows.rows.len(), 2, "every row, the second committed: {:?}", rows.rows);
    let [Value::Text(v), Value::Text(m)] = rows.rows[0].as_slice() else { panic!("{:?}", rows.rows) };
    assert_eq!(v, "xy", "a string, and the server's other flags kept (PIPES_AS_CONCAT)");
    assert!(!m.contains("ANSI_QUOTES") && m.contains("PIPES_AS_CONCAT"), "{m}");
    drop((_back, _back_commit, _back_limit));
    assert_eq!(value(&db, "SELECT COUNT(*) FROM t"), "2", "the insert was committed");
    sql(&format!("DROP DATABASE {db}"));
}

/// The free space a plan asks of the backup directory (1.5 times what `database_bytes` says, see
/// `ops/site.rs`) holds the dump even where it is mostly binary, which the dump writes as hex
/// (twice its size): else a disk that passed the plan fills up in the downtime. Values of 15 KB
/// fill an InnoDB page each, so the pages hold little more than the bytes.
#[tokio::test]
async fn the_backup_space_a_plan_asks_for_holds_a_dump_of_binary_data() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("binary_space");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB); \
         INSERT INTO blobs SELECT seq, CONCAT(RANDOM_BYTES(1024), REPEAT(RANDOM_BYTES(1000), 14)) FROM seq_1_to_600; CREATE TABLE notes (id INT PRIMARY KEY, t TEXT); \
         INSERT INTO notes SELECT seq, REPEAT('n', 200) FROM seq_1_to_8000; ANALYZE TABLE blobs, notes;"
    ));
    let (_dir, s) = engine();
    let estimate = s.database_bytes("metadb", &db).await.unwrap();
    let backup = s.dump_database("metadb", &db, "space").await.unwrap();
    assert!(backup.bytes as f64 <= estimate as f64 * 1.5, "a dump of {} bytes against an estimate of {estimate}", backup.bytes);
    sql(&format!("DROP DATABASE {db}"));
}

/// A table made when InnoDB's strict mode was off, whose rows could exceed a page (the server
/// warned, and made it), is refused by the same statement under the default strict mode: the
/// rollback's restore makes it again as it was.
#[tokio::test]
async fn a_table_the_server_would_now_refuse_comes_back() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("loose_table");
    let columns: Vec<String> = (0..200).map(|i| format!("c{i} VARCHAR(100)")).collect();
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; SET SESSION innodb_strict_mode = OFF; \
         CREATE TABLE wide_rows (id INT PRIMARY KEY, {}) ROW_FORMAT=COMPACT DEFAULT CHARSET=latin1; INSERT INTO wide_rows (id, c0, c199) VALUES (1, 'a', 'z');",
        columns.join(", ")
    ));
    let create_of = |db: &str| value(db, "SHOW CREATE TABLE wide_rows").split_once('\t').unwrap().1.replace("\\n", "\n");
    let create = create_of(&db);
    let refused = mariadb_client(&["-D", &db, "-e", &create.replacen("wide_rows", "again", 1)]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Row size too large"), "{refused:?}");

    let (_dir, s) = engine();
    let backup = s.dump_database("metadb", &db, "loose").await.unwrap();
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
    let restored = s.restore_database("metadb", &db, "loose").await.unwrap();
    assert_eq!(restored.checksum, backup.checksum);
    assert_eq!(create_of(&db), create);
    sql(&format!("DROP DATABASE {db}"));
}

/// A read-only MetaDB (a replica, or a primary left read-only after a failover) is refused at
/// the plan, naming the server and the fix: an upgrade writes to it, and a rollback restores it.
#[tokio::test]
async fn a_read_only_server_is_refused_at_the_plan() {
    let _globals = GLOBALS.lock().await;
    let db = unique_db("read_only");
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY);"));
    let (_dir, s) = engine();
    assert!(s.describe_backup("metadb", std::slice::from_ref(&db)).await.is_ok());
    let back = GlobalBack("read_only", value("mysql", "SELECT @@GLOBAL.read_only"));
    sql("SET GLOBAL read_only = ON");
    let plan = s.describe_backup("metadb", std::slice::from_ref(&db)).await;
    drop(back);
    assert!(
        matches!(&plan, Err(e) if e.message().contains("MetaDB metadb (") && e.message().contains("is read-only") && e.message().contains("point [metadb.metadb] at the primary")),
        "{plan:?}"
    );
    sql(&format!("DROP DATABASE {db}"));
}
