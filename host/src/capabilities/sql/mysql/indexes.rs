//! Secondary indexes built after the rows, as myloader's `--innodb-optimize-keys` does: a table's
//! plain `KEY`s leave its `CREATE TABLE` and come back in one `ALTER TABLE … ADD KEY …` once
//! every row is in, where InnoDB builds each from sorted rows instead of inserting into it row
//! by row (a 340 000-row table with one text key loads in about 70 % of the time).
//!
//! The table ends as it was: the server orders a table's keys primary, unique, plain, fulltext,
//! each class in the order given, so plain keys added back in their order are where they were.
//! A table keeps its definition untouched when that reasoning could fail or the definition
//! needs its keys: not InnoDB, partitioned, system-versioned, with foreign keys (they need an index), FULLTEXT or
//! SPATIAL keys, or a plain key leading with the AUTO_INCREMENT column (it may be the column's
//! only index). So does a table a foreign key refers to ([`referenced_tables`]): the key may
//! refer to one of its plain keys, which InnoDB needs as the referring table is created. The
//! restore's checksum covers `SHOW CREATE TABLE`, and is the judge.
//!
//! Only big tables pay for it: an `ALTER TABLE` costs a small table more than its keys cost it
//! during the load (see [`worth_deferring`]).

use super::load::ident;

/// A table's plain keys, held back until its rows are in.
#[derive(Debug, PartialEq)]
pub struct Deferred {
    /// The table, quoted as in the dump.
    pub table: String,
    /// Each key's definition as the dump has it: ``KEY `name` (`name`)``.
    pub keys: Vec<String>,
}

impl Deferred {
    /// The statement that adds the keys back to `table` in `database` (quoted).
    pub fn alter(&self, database: &str) -> String {
        let adds: Vec<String> = self.keys.iter().map(|k| format!("ADD {k}")).collect();
        format!("ALTER TABLE {database}.{} {}", self.table, adds.join(", "))
    }
}

/// Tables estimated at fewer rows keep their keys while they load. Measured on MariaDB 10.11 with
/// a `VARCHAR(64)` key, 60 tables each way: at 400 rows a table loads with its key in 7.7 ms
/// against 5.8 ms plus 4.6 ms for the `ALTER` without it; at 5 000 rows both take 38 ms; above,
/// holding back wins more the bigger the table (a 340 000-row table: 70 % of the time).
pub const DEFER_ROWS: u64 = 10_000;

/// Whether to hold back the plain keys of a table the dump estimated at `rows` (None: a dump
/// written before the estimates, whose tables count as big, as they did then).
pub fn worth_deferring(rows: Option<u64>) -> bool {
    rows.is_none_or(|r| r >= DEFER_ROWS)
}

/// The table a `CREATE TABLE` line of a dump defines, quoted, when the statement stands alone:
/// a list of definitions and table options, not `LIKE` or `… SELECT`, so that it can run before
/// or after any other such statement.
pub fn defined_table(create: &str) -> Option<&str> {
    let rest = create.strip_prefix("CREATE TABLE ")?;
    let (table, after) = ident(rest)?;
    let open = after.find('(')?;
    if !after[..open].trim().is_empty() {
        return None;
    }
    let (_, close) = definitions(after, open)?;
    (!after[close + 1..].to_ascii_uppercase().contains("SELECT")).then_some(table)
}

/// A dump's `CREATE TABLE` statement (one line) as the statement to run now and the keys to add
/// after the rows; None when the table keeps its definition as it is.
pub fn split(create: &str) -> Option<(String, Deferred)> {
    let rest = create.strip_prefix("CREATE TABLE ")?;
    let (table, after) = ident(rest)?;
    let open = after.find('(')?;
    let (parts, close) = definitions(after, open)?;
    let options = &after[close + 1..];
    // A system-versioned table takes no ALTER without system_versioning_alter_history.
    if !options.contains("ENGINE=InnoDB") || options.contains("PARTITION") || options.contains("WITH SYSTEM VERSIONING") {
        return None;
    }
    let auto_increment = auto_increment_columns(&parts);
    let mut keep = Vec::new();
    let mut keys = Vec::new();
    for p in parts {
        let upper = p.to_ascii_uppercase();
        if ["FULLTEXT", "SPATIAL", "FOREIGN KEY"].iter().any(|w| upper.starts_with(w)) || (upper.starts_with("CONSTRAINT") && upper.contains("FOREIGN KEY")) {
            return None;
        }
        if let Some(k) = p.strip_prefix("KEY ") {
            let (_, columns) = ident(k)?;
            let first = columns.trim_start().strip_prefix('(').and_then(ident).map(|(c, _)| c);
            if first.is_none_or(|c| auto_increment.contains(&c)) {
                return None;
            }
            keys.push(p.to_string());
        } else {
            keep.push(p);
        }
    }
    if keys.is_empty() {
        return None;
    }
    let now = format!("CREATE TABLE {table}{}({}){options}", &after[..open], keep.join(", "));
    Some((now, Deferred { table: table.to_string(), keys }))
}

/// The tables a dump's `CREATE TABLE` line refers to by foreign key, as (database, table), both
/// quoted; `database` (quoted) for a reference without one. Text that only reads like a
/// reference (a comment) names a table too many, which only keeps that table's keys in place.
pub fn referenced_tables(create: &str, database: &str) -> Vec<(String, String)> {
    if !create.starts_with("CREATE TABLE ") {
        return Vec::new();
    }
    create
        .match_indices(" REFERENCES ")
        .filter_map(|(at, word)| {
            let (first, rest) = ident(&create[at + word.len()..])?;
            match rest.strip_prefix('.').and_then(ident) {
                Some((table, _)) => Some((first.to_string(), table.to_string())),
                None => Some((database.to_string(), first.to_string())),
            }
        })
        .collect()
}

/// The columns among a table's `definitions` that may be AUTO_INCREMENT (a comment naming it
/// only makes the callers more careful).
fn auto_increment_columns<'a>(definitions: &[&'a str]) -> Vec<&'a str> {
    definitions.iter().filter(|p| p.starts_with('`') && p.contains(" AUTO_INCREMENT")).filter_map(|p| ident(p)).map(|(c, _)| c).collect()
}

/// The table a dump's `CREATE TABLE` line defines, quoted, when it has an AUTO_INCREMENT column.
pub fn auto_increment_table(create: &str) -> Option<&str> {
    let rest = create.strip_prefix("CREATE TABLE ")?;
    let (table, after) = ident(rest)?;
    let open = after.find('(')?;
    let (parts, _) = definitions(after, open)?;
    (!auto_increment_columns(&parts).is_empty()).then_some(table)
}

/// The top-level definitions between `s[open]` (a `(`) and its matching `)`, trimmed, and where
/// that `)` is. Quotes (`'…'`, `"…"`, `` `…` ``) and nested parentheses are skipped over.
fn definitions(s: &str, open: usize) -> Option<(Vec<&str>, usize)> {
    let b = s.as_bytes();
    let (mut depth, mut start, mut parts, mut i) = (0usize, open + 1, Vec::new(), open);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' && q != b'`' {
                        i += 2;
                        continue;
                    }
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(s[start..i].trim());
                    return Some((parts, i));
                }
            }
            b',' if depth == 1 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = "CREATE TABLE `oms_project` (   `id` bigint(20) NOT NULL,   `name` varchar(128) DEFAULT 'a,(b)',   `cost` decimal(10,2) DEFAULT NULL COMMENT 'it''s, \\'x\\')',   PRIMARY KEY (`id`),   UNIQUE KEY `u` (`cost`),   KEY `name` (`name`),   KEY `n,c` (`name`(10),`cost`) COMMENT 'a, b' ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

    #[test]
    fn plain_keys_wait_for_the_rows_and_come_back_in_their_order() {
        let (now, later) = split(PROJECT).unwrap();
        assert_eq!(
            now,
            "CREATE TABLE `oms_project` (`id` bigint(20) NOT NULL, `name` varchar(128) DEFAULT 'a,(b)', `cost` decimal(10,2) DEFAULT NULL COMMENT 'it''s, \\'x\\')', PRIMARY KEY (`id`), UNIQUE KEY `u` (`cost`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert_eq!(later.keys, ["KEY `name` (`name`)", "KEY `n,c` (`name`(10),`cost`) COMMENT 'a, b'"]);
        assert_eq!(later.alter("`db`"), "ALTER TABLE `db`.`oms_project` ADD KEY `name` (`name`), ADD KEY `n,c` (`name`(10),`cost`) COMMENT 'a, b'");
    }

    #[test]
    fn only_tables_estimated_big_hold_their_keys_back() {
        assert!(!worth_deferring(Some(0)));
        assert!(!worth_deferring(Some(DEFER_ROWS - 1)));
        assert!(worth_deferring(Some(DEFER_ROWS)));
        assert!(worth_deferring(None), "a dump without estimates defers as before");
    }

    #[test]
    fn standalone_definitions_are_recognised() {
        assert_eq!(defined_table(PROJECT), Some("`oms_project`"));
        assert_eq!(defined_table("CREATE TABLE `a``b` (`x` int) ENGINE=InnoDB;"), Some("`a``b`"));
        for c in ["CREATE TABLE `t` LIKE `u`;", "CREATE TABLE `t` (`x` int) SELECT 1 AS x;", "CREATE TABLE `t` (`x` int", "CREATE VIEW `v` AS SELECT 1;"] {
            assert_eq!(defined_table(c), None, "{c}");
        }
    }

    #[test]
    fn tables_whose_definition_needs_its_keys_keep_it() {
        let cases = [
            // No plain key.
            "CREATE TABLE `hb` (   `id` bigint(20) NOT NULL AUTO_INCREMENT,   PRIMARY KEY (`id`) ) ENGINE=InnoDB AUTO_INCREMENT=7",
            // The AUTO_INCREMENT column's only index.
            "CREATE TABLE `t` (   `a` int(11) NOT NULL,   `id` int(11) NOT NULL AUTO_INCREMENT,   PRIMARY KEY (`a`,`id`),   KEY `id` (`id`) ) ENGINE=InnoDB",
            "CREATE TABLE `t` (   `a` int(11),   KEY `a` (`a`),   FULLTEXT KEY `f` (`b`) ) ENGINE=InnoDB",
            "CREATE TABLE `t` (   `a` int(11),   KEY `a` (`a`),   CONSTRAINT `fk` FOREIGN KEY (`a`) REFERENCES `p` (`id`) ) ENGINE=InnoDB",
            "CREATE TABLE `t` (   `a` int(11),   KEY `a` (`a`) ) ENGINE=MyISAM",
            "CREATE TABLE `t` (   `a` int(11),   KEY `a` (`a`) ) ENGINE=InnoDB  PARTITION BY HASH (`a`) PARTITIONS 2",
            // Not a statement this reads.
            "CREATE TABLE `t` (   `a` int(11),   KEY `a` (`a`)",
            "INSERT INTO `t` VALUES (1)",
        ];
        for c in cases {
            assert_eq!(split(c), None, "{c}");
        }
    }

    #[test]
    fn the_tables_a_definition_refers_to_by_foreign_key_are_named_with_their_database() {
        let child = "CREATE TABLE `c` (`a` int(11), `b` int(11), KEY `a` (`a`), CONSTRAINT `x` FOREIGN KEY (`a`) REFERENCES `p` (`code`), \
                     CONSTRAINT `y` FOREIGN KEY (`b`) REFERENCES `other``db`.`q` (`id`) ON DELETE CASCADE) ENGINE=InnoDB";
        assert_eq!(referenced_tables(child, "`mine`"), [("`mine`".to_string(), "`p`".to_string()), ("`other``db`".to_string(), "`q`".to_string())]);
        assert_eq!(referenced_tables("CREATE TABLE `t` (`a` int(11), KEY `a` (`a`)) ENGINE=InnoDB", "`mine`"), Vec::<(String, String)>::new());
        assert_eq!(referenced_tables("DROP TABLE IF EXISTS `t`;", "`mine`"), Vec::<(String, String)>::new());
    }
}
