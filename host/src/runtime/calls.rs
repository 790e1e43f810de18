//! The one table of host calls: every WIT function a plugin can call, declared once with its name
//! (as the journal, transcripts and fault rules spell it), its effect (which decides replay on
//! resume and whether `plan` may make it) and its deadline class. The glue of each capability
//! passes one of these to [`crate::runtime::state::HostState::call`]; nothing else names a call.

use serde::{Deserialize, Serialize};

/// What a call does to the world; a journal decides on replay from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Read,
    /// Doing it twice leaves the same state as once (stop, create if absent, set a value).
    IdempotentWrite,
    Write,
}

/// Which deadline a call gets from `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// `call_timeout_s`.
    Short,
    /// `long_call_timeout_s`: dumps, restores, image loads, exec, waits for the operator.
    Long,
}

/// One WIT function as the host-call path sees it.
#[derive(Debug, PartialEq, Eq)]
pub struct HostCall {
    pub name: &'static str,
    pub effect: Effect,
    pub deadline: Deadline,
}

macro_rules! host_calls {
    ($($id:ident = $name:literal, $effect:ident, $deadline:ident;)*) => {
        $(pub const $id: &HostCall = &HostCall { name: $name, effect: Effect::$effect, deadline: Deadline::$deadline };)*
        /// Every host call, for checks that take a call by name (fault rules).
        pub const ALL: &[&HostCall] = &[$($id),*];
    };
}

host_calls! {
    DOCKER_INSPECT = "docker.inspect", Read, Short;
    DOCKER_STOP = "docker.stop", IdempotentWrite, Short;
    DOCKER_START = "docker.start", IdempotentWrite, Short;
    DOCKER_RESTART = "docker.restart", IdempotentWrite, Short;
    DOCKER_REMOVE = "docker.remove", Write, Short;
    DOCKER_RUN = "docker.run", Write, Short;
    DOCKER_CREATE = "docker.create", Write, Short;
    DOCKER_CHECK_RUN = "docker.check-run", Read, Short;
    DOCKER_LOAD_IMAGE = "docker.load-image", IdempotentWrite, Long;
    DOCKER_IMAGE_EXISTS = "docker.image-exists", Read, Short;
    DOCKER_EXEC = "docker.exec", Write, Long;
    DOCKER_LOGS = "docker.logs", Read, Short;
    DOCKER_READ_FILE = "docker.read-file", Read, Short;
    SQL_QUERY = "sql.query", Read, Short;
    SQL_EXECUTE = "sql.execute", Write, Short;
    SQL_DUMP_DATABASE = "sql.dump-database", IdempotentWrite, Long;
    SQL_DUMP_DATABASES = "sql.dump-databases", IdempotentWrite, Long;
    SQL_RESTORE_DATABASE = "sql.restore-database", Write, Long;
    SQL_RESTORE_DATABASES = "sql.restore-databases", Write, Long;
    SQL_CREATE_DATABASE = "sql.create-database", IdempotentWrite, Short;
    SQL_DROP_DATABASE = "sql.drop-database", IdempotentWrite, Short;
    SQL_DATABASE_EXISTS = "sql.database-exists", Read, Short;
    SQL_DATABASE_CHECKSUM = "sql.database-checksum", Read, Long;
    CONSOLE_GET_PARAMETER = "console.get-parameter", Read, Short;
    CONSOLE_SET_PARAMETER = "console.set-parameter", IdempotentWrite, Short;
    CONSOLE_LIST_SERVERS = "console.list-servers", Read, Short;
    CONSOLE_HEALTH = "console.health", Read, Short;
    HOST_NOW = "host.now", Read, Short;
    HOST_SLEEP = "host.sleep", Read, Long;
    HOST_CONFIRM = "host.confirm", Read, Long;
    HOST_RECORD = "host.record", IdempotentWrite, Short;
    HOST_RECALL = "host.recall", Read, Short;
}

/// The call of that name, if there is one.
pub fn by_name(name: &str) -> Option<&'static HostCall> {
    ALL.iter().copied().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_declared_once() {
        let mut names: Vec<_> = ALL.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(by_name("sql.dump-databases"), Some(SQL_DUMP_DATABASES));
        assert_eq!(by_name("sql.drop-everything"), None);
    }
}
