//! MetaDB procedures: trim the heartbeat table, back up a product's databases and verify the
//! backups against the live data, restore them on rollback.

use crate::bindings::opshost::plugin::sql::{self, Backup, BackupRequest, Value};
use crate::ctx::{failed, info, not_found, recall, record, Result, Within};

/// The databases of one product deployment on one MetaDB connection.
pub struct MetaDb {
    pub connection: String,
    /// (role, database), e.g. ("rm", "rm_411"); a per-region database's role names its region
    /// after a slash, e.g. ("cm_hb/hangzhou", "cm_hb_421_hangzhou").
    pub databases: Vec<(String, String)>,
}

const BACKUPS_KEY: &str = "metadb.backups";
const VERIFIED_KEY: &str = "metadb.backups.verified";

impl MetaDb {
    pub fn database<'a>(&'a self, role: &'a str) -> &'a str {
        self.databases.iter().find(|(r, _)| r == role).map(|(_, d)| d.as_str()).unwrap_or(role)
    }

    /// Every database exists (precheck).
    pub fn check_exist(&self) -> Result<()> {
        for (role, db) in &self.databases {
            if !sql::database_exists(&self.connection, db).within(&format!("checking the {role} database"))? {
                let param = match role.split_once('/') {
                    // A per-region database, e.g. ("cm_hb/hangzhou", "oms_cm_hb_hangzhou").
                    Some((_, region)) => format!("that region {region}'s config.yaml (or parameter region_heartbeat_dbs)"),
                    None => format!("that config.yaml (or parameter {role}_db)"),
                };
                let fix = format!(
                    "point [metadb.{}] of the site config at the MetaDB this OMS uses (config.yaml's oms_meta_host and oms_meta_port), and check the name {param} gives it",
                    self.connection
                );
                return Err(not_found(format!("database {db} ({role}) does not exist on MetaDB connection {}: {fix}", self.connection)));
            }
        }
        Ok(())
    }

    pub fn scalar(&self, db: &str, statement: &str, params: &[Value]) -> Result<Value> {
        let rows = sql::query(&self.connection, db, statement, params)?;
        Ok(rows.rows.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Value::Null))
    }

    /// Rows of `heatbeat_sequence` below max(id): what the vendor deletes before the backup.
    pub fn heartbeat_rows_to_trim(&self, db: &str) -> Result<u64> {
        let v = self.scalar(db, "SELECT COUNT(*) FROM heatbeat_sequence WHERE id < (SELECT MAX(id) FROM heatbeat_sequence)", &[])?;
        Ok(as_u64(&v).unwrap_or(0))
    }

    /// The vendor's heartbeat trim in the portable two-statement form (MySQL 8 refuses the
    /// one-statement form with error 1093). Returns the rows deleted.
    ///
    /// `early`: the first of two passes, before the stop while OMS still runs (HA is off): the
    /// rows below max(id) now. The pass after the stop, the vendor's statement, then deletes only
    /// the rows written since: the same rows go as with the vendor's one pass, and the downtime
    /// no longer waits for most of them.
    pub fn trim_heartbeat(&self, db: &str, early: bool) -> Result<u64> {
        let max = self.scalar(db, "SELECT MAX(id) FROM heatbeat_sequence", &[]).within(&format!("reading max(id) of {db}.heatbeat_sequence"))?;
        let Some(max) = as_i64(&max) else {
            info(format!("{db}.heatbeat_sequence is empty: nothing to trim"));
            return Ok(0);
        };
        let deleted = sql::execute(&self.connection, db, "DELETE FROM heatbeat_sequence WHERE id < ?", &[Value::Int(max)])
            .within(&format!("trimming {db}.heatbeat_sequence"))?;
        record(if early { "metadb.heartbeat.trimmed-early-below" } else { "metadb.heartbeat.trimmed-below" }, &max)?;
        let when = if early { " before the stop, while OMS runs" } else { "" };
        info(format!("deleted {deleted} heartbeat rows below id {max} from {db}.heatbeat_sequence{when}"));
        Ok(deleted)
    }

    /// Dump every database (side by side, in one call), then verify each backup: non-empty, and
    /// its checksum equal to the live database's now (nothing writes while the product is
    /// stopped), every database read again side by side in one call. Records the backups for
    /// rollback.
    pub fn backup_and_verify(&self) -> Result<Vec<Backup>> {
        let requests: Vec<BackupRequest> = self.databases.iter().map(|(_, db)| BackupRequest { database: db.clone(), backup_name: db.clone() }).collect();
        let which = self.databases.iter().map(|(role, db)| format!("{db} ({role})")).collect::<Vec<_>>().join(", ");
        let backups = sql::dump_databases(&self.connection, &requests).within(&format!("backing up the MetaDB databases {which}"))?;
        record(BACKUPS_KEY, &(&self.connection, &backups))?;
        for b in &backups {
            if b.bytes == 0 || b.tables == 0 {
                return Err(failed(format!(
                    "backup of {} is empty ({} bytes, {} tables): the database looks wrong; nothing else was changed, run rollback to restart the old version",
                    b.database, b.bytes, b.tables
                )));
            }
            info(format!("backed up {}: {} tables, {} rows, {} bytes", b.database, b.tables, b.rows, b.bytes));
        }
        // Every database read again side by side, in one snapshot.
        let databases: Vec<String> = backups.iter().map(|b| b.database.clone()).collect();
        let live = sql::database_checksums(&self.connection, &databases).within(&format!("checksumming {}", databases.join(", ")))?;
        if live.len() != backups.len() {
            return Err(failed(format!(
                "the host gave {} checksums for the {} databases {}: the backups cannot be verified; nothing else was changed, run rollback to restart the old version",
                live.len(),
                backups.len(),
                databases.join(", ")
            )));
        }
        let mismatched: Vec<String> = backups
            .iter()
            .zip(live)
            .filter(|(b, live)| *live != b.checksum)
            .map(|(b, live)| format!("backup {} does not match the live database {} (checksum {} vs {live})", b.name, b.database, b.checksum))
            .collect();
        if !mismatched.is_empty() {
            return Err(failed(format!("{}: something wrote to the MetaDB during the backup; stop it and run rollback", mismatched.join("; "))));
        }
        record(VERIFIED_KEY, &true)?;
        info(format!("verified {} backups against the live databases", backups.len()));
        Ok(backups)
    }

    /// The connection and backups recorded by the upgrade, if they were all taken and verified.
    pub fn verified_backups() -> Result<Option<(String, Vec<Backup>)>> {
        if recall::<bool>(VERIFIED_KEY)? != Some(true) {
            return Ok(None);
        }
        recall(BACKUPS_KEY)
    }

    /// The seed's rollback of the data: drop and create each database, then restore them all from
    /// their backups (side by side, in one call); the host verifies each restored checksum against
    /// the one recorded at dump time.
    pub fn restore(connection: &str, backups: &[Backup]) -> Result<()> {
        // From here the databases are replaced: a rollback that fails on and is run again finds
        // them empty or part-restored, and must not need to read them before it restores.
        if !Self::restore_began()? {
            record(RESTORE_BEGAN_KEY, &true)?;
        }
        for b in backups {
            sql::drop_database(connection, &b.database).within(&format!("dropping {}", b.database))?;
            sql::create_database(connection, &b.database).within(&format!("creating {}", b.database))?;
        }
        let requests: Vec<BackupRequest> = backups.iter().map(|b| BackupRequest { database: b.database.clone(), backup_name: b.name.clone() }).collect();
        let which = backups.iter().map(|b| format!("{} from backup {}", b.database, b.name)).collect::<Vec<_>>().join(", ");
        let restored = sql::restore_databases(connection, &requests).within(&format!("restoring {which}"))?;
        for (b, r) in backups.iter().zip(&restored) {
            if r.checksum != b.checksum {
                return Err(failed(format!("restored {} has checksum {} but the backup recorded {}", b.database, r.checksum, b.checksum)));
            }
            info(format!("restored {} ({} rows), checksum verified", b.database, r.rows));
        }
        Ok(())
    }
}

/// Run record: a rollback of this run has dropped the databases to restore them.
const RESTORE_BEGAN_KEY: &str = "metadb.restore.began";

impl MetaDb {
    /// Whether a rollback of this run has begun replacing the databases (an earlier attempt that
    /// failed after it): what it reads from them before the restore may be gone.
    pub fn restore_began() -> Result<bool> {
        Ok(recall::<bool>(RESTORE_BEGAN_KEY)? == Some(true))
    }
}

pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Uint(u) => i64::try_from(*u).ok(),
        Value::Text(t) => t.parse().ok(),
        _ => None,
    }
}
pub fn as_u64(v: &Value) -> Option<u64> {
    as_i64(v).and_then(|i| u64::try_from(i).ok())
}
