//! Whether the server would create a backup's tables again as they are. A rollback's restore
//! creates every table of its backup on the server as it is then set, and some settings, turned
//! on after a table was made, refuse that table or change it as it is created:
//!
//! - `enforce_storage_engine` (MariaDB): a table or sequence of another engine is created in the
//!   enforced one (the restore's session has no `NO_ENGINE_SUBSTITUTION`; with it, refused);
//! - `disabled_storage_engines` (MySQL): a table of a listed engine is refused;
//! - `innodb_force_primary_key` (MariaDB): an InnoDB table without a primary key is refused (error
//!   1173), unless it has a unique key on NOT NULL columns, which InnoDB takes as its primary key;
//! - `sql_require_primary_key` (MySQL 8.0.13 on): a table without a primary key is refused (3750);
//! - `sql_generate_invisible_primary_key` (MySQL 8.0.30 on): an InnoDB table without one gets a
//!   column it did not have.
//!
//! Each would stop the restore, or fail its verification, with the databases already dropped, in
//! the middle of the outage. The plan reads the settings as a restore's session has them and
//! refuses such a table, naming it, the setting and the fix.
//!
//! So is a table whose column default takes the next value of a sequence that no longer exists
//! (`DEFAULT NEXTVAL(s)`, then `DROP SEQUENCE s`: MariaDB keeps the table): the server checks the
//! sequence as it creates the table ([`refuse_missing_sequences`]).

use super::codec::db_err;
use super::load::ident;
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// The settings of a session that decide whether a table can be created as it is.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Rules {
    /// MariaDB's `enforce_storage_engine`, when set.
    pub enforce_engine: Option<String>,
    /// MySQL's `disabled_storage_engines`.
    pub disabled_engines: Vec<String>,
    /// MariaDB's `innodb_force_primary_key`.
    pub innodb_force_primary_key: bool,
    /// MySQL's `sql_require_primary_key`.
    pub require_primary_key: bool,
    /// MySQL's `sql_generate_invisible_primary_key`.
    pub generate_invisible_primary_key: bool,
}

impl Rules {
    /// From `SHOW VARIABLES` rows (name, value); a variable the server does not know is absent,
    /// and so off.
    pub fn from_variables(rows: &[(String, String)]) -> Rules {
        let mut rules = Rules::default();
        for (name, value) in rows {
            let on = value.eq_ignore_ascii_case("ON") || value == "1";
            match name.to_ascii_lowercase().as_str() {
                "enforce_storage_engine" if !value.is_empty() => rules.enforce_engine = Some(value.clone()),
                "disabled_storage_engines" => rules.disabled_engines = value.split(',').map(str::trim).filter(|e| !e.is_empty()).map(String::from).collect(),
                "innodb_force_primary_key" => rules.innodb_force_primary_key = on,
                "sql_require_primary_key" => rules.require_primary_key = on,
                "sql_generate_invisible_primary_key" => rules.generate_invisible_primary_key = on,
                _ => {}
            }
        }
        rules
    }

    /// The rules of `c`'s session (in the bulk session, as a restore's): server-wide, so read
    /// once for every database a plan looks at.
    pub async fn read(c: &mut Conn) -> Rules {
        let variables: Vec<(String, String)> = c
            .query(
                "SHOW VARIABLES WHERE Variable_name IN ('enforce_storage_engine', 'disabled_storage_engines', 'innodb_force_primary_key', 'sql_require_primary_key', 'sql_generate_invisible_primary_key')",
            )
            .await
            // A server that cannot say (OceanBase's MySQL mode may not take the WHERE) has none of them.
            .unwrap_or_default();
        Rules::from_variables(&variables)
    }
}

/// A table or sequence as a restore creates it: what the rules look at.
#[derive(Debug)]
pub(super) struct Shape {
    pub name: String,
    pub sequence: bool,
    pub engine: String,
    pub primary_key: bool,
    /// A unique key whose columns are all NOT NULL and whole (no prefix): InnoDB makes it the
    /// table's primary key when it has none.
    pub unique_not_null: bool,
}

/// Why the rules would keep `shape` from being created as it is, with the fix; `None` if they
/// would not.
pub(super) fn refusal(database: &str, rules: &Rules, shape: &Shape) -> Option<String> {
    let what = format!("{} {database}.{}", if shape.sequence { "sequence" } else { "table" }, shape.name);
    let window = "for the upgrade and its rollback window";
    let outage = "in the middle of the outage, after the databases were dropped";
    if let Some(enforced) = rules.enforce_engine.as_ref().filter(|e| !e.eq_ignore_ascii_case(&shape.engine)) {
        return Some(format!(
            "{what} is {}, and the server's enforce_storage_engine = {enforced} would have the restore a rollback runs create it as {enforced}, which fails the restore's verification {outage}: SET GLOBAL enforce_storage_engine = NULL {window}, or convert it (ALTER TABLE ... ENGINE = {enforced}) before the upgrade, then plan again",
            shape.engine
        ));
    }
    if rules.disabled_engines.iter().any(|e| e.eq_ignore_ascii_case(&shape.engine)) {
        return Some(format!(
            "{what} is {}, which the server's disabled_storage_engines ({}) forbids creating, so the restore a rollback runs would fail on it {outage}: convert it (ALTER TABLE ... ENGINE = InnoDB) before the upgrade, or take {} out of disabled_storage_engines (a restart), then plan again",
            shape.engine,
            rules.disabled_engines.join(","),
            shape.engine
        ));
    }
    if shape.sequence || shape.primary_key {
        return None;
    }
    let innodb = shape.engine.eq_ignore_ascii_case("InnoDB");
    let (setting, effect) = if rules.generate_invisible_primary_key && innodb {
        ("sql_generate_invisible_primary_key", "add an invisible primary key column to it, which fails the restore's verification")
    } else if rules.require_primary_key {
        ("sql_require_primary_key", "refuse to create it (error 3750)")
    } else if rules.innodb_force_primary_key && innodb && !shape.unique_not_null {
        ("innodb_force_primary_key", "refuse to create it (error 1173)")
    } else {
        return None;
    };
    Some(format!(
        "{what} has no primary key, and with the server's {setting} ON the restore a rollback runs would {effect} {outage}: SET GLOBAL {setting} = OFF {window}, or give the table a primary key before the upgrade, then plan again"
    ))
}

/// Refuse the first table or sequence of `database` that the server, under `rules`
/// ([`Rules::read`]), would not create as it is; the count of any others.
pub(super) async fn refuse_uncreatable(c: &mut Conn, database: &str, rules: &Rules) -> Result<(), Error> {
    if *rules == Rules::default() {
        return Ok(());
    }
    // Three lists matched by name here rather than subqueries: the server matches a correlated
    // subquery's table name without case (even cast to bytes), so under names told apart by case
    // `t0` took the primary key of `T0`.
    let tables: Vec<(String, String, Option<String>)> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') ORDER BY TABLE_NAME, CAST(TABLE_NAME AS BINARY)",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    let primary: std::collections::HashSet<String> = c
        .exec("SELECT TABLE_NAME FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = ? AND CONSTRAINT_TYPE = 'PRIMARY KEY'", (database,))
        .await
        .map_err(|e| db_err(database, e))?
        .into_iter()
        .collect();
    // Tables with a unique key on NOT NULL columns only, whole (InnoDB's primary key then).
    let unique_not_null: std::collections::HashSet<String> = c
        .exec(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND NON_UNIQUE = 0 \
             GROUP BY CAST(TABLE_NAME AS BINARY), INDEX_NAME HAVING SUM(NULLABLE = 'YES' OR SUB_PART IS NOT NULL) = 0",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?
        .into_iter()
        .collect();
    let refusals: Vec<String> = tables
        .into_iter()
        .map(|(name, kind, engine)| Shape {
            primary_key: primary.contains(&name),
            unique_not_null: unique_not_null.contains(&name),
            name,
            sequence: kind == "SEQUENCE",
            engine: engine.unwrap_or_default(),
        })
        .filter_map(|shape| refusal(database, rules, &shape))
        .collect();
    match refusals.as_slice() {
        [] => Ok(()),
        [one] => Err(failed(one.clone())),
        [first, rest @ ..] => Err(failed(format!("{first} (and {} more tables of {database} alike)", rest.len()))),
    }
}

/// The sequences a column default takes the next value of (`nextval(`db`.`s`)` as the server
/// shows it, or `nextval(`s`)`: of `database`), as (database, sequence).
pub(super) fn sequences_named(default: &str, database: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lower = default.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("nextval(").map(|i| from + i + "nextval(".len()) {
        from = at;
        let (mut names, mut rest) = (Vec::new(), &default[at..]);
        while let Some((quoted, after)) = ident(rest) {
            names.push(quoted[1..quoted.len() - 1].replace("``", "`"));
            match after.strip_prefix('.') {
                Some(r) => rest = r,
                None => break,
            }
        }
        match names.as_slice() {
            [s] => out.push((database.to_string(), s.clone())),
            [db, s] => out.push((db.clone(), s.clone())),
            _ => {}
        }
    }
    out
}

/// Refuse a table of `database` whose column default takes the next value of a sequence that
/// does not exist: the restore a rollback runs could not create it.
pub(super) async fn refuse_missing_sequences(c: &mut Conn, database: &str) -> Result<(), Error> {
    let defaults: Vec<(String, String, String)> = c
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_DEFAULT LIKE '%nextval(%'",
            (database,),
        )
        .await
        .map_err(|e| db_err(database, e))?;
    for (table, column, default) in defaults {
        for (db, sequence) in sequences_named(&default, database) {
            let found: Option<u64> = c
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'SEQUENCE'",
                    (&db, &sequence),
                )
                .await
                .map_err(|e| db_err(database, e))?;
            if found.unwrap_or(0) == 0 {
                return Err(failed(format!(
                    "table {database}.{table}: column {column} defaults to the next value of sequence {db}.{sequence}, which no longer exists, and the server checks it as it creates the table, so the restore a rollback runs would fail on it in the middle of the outage, after the databases were dropped: create the sequence again (CREATE SEQUENCE {db}.{sequence}) or change the default (ALTER TABLE {table} ALTER {column} DROP DEFAULT), then plan again"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequences_a_default_takes_the_next_value_of_are_named() {
        assert_eq!(sequences_named("nextval(`probe`.`s`)", "db"), [("probe".to_string(), "s".to_string())]);
        assert_eq!(sequences_named("NEXTVAL(`s`)", "db"), [("db".to_string(), "s".to_string())]);
        assert_eq!(sequences_named("nextval(`a``b`.`c.d`) + nextval(`e`)", "db"), [("a`b".into(), "c.d".into()), ("db".into(), "e".into())]);
        assert!(sequences_named("'nextval(' ", "db").is_empty());
        assert!(sequences_named("current_timestamp()", "db").is_empty());
    }

    fn shape(name: &str, engine: &str, primary_key: bool, unique_not_null: bool) -> Shape {
        Shape { name: name.into(), sequence: false, engine: engine.into(), primary_key, unique_not_null }
    }

    fn vars(pairs: &[(&str, &str)]) -> Rules {
        Rules::from_variables(&pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn settings_read_as_servers_show_them() {
        // A MariaDB as it comes: no engine enforced (shown empty), no key forced.
        assert_eq!(vars(&[("enforce_storage_engine", ""), ("innodb_force_primary_key", "OFF")]), Rules::default());
        let r = vars(&[
            ("disabled_storage_engines", "MyISAM, BLACKHOLE,FEDERATED"),
            ("sql_require_primary_key", "ON"),
            ("sql_generate_invisible_primary_key", "OFF"),
        ]);
        assert_eq!(r.disabled_engines, ["MyISAM", "BLACKHOLE", "FEDERATED"]);
        assert!(r.require_primary_key && !r.generate_invisible_primary_key && r.enforce_engine.is_none());
        assert_eq!(vars(&[("enforce_storage_engine", "InnoDB")]).enforce_engine.as_deref(), Some("InnoDB"));
    }

    #[test]
    fn each_setting_refuses_only_the_tables_it_would_change_or_refuse() {
        let none = Rules::default();
        let keyless = shape("keyless", "InnoDB", false, false);
        let promoted = shape("promoted", "InnoDB", false, true);
        let myisam = shape("m", "MyISAM", false, false);
        let keyed = shape("keyed", "InnoDB", true, true);
        for s in [&keyless, &promoted, &myisam, &keyed] {
            assert_eq!(refusal("db", &none, s), None, "{s:?}");
        }

        let force = Rules { innodb_force_primary_key: true, ..Rules::default() };
        let why = refusal("db", &force, &keyless).unwrap();
        assert!(
            why.contains("table db.keyless has no primary key") && why.contains("1173") && why.contains("SET GLOBAL innodb_force_primary_key = OFF"),
            "{why}"
        );
        // InnoDB takes a unique key on NOT NULL columns as the primary key; other engines are not InnoDB's.
        assert_eq!(refusal("db", &force, &promoted), None);
        assert_eq!(refusal("db", &force, &myisam), None);

        let require = Rules { require_primary_key: true, ..Rules::default() };
        for s in [&keyless, &promoted, &myisam] {
            assert!(refusal("db", &require, s).unwrap().contains("3750"), "{s:?}");
        }
        assert_eq!(refusal("db", &require, &keyed), None);

        let gipk = Rules { generate_invisible_primary_key: true, require_primary_key: true, ..Rules::default() };
        assert!(refusal("db", &gipk, &promoted).unwrap().contains("sql_generate_invisible_primary_key = OFF"));
        assert!(refusal("db", &gipk, &myisam).unwrap().contains("sql_require_primary_key"));

        let enforce = Rules { enforce_engine: Some("InnoDB".into()), innodb_force_primary_key: true, ..Rules::default() };
        let why = refusal("db", &enforce, &myisam).unwrap();
        assert!(why.contains("table db.m is MyISAM") && why.contains("enforce_storage_engine = NULL"), "{why}");
        assert_eq!(refusal("db", &Rules { enforce_engine: Some("innodb".into()), ..Rules::default() }, &keyed), None);
        let sequence = Shape { sequence: true, ..shape("s", "Aria", false, false) };
        assert!(refusal("db", &enforce, &sequence).unwrap().starts_with("sequence db.s is Aria"));
        // A sequence has no primary key and needs none.
        assert_eq!(refusal("db", &force, &Shape { engine: "InnoDB".into(), ..sequence }), None);

        let disabled = Rules { disabled_engines: vec!["MyISAM".into(), "MEMORY".into()], ..Rules::default() };
        assert!(refusal("db", &disabled, &myisam).unwrap().contains("disabled_storage_engines (MyISAM,MEMORY)"));
        assert_eq!(refusal("db", &disabled, &keyless), None);
    }
}
