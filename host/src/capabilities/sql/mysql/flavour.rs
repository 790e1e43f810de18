//! Which server a MetaDB is, and what opshost's dump and restore do differently on each. MariaDB
//! is the one tested here (every path, every column type); MySQL 5.7/8.0 and OceanBase's MySQL
//! mode cannot be run on this machine, so their differences are decided here, by name, never by
//! an error met half way through a backup or a rollback:
//!
//! | | MariaDB | MySQL 5.7 / 8.0 | OceanBase (MySQL mode) |
//! |---|---|---|---|
//! | readers' shared snapshot | `FLUSH TABLES WITH READ LOCK`, then each reader's consistent snapshot | same | one connection, one snapshot: it has no global read lock (the fallback mysqldump `--single-transaction` uses) |
//! | opshost's row reader | yes | yes (JSON comes as its text, as mysqldump writes it) | no: mysql_async's reader |
//! | rows restored by | LOAD DATA LOCAL when the server allows it | same (MySQL 8 ships with `local_infile` off: INSERTs) | the dump's INSERTs |
//! | plain secondary keys restored | after the rows (indexes.rs) | with the rows (untested here: key order) | with the rows |
//! | `SHOW CREATE` names backquoted whatever the server's `sql_quote_show_create` | yes | yes | as the server shows them |
//! | a dump replays its rows under `ALLOW_INVALID_DATES` (dates kept as they are) | yes | yes | no |
//! | a bulk session lifts | `max_statement_time`, `max_join_size`, InnoDB's strict mode | `max_execution_time`, `max_join_size`, InnoDB's strict mode | `ob_query_timeout`, `ob_trx_timeout` |
//!
//! Whatever the flavour, every backup and every restore is verified by its content checksum.

use super::format::DUMP_SQL_MODE;

/// What a dump, checksum or restore session must have whatever the server's globals, or it
/// reads or writes something else than the database: no sql_mode flag (under `ANSI_QUOTES`,
/// `ANSI` or `ORACLE`, `SHOW CREATE` quotes names with double quotes, which the dump's own mode
/// replays as strings; `PAD_CHAR_TO_FULL_LENGTH` pads CHAR values), every statement its own
/// transaction (a global `autocommit = 0` would leave a restore's rows uncommitted), and every
/// row of a SELECT (a global `sql_select_limit` would cut a dump and its checksum alike, and the
/// backup would verify). [`Flavour::bulk_session`] sets this and more.
pub const BULK_SESSION: &str = "SET SESSION sql_mode = '', autocommit = 1, sql_select_limit = 9223372036854775807";

/// A MetaDB server's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    MariaDb,
    MySql,
    OceanBase,
}

impl Flavour {
    /// From `SELECT VERSION(), @@version_comment`.
    pub fn of(version: &str, comment: &str) -> Flavour {
        let (v, c) = (version.to_ascii_lowercase(), comment.to_ascii_lowercase());
        if v.contains("oceanbase") || c.contains("oceanbase") {
            Flavour::OceanBase
        } else if v.contains("mariadb") || c.contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavour::MariaDb => "MariaDB",
            Flavour::MySql => "MySQL",
            Flavour::OceanBase => "OceanBase (MySQL mode)",
        }
    }

    /// Several readers may start their snapshots together under the global read lock.
    pub fn shared_snapshot(self) -> bool {
        self != Flavour::OceanBase
    }

    /// opshost's own binary-protocol row reader may read it.
    pub fn bulk_reader(self) -> bool {
        self != Flavour::OceanBase
    }

    /// Rows may be restored with `LOAD DATA LOCAL INFILE` (when the server allows LOCAL INFILE).
    pub fn load_data(self) -> bool {
        self != Flavour::OceanBase
    }

    /// A restore may send rows of long values as prepared INSERTs with the values bound
    /// (load.rs); only where the restored content has been seen equal.
    pub fn bind_values(self) -> bool {
        self == Flavour::MariaDb
    }

    /// A restore's LOAD DATA may read the fields of a table whose every text column is utf8mb4
    /// as bytes (`CHARACTER SET binary`, load.rs); only where the restored content has been seen
    /// equal.
    pub fn load_bytes(self) -> bool {
        self == Flavour::MariaDb
    }

    /// A restore may hold a table's plain keys back until its rows are in (indexes.rs); only
    /// where the final `SHOW CREATE TABLE` has been seen equal.
    pub fn defer_keys(self) -> bool {
        self == Flavour::MariaDb
    }

    /// What a connection of a dump, checksum or restore runs first: [`BULK_SESSION`], and no
    /// limit the server puts on a statement stops one (a dump reads a big table in one SELECT,
    /// and a restore builds its keys in one ALTER): MariaDB's `max_statement_time`, MySQL's
    /// `max_execution_time`, `max_join_size` (through `sql_big_selects`), OceanBase's
    /// `ob_query_timeout` of 10 s and `ob_trx_timeout` of 100 s by default (microseconds).
    /// InnoDB's strict mode is off, as it was when some tables were made: a table whose rows
    /// could exceed a page (created with a warning then) is refused under it, and the rollback's
    /// restore must create every table the backup holds. The checksum, which covers
    /// `SHOW CREATE TABLE`, judges what comes of it. And on MariaDB CHECK constraints are not
    /// checked, as they were not when some rows were written: the backup holds those rows.
    pub fn bulk_session(self) -> &'static str {
        match self {
            Flavour::MariaDb => {
                "SET SESSION sql_mode = '', autocommit = 1, sql_select_limit = 9223372036854775807, sql_quote_show_create = 1, max_statement_time = 0, sql_big_selects = 1, innodb_strict_mode = 0, check_constraint_checks = 0"
            }
            Flavour::MySql => {
                "SET SESSION sql_mode = '', autocommit = 1, sql_select_limit = 9223372036854775807, sql_quote_show_create = 1, max_execution_time = 0, sql_big_selects = 1, innodb_strict_mode = 0"
            }
            Flavour::OceanBase => {
                "SET SESSION sql_mode = '', autocommit = 1, sql_select_limit = 9223372036854775807, ob_query_timeout = 86400000000, ob_trx_timeout = 86400000000"
            }
        }
    }

    /// What makes `SHOW CREATE` backquote every name whatever the server's
    /// `sql_quote_show_create` (part of [`Flavour::bulk_session`]): the dump's readers of a
    /// definition (keys held back, a table's AUTO_INCREMENT turn, the sequences a default takes)
    /// know names by their quotes, and a plan, a dump and a checksum must read a definition
    /// alike. Not on OceanBase, which may not have the variable (not known here).
    pub fn quoted_names(self) -> Option<&'static str> {
        (self != Flavour::OceanBase).then_some("SET SESSION sql_quote_show_create = 1")
    }

    /// The `sql_mode` a dump's rows replay in (its header sets it): [`DUMP_SQL_MODE`], and on
    /// MariaDB and MySQL `ALLOW_INVALID_DATES`, so that a date the server kept under that mode
    /// (`2024-02-30`) is written back as it is, not as `0000-00-00` (which fails the restore's
    /// verification). Not on OceanBase, whose acceptance of the mode is not known here.
    pub fn dump_sql_mode(self) -> &'static str {
        match self {
            Flavour::MariaDb | Flavour::MySql => "NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES",
            Flavour::OceanBase => DUMP_SQL_MODE,
        }
    }

    /// The plan's words for how a dump reads and a restore writes on this flavour.
    pub fn paths(self) -> &'static str {
        match self {
            Flavour::MariaDb | Flavour::MySql => {
                "dumps read side by side in one snapshot (FLUSH TABLES WITH READ LOCK for milliseconds; one connection without RELOAD)"
            }
            Flavour::OceanBase => {
                "dumps read on one connection in one snapshot (OceanBase has no global read lock) through mysql_async; restores replay INSERTs"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Flavour;

    #[test]
    fn flavours_from_what_servers_report() {
        assert_eq!(Flavour::of("10.11.19-MariaDB-0+deb12u1", "Debian 12"), Flavour::MariaDb);
        assert_eq!(Flavour::of("5.5.5-10.6.12-MariaDB", "mariadb.org binary distribution"), Flavour::MariaDb);
        assert_eq!(Flavour::of("8.0.36", "MySQL Community Server - GPL"), Flavour::MySql);
        assert_eq!(Flavour::of("5.7.44-log", "MySQL Community Server (GPL)"), Flavour::MySql);
        assert_eq!(Flavour::of("5.7.25-OceanBase_CE-v4.2.1.2", "OceanBase_CE 4.2.1.2 (r102000042023120514-...)"), Flavour::OceanBase);
        assert_eq!(Flavour::of("5.7.25", "OceanBase 3.2.4.1"), Flavour::OceanBase);
        let ob = Flavour::OceanBase;
        assert!(!ob.shared_snapshot() && !ob.bulk_reader() && !ob.load_data());
        for f in [Flavour::MariaDb, Flavour::MySql, Flavour::OceanBase] {
            assert!(f.dump_sql_mode().starts_with(super::DUMP_SQL_MODE), "{f:?}");
        }
        let my = Flavour::MySql;
        assert!(my.shared_snapshot() && my.bulk_reader() && my.load_data());
        // Every flavour's session has what none may lack.
        for f in [Flavour::MariaDb, Flavour::MySql, Flavour::OceanBase] {
            assert!(f.bulk_session().starts_with(super::BULK_SESSION), "{f:?}");
            // And names quoted where the server has the setting, in the full session too.
            let quoted = f.quoted_names().map(|q| q.trim_start_matches("SET SESSION "));
            assert_eq!(quoted.is_some_and(|q| f.bulk_session().contains(q)), f != Flavour::OceanBase, "{f:?}");
        }
    }
}
