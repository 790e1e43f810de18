//! sql capability: the `Sql` trait over named MetaDB connections, identifier validation, the
//! account's privileges as `SHOW GRANTS` states them, the content checksum's format
//! ([`checksum`]) and the statement policy ([`policy`]) shared by every backend; the WIT glue
//! (`glue.rs`); and the engines: [`mysql::MysqlSql`] on MariaDB, MySQL and OceanBase's MySQL
//! mode, [`fake::FakeSql`] on embedded SQLite. Another engine (PostgreSQL, a native OceanBase
//! path) is a folder beside `mysql/`.

pub mod checksum;
pub mod fake;
mod glue;
pub mod mysql;
pub mod policy;

use async_trait::async_trait;

pub use crate::bindings::opshost::plugin::sql::{Backup, BackupRequest, Rows, Value};
use crate::bindings::Error;

#[async_trait]
pub trait Sql: Send + Sync {
    async fn query(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<Rows, Error>;
    async fn execute(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> Result<u64, Error>;
    async fn dump_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error>;
    /// Each `(database, backup name)` in one snapshot, side by side; all backups or none.
    async fn dump_databases(&self, connection: &str, dumps: &[(String, String)]) -> Result<Vec<Backup>, Error>;
    async fn restore_database(&self, connection: &str, database: &str, backup_name: &str) -> Result<Backup, Error>;
    /// Each `(database, backup name)` replayed side by side, then each verified; every backup and
    /// database is checked before anything is replayed.
    async fn restore_databases(&self, connection: &str, restores: &[(String, String)]) -> Result<Vec<Backup>, Error>;
    /// The database backup `backup_name` was taken of (not found when there is no such backup).
    async fn backup_database(&self, backup_name: &str) -> Result<String, Error>;
    async fn create_database(&self, connection: &str, database: &str) -> Result<(), Error>;
    async fn drop_database(&self, connection: &str, database: &str) -> Result<(), Error>;
    async fn database_exists(&self, connection: &str, database: &str) -> Result<bool, Error>;
    async fn database_checksum(&self, connection: &str, database: &str) -> Result<String, Error>;
    /// [`Sql::database_checksum`] of each of `databases`, in their order: one after another
    /// unless the backend reads them side by side in one snapshot.
    async fn database_checksums(&self, connection: &str, databases: &[String]) -> Result<Vec<String>, Error> {
        let mut sums = Vec::with_capacity(databases.len());
        for d in databases {
            sums.push(self.database_checksum(connection, d).await?);
        }
        Ok(sums)
    }
    /// Server-wide privileges of the connection's account that opshost never needs (FILE, SUPER,
    /// SHUTDOWN, …): the plan warns about each, since a grant is only as strong as the account
    /// behind it. Empty where the backend cannot tell.
    async fn excess_privileges(&self, _connection: &str) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
    /// What the plan says about the server and the databases a backup will hold (flavour,
    /// version, time zone, sql_mode, which restore path runs, every table and object), or the
    /// refusal when one of them cannot be backed up exactly. Empty where the backend cannot tell.
    async fn describe_backup(&self, _connection: &str, _databases: &[String]) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
    /// What a database takes on the server (data and indexes), to check the backup directory's
    /// free space before the downtime, tables whose dump is bigger than their pages (binary
    /// values written escaped) counted so; 0 where the backend cannot tell.
    async fn database_bytes(&self, _connection: &str, _database: &str) -> Result<u64, Error> {
        Ok(0)
    }
}

/// Privileges on `*.*` a MetaDB account for opshost should not hold (README "Least-privilege
/// MetaDB account"), from the lines of `SHOW GRANTS`.
pub fn excess_privileges_in(grants: &[String]) -> Vec<String> {
    const EXCESS: &[&str] = &["ALL PRIVILEGES", "FILE", "SUPER", "SHUTDOWN", "PROCESS", "CREATE USER", "GRANT OPTION"];
    let mut found: Vec<String> = Vec::new();
    for line in grants {
        let upper = line.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix("GRANT ") else { continue };
        let Some((privileges, _)) = rest.split_once(" ON *.* ") else { continue };
        let mut held: Vec<&str> = privileges.split(',').map(str::trim).collect();
        if upper.contains("WITH GRANT OPTION") {
            held.push("GRANT OPTION");
        }
        for p in EXCESS.iter().filter(|p| held.contains(p)) {
            if !found.iter().any(|f| f == p) {
                found.push(p.to_string());
            }
        }
    }
    found
}

/// The backups a dump or restore call returned, from its recorded outcome (`{"ok": backup}` or
/// `{"ok": [backup, …]}`, as the journal and the transcripts keep it); none for an error.
pub fn backups_in_outcome(outcome: &serde_json::Value) -> Vec<serde_json::Value> {
    match outcome.get("ok") {
        Some(serde_json::Value::Array(v)) => v.clone(),
        Some(b @ serde_json::Value::Object(_)) => vec![b.clone()],
        _ => Vec::new(),
    }
}

/// What opshost does on a product's database needs these: read and dump it, run a plugin's
/// migration, drop and re-create it on rollback.
pub const NEEDED_ON_DATABASE: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX"];

/// The privileges `SHOW GRANTS` gives on `database` (global ones included): `*.*` lines and
/// `` `db`.* `` lines whose name (a LIKE pattern, `\_` escaped) matches; `ALL PRIVILEGES` is every
/// one of [`NEEDED_ON_DATABASE`] and of the object privileges. Second: whether the account also
/// has roles, whose privileges this reading cannot see.
pub fn privileges_on(grants: &[String], database: &str) -> (std::collections::BTreeSet<String>, bool) {
    const ALL: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
        "INDEX",
        "CREATE VIEW",
        "SHOW VIEW",
        "TRIGGER",
        "CREATE ROUTINE",
        "ALTER ROUTINE",
        "EVENT",
        "LOCK TABLES",
        "REFERENCES",
        "CREATE TEMPORARY TABLES",
        "EXECUTE",
    ];
    let mut held = std::collections::BTreeSet::new();
    let mut roles = false;
    for line in grants {
        let upper = line.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix("GRANT ") else { continue };
        let Some((privileges, scope)) = rest.split_once(" ON ") else {
            // `GRANT role TO user`: privileges held through a role.
            roles |= rest.contains(" TO ");
            continue;
        };
        let Some((scope, _)) = scope.split_once(" TO ") else { continue };
        let scope = scope.trim();
        let applies = if scope == "*.*" {
            true
        } else if let Some(name) = scope.strip_suffix(".*") {
            // The original spelling: database names are case-sensitive on most servers.
            let start = upper.find(" ON ").map(|i| i + 4).unwrap_or(0);
            let original = &line[start..start + name.len()];
            like_matches(original.trim_matches('`').replace("``", "`").as_str(), database)
        } else {
            false
        };
        if !applies {
            continue;
        }
        for p in privileges.split(',').map(str::trim) {
            if p == "ALL PRIVILEGES" || p == "ALL" {
                held.extend(ALL.iter().map(|s| s.to_string()));
            } else {
                held.insert(p.to_string());
            }
        }
    }
    (held, roles)
}

/// SQL LIKE with `%`, `_` and `\` escapes, as the server matches a database-level grant's name.
fn like_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some(('\\', rest)) if !rest.is_empty() => t.first() == Some(&rest[0]) && go(&rest[1..], &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// The most values one query's result may hold, whatever their bytes: the host keeps a result
/// as a JSON tree for the journal, about 700 bytes a value (`{"text":""}` is a map), so a result
/// of a million empty strings within `max_payload_bytes` would take the host gigabytes.
pub const MAX_RESULT_VALUES: usize = 1 << 18;

/// At least the bytes `v` takes as the JSON the host journals and measures against
/// `max_payload_bytes` (`{"bytes":[0,255]}`: a byte of a binary value is up to four), counted
/// without building it: results are bounded row by row by it, and arguments before they are
/// turned into JSON, whose values take 32 bytes of memory each.
pub fn json_bytes(v: &Value) -> usize {
    match v {
        Value::Null => 6,
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => 40,
        Value::Text(t) => 12 + t.len() + 5 * t.bytes().filter(|&b| b < 0x20 || b == b'"' || b == b'\\').count(),
        Value::Bytes(b) => {
            12 + b
                .iter()
                .map(|&x| {
                    if x >= 100 {
                        4
                    } else if x >= 10 {
                        3
                    } else {
                        2
                    }
                })
                .sum::<usize>()
        }
    }
}

/// A database or table name from a plugin: 1-64 of `[A-Za-z0-9_$]`, not all digits. Anything else
/// is refused before it reaches a backend, so no identifier can carry SQL.
pub fn check_identifier(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !name.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("{what} name {name:?} is not a plain identifier (letters, digits, _ and $, at most 64)")))
    }
}

/// A database a plugin names in a database-level call (dump, restore, create, drop, checksum):
/// a plain identifier, and not one of the server's own ([`policy::SYSTEM_SCHEMAS`]), which a
/// wildcard grant (`metadb/*`) would otherwise reach.
pub fn check_database(name: &str) -> Result<(), Error> {
    check_identifier("database", name)?;
    if policy::SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return Err(Error::Denied(format!("database {name} is one of the server's own, which plugins may never reach, whatever their grants")));
    }
    Ok(())
}

/// A backup name from a plugin: a file-name-safe identifier (also `.` and `-`), no path.
pub fn check_backup_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("backup name {name:?} must be letters, digits, _ . - only")))
    }
}

/// The databases of a `database-checksums`, or of a `dump-databases` or `restore-databases`
/// (`call`): at least one, each a plain identifier, each once.
pub(super) fn check_databases(call: &str, databases: &[String]) -> Result<(), Error> {
    if databases.is_empty() {
        return Err(Error::InvalidInput(format!("{call} needs at least one database")));
    }
    let mut seen = std::collections::HashSet::new();
    for d in databases {
        check_database(d)?;
        if !seen.insert(d.as_str()) {
            return Err(Error::InvalidInput(format!("{call} names database {d} twice: give each once")));
        }
    }
    Ok(())
}

/// The databases and backup names of a `dump-databases` or `restore-databases` call (`call`): at
/// least one, each valid and each once (two dumps of one database, or two into one file, are a
/// plugin bug).
pub(super) fn check_backup_requests(call: &str, requests: &[BackupRequest]) -> Result<(), Error> {
    check_databases(call, &requests.iter().map(|r| r.database.clone()).collect::<Vec<_>>())?;
    let mut seen = std::collections::HashSet::new();
    for r in requests {
        check_backup_name(&r.backup_name)?;
        if !seen.insert(r.backup_name.as_str()) {
            return Err(Error::InvalidInput(format!("{call} names backup {} twice: give each once", r.backup_name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_json_is_never_longer_than_counted() {
        let values = [
            Value::Null,
            Value::Int(i64::MIN),
            Value::Uint(u64::MAX),
            Value::Float(-1.2345678901234567e-300),
            Value::Text("quote \" backslash \\ tab \t nul \0 é".into()),
            Value::Bytes((0..=255).collect()),
            Value::Bytes(Vec::new()),
        ];
        for v in &values {
            assert!(serde_json::to_string(v).unwrap().len() <= json_bytes(v), "{v:?}");
        }
    }

    #[test]
    fn checksums_need_each_database_once_and_by_a_plain_name() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        check_databases("database-checksums", &names(&["rm_411", "cm_411"])).unwrap();
        for bad in [names(&[]), names(&["rm_411", "rm_411"]), names(&["rm_411", "a`b"])] {
            assert!(matches!(check_databases("database-checksums", &bad), Err(Error::InvalidInput(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_backup_set_names_each_database_and_each_backup_once() {
        let req = |d: &str, b: &str| BackupRequest { database: d.into(), backup_name: b.into() };
        check_backup_requests("dump-databases", &[req("rm_411", "rm"), req("cm_411", "cm")]).unwrap();
        for (bad, says) in [
            (vec![], "needs at least one database"),
            (vec![req("rm_411", "rm"), req("rm_411", "cm")], "names database rm_411 twice"),
            (vec![req("rm_411", "rm"), req("cm_411", "rm")], "names backup rm twice"),
            (vec![req("rm_411", "../rm")], "backup"),
        ] {
            match check_backup_requests("dump-databases", &bad) {
                Err(Error::InvalidInput(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn identifiers_that_could_carry_sql_are_refused() {
        for bad in ["", "rm_411; DROP DATABASE x", "a`b", "a b", "x'--", "123", "../etc", &"a".repeat(65)] {
            assert!(matches!(check_identifier("database", bad), Err(Error::InvalidInput(_))), "{bad:?} accepted");
        }
        for good in ["rm_411", "cm_hb_411", "oms$1", "a1"] {
            check_identifier("database", good).unwrap();
            check_database(good).unwrap();
        }
        for system in ["mysql", "MySQL", "information_schema", "performance_schema", "sys", "oceanbase"] {
            assert!(matches!(check_database(system), Err(Error::Denied(m)) if m.contains("server's own")), "{system}");
        }
        assert!(matches!(check_databases("database-checksums", &["rm_411".into(), "mysql".into()]), Err(Error::Denied(_))));
    }

    #[test]
    fn a_set_of_dumps_names_each_database_and_backup_once() {
        let r = |d: &str, b: &str| BackupRequest { database: d.into(), backup_name: b.into() };
        check_backup_requests("dump-databases", &[r("rm", "rm"), r("cm", "cm")]).unwrap();
        for bad in [vec![], vec![r("rm", "a"), r("rm", "b")], vec![r("rm", "a"), r("cm", "a")], vec![r("rm", "../x")], vec![r("rm`", "x")]] {
            assert!(matches!(check_backup_requests("restore-databases", &bad), Err(Error::InvalidInput(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn server_wide_privileges_are_named() {
        let g = |l: &[&str]| excess_privileges_in(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(g(&["GRANT ALL PRIVILEGES ON *.* TO `opshost`@`%` IDENTIFIED BY PASSWORD '*x'"]), vec!["ALL PRIVILEGES"]);
        assert_eq!(g(&["GRANT RELOAD, FILE, PROCESS ON *.* TO `o`@`%` WITH GRANT OPTION"]), vec!["FILE", "PROCESS", "GRANT OPTION"]);
        assert!(g(&["GRANT RELOAD ON *.* TO `o`@`%`", "GRANT ALL PRIVILEGES ON `rm_411`.* TO `o`@`%`"]).is_empty());
    }

    #[test]
    fn backup_names_cannot_escape_the_backup_directory() {
        for bad in ["../x", "a/b", ".hidden", "", "a b"] {
            assert!(check_backup_name(bad).is_err(), "{bad:?} accepted");
        }
        check_backup_name("rm_411.sql").unwrap();
    }

    #[test]
    fn privileges_on_a_database_from_show_grants() {
        let g = |lines: &[&str], db: &str| {
            let (held, roles) = super::privileges_on(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>(), db);
            (held.into_iter().collect::<Vec<_>>().join(","), roles)
        };
        let lines = ["GRANT RELOAD ON *.* TO `o`@`%`", "GRANT ALL PRIVILEGES ON `rm\\_411`.* TO `o`@`%`", "GRANT SELECT, INSERT ON `cm%`.* TO `o`@`%`"];
        assert!(g(&lines, "rm_411").0.contains("DROP"));
        assert!(!g(&lines, "rmx411").0.contains("DROP"), "an escaped _ matches only itself");
        assert_eq!(g(&lines, "cm_hb_411").0, "INSERT,RELOAD,SELECT");
        assert_eq!(g(&lines, "other").0, "RELOAD");
        assert!(g(&["GRANT `opsrole` TO `o`@`%`"], "rm").1, "a role is noticed");
        assert!(g(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"], "x").0.contains("EVENT"));
    }
}
