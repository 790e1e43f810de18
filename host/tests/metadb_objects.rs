//! Views (a view on a view), triggers, procedures, functions and events come back from a backup
//! through opshost's restore and through the stock client, without a trigger firing on the
//! restored rows, each under the client character set it was created under; a backup that lost
//! one fails its restore's verification; objects that refer to another database restored in the
//! same call come back whatever the order; a YEAR of 0000 comes back as 0000 through LOAD DATA.
//! On the real MariaDB.

mod support;

use opshost::capabilities::sql::mysql::MysqlSql;
use opshost::capabilities::sql::Sql;
use opshost::report::Silent;
use std::sync::Arc;
use support::*;

const SETUP: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, a INT, note VARCHAR(64))",
    "INSERT INTO t (a, note) VALUES (1, 'one'), (2, 'two; with a semicolon'), (3, NULL)",
    "CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, t_id INT, what VARCHAR(16))",
    "INSERT INTO audit (t_id, what) VALUES (1, 'insert'), (2, 'insert'), (3, 'insert')",
    // No AUTO_INCREMENT: its rows go through LOAD DATA.
    "CREATE TABLE years (id INT PRIMARY KEY, y YEAR)",
    "INSERT INTO years VALUES (1, 0), (2, 1999), (3, 2155), (4, NULL)",
    "CREATE VIEW v1 AS SELECT id, a FROM t WHERE a > 0",
    "CREATE VIEW v2 AS SELECT a * 2 AS a2 FROM v1",
    "CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW BEGIN\n  INSERT INTO audit (t_id, what) VALUES (NEW.id, 'insert;;');\nEND",
    "CREATE PROCEDURE bump(IN n INT)\nBEGIN\n  -- a comment in the body\n  UPDATE t SET a = a + n;\nEND",
    "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0",
];

async fn setup(db: &str) {
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    run_each(db, SETUP).await;
}

/// `db` dropped and created again, then restored from backup `name` (in `dir`) by opshost and by
/// the stock client in turn, each time with `checksum`; `check` after each, told which.
async fn restored_both_ways(s: &MysqlSql, dir: &std::path::Path, db: &str, name: &str, checksum: &str, mut check: impl FnMut(&str)) {
    for restore in ["opshost", "the stock client"] {
        sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));
        if restore == "opshost" {
            assert_eq!(s.restore_database("metadb", db, name).await.unwrap().checksum, checksum);
        } else {
            stock_restore(db, &dir.join(format!("{name}.sql"))).unwrap();
            assert_eq!(s.database_checksum("metadb", db).await.unwrap(), checksum);
        }
        check(restore);
    }
}

/// Every object is back, the trigger did not fire on the restored rows, and the values are exact.
fn assert_whole(db: &str) {
    assert_eq!(value(db, &format!("SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}'")), "v1,v2");
    assert_eq!(value(db, &format!("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'")), "1");
    assert_eq!(
        value(db, &format!("SELECT GROUP_CONCAT(ROUTINE_NAME ORDER BY ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'")),
        "bump,twice"
    );
    assert_eq!(value(db, &format!("SELECT GROUP_CONCAT(EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{db}'")), "nightly");
    assert_eq!(value(db, "SELECT COUNT(*) FROM audit"), "3", "the trigger fired on restored rows");
    assert_eq!(value(db, "SELECT GROUP_CONCAT(a2 ORDER BY a2) FROM v2"), "2,4,6");
    assert_eq!(value(db, "SELECT twice(21)"), "42");
    assert_eq!(value(db, "SELECT GROUP_CONCAT(IFNULL(y, 'NULL') ORDER BY id) FROM years"), "0000,1999,2155,NULL");
}

#[tokio::test]
async fn every_object_comes_back_and_a_lost_one_fails_verification() {
    let db = unique_db("objects");
    setup(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let before = s.database_checksum("metadb", &db).await.unwrap();
    let backup = s.dump_database("metadb", &db, "objects").await.unwrap();
    assert_eq!(backup.checksum, before);
    assert_eq!(backup.tables, 3, "objects are not counted as tables");

    // A dropped trigger changes the checksum: the checksum covers the objects.
    sql(&format!("DROP TRIGGER {db}.t_ai"));
    assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), before);

    // opshost's restore: every object, after every row.
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    let restored = s.restore_database("metadb", &db, "objects").await.unwrap();
    assert_eq!(restored.checksum, before);
    assert_whole(&db);
    // The restored trigger works.
    sql(&format!("INSERT INTO {db}.t (a) VALUES (9)"));
    assert_eq!(value(&db, "SELECT COUNT(*) FROM audit WHERE what = 'insert;;'"), "1");

    // The stock client, from the same file.
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    let file = dir.path().join("objects.sql");
    stock_restore(&db, &file).unwrap();
    assert_eq!(s.database_checksum("metadb", &db).await.unwrap(), before);
    assert_whole(&db);

    // A restore that lost an object fails its verification: here the trigger's statement is
    // blanked out of the file (same size, so only the checksum can tell).
    let text = std::fs::read_to_string(&file).unwrap();
    let start = text
        .match_indices("CREATE DEFINER")
        .map(|(i, _)| i)
        .find(|i| text[*i..].split('\n').next().unwrap().contains(" TRIGGER "))
        .expect("the trigger's statement");
    let end = start + text[start..].find("END$$").expect("its end") + "END".len();
    let blank: String = text[start..end]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if c == '\n' {
                c
            } else if i < 4 {
                "DO 0".as_bytes()[i] as char
            } else {
                ' '
            }
        })
        .collect();
    std::fs::write(&file, format!("{}{blank}{}", &text[..start], &text[end..])).unwrap();
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    let lost = s.restore_database("metadb", &db, "objects").await;
    assert!(matches!(&lost, Err(e) if e.message().contains("checksum")), "{lost:?}");
    sql(&format!("DROP DATABASE {db}"));
}

/// Objects defined by another account can be re-created only by an account allowed to name other
/// definers (SET USER or SUPER). Without that, a rollback's restore would fail in the middle of
/// the outage: the plan's backup description refuses first, naming the object, the definer and
/// the grant. The same account's restore fails exactly as predicted; with the grant, the plan
/// passes and the restore comes back whole.
#[tokio::test]
async fn objects_of_another_definer_are_refused_before_the_upgrade_unless_the_account_may_recreate_them() {
    let db = unique_db("definer");
    setup(&db).await; // every object defined by the admin account
    let account = format!("lim{}", std::process::id());
    sql(&format!("DROP USER IF EXISTS '{account}'@'%'; CREATE USER '{account}'@'%' IDENTIFIED BY 'lim-pw'; GRANT ALL ON `{db}`.* TO '{account}'@'%';"));
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "lim-pw").unwrap();
    let mut limited = metadb();
    limited.user = account.clone();
    limited.password_env = None;
    limited.password_file = Some(password);
    let lim = MysqlSql::new(&std::collections::BTreeMap::from([("metadb".to_string(), limited)]), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let admin = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();

    // First, it cannot even read the routines another account defined: refused, naming the grant.
    let unreadable = lim.describe_backup("metadb", std::slice::from_ref(&db)).await;
    assert!(
        matches!(&unreadable, Err(e) if e.message().contains(&format!("FUNCTION {db}.twice: the MetaDB account cannot read its definition")) && e.message().contains("SELECT on mysql.proc")),
        "{unreadable:?}"
    );
    sql(&format!("GRANT SELECT ON mysql.proc TO '{account}'@'%'"));

    // It reads every object now, but cannot re-create those of another definer.
    let refused = lim.describe_backup("metadb", std::slice::from_ref(&db)).await;
    let message = refused.as_ref().map(|_| String::new()).unwrap_or_else(|e| e.message().to_string());
    assert!(refused.is_err(), "{refused:?}");
    assert!(message.contains(&format!("has DEFINER {}@% (and 5 more objects of other definers)", metadb().user)), "{message}");
    assert!(
        message.contains(&format!("the MetaDB account {account}@%")) && message.contains(&format!("GRANT SET USER ON *.* TO '{account}'@'%'")),
        "{message}"
    );
    // The admin account may: the plan goes on.
    assert!(admin.describe_backup("metadb", std::slice::from_ref(&db)).await.is_ok());

    // What the refusal prevents: the limited account's restore of the same backup fails.
    let before = admin.database_checksum("metadb", &db).await.unwrap();
    admin.dump_database("metadb", &db, "definer").await.unwrap();
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    let failed = lim.restore_database("metadb", &db, "definer").await;
    assert!(matches!(&failed, Err(e) if e.message().contains("SET USER") || e.message().contains("SUPER")), "{failed:?}");

    // Granted SET USER, the plan passes and the restore is whole.
    sql(&format!("GRANT SET USER ON *.* TO '{account}'@'%'"));
    assert!(lim.describe_backup("metadb", std::slice::from_ref(&db)).await.is_ok());
    sql(&format!("DROP DATABASE {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    let restored = lim.restore_database("metadb", &db, "definer").await.unwrap();
    assert_eq!(restored.checksum, before);
    assert_whole(&db);
    sql(&format!("DROP DATABASE {db}; DROP USER '{account}'@'%';"));
}

/// `db` created afresh with a table `t` (with `rows` inserted), a trigger on it writing to
/// `audit`, a procedure `bump` and a view: the bodies' lines end with `eol`.
async fn trigger_procedure_view(db: &str, eol: &str, rows: &[&str]) {
    sql(&format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4;"));
    let trigger = format!("CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW BEGIN{eol}  INSERT INTO audit (t_id) VALUES (NEW.id);{eol}END");
    let procedure = format!("CREATE PROCEDURE bump(IN n INT){eol}BEGIN{eol}  UPDATE t SET a = a + n;{eol}END");
    let mut statements = vec!["CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, a INT)"];
    statements.extend(rows);
    statements.extend(["CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, t_id INT)", &trigger, &procedure, "CREATE VIEW v1 AS SELECT id, a FROM t"]);
    run_each(db, &statements).await;
}

/// A database whose tables hold no rows: its file goes from the definitions straight to the
/// objects section, which still waits for the end (a procedure's `DELIMITER` is the stock
/// client's, not SQL) and comes back whole.
#[tokio::test]
async fn the_objects_of_a_database_without_rows_come_back() {
    let db = unique_db("objects_no_rows");
    trigger_procedure_view(&db, "\n", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let backup = s.dump_database("metadb", &db, "no_rows").await.unwrap();
    assert_eq!(backup.rows, 0);
    s.drop_database("metadb", &db).await.unwrap();
    s.create_database("metadb", &db).await.unwrap();
    let restored = s.restore_database("metadb", &db, "no_rows").await.unwrap();
    assert_eq!(restored.checksum, backup.checksum);
    assert_eq!(
        value(&db, &format!("SELECT CONCAT((SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'), (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'), (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}'))")),
        "111"
    );
    sql(&format!("DROP DATABASE {db}"));
}

/// A routine or trigger typed with Windows line ends keeps them in its body (`SHOW CREATE` gives
/// `\r\n`). The dump writes the body as it is, and opshost's restore must not take those `\r`s
/// for a file's own line ends: it did, and the restore of such a MetaDB failed its verification
/// (every rollback of it). The stock client does drop them (its batch reader strips a `\r`
/// before each `\n`, as it does for `mariadb-dump`'s files): the objects work the same, their
/// text differs by those bytes, so its checksum differs.
#[tokio::test]
async fn bodies_with_windows_line_ends_come_back_exact() {
    let db = unique_db("objects_crlf");
    trigger_procedure_view(&db, "\r\n", &["INSERT INTO t (a) VALUES (1), (2)"]).await;
    let bodies = |db: &str| {
        value(
            db,
            &format!(
                "SELECT CONCAT((SELECT HEX(ROUTINE_DEFINITION) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}'), ' ', (SELECT HEX(ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'))"
            ),
        )
    };
    let before = bodies(&db);
    assert_eq!(before.matches("0D0A").count(), 4, "the bodies keep their \\r\\n: {before}");
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let backup = s.dump_database("metadb", &db, "crlf").await.unwrap();
    for restore in ["opshost", "the stock client"] {
        s.drop_database("metadb", &db).await.unwrap();
        s.create_database("metadb", &db).await.unwrap();
        if restore == "opshost" {
            let restored = s.restore_database("metadb", &db, "crlf").await.unwrap_or_else(|e| panic!("{restore}: {e:?}"));
            assert_eq!(restored.checksum, backup.checksum, "{restore}");
            assert_eq!(bodies(&db), before, "{restore}");
        } else {
            stock_restore(&db, &dir.path().join("crlf.sql")).unwrap();
            assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), backup.checksum, "{restore}");
            assert_eq!(bodies(&db), before.replace("0D0A", "0A"), "{restore}");
        }
        run_each(&db, &["CALL bump(10)", "INSERT INTO t (a) VALUES (3)"]).await;
        assert_eq!(value(&db, "SELECT CONCAT(GROUP_CONCAT(a ORDER BY id), ' ', (SELECT COUNT(*) FROM audit)) FROM t"), "11,12,3 1", "{restore}");
    }
    sql(&format!("DROP DATABASE {db}"));
}

/// Objects that refer to another database restored in the same call, whose file comes later:
/// a view reading its view and one calling its function (both checked by the server as the view is
/// created), and a table whose default takes the next value of its sequence (checked as the table
/// is created), while that database has a view on this one's. Restored together, in the order
/// that breaks a one-pass replay, every object comes back and works, and each checksum matches.
#[tokio::test]
async fn objects_that_refer_to_another_restored_database_come_back() {
    let (a, b) = (unique_db("refers_a"), unique_db("refers_b"));
    sql(&format!(
        "DROP DATABASE IF EXISTS {a}; DROP DATABASE IF EXISTS {b}; CREATE DATABASE {a}; CREATE DATABASE {b}; \
         CREATE TABLE {a}.t (id INT PRIMARY KEY); INSERT INTO {a}.t VALUES (1), (2); CREATE VIEW {a}.own AS SELECT id FROM {a}.t; \
         CREATE TABLE {b}.t (id INT PRIMARY KEY); INSERT INTO {b}.t VALUES (10); CREATE VIEW {b}.vb AS SELECT id FROM {b}.t; \
         CREATE FUNCTION {b}.f(x INT) RETURNS INT DETERMINISTIC RETURN x + 100; \
         CREATE VIEW {a}.on_b AS SELECT id FROM {b}.vb; CREATE VIEW {a}.calls_b AS SELECT {b}.f(id) AS y FROM {a}.t; \
         CREATE VIEW {b}.on_a AS SELECT id FROM {a}.own; \
         CREATE SEQUENCE {b}.s START WITH 500 NOCACHE; CREATE TABLE {a}.numbered (id INT PRIMARY KEY DEFAULT NEXTVAL({b}.s), v INT); INSERT INTO {a}.numbered (v) VALUES (1);"
    ));
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let pairs = vec![(a.clone(), "a".to_string()), (b.clone(), "b".to_string())];
    let backups = s.dump_databases("metadb", &pairs).await.unwrap();
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}; CREATE DATABASE {a}; CREATE DATABASE {b};"));
    let restored = s.restore_databases("metadb", &pairs).await.unwrap();
    for (r, backup) in restored.iter().zip(&backups) {
        assert_eq!(r.checksum, backup.checksum, "{}", backup.database);
    }
    assert_eq!(value(&a, "SELECT GROUP_CONCAT(id) FROM on_b"), "10");
    assert_eq!(value(&a, "SELECT GROUP_CONCAT(y ORDER BY y) FROM calls_b"), "101,102");
    assert_eq!(value(&b, "SELECT GROUP_CONCAT(id ORDER BY id) FROM on_a"), "1,2");
    sql(&format!("INSERT INTO {a}.numbered (v) VALUES (2)"));
    assert_eq!(value(&a, "SELECT GROUP_CONCAT(id ORDER BY id) FROM numbered"), "500,501");
    // Its sequence dropped, the table stays, but no restore could create it: refused at the plan.
    assert!(s.describe_backup("metadb", std::slice::from_ref(&a)).await.is_ok());
    sql(&format!("DROP SEQUENCE {b}.s"));
    match s.describe_backup("metadb", std::slice::from_ref(&a)).await {
        Err(opshost::bindings::Error::Failed(m)) => {
            assert!(m.contains(&format!("table {a}.numbered")) && m.contains(&format!("sequence {b}.s, which no longer exists")), "{m}")
        }
        other => panic!("{other:?}"),
    }
    sql(&format!("DROP DATABASE {a}; DROP DATABASE {b}"));
}

/// Objects keep the client character set they were created under (information_schema's
/// `CHARACTER_SET_CLIENT`, which `mariadb-dump` keeps too): utf8mb3 ones, and latin1 ones whose
/// text is ASCII. A latin1 one with other characters comes back under utf8mb4 (the server shows
/// its text in UTF-8), with its values exact. Through opshost's restore and the stock client.
#[tokio::test]
async fn objects_keep_the_client_character_set_they_were_created_under() {
    use mysql_async::prelude::Queryable;
    let db = unique_db("clients");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY AUTO_INCREMENT, a VARCHAR(10) CHARACTER SET latin1);"
    ));
    let mut c = mysql_async::Conn::new(mysql_opts(Some(&db))).await.unwrap();
    c.query_drop("SET NAMES utf8mb3").await.unwrap();
    for statement in [
        "CREATE VIEW v3 AS SELECT 'é' AS e",
        "CREATE PROCEDURE p3() INSERT INTO t (a) VALUES ('é')",
        "CREATE FUNCTION f3() RETURNS VARCHAR(5) DETERMINISTIC RETURN 'é'",
        "CREATE TRIGGER tr3 BEFORE INSERT ON t FOR EACH ROW SET NEW.a = IFNULL(NEW.a, 'é')",
        "CREATE EVENT e3 ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DISABLE DO DELETE FROM t WHERE a = 'é'",
    ] {
        c.query_drop(statement).await.unwrap();
    }
    c.query_drop("SET NAMES latin1").await.unwrap();
    c.query_drop("CREATE VIEW vl AS SELECT 'x' AS e").await.unwrap();
    c.query_drop(&b"CREATE PROCEDURE pl() INSERT INTO t (a) VALUES ('\xe9')"[..]).await.unwrap();
    c.disconnect().await.unwrap();
    let clients = || {
        value(
            &db,
            "SELECT GROUP_CONCAT(CONCAT_WS(' ', n, cs, co) ORDER BY n) FROM ( \
             SELECT TABLE_NAME n, CHARACTER_SET_CLIENT cs, COLLATION_CONNECTION co FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() \
             UNION ALL SELECT ROUTINE_NAME, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() \
             UNION ALL SELECT TRIGGER_NAME, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() \
             UNION ALL SELECT EVENT_NAME, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()) x",
        )
    };
    let before = clients();
    assert!(before.contains("p3 utf8mb3 utf8mb3_general_ci") && before.contains("pl latin1 latin1_swedish_ci"), "{before}");
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    let backup = s.dump_database("metadb", &db, "clients").await.unwrap();
    restored_both_ways(&s, dir.path(), &db, "clients", &backup.checksum, |restore| {
        assert_eq!(clients(), before.replace("pl latin1 latin1_swedish_ci", "pl utf8mb4 latin1_swedish_ci"), "after {restore}");
        sql(&format!("CALL {db}.pl(); CALL {db}.p3(); INSERT INTO {db}.t (a) VALUES (NULL);"));
        assert_eq!(value(&db, "SELECT GROUP_CONCAT(HEX(a) ORDER BY id) FROM t"), "E9,E9,E9", "after {restore}");
        assert_eq!(value(&db, "SELECT CONCAT(HEX(f3()), ' ', (SELECT HEX(e) FROM v3), ' ', (SELECT e FROM vl))"), "C3A9 C3A9 x", "after {restore}");
    })
    .await;
    sql(&format!("DROP DATABASE {db}"));
}

/// A trigger, routine or event keeps the database collation it was created under (`Database
/// Collation`), which sets the character set of its parameters and variables declared without
/// one; `ALTER DATABASE` later changes only the default. Replayed under the new default, they
/// came back with it, their CJK text turned to `?`, and the checksum did not tell. As
/// `mariadb-dump` does, each is created under its own; the checksum counts it.
#[tokio::test]
async fn objects_keep_the_database_collation_they_were_created_under() {
    let db = unique_db("dbcoll");
    sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; USE {db}; \
         CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, a VARCHAR(10) CHARACTER SET utf8mb4);"
    ));
    run_each(
        &db,
        &[
            "CREATE FUNCTION echo(x VARCHAR(10)) RETURNS VARCHAR(10) DETERMINISTIC RETURN x",
            "CREATE PROCEDURE keep(IN x VARCHAR(10)) INSERT INTO t (a) VALUES (x)",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN DECLARE v VARCHAR(10) DEFAULT NEW.a; SET NEW.a = v; END",
            "CREATE EVENT ev ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DISABLE DO DELETE FROM t WHERE id < 0",
            "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci",
            "CREATE PROCEDURE later(IN x VARCHAR(10)) INSERT INTO t (a) VALUES (x)",
        ],
    )
    .await;
    let collations = || {
        value(
            &db,
            "SELECT CONCAT_WS(' ', (SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()), \
             (SELECT GROUP_CONCAT(CONCAT(n, '=', c) ORDER BY n) FROM ( \
             SELECT ROUTINE_NAME n, DATABASE_COLLATION c FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() \
             UNION ALL SELECT TRIGGER_NAME, DATABASE_COLLATION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() \
             UNION ALL SELECT EVENT_NAME, DATABASE_COLLATION FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()) x))",
        )
    };
    let before = collations();
    assert_eq!(before, "latin1_swedish_ci echo=utf8mb4_general_ci,ev=utf8mb4_general_ci,keep=utf8mb4_general_ci,later=latin1_swedish_ci,tr=utf8mb4_general_ci");
    let cjk = |db: &str| {
        sql(&format!("DELETE FROM {db}.t; CALL {db}.keep('漢字'); INSERT INTO {db}.t (a) VALUES ('かな');"));
        value(db, "SELECT CONCAT((SELECT GROUP_CONCAT(a ORDER BY id) FROM t), ' ', echo('字'))")
    };
    assert_eq!(cjk(&db), "漢字,かな 字");
    let dir = tempfile::tempdir().unwrap();
    let s = MysqlSql::new(&connections(), dir.path().to_path_buf(), Arc::new(Silent)).unwrap();
    sql(&format!("DELETE FROM {db}.t"));
    let backup = s.dump_database("metadb", &db, "dbcoll").await.unwrap();
    restored_both_ways(&s, dir.path(), &db, "dbcoll", &backup.checksum, |restore| {
        assert_eq!(collations(), before, "after {restore}");
        assert_eq!(cjk(&db), "漢字,かな 字", "after {restore}");
        sql(&format!("DELETE FROM {db}.t"));
    })
    .await;
    // Re-created under the database's default, a procedure is another: the checksum tells.
    sql(&format!("USE {db}; DROP PROCEDURE keep; CREATE PROCEDURE keep(IN x VARCHAR(10)) INSERT INTO t (a) VALUES (x);"));
    assert_ne!(s.database_checksum("metadb", &db).await.unwrap(), backup.checksum);
    sql(&format!("DROP DATABASE {db}"));
}

/// On a MetaDB that keeps a binary log with `log_bin_trust_function_creators` off, the server
/// creates a function or a trigger only for an account with SUPER (1419), and a function declared
/// neither DETERMINISTIC, NO SQL nor READS SQL DATA for no account (1418). The account of the
/// README's least-privilege setup has no SUPER: its rollback's restore failed on such objects in
/// the middle of the outage. The plan refuses first, naming the object and the fix; the refused
/// restore fails as predicted, and with the fix the restore is whole.
#[tokio::test]
async fn functions_and_triggers_a_binary_logged_metadb_would_not_let_the_rollback_restore_are_refused_at_the_plan() {
    let server = OwnServer::start(&["--log-bin=binlog"]);
    let db = "binlogged";
    server.root(&format!(
        "CREATE USER 'lp'@'%' IDENTIFIED BY 'lp-pw'; GRANT ALL PRIVILEGES ON `{db}`.* TO 'lp'@'%'; GRANT RELOAD ON *.* TO 'lp'@'%';
         CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, a INT); INSERT INTO t (a) VALUES (1), (2);
         CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, t_id INT);
         CREATE DEFINER = 'lp'@'%' TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (t_id) VALUES (NEW.id);
         CREATE DEFINER = 'lp'@'%' FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
         CREATE DEFINER = 'lp'@'%' PROCEDURE p() SELECT 1;"
    ));
    let lp = server.opshost("lp", "lp-pw");
    let replace = || server.root(&format!("DROP DATABASE {db}; CREATE DATABASE {db};"));

    let refused = lp.describe_backup("metadb", &[db.to_string()]).await;
    let message = refused.as_ref().map(|_| String::new()).unwrap_or_else(|e| e.message().to_string());
    for says in [
        "trigger binlogged.t_ai (and 1 more functions or triggers)",
        "binary log with log_bin_trust_function_creators off",
        "error 1419",
        "the MetaDB account lp@%",
        "SET GLOBAL log_bin_trust_function_creators = 1",
        "grant the account SUPER",
    ] {
        assert!(message.contains(says), "{says}: {refused:?}");
    }
    assert!(!server.dir.path().join("backups").exists(), "the plan wrote nothing");
    // What it prevents: the same account's backup restores no further than the first trigger.
    let backup = lp.dump_database("metadb", db, "binlogged").await.unwrap();
    replace();
    let failed = lp.restore_database("metadb", db, "binlogged").await;
    assert!(matches!(&failed, Err(e) if e.message().contains("1419")), "{failed:?}");

    // With the fix the plan passes and the restore is whole, the trigger and function working.
    server.root("SET GLOBAL log_bin_trust_function_creators = 1");
    lp.describe_backup("metadb", &[db.to_string()]).await.unwrap();
    replace();
    assert_eq!(lp.restore_database("metadb", db, "binlogged").await.unwrap().checksum, backup.checksum);
    server.root(&format!("INSERT INTO {db}.t (a) VALUES (3)"));
    let o = server.client(&["-N", "-e", &format!("SELECT CONCAT((SELECT COUNT(*) FROM {db}.audit), ' ', {db}.twice(21))")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1 42");

    // SUPER held through the account's default role is SUPER held: the plan passes and the
    // restore is whole (only the account's own privileges were looked at before).
    server.root(
        "SET GLOBAL log_bin_trust_function_creators = 0; CREATE ROLE lp_super; GRANT SUPER ON *.* TO lp_super; \
         GRANT lp_super TO 'lp'@'%'; SET DEFAULT ROLE lp_super FOR 'lp'@'%';",
    );
    let with_role = server.opshost("lp", "lp-pw");
    with_role.describe_backup("metadb", &[db.to_string()]).await.unwrap();
    replace();
    assert_eq!(with_role.restore_database("metadb", db, "binlogged").await.unwrap().checksum, backup.checksum);
    server.root("SET DEFAULT ROLE NONE FOR 'lp'@'%'; DROP ROLE lp_super; SET GLOBAL log_bin_trust_function_creators = 1;");

    // A function without DETERMINISTIC, NO SQL or READS SQL DATA: no account may create it
    // again, SUPER or not.
    server.root(&format!(
        "CREATE DEFINER = 'lp'@'%' FUNCTION {db}.loose(x INT) RETURNS INT RETURN x; SET GLOBAL log_bin_trust_function_creators = 0; GRANT SUPER ON *.* TO 'lp'@'%';"
    ));
    let refused = lp.describe_backup("metadb", &[db.to_string()]).await;
    assert!(
        matches!(&refused, Err(e) if e.message().contains("function binlogged.loose is declared neither DETERMINISTIC, NO SQL nor READS SQL DATA") && e.message().contains("error 1418")),
        "{refused:?}"
    );
    lp.dump_database("metadb", db, "loose").await.unwrap();
    replace();
    let failed = lp.restore_database("metadb", db, "loose").await;
    assert!(matches!(&failed, Err(e) if e.message().contains("1418")), "{failed:?}");
}
