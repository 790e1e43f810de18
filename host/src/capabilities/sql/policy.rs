//! Statement policy for plugin SQL: parses each statement with sqlparser's MySQL dialect and admits only plain
//! data and table statements whose every table lies in a granted database, outside the system schemas and the
//! tables a host capability reserves. Anything the allow-list does not name is refused with a one-sentence reason.
//!
//! Over 500 lines with its tests (a third of it): the allow-list is one walk over the parsed
//! statement, and its refusals are tested beside it.

use std::fmt::Display;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AlterTableOperation as Alter, ColumnOption, CreateTableLikeKind as Like, CreateTableOptions as Options, Expr, Function, Ident, ObjectName, ObjectNamePart,
    ObjectType, Query, RenameTableNameKind as Rename, SetExpr, ShowCreateObject, ShowStatementOptions, SqlOption, Statement, TableConstraint, TableObject,
    Visit, Visitor,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// What kind of statement the host call allows: `sql.query` takes reads only, `sql.execute` reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What the site lets this plugin's statements reach.
pub struct StatementPolicy<'a> {
    /// The database the statement runs in (the call's `database` argument, already granted): unqualified names
    /// resolve here.
    pub database: &'a str,
    /// Whether another database may be named (`db.table`); case-insensitive comparison is the caller's job — pass
    /// names as written.
    pub granted: &'a dyn Fn(&str) -> bool,
    /// Tables a host capability owns (database, table), reachable only through that capability (e.g. OMS
    /// `oms_normal_config`, owned by the console capability). Neither read nor written.
    pub reserved: &'a [(String, String)],
}

const ONLY: &str = "plugins may run only SELECT, INSERT, UPDATE, DELETE, REPLACE and table DDL on their granted \
                    databases";
/// The server's own databases (OceanBase's `oceanbase` too): no statement and no database-level
/// call of a plugin reaches them, whatever its grants say.
pub const SYSTEM_SCHEMAS: [&str; 5] = ["mysql", "information_schema", "performance_schema", "sys", "oceanbase"];
/// CREATE TABLE options allowed besides COMMENT and `ENGINE=` one of [`ENGINES`] (a leading DEFAULT is ignored).
const TABLE_OPTIONS: &str = "AUTO_INCREMENT,CHARSET,CHARACTER SET,COLLATE,ROW_FORMAT,KEY_BLOCK_SIZE,AVG_ROW_LENGTH,\
                             MAX_ROWS,MIN_ROWS,PACK_KEYS,CHECKSUM,STATS_PERSISTENT,STATS_AUTO_RECALC,PAGE_CHECKSUM";
const ENGINES: &str = "InnoDB/Aria/MyISAM/MEMORY";
/// Statements named by their first two words in messages (`CREATE VIEW`, `SHOW DATABASES`).
const TWO_WORDS: [&str; 10] = ["CREATE", "DROP", "ALTER", "SHOW", "SET", "LOCK", "UNLOCK", "START", "LOAD", "EXPLAIN"];

/// `Err("statement refused: …")`, formatted like `format!`.
macro_rules! refused {
    ($($why:tt)*) => {
        Err(format!("statement refused: {}", format_args!($($why)*)))
    };
}

/// The longest statement a plugin may send: parsing takes the host hundreds of bytes of memory
/// per byte of text, and values belong in `?` parameters.
pub const MAX_STATEMENT_BYTES: usize = 64 << 10;

/// Checks one statement; Ok(the access it needs) or Err(a one-sentence message naming what was refused and why).
pub fn check(statement: &str, allowed: Access, policy: &StatementPolicy) -> Result<Access, String> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return refused!(
            "the statement is {} bytes, over the {} KiB a statement may be; pass values as ? parameters",
            statement.len(),
            MAX_STATEMENT_BYTES >> 10
        );
    }
    // The server would read both differently from sqlparser: NO_BACKSLASH_ESCAPES ends strings early, and
    // `/*!…*/`, `/*M!…*/`, `/*+…*/` are code (or SET_VAR hints) to it.
    if statement.contains('\\') {
        return refused!("backslashes are not allowed (sql_mode decides what they mean); pass ? parameters");
    }
    let lower = statement.to_ascii_lowercase();
    if lower.contains("/*!") || lower.contains("/*m!") || lower.contains("/*+") {
        return refused!("executable comments and optimizer hints (/*! */, /*M! */, /*+ */) are not allowed");
    }
    plain_separators(statement)?;
    let statements = Parser::parse_sql(&MySqlDialect {}, statement).map_err(|e| unparsable(statement, e))?;
    let stmt = match statements.as_slice() {
        [stmt] => stmt,
        [] => return refused!("the text holds no statement"),
        many => return refused!("the text holds {} statements, not one", many.len()),
    };
    // sqlparser reads `SHOW INDEX FROM "t"` as the words around the string, which a server under
    // ANSI_QUOTES reads as the table's name: such a SHOW is words and dots only.
    if matches!(stmt, Statement::ShowVariable { .. }) {
        let tokens = Tokenizer::new(&MySqlDialect {}, statement).tokenize().unwrap_or_default();
        if let Some(odd) = tokens.iter().find(|t| !matches!(t, Token::Word(_) | Token::Period | Token::Whitespace(_) | Token::SemiColon)) {
            return refused!("SHOW names tables by plain or backquoted names only, not {odd}");
        }
    }
    let access = classify(stmt, policy)?;
    if let ControlFlow::Break(why) = stmt.visit(&mut Guard { policy }) {
        return Err(why);
    }
    if access == Access::Write && allowed == Access::Read {
        let head = head(stmt.to_string().split_whitespace());
        return refused!("{head} changes data or schema, but sql.query only reads; use sql.execute");
    }
    Ok(access)
}

/// Refuses what the server and sqlparser could split into tokens differently: a comment of any
/// kind, a control character other than tab, newline and carriage return, and whitespace outside
/// ASCII outside a quoted string or name. sqlparser takes `--` followed by any Unicode whitespace
/// (U+00A0) for a comment where the server reads one byte and sees an identifier, and the server
/// takes `--` and a control byte for a comment where sqlparser does not: either way the checked
/// statement would not be the one run.
fn plain_separators(statement: &str) -> Result<(), String> {
    if let Some(c) = statement.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return refused!("control character U+{:04X} (pass values as ? parameters)", c as u32);
    }
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, statement).tokenize() else {
        return Ok(()); // the parser refuses it with its own message
    };
    let odd_space = |text: &str| text.chars().filter(|c| c.is_whitespace() && !c.is_ascii()).count();
    let mut quoted = 0;
    for token in &tokens {
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return refused!("comments are not allowed (the server and the statement check could read them differently)");
            }
            Token::SingleQuotedString(text) | Token::DoubleQuotedString(text) => quoted += odd_space(text),
            Token::Word(w) if w.quote_style.is_some() => quoted += odd_space(&w.value),
            _ => {}
        }
    }
    if odd_space(statement) > quoted {
        return refused!("whitespace outside ASCII (such as U+00A0) between words; use spaces, or quote the name");
    }
    Ok(())
}

fn unparsable(statement: &str, error: impl Display) -> String {
    let (tokens, mut words) = (Tokenizer::new(&MySqlDialect {}, statement).tokenize(), vec![]);
    for token in tokens.unwrap_or_default() {
        if !matches!(token, Token::Whitespace(_)) {
            words.push(token.to_string().to_ascii_uppercase());
        }
    }
    let head = head(words.iter().map(String::as_str));
    let message = match why(&head) {
        _ if words.iter().any(|w| w == "OUTFILE" || w == "DUMPFILE") => "SELECT … INTO OUTFILE / DUMPFILE writes files on the database server".to_string(),
        Some(why) => format!("{head} {why}; {ONLY}"),
        None => format!("it could not be parsed as one MySQL statement ({error})"),
    };
    format!("statement refused: {message}")
}

/// The leading keywords of a statement, for messages: `GRANT`, `CREATE VIEW`, `SHOW DATABASES`.
fn head<'w>(words: impl Iterator<Item = &'w str>) -> String {
    let words = words.map(str::to_ascii_uppercase);
    let mut words = words.filter(|w| w != "OR" && w != "REPLACE");
    let first = words.next().unwrap_or_default();
    match words.next() {
        Some(next) if TWO_WORDS.contains(&first.as_str()) => format!("{first} {next}"),
        _ => first,
    }
}

fn why(head: &str) -> Option<&'static str> {
    let mut words = head.split(' ');
    let why = match (words.next().unwrap_or_default(), words.next().unwrap_or_default()) {
        ("SHOW", _) => "is not one of SHOW TABLES, SHOW COLUMNS FROM t, SHOW CREATE TABLE t and SHOW INDEX FROM t",
        (_, "DATABASE" | "SCHEMA") => "is a database statement, which the host's own database calls cover",
        (_, "VIEW" | "TRIGGER" | "FUNCTION" | "PROCEDURE" | "EVENT") | ("CALL", _) => {
            "creates or runs a stored object, which could run with another definer's rights"
        }
        ("START" | "BEGIN" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE", _) => {
            "controls the transaction, which the host opens and closes around each call"
        }
        ("PREPARE" | "EXECUTE" | "DEALLOCATE" | "HANDLER", _) => "runs SQL or reads tables out of these checks' sight",
        ("GRANT" | "REVOKE" | "SET" | "KILL" | "FLUSH" | "LOCK" | "UNLOCK" | "USE" | "RESET" | "LOAD", _)
        | ("SHUTDOWN" | "INSTALL" | "UNINSTALL" | "CHANGE" | "PURGE", _)
        | (_, "USER" | "ROLE" | "SERVER") => "is a server or account statement",
        _ => return None,
    };
    Some(why)
}

fn refusal(stmt: &Statement) -> String {
    let head = head(stmt.to_string().split_whitespace());
    let why = why(&head).unwrap_or("is not an allowed statement");
    format!("statement refused: {head} {why}; {ONLY}")
}

/// The statement allow-list: the access each allowed kind needs, after checking the names the visitor misses.
fn classify(stmt: &Statement, p: &StatementPolicy) -> Result<Access, String> {
    use Statement as S;
    let (read, write) = (|()| Access::Read, |()| Access::Write);
    match stmt {
        S::Query(q) => match &*q.body {
            SetExpr::Insert(inner) | SetExpr::Update(inner) | SetExpr::Delete(inner) => classify(inner, p),
            SetExpr::Merge(_) => Err(refusal(stmt)),
            _ => Ok(Access::Read),
        },
        S::ShowTables { show_options, .. } => match shown(show_options)?.map(|db| db.0.as_slice()) {
            None => Ok(Access::Read),
            Some([ObjectNamePart::Identifier(db)]) => check_db(&db.value, &db.value, p).map(read),
            Some(_) => Err(refusal(stmt)),
        },
        S::ShowColumns { show_options, .. } => match shown(show_options)? {
            Some(table) => check_name(table, p).map(read),
            None => Err(refusal(stmt)),
        },
        S::ShowCreate { obj_type, obj_name } if *obj_type == ShowCreateObject::Table => check_name(obj_name, p).map(read),
        S::ShowVariable { variable } => match show_index(variable) {
            Some(table) => check_name(&table, p).map(read),
            None => Err(refusal(stmt)),
        },
        S::ExplainTable { .. } => Ok(Access::Read),
        S::Explain { analyze, statement, .. } if !analyze && classify(statement, p) == Ok(Access::Read) => Ok(Access::Read),
        S::Insert(insert) if matches!(insert.table, TableObject::TableName(_)) => Ok(Access::Write),
        S::Update(_) | S::Truncate(_) | S::CreateIndex(_) => Ok(Access::Write),
        S::Delete(delete) => names(&delete.tables, p).map(write),
        S::CreateTable(create) => {
            check_table_options(&create.table_options)?;
            if let Some(Like::Plain(like) | Like::Parenthesized(like)) = &create.like {
                check_name(&like.name, p)?;
            }
            for column in &create.columns {
                names(column.options.iter().filter_map(|o| column_fk(&o.option)), p)?;
            }
            let fks = create.constraints.iter().filter_map(constraint_fk);
            names(fks.chain(&create.clone), p).map(write)
        }
        S::AlterTable(alter) => alter_table(&alter.operations, p).map(write),
        S::Drop { object_type, names: tables, table, .. } => match (object_type, table) {
            (ObjectType::Table, _) => names(tables, p).map(write),
            (ObjectType::Index, Some(table)) => check_name(table, p).map(write),
            _ => Err(refusal(stmt)),
        },
        S::RenameTable(renames) => names(renames.iter().flat_map(|r| [&r.old_name, &r.new_name]), p).map(write),
        _ => Err(refusal(stmt)),
    }
}

/// The database (SHOW TABLES) or table (SHOW COLUMNS) a SHOW names with FROM / IN. sqlparser
/// also reads a word after FROM / IN as a kind of parent (`ACCOUNT`, `DATABASE`, `SCHEMA`,
/// `TABLE`, `VIEW`, Snowflake's syntax) where the server reads it as the name: `SHOW TABLES FROM
/// account` lists database `account`. Such a SHOW is refused, the name to be backquoted.
fn shown(options: &ShowStatementOptions) -> Result<Option<&ObjectName>, String> {
    match &options.show_in {
        Some(show_in) if show_in.parent_type.is_some() => {
            refused!("SHOW {show_in}: the server reads the word after {} as a name; backquote it (`name`)", show_in.clause)
        }
        Some(show_in) => Ok(show_in.parent_name.as_ref()),
        None => Ok(None),
    }
}

fn alter_table(operations: &[Alter], p: &StatementPolicy) -> Result<(), String> {
    for operation in operations {
        match operation {
            Alter::AddColumn { column_def, .. } => {
                names(column_def.options.iter().filter_map(|o| column_fk(&o.option)), p)?;
            }
            Alter::ChangeColumn { options, .. } | Alter::ModifyColumn { options, .. } => {
                names(options.iter().filter_map(column_fk), p)?;
            }
            Alter::AddConstraint { constraint, .. } => names(constraint_fk(constraint), p)?,
            Alter::RenameTable { table_name: Rename::As(name) | Rename::To(name) } => check_name(name, p)?,
            Alter::DropConstraint { .. } | Alter::DropColumn { .. } | Alter::DropPrimaryKey { .. } => {}
            Alter::DropForeignKey { .. } | Alter::DropIndex { .. } | Alter::RenameColumn { .. } => {}
            Alter::RenameConstraint { .. } | Alter::AlterColumn { .. } | Alter::AutoIncrement { .. } => {}
            Alter::Algorithm { .. } | Alter::Lock { .. } => {}
            other => return refused!("ALTER TABLE … {other} is not an allowed table change; {ONLY}"),
        }
    }
    Ok(())
}

fn column_fk(option: &ColumnOption) -> Option<&ObjectName> {
    match option {
        ColumnOption::ForeignKey(fk) => Some(&fk.foreign_table),
        _ => None,
    }
}

fn constraint_fk(constraint: &TableConstraint) -> Option<&ObjectName> {
    match constraint {
        TableConstraint::ForeignKey(fk) => Some(&fk.foreign_table),
        _ => None,
    }
}

/// Table options are an allow-list too: ENGINE=CONNECT/FEDERATED/MERGE, CONNECTION=, UNION=, DATA DIRECTORY= and
/// the like reach files, servers or other tables.
fn check_table_options(options: &Options) -> Result<(), String> {
    let list: &[SqlOption] = match options {
        Options::None => &[],
        Options::With(list) | Options::Options(list) | Options::Plain(list) | Options::TableProperties(list) => list,
    };
    let one_of = |value: &str, list: &str, sep| list.split(sep).any(|item| item.eq_ignore_ascii_case(value));
    for option in list {
        let allowed = match option {
            SqlOption::Comment(_) => true,
            SqlOption::KeyValue { key, .. } => {
                let key = key.to_string().to_ascii_uppercase();
                one_of(key.trim_start_matches("DEFAULT "), TABLE_OPTIONS, ',')
            }
            SqlOption::NamedParenthesizedList(named) if named.key.value.eq_ignore_ascii_case("ENGINE") => {
                let engine = named.name.as_ref().filter(|_| named.values.is_empty());
                engine.is_some_and(|engine| one_of(&engine.value, ENGINES, '/'))
            }
            _ => false,
        };
        if !allowed {
            return refused!("table option {option} is not allowed (only plain options, {ENGINES})");
        }
    }
    Ok(())
}

/// `SHOW INDEX|INDEXES|KEYS FROM|IN t [FROM|IN db]`, which sqlparser reads as a variable name of several words.
fn show_index(words: &[Ident]) -> Option<ObjectName> {
    let keyword = |i: usize, set: &[&str]| match words.get(i) {
        Some(word) if word.quote_style.is_none() => set.iter().any(|s| word.value.eq_ignore_ascii_case(s)),
        _ => false,
    };
    if !keyword(0, &["INDEX", "INDEXES", "KEYS"]) || !keyword(1, &["FROM", "IN"]) {
        return None;
    }
    match &words[2..] {
        name @ ([_] | [_, _]) => Some(ObjectName::from(name.to_vec())),
        [table, _, db] if keyword(3, &["FROM", "IN"]) => Some(ObjectName::from(vec![db.clone(), table.clone()])),
        _ => None,
    }
}

fn names<'n>(names: impl IntoIterator<Item = &'n ObjectName>, p: &StatementPolicy) -> Result<(), String> {
    names.into_iter().try_for_each(|name| check_name(name, p))
}

/// A table name: `t` (in the call's database) or `db.t` with `db` granted; never a system schema or reserved table.
fn check_name(name: &ObjectName, p: &StatementPolicy) -> Result<(), String> {
    let parts: Vec<_> = name.0.iter().map(|part| part.as_ident()).collect();
    let (db, table) = match parts.as_slice() {
        [Some(table)] => (p.database, table.value.as_str()),
        [Some(db), Some(table)] => (db.value.as_str(), table.value.as_str()),
        _ => return refused!("{name} is not a table or database.table name"),
    };
    let reserved = |(d, t): &(String, String)| could_name(db, d) && could_name(table, t);
    if p.reserved.iter().any(reserved) {
        let why = "is reserved to the host's console capability; use console.get-parameter / set-parameter";
        return refused!("table {db}.{table} {why}");
    }
    check_db(db, &name.to_string(), p)
}

/// Whether name `written` could reach the object named `name` on the server: equal but for
/// ASCII case, or where `written` has a character outside ASCII, which a server that folds names
/// (`lower_case_table_names`) may fold into `name`'s (`İ` into `i`).
fn could_name(written: &str, name: &str) -> bool {
    written.chars().count() == name.chars().count() && written.chars().zip(name.chars()).all(|(w, n)| !w.is_ascii() || w.eq_ignore_ascii_case(&n))
}

fn check_db(db: &str, what: &str, p: &StatementPolicy) -> Result<(), String> {
    if SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(db)) {
        refused!("{what} is in the system schema {db}, which plugins may never reach")
    } else if db != p.database && !(p.granted)(db) {
        refused!("{what} is in database {db}, which was not granted to this plugin")
    } else {
        Ok(())
    }
}

/// Walks the whole statement: every relation, every query (for `INTO`) and every expression.
struct Guard<'p, 'a> {
    policy: &'p StatementPolicy<'a>,
}

impl Visitor for Guard<'_, '_> {
    type Break = String;

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        flow(check_name(relation, self.policy))
    }

    /// `SELECT … INTO` anywhere, and `TABLE db.t` query bodies, which are no relations to the visitor.
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        flow(check_body(&query.body, self.policy))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        let variable = |id: &Ident| id.quote_style.is_none() && id.value.starts_with('@');
        match expr {
            Expr::Function(function) => flow(check_function(function)),
            Expr::Identifier(id) if variable(id) => flow(refused!("{expr} {VARIABLES}")),
            Expr::CompoundIdentifier(ids) if ids.first().is_some_and(variable) => flow(refused!("{expr} {VARIABLES}")),
            _ => ControlFlow::Continue(()),
        }
    }
}

fn check_body(body: &SetExpr, p: &StatementPolicy) -> Result<(), String> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => {
            refused!("SELECT … INTO writes variables or files; return rows instead")
        }
        SetExpr::Query(query) => check_body(&query.body, p),
        SetExpr::SetOperation { left, right, .. } => check_body(left, p).and(check_body(right, p)),
        SetExpr::Table(table) => {
            let parts = table.schema_name.iter().chain(&table.table_name);
            check_name(&ObjectName::from(parts.cloned().collect::<Vec<_>>()), p)
        }
        _ => Ok(()),
    }
}

const VARIABLES: &str = "is a variable, which is not allowed (variables expose server settings and session state)";

fn check_function(function: &Function) -> Result<(), String> {
    let name = match function.name.0.as_slice() {
        [ObjectNamePart::Identifier(name)] => name.value.to_ascii_uppercase(),
        _ => return refused!("function {} names a schema; only built-ins may run", function.name),
    };
    match denied(&name) {
        Some(why) => refused!("function {name}() is not allowed (it {why})"),
        None => Ok(()),
    }
}

/// Why a built-in is refused. DATABASE(), SCHEMA(), VERSION(), USER(), CURRENT_USER() and the like stay allowed:
/// they name only the current database, the server version and the host's own account.
fn denied(function: &str) -> Option<&'static str> {
    let why = match function {
        "LOAD_FILE" | "SYS_EXEC" | "SYS_EVAL" | "SYS_GET" | "SYS_SET" => "reaches the server's files or shell",
        "SLEEP" | "BENCHMARK" | "MASTER_POS_WAIT" | "SOURCE_POS_WAIT" | "MASTER_GTID_WAIT" => "stalls the connection",
        "WAIT_FOR_EXECUTED_GTID_SET" | "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS" => "stalls the connection",
        "GET_LOCK" | "RELEASE_LOCK" | "RELEASE_ALL_LOCKS" | "IS_FREE_LOCK" | "IS_USED_LOCK" => "takes server locks",
        "NEXTVAL" | "LASTVAL" | "SETVAL" => "reaches sequences, which plugins may not use",
        _ => return None,
    };
    Some(why)
}

fn flow(result: Result<(), String>) -> ControlFlow<String> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(why) => ControlFlow::Break(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(statement: &str, allowed: Access) -> Result<Access, String> {
        let reserved = [("rm_411".to_string(), "oms_normal_config".to_string())];
        let granted = |db: &str| db == "rm_412";
        let policy = StatementPolicy { database: "rm_411", granted: &granted, reserved: &reserved };
        check(statement, allowed, &policy)
    }

    const READS: &str = r"
SELECT * FROM heatbeat_sequence WHERE id < (SELECT MAX(id) FROM heatbeat_sequence)
SELECT version FROM migrate_schema_history WHERE success = 1
select a, b from `rm_411`.`t` join rm_412.u on t.id = u.id where t.x = ? limit 5
WITH x AS (SELECT 1 AS a) SELECT * FROM x UNION SELECT a FROM t UNION TABLE rm_412.t
SELECT * FROM t WHERE a IN (SELECT b FROM rm_412.u) AND EXISTS (SELECT 1 FROM v) FOR UPDATE
SELECT zeroblob(20000000)
SELECT DATABASE(), SCHEMA(), VERSION(), USER(), CURRENT_USER(), NOW(), COUNT(*), `@x` FROM t
SHOW TABLES
SHOW FULL TABLES FROM rm_412 LIKE 'a%'
SHOW COLUMNS FROM t
show full columns from t from rm_412
SHOW CREATE TABLE rm_412.t
SHOW INDEX FROM t
SHOW KEYS FROM t IN rm_412
DESCRIBE t
EXPLAIN SELECT * FROM t WHERE a = 1";

    const WRITES: &str = r"
DELETE FROM heatbeat_sequence WHERE id < ?
INSERT INTO t (a, b) VALUES (?, ?), (3, 4)
INSERT INTO t (a) SELECT a FROM rm_412.u ON DUPLICATE KEY UPDATE a = VALUES(a)
insert into t set a = 1
REPLACE INTO rm_412.t VALUES (1)
UPDATE t JOIN rm_412.u ON t.a = u.a SET t.b = u.b WHERE u.c > 1
DELETE t FROM t JOIN u ON t.a = u.a WHERE u.b = 2
WITH x AS (SELECT 1 AS a) DELETE FROM t WHERE a IN (SELECT a FROM x)
CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY AUTO_INCREMENT, p INT REFERENCES rm_412.p(id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='x'
CREATE TABLE t2 LIKE rm_412.t
CREATE TABLE t2 AS SELECT * FROM t
ALTER TABLE t ADD COLUMN c INT, MODIFY d TEXT, DROP COLUMN e, ADD INDEX ix (a), RENAME COLUMN f TO g
ALTER TABLE t RENAME TO rm_412.t
DROP TABLE IF EXISTS t, rm_412.u
TRUNCATE TABLE t
CREATE UNIQUE INDEX i ON t (a)
DROP INDEX i ON t
RENAME TABLE a TO b, rm_412.c TO rm_412.d";

    /// `statement => a word the refusal must contain`, one a line.
    const REFUSED: &str = r#"
SELECT 1; DROP TABLE x => 2 statements
SELEC 1 => parsed
GRANT ALL ON *.* TO x => account
CREATE USER x => account
ALTER USER x IDENTIFIED BY 'y' => account
SET GLOBAL max_connections=1 => server
SET @x = 1 => server
KILL 5 => server
SHUTDOWN => server
FLUSH PRIVILEGES => server
LOCK TABLES t WRITE => server
USE other => server
CREATE DATABASE d => database
DROP DATABASE other => database
ALTER DATABASE d CHARACTER SET utf8 => database
CALL p() => stored
PREPARE s FROM 'SELECT 1' => sight
EXECUTE s => sight
LOAD DATA INFILE '/etc/passwd' INTO TABLE t => server
INSTALL PLUGIN x SONAME 'x.so' => server
CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1 => stored
CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t => stored
CREATE PROCEDURE p() BEGIN SELECT 1; END => stored
CREATE VIEW v AS SELECT 1 => stored
HANDLER t OPEN => sight
DO SLEEP(1) => parsed
START TRANSACTION => transaction
COMMIT => transaction
CHANGE MASTER TO MASTER_HOST='x' => server
PURGE BINARY LOGS TO 'x' => server
RESET MASTER => server
SHOW DATABASES => show tables
SHOW PROCESSLIST => show tables
SHOW VARIABLES => show tables
SHOW CREATE VIEW v => show tables
SHOW TABLES FROM account => backquote it
SHOW TABLES IN view v => backquote it
SHOW COLUMNS FROM database t => backquote it
EXPLAIN ANALYZE SELECT 1 => explain analyze
SELECT 1 INTO OUTFILE '/tmp/x' => outfile
SELECT * FROM t INTO DUMPFILE '/tmp/x' => dumpfile
SELECT 1 INTO @v => into
SELECT @@global.secure_file_priv => variable
SELECT * FROM t WHERE a = @x => variable
select load_file('/etc/passwd') => load_file
SELECT `LOAD_FILE`('x') => load_file
SELECT a FROM t WHERE SLEEP(5) = 0 => sleep
SELECT GET_LOCK('x', 10) => lock
SELECT other.f(1) => schema
SELECT NEXTVAL(s) => sequences
SELECT 1 /*!, load_file(0x2f) */ => executable
SELECT 1 /*M!, load_file(0x2f) */ => executable
SELECT /*+ SET_VAR(sql_mode='') */ 1 => hints
SELECT 'a\', load_file(0x2f), ' ' -- ' => backslash
SELECT * FROM a.b.c => database.table
SELECT COUNT(*) FROM oms_normal_config => console.get-parameter
UPDATE RM_411.OMS_NORMAL_CONFIG SET v = 1 => console
ALTER TABLE t RENAME AS oms_normal_config => console
UPDATE oms_normal_confİg SET v = 'x' => console
SELECT * FROM `ʀm_411`.oms_normal_config => console
SHOW INDEX FROM "global_priv" FROM "mysql" => plain or backquoted names only
SHOW KEYS FROM 't' => plain or backquoted names only
SELECT * FROM mysql.user => system schema
SELECT * FROM INFORMATION_SCHEMA.TABLES => system schema
SHOW TABLES FROM performance_schema => system schema
INSERT INTO rm_411.t SELECT * FROM mysql.user => system schema
CREATE TABLE t2 (a INT, FOREIGN KEY (a) REFERENCES sys.p(id)) => system schema
SHOW TABLES FROM other => not granted
SHOW TABLES FROM `account` => not granted
SHOW COLUMNS FROM other.t => not granted
SHOW CREATE TABLE other.t => not granted
SHOW INDEX FROM t FROM other => not granted
DESCRIBE other.t => not granted
SELECT * FROM t1 UNION SELECT * FROM other.t2 => not granted
SELECT * FROM t UNION TABLE mysql.user => system schema
SELECT * FROM t WHERE a IN (TABLE other.t) => not granted
SELECT * FROM t UNION (SELECT 1 INTO @v) => into
SELECT * FROM (SELECT * FROM other.t) AS s => not granted
SELECT * FROM other.f() => not granted
DELETE FROM t WHERE id IN (SELECT id FROM other.t) => not granted
INSERT INTO other.t VALUES (1) => not granted
UPDATE other.t SET a = 1 => not granted
UPDATE t JOIN other.u ON t.a = u.a SET t.b = 1 => not granted
DELETE FROM other.t => not granted
DELETE other.t FROM t => not granted
DELETE FROM t USING t JOIN other.u => not granted
CREATE TABLE other.t (a INT) => not granted
CREATE TABLE t2 LIKE other.t => not granted
CREATE TABLE t2 AS SELECT * FROM other.t => not granted
CREATE TABLE t2 (a INT REFERENCES other.p(id)) => not granted
CREATE TABLE t2 (a INT) ENGINE=CONNECT => engine
CREATE TABLE t2 (a INT) CONNECTION='mysql://x' => connection
CREATE TABLE t2 (a INT) DATA DIRECTORY='/tmp' => directory
CREATE TABLE t2 (a INT) UNION=(t1) => union
CREATE TABLE t2 (a INT AS (LOAD_FILE('/etc/passwd'))) => load_file
ALTER TABLE other.t ADD COLUMN c INT => not granted
ALTER TABLE t RENAME TO other.t => not granted
ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES other.p(id) => not granted
ALTER TABLE t ADD COLUMN b INT REFERENCES other.p(id) => not granted
DROP TABLE t, other.u => not granted
DROP INDEX i ON other.t => not granted
TRUNCATE other.t => not granted
CREATE INDEX i ON other.t (a) => not granted
RENAME TABLE t TO other.t => not granted
RENAME TABLE other.t TO t => not granted"#;

    fn lines(table: &str) -> impl Iterator<Item = &str> {
        table.lines().filter(|line| !line.is_empty())
    }

    #[test]
    fn reads_and_writes_are_accepted_with_their_access() {
        for sql in lines(READS) {
            assert_eq!(run(sql, Access::Read), Ok(Access::Read), "{sql}");
        }
        for sql in lines(WRITES) {
            assert_eq!(run(sql, Access::Write), Ok(Access::Write), "{sql}");
            assert!(run(sql, Access::Read).unwrap_err().contains("use sql.execute"), "{sql}");
        }
    }

    #[test]
    fn refusals_say_why() {
        assert!(run("", Access::Read).unwrap_err().contains("no statement"));
        for (sql, word) in lines(REFUSED).map(|line| line.split_once(" => ").expect(line)) {
            let error = run(sql, Access::Write).expect_err(sql);
            assert!(error.starts_with("statement refused: "), "{sql}: {error}");
            assert!(error.to_lowercase().contains(word), "{sql}: {error}");
        }
    }

    /// Parsing costs hundreds of bytes of host memory per byte of text: a long statement is
    /// refused before it is parsed, and its values belong in parameters.
    #[test]
    fn a_statement_longer_than_the_limit_is_refused_unparsed() {
        let long = format!("SELECT '{}' FROM t", "x".repeat(MAX_STATEMENT_BYTES));
        assert!(run(&long, Access::Read).unwrap_err().contains("over the 64 KiB a statement may be; pass values as ? parameters"));
        let fits = format!("SELECT '{}' FROM t", "x".repeat(MAX_STATEMENT_BYTES - 20));
        assert_eq!(run(&fits, Access::Read), Ok(Access::Read));
    }

    /// sqlparser takes `--` and U+00A0 for a comment, the server for minus, minus and a name: the
    /// UNION after it would run unchecked. And `--` with a control byte is a comment to the server only.
    #[test]
    fn text_the_server_could_split_otherwise_is_refused() {
        let read = "SELECT 1,2 FROM (SELECT 1 AS `\u{a0}`) d WHERE 1 --\u{a0} UNION SELECT table_schema, table_name FROM information_schema.tables";
        assert!(run(read, Access::Read).unwrap_err().contains("comments are not allowed"), "{read}");
        let write = "UPDATE t JOIN (SELECT 1 AS `\u{a0}`) d ON 1 --\u{a0} JOIN rm_411.oms_normal_config c ON 1\nSET c.x='x'";
        assert!(run(write, Access::Write).unwrap_err().contains("comments are not allowed"), "{write}");
        for sql in ["SELECT 1 -- x", "SELECT 1 # x", "SELECT 1 /* x */", "SELECT 1 --\u{3000}x"] {
            assert!(run(sql, Access::Read).unwrap_err().contains("comments are not allowed"), "{sql}");
        }
        for sql in ["SELECT 1 --\u{1}x FROM rm_499.t", "SELECT 1\u{b}FROM t", "SELECT '\u{0}'"] {
            assert!(run(sql, Access::Read).unwrap_err().contains("control character"), "{sql:?}");
        }
        assert!(run("SELECT\u{a0}a FROM t", Access::Read).unwrap_err().contains("outside ASCII"));
        assert!(run("SELECT a FROM t\u{2003}JOIN rm_499.u", Access::Read).is_err());
        // Inside a quoted string or name, such a space is data.
        for sql in ["SELECT 'a\u{a0}b' FROM t", "SELECT `a\u{a0}b` FROM t", "SELECT a FROM t WHERE b = \"x\u{3000}\"\r\n\tLIMIT 1"] {
            assert_eq!(run(sql, Access::Read), Ok(Access::Read), "{sql}");
        }
    }

    #[test]
    fn names_resolve_against_the_policy() {
        let none = |_: &str| false;
        let policy = StatementPolicy { database: "rm_411", granted: &none, reserved: &[] };
        assert_eq!(check("SELECT * FROM `rm_411`.`t`", Access::Read, &policy), Ok(Access::Read));
        assert!(check("SELECT * FROM rm_412.t", Access::Read, &policy).unwrap_err().contains("not granted"));
        let policy = StatementPolicy { database: "mysql", granted: &none, reserved: &[] };
        assert!(check("SELECT * FROM user", Access::Read, &policy).unwrap_err().contains("system schema"));
    }
}
