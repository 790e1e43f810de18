//! What a dump file is: its end marker and header statements, the time zone its TIMESTAMP values
//! were read in ([`Zone`]), each table's estimated rows, the largest INSERT it holds, and the check a file must pass before a
//! restore or a rollback trusts it.

use super::codec::{is_plain_name, push_escaped};
use crate::bindings::Error;
use crate::capabilities::errors::failed;
use std::path::Path;

/// The last line of every complete dump.
pub(super) const END_MARKER: &str = "-- opshost dump complete";

/// The second line of every dump whose TIMESTAMP values (and definitions) were read in UTC.
pub(super) const UTC_MARKER: &str = "-- timestamps: UTC";

/// The header statement that makes a replay write TIMESTAMP values in UTC.
pub(super) const SET_UTC: &str = "/*!40103 SET TIME_ZONE='+00:00' */;";

/// Append `definition` (a `SHOW CREATE` of a table or sequence, as bytes: it need not be text)
/// to a dump's head as one statement on one line: the server ends its lines with `\n`, and
/// escapes any inside a literal.
pub(super) fn push_definition(head: &mut Vec<u8>, definition: &[u8]) {
    head.extend(definition.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    head.extend_from_slice(b";\n");
}

/// How a dump's head gives its database back the default character set and collation it had
/// (`ALTER DATABASE CHARACTER SET x COLLATE y;`, of the database the replay is in): a rollback
/// creates the database anew, and the default is what the product's next tables and every
/// routine's parameters without a character set of their own get. Dumps before this have none.
pub(super) const DATABASE_DEFAULTS: &str = "ALTER DATABASE CHARACTER SET ";

/// The head line of [`DATABASE_DEFAULTS`] for `charset` and `collation` (None if either is not a
/// plain name, which no server gives), with the database's comment (MariaDB 10.5 and later) when
/// it has one: a rollback's newly created database would have lost it.
pub(super) fn database_defaults(charset: &str, collation: &str, comment: Option<&str>) -> Option<String> {
    // Quoted as the dump's rows are: the escapes keep it on one line, and UTF-8 stays UTF-8.
    let comment = comment
        .map(|c| {
            let mut quoted = b" COMMENT ".to_vec();
            push_escaped(&mut quoted, c.as_bytes());
            String::from_utf8(quoted).expect("ASCII escapes in UTF-8 text")
        })
        .unwrap_or_default();
    (is_plain_name(charset) && is_plain_name(collation)).then(|| format!("{DATABASE_DEFAULTS}{charset} COLLATE {collation}{comment};"))
}

/// The sql_mode a dump replays in: its header sets it (with what the server allows beside it,
/// [`super::flavour::Flavour::dump_sql_mode`]) and its objects section goes back to it.
pub(super) const DUMP_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO";

/// The session time zone TIMESTAMP values are read (and replayed) in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// UTC, as mysqldump does: every dump and checksum of this version. The dump says so
    /// ([`UTC_MARKER`]) and its header replays in UTC, whatever the server's own time zone.
    Utc,
    /// The server's default zone. Dumps made before the marker were read in it (while their
    /// header said UTC): they are replayed and verified in it, which is right on the server and
    /// time-zone setting they were made on.
    Server,
}

/// The comment before each table's definition in a dump: the server's estimate of its rows at
/// dump time (`-- rows (estimate): 1234`). A restore holds a table's plain keys back only when
/// it is big enough for that to pay ([`super::indexes::worth_deferring`]); dumps without it are
/// treated as big.
pub(super) const ROWS_NOTE: &str = "-- rows (estimate): ";

/// Largest INSERT statement the dump writes (rows are batched up to this size).
pub(super) const INSERT_BYTES: usize = 1 << 20;

/// A dump file is whole: the size recorded at dump time, and its last line the end marker. Else
/// why not, naming the file and what to do.
pub fn check_backup_file(path: &Path, recorded_bytes: u64) -> Result<(), String> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| format!("backup {}: {e}: restore it from another copy", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let tail_len = END_MARKER.len() as u64 + 1;
    let mut tail = vec![0u8; tail_len as usize];
    let ok = total >= tail_len
        && file.seek(std::io::SeekFrom::End(-(tail_len as i64))).is_ok()
        && file.read_exact(&mut tail).is_ok()
        && tail == format!("{END_MARKER}\n").as_bytes();
    if !ok || total != recorded_bytes {
        return Err(format!(
            "backup {} is truncated or changed ({total} bytes, {recorded_bytes} recorded at dump time): restore it from another copy",
            path.display()
        ));
    }
    Ok(())
}

/// The zone a dump's TIMESTAMP values were read in: UTC when its second line says so (then
/// `file` is back at its start).
pub(super) async fn zone_of(file: &mut tokio::fs::File, path: &Path) -> Result<Zone, Error> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut head = Vec::with_capacity(512);
    (&mut *file).take(512).read_to_end(&mut head).await.map_err(|e| io_err(path, e))?;
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| io_err(path, e))?;
    let second = head.split(|&b| b == b'\n').nth(1).unwrap_or_default();
    Ok(if second == UTC_MARKER.as_bytes() { Zone::Utc } else { Zone::Server })
}

pub(super) fn io_err(what: &Path, e: std::io::Error) -> Error {
    failed(format!("{}: {e}", what.display()))
}
