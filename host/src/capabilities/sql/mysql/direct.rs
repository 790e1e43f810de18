//! A dump file written past the page cache: on Linux, where the filesystem takes it, the file is
//! opened with `O_DIRECT` and written in aligned blocks of [`BLOCK`] from one buffer, so the
//! kernel sends the bytes to the disk without first copying them into its cache. A dump writes
//! hundreds of megabytes once and reads none of them back, on the same cores as the MetaDB;
//! the copy into the cache was most of the client's system time. Measured on the bench's data
//! (MariaDB 10.11 on the same two cores), in alternating runs: the `oms` shape's dump (580 MB)
//! 0.86–0.94 s against 0.94–1.00 s, its system time 0.06–0.18 s against 0.19–0.27 s; the `wide`
//! shape's (550 MB) the same 0.3 s, bound by the disk, at 0.11–0.15 s of system time against
//! 0.20–0.23 s. It also leaves the page cache to the MetaDB's host.
//!
//! Elsewhere, or where the filesystem refuses `O_DIRECT` (at the open or at the first write:
//! tmpfs, some network filesystems), the same bytes go through the cache as any file's. Either
//! way [`Out::finish`] ends with the file on disk (fsync).

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The alignment `O_DIRECT` asks of a write's buffer, length and offset: a page, which covers
/// every logical block size in use (512 and 4096 bytes).
const ALIGN: usize = 4096;

/// How much is written at a time: big enough that a write keeps the disk busy, small enough
/// that the buffer is no memory to speak of.
const BLOCK: usize = 4 << 20;

/// Bytes on their way to one file.
pub(super) struct Out {
    file: File,
    /// The file takes unbuffered writes; cleared if the first one is refused.
    direct: bool,
    buf: Vec<u8>,
    /// Where the aligned block starts in `buf`.
    start: usize,
    /// How much of the block holds bytes not yet written.
    filled: usize,
    /// How much of the file is written: where the block goes.
    written: u64,
}

impl Out {
    /// Create (or truncate) the file at `path`.
    pub(super) fn create(path: &Path) -> std::io::Result<Out> {
        let (file, direct) = open(path)?;
        Ok(Out::with(file, direct))
    }

    fn with(file: File, direct: bool) -> Out {
        let mut buf = vec![0u8; BLOCK + ALIGN];
        let start = buf.as_mut_ptr().align_offset(ALIGN);
        Out { file, direct, buf, start, filled: 0, written: 0 }
    }

    /// Whether the file is (still) written past the page cache.
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// A handle that can sync the file while it is being written (buffered files only; a direct
    /// file has nothing in the cache to sync).
    pub(super) fn try_clone(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// Append `bytes`, writing every block they fill.
    pub(super) fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let n = (BLOCK - self.filled).min(bytes.len());
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == BLOCK {
                self.write_block(BLOCK)?;
            }
        }
        Ok(())
    }

    /// Write the first `len` bytes of the block (a multiple of [`ALIGN`] while the file is
    /// direct) and keep the rest at its start. A filesystem that opened the file unbuffered but
    /// refuses the write (EINVAL) gets the block again from its start, and everything after it,
    /// through the cache.
    fn write_block(&mut self, len: usize) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let block = &self.buf[self.start..self.start + len];
        match self.file.write_all(block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.direct => {
                buffered(&self.file)?;
                self.direct = false;
                // Part of the block may have gone before the refusal.
                self.file.seek(SeekFrom::Start(self.written))?;
                self.file.write_all(block)?;
            }
            Err(e) => return Err(e),
        }
        self.written += len as u64;
        self.buf.copy_within(self.start + len..self.start + self.filled, self.start);
        self.filled -= len;
        Ok(())
    }

    /// Write what is left and make the file durable (fsync): while the file is direct, the
    /// whole pages unbuffered and the last partial one (which `O_DIRECT` cannot write) through
    /// the cache.
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        let whole = if self.direct { self.filled / ALIGN * ALIGN } else { self.filled };
        if whole > 0 {
            self.write_block(whole)?;
        }
        if self.filled > 0 {
            buffered(&self.file)?;
            self.direct = false;
            let len = self.filled;
            self.write_block(len)?;
        }
        self.file.sync_all()
    }
}

#[cfg(target_os = "linux")]
fn open(path: &Path) -> std::io::Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let options = || {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        o
    };
    match options().custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok((options().open(path)?, false)),
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn open(path: &Path) -> std::io::Result<(File, bool)> {
    Ok((File::create(path)?, false))
}

/// Clear `O_DIRECT` on `file`: its next writes go through the cache.
#[cfg(target_os = "linux")]
fn buffered(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this File owns, with flags it returned.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn buffered(_: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes of every size around the block and alignment boundaries end as exactly the bytes
    /// given, in a file opened unbuffered where the filesystem takes it and in one written
    /// through the cache.
    #[test]
    fn the_file_holds_exactly_the_bytes_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 0x243f_6a88_85a3_08d3u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (case, sizes) in [
            vec![0],
            vec![1],
            vec![ALIGN],
            vec![BLOCK],
            vec![BLOCK - 1, 2],
            vec![BLOCK + ALIGN + 7, 3, BLOCK * 2 + 1],
            vec![BLOCK + ALIGN + 7, 3, BLOCK * 2 + 1],
            (0..200).map(|i| i * 997 % 70_001).collect(),
            (0..200).map(|i| i * 997 % 70_001).collect(),
        ]
        .into_iter()
        .enumerate()
        {
            let direct = case % 2 == 0;
            let path = dir.path().join(format!("f{case}"));
            let mut out = if direct { Out::create(&path).unwrap() } else { Out::with(File::create(&path).unwrap(), false) };
            let mut expected = Vec::new();
            for size in sizes {
                let bytes: Vec<u8> = (0..size).map(|_| next() as u8).collect();
                out.write(&bytes).unwrap();
                expected.extend_from_slice(&bytes);
            }
            out.finish().unwrap();
            assert!(std::fs::read(&path).unwrap() == expected, "case {case}: the file differs from what was written");
        }
    }
}
