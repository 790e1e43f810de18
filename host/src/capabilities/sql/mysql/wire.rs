//! A minimal MySQL/MariaDB client for the one thing mysql_async is slow at here: streaming
//! millions of rows for a dump or a checksum. mysql_async builds a `Row` of owned `Value`s per
//! row (an allocation per value, a pooled buffer per packet shared between threads); this reader
//! decodes binary-protocol rows in place in one read buffer and hands out borrowed [`Raw`]
//! values, the same values mysql_async would give, so dumps and checksums do not change.
//!
//! - It speaks just enough: the handshake with `mysql_native_password` or the
//!   `caching_sha2_password` fast path (scrambles from mysql_common), plain statements, and one
//!   prepared `SELECT` at a time. Anything else (another auth plugin, a server without protocol
//!   4.1) is [`WireError::Unsupported`], and the caller reads through mysql_async as before.
//! - Without TLS, like every connection opshost makes (mysql_async is built without it).
//!
//! Over 500 lines: the bulk reader is one protocol conversation (handshake, authentication,
//! text result sets, errors); split, each half would make sense only with the other open.

use super::codec::Raw;
use mysql_async::consts::{ColumnFlags, ColumnType};
use std::ops::Range;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a wire connection or statement failed.
#[derive(Debug)]
pub enum WireError {
    /// The server wants something this reader does not speak: read through mysql_async instead.
    Unsupported(String),
    /// The server's ERR packet.
    Server {
        code: u16,
        message: String,
    },
    Io(std::io::Error),
    /// A packet this reader could not parse.
    Protocol(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Unsupported(what) => write!(f, "not supported by the bulk reader: {what}"),
            WireError::Server { code, message } => write!(f, "ERROR {code}: {message}"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Protocol(what) => write!(f, "unexpected reply from the server: {what}"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

fn protocol(what: &str) -> WireError {
    WireError::Protocol(what.to_string())
}

// Capability flags (the protocol's constants).
const LONG_PASSWORD: u32 = 1;
const LONG_FLAG: u32 = 1 << 2;
const CONNECT_WITH_DB: u32 = 1 << 3;
const PROTOCOL_41: u32 = 1 << 9;
const TRANSACTIONS: u32 = 1 << 13;
const SECURE_CONNECTION: u32 = 1 << 15;
const MULTI_RESULTS: u32 = 1 << 17;
const PLUGIN_AUTH: u32 = 1 << 19;

/// utf8mb4_general_ci: results arrive as UTF-8, as on mysql_async's connections.
const UTF8MB4_GENERAL_CI: u8 = 45;

/// What a column needs for decoding and for [`super::real::column_kind`]'s rule.
#[derive(Clone, Debug)]
pub struct ColumnMeta {
    pub column_type: ColumnType,
    pub flags: ColumnFlags,
    pub charset: u16,
}

/// One decoded value of the current row: where its bytes are, or the value itself.
#[derive(Clone, Copy, Debug)]
enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bytes(u32, u32),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

/// Where the current packet's payload is.
enum Payload {
    /// In the read buffer.
    Buf(Range<usize>),
    /// Reassembled from 16 MiB pieces in `big`.
    Big,
}

pub struct WireConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    big: Vec<u8>,
    seq: u8,
    payload: Payload,
    /// The open statement and its columns, while rows are being read.
    statement: Option<u32>,
    columns: Vec<ColumnMeta>,
    cells: Vec<Cell>,
}

const READ_BUF: usize = 1 << 20;
const MAX_PAYLOAD: usize = 0xFF_FFFF;

impl WireConn {
    /// Connect and authenticate, with `database` as the default database.
    pub async fn connect(host: &str, port: u16, user: &str, password: Option<&str>, database: &str) -> Result<WireConn, WireError> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let mut c = WireConn {
            stream,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            big: Vec::new(),
            seq: 0,
            payload: Payload::Buf(0..0),
            statement: None,
            columns: Vec::new(),
            cells: Vec::new(),
        };
        c.handshake(user, password.unwrap_or(""), database).await?;
        Ok(c)
    }

    async fn handshake(&mut self, user: &str, password: &str, database: &str) -> Result<(), WireError> {
        let hello = self.read_payload().await?.to_vec();
        if hello.first() == Some(&0xFF) {
            return Err(server_error(&hello));
        }
        let mut p = Parser::new(&hello);
        if p.u8()? != 10 {
            return Err(WireError::Unsupported("a handshake other than protocol version 10".into()));
        }
        p.nul_str()?; // server version
        p.take(4)?; // connection id
        let mut nonce = p.take(8)?.to_vec();
        p.take(1)?;
        let mut server_caps = p.u16()? as u32;
        let mut plugin = "mysql_native_password".to_string();
        if !p.is_empty() {
            p.take(3)?; // character set, status
            server_caps |= (p.u16()? as u32) << 16;
            let auth_data_len = p.u8()? as usize;
            p.take(10)?;
            if server_caps & SECURE_CONNECTION != 0 {
                let part2 = p.take(auth_data_len.saturating_sub(8).max(13))?;
                nonce.extend_from_slice(part2.strip_suffix(&[0]).unwrap_or(part2));
            }
            if server_caps & PLUGIN_AUTH != 0 {
                plugin = String::from_utf8_lossy(p.nul_str()?).into_owned();
            }
        }
        let needed = PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH;
        if server_caps & needed != needed {
            return Err(WireError::Unsupported("a server without protocol 4.1 authentication".into()));
        }
        let caps = (LONG_PASSWORD | LONG_FLAG | CONNECT_WITH_DB | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION | MULTI_RESULTS | PLUGIN_AUTH) & server_caps;
        let answer = scramble(&plugin, &nonce, password)?;
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&caps.to_le_bytes());
        out.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
        out.push(UTF8MB4_GENERAL_CI);
        out.extend_from_slice(&[0; 23]);
        out.extend_from_slice(user.as_bytes());
        out.push(0);
        out.push(answer.len() as u8);
        out.extend_from_slice(&answer);
        out.extend_from_slice(database.as_bytes());
        out.push(0);
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
        self.write_packet(&out).await?;
        loop {
            let reply = self.read_payload().await?.to_vec();
            match reply.first() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(server_error(&reply)),
                // Auth switch: another plugin, a new nonce.
                Some(0xFE) => {
                    let mut p = Parser::new(&reply[1..]);
                    plugin = String::from_utf8_lossy(p.nul_str()?).into_owned();
                    let data = p.rest();
                    let nonce = data.strip_suffix(&[0]).unwrap_or(data).to_vec();
                    let answer = scramble(&plugin, &nonce, password)?;
                    self.write_packet(&answer).await?;
                }
                // caching_sha2_password: 3 = fast auth done (an OK follows); 4 = full auth
                // needed, which wants TLS or the server's RSA key.
                Some(0x01) if reply.get(1) == Some(&3) => {}
                Some(0x01) => return Err(WireError::Unsupported(format!("{plugin} full authentication"))),
                _ => return Err(protocol("an authentication reply")),
            }
        }
    }

    /// Run a statement that returns no rows.
    pub async fn query_drop(&mut self, sql: &str) -> Result<(), WireError> {
        self.command(0x03, sql.as_bytes()).await?;
        let reply = self.read_payload().await?;
        match reply.first() {
            Some(0x00) => Ok(()),
            Some(0xFF) => Err(server_error(reply)),
            _ => Err(protocol("a result set where none was expected")),
        }
    }

    /// Prepare and execute `sql` (a SELECT without parameters) in the binary protocol; then
    /// [`WireConn::next_row`] until it returns false. The columns are returned.
    pub async fn select(&mut self, sql: &str) -> Result<&[ColumnMeta], WireError> {
        self.command(0x16, sql.as_bytes()).await?;
        let ok = self.read_payload().await?;
        if ok.first() == Some(&0xFF) {
            return Err(server_error(ok));
        }
        let mut p = Parser::new(ok);
        if p.u8()? != 0 {
            return Err(protocol("a prepare reply"));
        }
        let id = p.u32()?;
        let (n_columns, n_params) = (p.u16()?, p.u16()?);
        if n_params > 0 {
            self.skip_definitions(n_params as usize).await?;
        }
        if n_columns > 0 {
            self.skip_definitions(n_columns as usize).await?;
        }
        self.statement = Some(id);
        let mut execute = Vec::with_capacity(9);
        execute.extend_from_slice(&id.to_le_bytes());
        execute.push(0); // no cursor
        execute.extend_from_slice(&1u32.to_le_bytes());
        self.command(0x17, &execute).await?;
        let head = self.read_payload().await?;
        if head.first() == Some(&0xFF) {
            return Err(server_error(head));
        }
        let n = Parser::new(head).lenenc()? as usize;
        self.columns.clear();
        for _ in 0..n {
            let def = self.read_payload().await?;
            let column = column_meta(def)?;
            self.columns.push(column);
        }
        self.expect_eof().await?;
        self.cells.clear();
        self.cells.resize(n, Cell::Null);
        Ok(&self.columns)
    }

    /// Read the next row of the open statement into place; false after the last one (the
    /// statement is then closed).
    pub async fn next_row(&mut self) -> Result<bool, WireError> {
        let payload = self.read_payload().await?;
        match (payload.first(), payload.len()) {
            (Some(0x00), _) => {}
            (Some(0xFE), len) if len < 9 => {
                if let Some(id) = self.statement.take() {
                    // COM_STMT_CLOSE has no reply.
                    self.command(0x19, &id.to_le_bytes()).await?;
                }
                return Ok(false);
            }
            (Some(0xFF), _) => return Err(server_error(payload)),
            _ => return Err(protocol("a binary row")),
        }
        let data = match &self.payload {
            Payload::Buf(r) => &self.buf[r.clone()],
            Payload::Big => &self.big[..],
        };
        decode_row(data, &self.columns, &mut self.cells).map_err(|_| protocol("a binary row shorter than its columns"))?;
        Ok(true)
    }

    /// The current row's values.
    pub fn row(&self) -> Row<'_> {
        let data = match &self.payload {
            Payload::Buf(r) => &self.buf[r.clone()],
            Payload::Big => &self.big[..],
        };
        Row { cells: &self.cells, data }
    }

    async fn skip_definitions(&mut self, n: usize) -> Result<(), WireError> {
        for _ in 0..n {
            self.read_payload().await?;
        }
        self.expect_eof().await
    }

    async fn expect_eof(&mut self) -> Result<(), WireError> {
        let eof = self.read_payload().await?;
        match eof.first() {
            Some(0xFE) if eof.len() < 9 => Ok(()),
            Some(0xFF) => Err(server_error(eof)),
            _ => Err(protocol("an EOF packet")),
        }
    }

    async fn command(&mut self, code: u8, body: &[u8]) -> Result<(), WireError> {
        self.seq = 0;
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(code);
        out.extend_from_slice(body);
        self.write_packet(&out).await
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        let mut pieces = payload.chunks(MAX_PAYLOAD).peekable();
        if payload.is_empty() {
            out.extend_from_slice(&[0, 0, 0, self.seq]);
            self.seq = self.seq.wrapping_add(1);
        }
        while let Some(piece) = pieces.next() {
            out.extend_from_slice(&(piece.len() as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(piece);
            if pieces.peek().is_none() && piece.len() == MAX_PAYLOAD {
                out.extend_from_slice(&[0, 0, 0, self.seq]);
                self.seq = self.seq.wrapping_add(1);
            }
        }
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// At least `n` unread bytes in the buffer (which grows for a bigger packet).
    async fn fill(&mut self, n: usize) -> Result<(), WireError> {
        while self.end - self.start < n {
            if self.start + n > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if n > self.buf.len() {
                    self.buf.resize(n.next_power_of_two(), 0);
                }
            }
            let got = self.stream.read(&mut self.buf[self.end..]).await?;
            if got == 0 {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.end += got;
        }
        Ok(())
    }

    /// The next packet's payload (pieces of a payload of 16 MiB or more joined).
    async fn read_payload(&mut self) -> Result<&[u8], WireError> {
        let mut joined = false;
        loop {
            self.fill(4).await?;
            let h = &self.buf[self.start..self.start + 4];
            let len = h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16;
            self.seq = h[3].wrapping_add(1);
            self.fill(4 + len).await?;
            let range = self.start + 4..self.start + 4 + len;
            self.start = range.end;
            if len == MAX_PAYLOAD || joined {
                if !joined {
                    self.big.clear();
                    joined = true;
                }
                self.big.extend_from_slice(&self.buf[range]);
                if len == MAX_PAYLOAD {
                    continue;
                }
                self.payload = Payload::Big;
                return Ok(&self.big);
            }
            self.payload = Payload::Buf(range.clone());
            return Ok(&self.buf[range]);
        }
    }
}

/// The current row, borrowed from the connection's buffer.
pub struct Row<'a> {
    cells: &'a [Cell],
    data: &'a [u8],
}

impl<'a> Row<'a> {
    pub(super) fn get(&self, i: usize) -> Raw<'a> {
        match self.cells[i] {
            Cell::Null => Raw::Null,
            Cell::Int(v) => Raw::Int(v),
            Cell::UInt(v) => Raw::UInt(v),
            Cell::Float(v) => Raw::Float(v),
            Cell::Double(v) => Raw::Double(v),
            Cell::Bytes(at, n) => Raw::Bytes(&self.data[at as usize..(at + n) as usize]),
            Cell::Date(y, mo, d, h, mi, s, us) => Raw::Date(y, mo, d, h, mi, s, us),
            Cell::Time(neg, days, h, mi, s, us) => Raw::Time(neg, days, h, mi, s, us),
        }
    }
}

/// The scramble `plugin` answers `nonce` with.
fn scramble(plugin: &str, nonce: &[u8], password: &str) -> Result<Vec<u8>, WireError> {
    use mysql_common::scramble::{scramble_native, scramble_sha256};
    let nonce = &nonce[..nonce.len().min(20)];
    match plugin {
        "mysql_native_password" => Ok(scramble_native(nonce, password.as_bytes()).map(|s| s.to_vec()).unwrap_or_default()),
        "caching_sha2_password" => Ok(scramble_sha256(nonce, password.as_bytes()).map(|s| s.to_vec()).unwrap_or_default()),
        other => Err(WireError::Unsupported(format!("authentication plugin {other}"))),
    }
}

fn server_error(payload: &[u8]) -> WireError {
    let code = u16::from_le_bytes([payload.get(1).copied().unwrap_or(0), payload.get(2).copied().unwrap_or(0)]);
    // "#" and a five-character SQL state precede the message.
    let rest = payload.get(3..).unwrap_or_default();
    let message = if rest.first() == Some(&b'#') && rest.len() >= 6 { &rest[6..] } else { rest };
    WireError::Server { code, message: String::from_utf8_lossy(message).into_owned() }
}

fn column_meta(def: &[u8]) -> Result<ColumnMeta, WireError> {
    let mut p = Parser::new(def);
    for _ in 0..6 {
        p.lenenc_bytes()?; // catalog, schema, table, original table, name, original name
    }
    p.lenenc()?; // length of the fixed fields
    let charset = p.u16()?;
    p.u32()?; // display length
    let column_type = ColumnType::try_from(p.u8()?).map_err(|_| protocol("a column type"))?;
    let flags = ColumnFlags::from_bits_truncate(p.u16()?);
    Ok(ColumnMeta { column_type, flags, charset })
}

/// Decode a binary row (after its 0x00 header) into `cells`, as mysql_common does.
fn decode_row(data: &[u8], columns: &[ColumnMeta], cells: &mut [Cell]) -> Result<(), ()> {
    use ColumnType::*;
    let n = columns.len();
    let bitmap_len = (n + 7 + 2) / 8;
    let bitmap = data.get(1..1 + bitmap_len).ok_or(())?;
    let mut at = 1 + bitmap_len;
    let take = |at: &mut usize, k: usize| -> Result<&[u8], ()> {
        let s = data.get(*at..*at + k).ok_or(())?;
        *at += k;
        Ok(s)
    };
    for (i, (column, cell)) in columns.iter().zip(cells.iter_mut()).enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            *cell = Cell::Null;
            continue;
        }
        let unsigned = column.flags.contains(ColumnFlags::UNSIGNED_FLAG);
        *cell = match column.column_type {
            MYSQL_TYPE_TINY => {
                let b = take(&mut at, 1)?[0];
                if unsigned {
                    Cell::UInt(b as u64)
                } else {
                    Cell::Int(b as i8 as i64)
                }
            }
            MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => {
                let v = u16::from_le_bytes(take(&mut at, 2)?.try_into().unwrap());
                if unsigned {
                    Cell::UInt(v as u64)
                } else {
                    Cell::Int(v as i16 as i64)
                }
            }
            MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => {
                let v = u32::from_le_bytes(take(&mut at, 4)?.try_into().unwrap());
                if unsigned {
                    Cell::UInt(v as u64)
                } else {
                    Cell::Int(v as i32 as i64)
                }
            }
            MYSQL_TYPE_LONGLONG => {
                let v = u64::from_le_bytes(take(&mut at, 8)?.try_into().unwrap());
                if unsigned {
                    Cell::UInt(v)
                } else {
                    Cell::Int(v as i64)
                }
            }
            MYSQL_TYPE_FLOAT => Cell::Float(f32::from_le_bytes(take(&mut at, 4)?.try_into().unwrap())),
            MYSQL_TYPE_DOUBLE => Cell::Double(f64::from_le_bytes(take(&mut at, 8)?.try_into().unwrap())),
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE | MYSQL_TYPE_DATETIME => {
                let len = take(&mut at, 1)?[0] as usize;
                let b = take(&mut at, len)?;
                let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut us) = (0u16, 0u8, 0u8, 0u8, 0u8, 0u8, 0u32);
                if len >= 4 {
                    (y, mo, d) = (u16::from_le_bytes([b[0], b[1]]), b[2], b[3]);
                }
                if len >= 7 {
                    (h, mi, s) = (b[4], b[5], b[6]);
                }
                if len >= 11 {
                    us = u32::from_le_bytes([b[7], b[8], b[9], b[10]]);
                }
                Cell::Date(y, mo, d, h, mi, s, us)
            }
            MYSQL_TYPE_TIME => {
                let len = take(&mut at, 1)?[0] as usize;
                let b = take(&mut at, len)?;
                let (mut neg, mut days, mut h, mut mi, mut s, mut us) = (false, 0u32, 0u8, 0u8, 0u8, 0u32);
                if len >= 8 {
                    (neg, days, h, mi, s) = (b[0] == 1, u32::from_le_bytes([b[1], b[2], b[3], b[4]]), b[5], b[6], b[7]);
                }
                if len >= 12 {
                    us = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
                }
                Cell::Time(neg, days, h, mi, s, us)
            }
            MYSQL_TYPE_NULL => Cell::Null,
            // Strings, blobs, DECIMAL, JSON, BIT, ENUM, SET, GEOMETRY: length-prefixed bytes.
            _ => {
                let mut p = Parser::new(&data[at..]);
                let len = p.lenenc().map_err(|_| ())? as usize;
                let head = data.len() - at - p.rest().len();
                let start = at + head;
                if start + len > data.len() {
                    return Err(());
                }
                at = start + len;
                Cell::Bytes(start as u32, len as u32)
            }
        };
    }
    Ok(())
}

/// Reads the protocol's integers and strings from a payload.
struct Parser<'a>(&'a [u8]);

impl<'a> Parser<'a> {
    fn new(b: &'a [u8]) -> Self {
        Parser(b)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn rest(&self) -> &'a [u8] {
        self.0
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(protocol("a packet shorter than its fields"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn nul_str(&mut self) -> Result<&'a [u8], WireError> {
        let end = self.0.iter().position(|&b| b == 0).ok_or_else(|| protocol("a string without its terminator"))?;
        let s = &self.0[..end];
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
    fn lenenc(&mut self) -> Result<u64, WireError> {
        Ok(match self.u8()? {
            0xFC => u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as u64,
            0xFD => {
                let b = self.take(3)?;
                u32::from_le_bytes([b[0], b[1], b[2], 0]) as u64
            }
            0xFE => u64::from_le_bytes(self.take(8)?.try_into().unwrap()),
            b => b as u64,
        })
    }
    fn lenenc_bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.lenenc()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(t: ColumnType, unsigned: bool) -> ColumnMeta {
        ColumnMeta { column_type: t, flags: if unsigned { ColumnFlags::UNSIGNED_FLAG } else { ColumnFlags::empty() }, charset: 63 }
    }

    #[test]
    fn a_binary_row_decodes_as_mysql_common_decodes_it() {
        use mysql_async::consts::ColumnType::*;
        let columns = [
            column(MYSQL_TYPE_TINY, false),
            column(MYSQL_TYPE_LONGLONG, true),
            column(MYSQL_TYPE_VAR_STRING, false),
            column(MYSQL_TYPE_DATETIME, false),
            column(MYSQL_TYPE_TIME, false),
            column(MYSQL_TYPE_DOUBLE, false),
            column(MYSQL_TYPE_BLOB, false),
        ];
        let mut row = vec![0x00, 0b0000_0000, 0b0000_0001]; // header; column 6 (bit 8) is NULL
        row.push(0xFF); // TINY -1
        row.extend_from_slice(&u64::MAX.to_le_bytes());
        row.extend_from_slice(&[3, b'a', b'b', b'c']);
        row.extend_from_slice(&[11, 0xEA, 0x07, 11, 23, 7, 20, 39]);
        row.extend_from_slice(&123_456u32.to_le_bytes());
        row.extend_from_slice(&[8, 1, 34, 0, 0, 0, 22, 59, 59]);
        row.extend_from_slice(&2.5f64.to_le_bytes());
        let mut cells = vec![Cell::Null; columns.len()];
        decode_row(&row, &columns, &mut cells).unwrap();
        let r = Row { cells: &cells, data: &row };
        let got: Vec<Raw> = (0..columns.len()).map(|i| r.get(i)).collect();
        assert_eq!(
            got,
            vec![
                Raw::Int(-1),
                Raw::UInt(u64::MAX),
                Raw::Bytes(b"abc"),
                Raw::Date(2026, 11, 23, 7, 20, 39, 123_456),
                Raw::Time(true, 34, 22, 59, 59, 0),
                Raw::Double(2.5),
                Raw::Null
            ]
        );
        // A row cut short is an error, not a panic.
        for cut in 0..row.len() {
            assert!(decode_row(&row[..cut], &columns, &mut cells).is_err(), "{cut}");
        }
    }
}
