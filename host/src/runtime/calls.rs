//! The one table of host calls: every WIT function a plugin can call, declared once with its name
//! (as the journal, transcripts and fault rules spell it), its effect (which decides replay on
//! resume and whether `plan` may make it), its deadline class and the kind of object its grant is
//! checked on. The glue of each capability passes one of these to
//! [`crate::runtime::state::HostState::call`]; nothing else names a call.
//!
//! The grant kind is a type ([`GrantKind`]): a call declared `Database` takes the
//! `(connection, database)` its grant is checked on and nothing else, so glue that checked a
//! call's grant on the wrong kind of object does not compile. A call's journal arguments are the
//! WIT function's own parameters, whose types the WIT declares (the glue names them once, in the
//! call's `json!`).

use crate::grants::Target;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

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

/// One WIT function as the host-call path sees it, whatever its grant kind.
#[derive(Debug, PartialEq, Eq)]
pub struct CallInfo {
    pub name: &'static str,
    pub effect: Effect,
    pub deadline: Deadline,
}

/// One WIT function with the kind of object its grant is checked on.
#[derive(Debug)]
pub struct HostCall<K: GrantKind> {
    pub info: CallInfo,
    kind: PhantomData<K>,
}

impl<K: GrantKind> std::ops::Deref for HostCall<K> {
    type Target = CallInfo;
    fn deref(&self) -> &CallInfo {
        &self.info
    }
}

impl<K: GrantKind> PartialEq for HostCall<K> {
    fn eq(&self, other: &Self) -> bool {
        self.info == other.info
    }
}

/// The kind of object a call's grant is checked on, and the object's value.
///
/// A call takes the object of its declared kind:
///
/// ```no_run
/// # use opshost::runtime::{calls, state::HostState};
/// # async fn glue(state: &mut HostState) {
/// let (connection, database) = ("metadb".to_string(), "rm_411".to_string());
/// let _ = state.call(calls::SQL_DATABASE_EXISTS, (connection, database), serde_json::json!({}), async { Ok(true) }).await;
/// # }
/// ```
///
/// and no other: checking `sql.database-exists` on no object (as a free call) does not compile.
///
/// ```compile_fail
/// # use opshost::runtime::{calls, state::HostState};
/// # async fn glue(state: &mut HostState) {
/// let _ = state.call(calls::SQL_DATABASE_EXISTS, (), serde_json::json!({}), async { Ok(true) }).await;
/// # }
/// ```
pub trait GrantKind {
    type Object;
    fn target(object: Self::Object) -> Target;
}

/// Host services, and reads that reveal nothing (image-exists): no grant.
#[derive(Debug)]
pub struct Free;
/// `(node, container)`.
#[derive(Debug)]
pub struct Container;
/// An image archive's path.
#[derive(Debug)]
pub struct Archive;
/// `(connection, database)`.
#[derive(Debug)]
pub struct Database;
/// `(connection, databases)`: each must be granted.
#[derive(Debug)]
pub struct Databases;
/// A console parameter's name.
#[derive(Debug)]
pub struct Parameter;
/// The console's servers and health.
#[derive(Debug)]
pub struct Servers;

impl GrantKind for Free {
    type Object = ();
    fn target(_: ()) -> Target {
        Target::Free
    }
}
impl GrantKind for Container {
    type Object = (String, String);
    fn target((node, container): (String, String)) -> Target {
        Target::Container(node, container)
    }
}
impl GrantKind for Archive {
    type Object = String;
    fn target(path: String) -> Target {
        Target::Archive(path)
    }
}
impl GrantKind for Database {
    type Object = (String, String);
    fn target((connection, database): (String, String)) -> Target {
        Target::Database { connection, database }
    }
}
impl GrantKind for Databases {
    type Object = (String, Vec<String>);
    fn target((connection, databases): (String, Vec<String>)) -> Target {
        Target::Databases { connection, databases }
    }
}
impl GrantKind for Parameter {
    type Object = String;
    fn target(name: String) -> Target {
        Target::Parameter(name)
    }
}
impl GrantKind for Servers {
    type Object = ();
    fn target(_: ()) -> Target {
        Target::Servers
    }
}

macro_rules! host_calls {
    ($($id:ident = $name:literal, $effect:ident, $deadline:ident, $kind:ident;)*) => {
        $(pub const $id: &HostCall<$kind> =
            &HostCall { info: CallInfo { name: $name, effect: Effect::$effect, deadline: Deadline::$deadline }, kind: PhantomData };)*
        /// Every host call, for checks that take a call by name (fault rules).
        pub const ALL: &[&CallInfo] = &[$(&$id.info),*];
    };
}

host_calls! {
    DOCKER_INSPECT = "docker.inspect", Read, Short, Container;
    DOCKER_STOP = "docker.stop", IdempotentWrite, Short, Container;
    DOCKER_START = "docker.start", IdempotentWrite, Short, Container;
    DOCKER_RESTART = "docker.restart", IdempotentWrite, Short, Container;
    DOCKER_REMOVE = "docker.remove", Write, Short, Container;
    DOCKER_RUN = "docker.run", Write, Short, Container;
    DOCKER_CREATE = "docker.create", Write, Short, Container;
    DOCKER_CHECK_RUN = "docker.check-run", Read, Short, Container;
    DOCKER_LOAD_IMAGE = "docker.load-image", IdempotentWrite, Long, Archive;
    DOCKER_IMAGE_EXISTS = "docker.image-exists", Read, Short, Free;
    DOCKER_EXEC = "docker.exec", Write, Long, Container;
    DOCKER_LOGS = "docker.logs", Read, Short, Container;
    DOCKER_READ_FILE = "docker.read-file", Read, Short, Container;
    SQL_QUERY = "sql.query", Read, Short, Database;
    SQL_EXECUTE = "sql.execute", Write, Short, Database;
    SQL_DUMP_DATABASE = "sql.dump-database", IdempotentWrite, Long, Database;
    SQL_DUMP_DATABASES = "sql.dump-databases", IdempotentWrite, Long, Databases;
    SQL_RESTORE_DATABASE = "sql.restore-database", Write, Long, Database;
    SQL_RESTORE_DATABASES = "sql.restore-databases", Write, Long, Databases;
    SQL_CREATE_DATABASE = "sql.create-database", IdempotentWrite, Short, Database;
    SQL_DROP_DATABASE = "sql.drop-database", IdempotentWrite, Short, Database;
    SQL_DATABASE_EXISTS = "sql.database-exists", Read, Short, Database;
    SQL_DATABASE_CHECKSUM = "sql.database-checksum", Read, Long, Database;
    SQL_DATABASE_CHECKSUMS = "sql.database-checksums", Read, Long, Databases;
    CONSOLE_GET_PARAMETER = "console.get-parameter", Read, Short, Parameter;
    CONSOLE_SET_PARAMETER = "console.set-parameter", IdempotentWrite, Short, Parameter;
    CONSOLE_LIST_SERVERS = "console.list-servers", Read, Short, Servers;
    CONSOLE_HEALTH = "console.health", Read, Short, Servers;
    HOST_NOW = "host.now", Read, Short, Free;
    HOST_SLEEP = "host.sleep", Read, Long, Free;
    HOST_CONFIRM = "host.confirm", Read, Long, Free;
    HOST_RECORD = "host.record", IdempotentWrite, Short, Free;
    HOST_RECALL = "host.recall", Read, Short, Free;
}

/// The call of that name, if there is one.
pub fn by_name(name: &str) -> Option<&'static CallInfo> {
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
        assert_eq!(by_name("sql.dump-databases"), Some(&SQL_DUMP_DATABASES.info));
        assert_eq!(by_name("sql.drop-everything"), None);
    }
}
