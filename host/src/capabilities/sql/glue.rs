//! The sql capability's WIT glue: each `opshost:plugin/sql` function as one line through the
//! host-call path ([`crate::runtime::host_call`]): its entry in the table of host calls, the
//! grant it needs, its journal arguments, the statement policy and the run's backup budget.
//! Backends ([`super::real`], [`super::fake`]) never see any of this.

use serde_json::json;

use super::{check_backup_name, check_backup_requests, check_database, policy, Backup, BackupRequest, Rows, Sql, Value};
use crate::bindings::opshost::plugin::sql as wit;
use crate::bindings::Error;
use crate::runtime::calls::{self, HostCall};
use crate::runtime::host_call::{check_list_len, measured_args, CallArgs, MAX_LIST_ITEMS, MAX_STATEMENT_PARAMS};
use crate::runtime::state::HostState;

impl HostState {
    /// Whether a plugin's statement may run (checked by [`policy`] against the grants and the
    /// tables other capabilities own); a refusal is `denied`, returned after the grant check.
    fn check_statement(&self, connection: &str, database: &str, statement: &str, access: policy::Access) -> Result<(), Error> {
        // Statements over the payload limit are refused by the host-call path; don't parse them.
        if statement.len() > self.env.limits.max_payload_bytes {
            return Ok(());
        }
        let grants = self.env.grants.clone();
        let granted = move |db: &str| grants.allows("sql", &format!("{connection}/{db}"));
        let p = policy::StatementPolicy { database, granted: &granted, reserved: &self.env.site.reserved_tables };
        policy::check(statement, access, &p).map(|_| ()).map_err(Error::Denied)
    }

    /// The journal's arguments of a statement call: measured before they are built as JSON
    /// ([`measured_args`]), as their values' bytes may be many times their size as JSON.
    fn statement_args(&self, connection: &str, database: &str, statement: &str, params: &[Value]) -> CallArgs {
        /// As `json!` writes them: keys in order.
        #[derive(serde::Serialize)]
        struct Args<'a> {
            connection: &'a str,
            database: &'a str,
            params: &'a [Value],
            statement: &'a str,
        }
        measured_args(&Args { connection, database, params, statement }, self.env.limits.max_payload_bytes)
    }

    /// A guard for backups about to be taken: refused past the run's count or bytes; `taken` adds
    /// what they came to.
    fn backup_budget(&self, n: usize) -> BackupBudget {
        BackupBudget { taken: self.env.backups_taken.clone(), n: n as u32, max: self.env.limits.max_backups, max_bytes: self.env.limits.max_backup_gb << 30 }
    }

    /// The host-call path of `dump-databases` and `restore-databases` (`call`): every database
    /// named is granted, the requests are checked, then `run` gets the backend, the connection
    /// and the (database, backup name) pairs.
    async fn backup_set<F, Fut>(
        &mut self,
        call: &'static HostCall<calls::Databases>,
        connection: String,
        requests: Vec<BackupRequest>,
        run: F,
    ) -> wasmtime::Result<Result<Vec<Backup>, Error>>
    where
        F: FnOnce(std::sync::Arc<dyn Sql>, String, Vec<(String, String)>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Backup>, Error>>,
    {
        if let Err(e) = check_list_len(call.name, "requests", requests.len(), MAX_LIST_ITEMS) {
            return Ok(Err(e));
        }
        let s = self.env.caps.sql.clone();
        let databases: Vec<String> = requests.iter().map(|r| r.database.clone()).collect();
        let args = json!({"connection": connection, "requests": requests.iter().map(|r| json!({"database": r.database, "backup_name": r.backup_name})).collect::<Vec<_>>()});
        let budget = (call == calls::SQL_DUMP_DATABASES).then(|| self.backup_budget(requests.len()));
        self.call(call, (connection.clone(), databases), args, async move {
            check_backup_requests(call.name.trim_start_matches("sql."), &requests)?;
            if let Some(b) = &budget {
                b.check()?;
            }
            if call == calls::SQL_RESTORE_DATABASES {
                for r in &requests {
                    restored_where_taken(s.as_ref(), &r.database, &r.backup_name).await?;
                }
            }
            let backups = run(s, connection, requests.into_iter().map(|r| (r.database, r.backup_name)).collect()).await?;
            if let Some(b) = &budget {
                b.taken(&backups);
            }
            Ok(backups)
        })
        .await
    }
}

/// A plugin restores a backup only into the database it was taken of. Into another, it could
/// carry a table that another capability owns (the console's `oms_normal_config`, reserved by
/// database and table) to a database where the statement policy does not reserve it, change it
/// there, and carry it back.
async fn restored_where_taken(s: &dyn Sql, database: &str, backup_name: &str) -> Result<(), Error> {
    let taken_of = s.backup_database(backup_name).await?;
    if taken_of != database {
        return Err(Error::Denied(format!(
            "backup {backup_name} was taken of database {taken_of}, not {database}: a plugin restores a backup only into the database it was taken of"
        )));
    }
    Ok(())
}

/// What [`HostState::backup_budget`] guards.
struct BackupBudget {
    taken: std::sync::Arc<std::sync::Mutex<(u32, u64)>>,
    n: u32,
    max: u32,
    max_bytes: u64,
}

impl BackupBudget {
    fn check(&self) -> Result<(), Error> {
        let (count, bytes) = *self.taken.lock().unwrap();
        if count + self.n > self.max || bytes >= self.max_bytes {
            return Err(Error::Denied(format!(
                "this run has taken {count} backups of {} MiB together; another {} would pass the sandbox limit of {} backups or {} GiB (max_backups, max_backup_gb in [limits])",
                bytes >> 20,
                self.n,
                self.max,
                self.max_bytes >> 30
            )));
        }
        Ok(())
    }
    fn taken(&self, backups: &[Backup]) {
        let mut t = self.taken.lock().unwrap();
        t.0 += backups.len() as u32;
        t.1 += backups.iter().map(|b| b.bytes).sum::<u64>();
    }
}

impl wit::Host for HostState {
    async fn query(&mut self, connection: String, database: String, statement: String, params: Vec<Value>) -> wasmtime::Result<Result<Rows, Error>> {
        if let Err(e) = check_list_len(calls::SQL_QUERY.name, "params", params.len(), MAX_STATEMENT_PARAMS) {
            return Ok(Err(e));
        }
        let s = self.env.caps.sql.clone();
        let allowed = self.check_statement(&connection, &database, &statement, policy::Access::Read);
        let args = self.statement_args(&connection, &database, &statement, &params);
        self.call(calls::SQL_QUERY, (connection.clone(), database.clone()), args, async move {
            check_database(&database)?;
            allowed?;
            s.query(&connection, &database, &statement, &params).await
        })
        .await
    }
    async fn execute(&mut self, connection: String, database: String, statement: String, params: Vec<Value>) -> wasmtime::Result<Result<u64, Error>> {
        if let Err(e) = check_list_len(calls::SQL_EXECUTE.name, "params", params.len(), MAX_STATEMENT_PARAMS) {
            return Ok(Err(e));
        }
        let s = self.env.caps.sql.clone();
        let allowed = self.check_statement(&connection, &database, &statement, policy::Access::Write);
        let args = self.statement_args(&connection, &database, &statement, &params);
        self.call(calls::SQL_EXECUTE, (connection.clone(), database.clone()), args, async move {
            check_database(&database)?;
            allowed?;
            s.execute(&connection, &database, &statement, &params).await
        })
        .await
    }
    async fn dump_database(&mut self, connection: String, database: String, backup_name: String) -> wasmtime::Result<Result<Backup, Error>> {
        let s = self.env.caps.sql.clone();
        let budget = self.backup_budget(1);
        self.call(
            calls::SQL_DUMP_DATABASE,
            (connection.clone(), database.clone()),
            json!({"connection": connection, "database": database, "backup_name": backup_name}),
            async move {
                check_database(&database)?;
                check_backup_name(&backup_name)?;
                budget.check()?;
                let backup = s.dump_database(&connection, &database, &backup_name).await?;
                budget.taken(std::slice::from_ref(&backup));
                Ok(backup)
            },
        )
        .await
    }
    async fn dump_databases(&mut self, connection: String, requests: Vec<BackupRequest>) -> wasmtime::Result<Result<Vec<Backup>, Error>> {
        self.backup_set(calls::SQL_DUMP_DATABASES, connection, requests, |s, c, dumps| async move { s.dump_databases(&c, &dumps).await }).await
    }
    async fn restore_database(&mut self, connection: String, database: String, backup_name: String) -> wasmtime::Result<Result<Backup, Error>> {
        let s = self.env.caps.sql.clone();
        self.call(
            calls::SQL_RESTORE_DATABASE,
            (connection.clone(), database.clone()),
            json!({"connection": connection, "database": database, "backup_name": backup_name}),
            async move {
                check_database(&database)?;
                check_backup_name(&backup_name)?;
                restored_where_taken(s.as_ref(), &database, &backup_name).await?;
                s.restore_database(&connection, &database, &backup_name).await
            },
        )
        .await
    }
    async fn restore_databases(&mut self, connection: String, requests: Vec<BackupRequest>) -> wasmtime::Result<Result<Vec<Backup>, Error>> {
        self.backup_set(calls::SQL_RESTORE_DATABASES, connection, requests, |s, c, restores| async move { s.restore_databases(&c, &restores).await }).await
    }
    async fn create_database(&mut self, connection: String, database: String) -> wasmtime::Result<Result<(), Error>> {
        let s = self.env.caps.sql.clone();
        self.call(calls::SQL_CREATE_DATABASE, (connection.clone(), database.clone()), json!({"connection": connection, "database": database}), async move {
            check_database(&database)?;
            s.create_database(&connection, &database).await
        })
        .await
    }
    async fn drop_database(&mut self, connection: String, database: String) -> wasmtime::Result<Result<(), Error>> {
        let s = self.env.caps.sql.clone();
        self.call(calls::SQL_DROP_DATABASE, (connection.clone(), database.clone()), json!({"connection": connection, "database": database}), async move {
            check_database(&database)?;
            s.drop_database(&connection, &database).await
        })
        .await
    }
    async fn database_exists(&mut self, connection: String, database: String) -> wasmtime::Result<Result<bool, Error>> {
        let s = self.env.caps.sql.clone();
        self.call(calls::SQL_DATABASE_EXISTS, (connection.clone(), database.clone()), json!({"connection": connection, "database": database}), async move {
            check_database(&database)?;
            s.database_exists(&connection, &database).await
        })
        .await
    }
    async fn database_checksum(&mut self, connection: String, database: String) -> wasmtime::Result<Result<String, Error>> {
        let s = self.env.caps.sql.clone();
        self.call(calls::SQL_DATABASE_CHECKSUM, (connection.clone(), database.clone()), json!({"connection": connection, "database": database}), async move {
            check_database(&database)?;
            s.database_checksum(&connection, &database).await
        })
        .await
    }
    async fn database_checksums(&mut self, connection: String, databases: Vec<String>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        if let Err(e) = check_list_len(calls::SQL_DATABASE_CHECKSUMS.name, "databases", databases.len(), MAX_LIST_ITEMS) {
            return Ok(Err(e));
        }
        let s = self.env.caps.sql.clone();
        let args = json!({"connection": connection, "databases": databases});
        self.call(calls::SQL_DATABASE_CHECKSUMS, (connection.clone(), databases.clone()), args, async move {
            super::check_databases("database-checksums", &databases)?;
            s.database_checksums(&connection, &databases).await
        })
        .await
    }
}
