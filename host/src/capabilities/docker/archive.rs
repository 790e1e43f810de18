//! What a `docker save` archive holds, read before the engine sees it: every tag `docker load`
//! will set, and what identifies the image each names (config digest, manifest digest, layer
//! diff IDs). `docker load` moves a tag that already names another image on the node without a
//! word (`mariadb:10.6`, or the old version's own tag that the rollback will start), so the real
//! engine's `load-image` checks each tag here first (real.rs) and refuses before anything changes.
//!
//! The reader walks the tar headers (ustar, GNU long names, PAX `path` and `size`), plain or
//! gzip; it keeps only the small JSON files that describe images, and streams past the layers.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// One image of an archive: the tags loading it sets, and what identifies it on an engine.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ArchiveImage {
    pub tags: Vec<String>,
    /// `sha256:…` of its config (the image ID on the classic store) and of its manifest (the ID
    /// on the containerd store), as far as the archive says.
    pub ids: Vec<String>,
    /// Its config's `rootfs.diff_ids`, when the archive holds the config.
    pub layers: Option<Vec<String>>,
}

impl ArchiveImage {
    /// Whether an engine's image (its ID, its descriptor digest, its layers) is this one.
    pub fn is(&self, id: Option<&str>, digest: Option<&str>, layers: Option<&[String]>) -> bool {
        let known = |x: Option<&str>| x.is_some_and(|x| self.ids.iter().any(|i| i == x));
        known(id) || known(digest) || matches!((&self.layers, layers), (Some(a), Some(b)) if !a.is_empty() && a.as_slice() == b)
    }
}

/// Files kept from an archive: JSON up to this size (configs, manifests, indexes)…
const MAX_KEPT_FILE: u64 = 1 << 20;
/// …and this much of them in all.
const MAX_KEPT_TOTAL: u64 = 64 << 20;

/// The images of the archive at `path` and the tags loading it sets. `read` is told the bytes of
/// the file read so far (for progress). An archive compressed other than with gzip, with no
/// `manifest.json` or `index.json`, or whose manifest is a link, is refused: opshost could not
/// tell what it would tag.
pub fn read_archive(path: &Path, read: &mut dyn FnMut(u64)) -> Result<Vec<ArchiveImage>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut counted = io::BufReader::with_capacity(1 << 20, Counted { inner: file, read: 0, tell: read });
    let mut magic = [0u8; 6];
    let n = peek(&mut counted, &mut magic).map_err(|e| format!("cannot read it: {e}"))?;
    let head = magic[..n].to_vec();
    let compressed = |name: &str, tool: &str| {
        Err(format!(
            "it is compressed with {name}, and opshost reads the tags of plain or gzip archives only before loading them: decompress it ({tool}) and name the .tar in the site config"
        ))
    };
    let files = if head.starts_with(&[0x1f, 0x8b]) {
        tar_files(&mut flate2::read::MultiGzDecoder::new(Prefixed { head, inner: &mut counted }))
    } else if head.starts_with(b"BZh") {
        return compressed("bzip2", "bunzip2");
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return compressed("xz", "xz -d");
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return compressed("zstd", "zstd -d");
    } else {
        tar_files(&mut Prefixed { head, inner: &mut counted })
    }
    .map_err(|e| format!("it is not a tar archive docker could load: {e}"))?;
    images_of(&files)
}

/// What a tar archive's kept files say about its images.
fn images_of(files: &BTreeMap<String, Kept>) -> Result<Vec<ArchiveImage>, String> {
    let text = |name: &str| -> Result<Option<&[u8]>, String> {
        match files.get(name) {
            None => Ok(None),
            Some(Kept::Link) => Err(format!("its {name} is a link: docker save writes a file; rebuild the archive with docker save")),
            Some(Kept::TooLarge) => Err(format!("its {name} is over {} MiB, larger than any docker save writes", MAX_KEPT_FILE >> 20)),
            Some(Kept::File(bytes)) => Ok(Some(bytes)),
        }
    };
    let manifest = text("manifest.json")?;
    let index = text("index.json")?;
    if manifest.is_none() && index.is_none() {
        return Err("it holds no manifest.json or index.json: it is not an archive `docker save` writes (Docker 1.10 or later)".into());
    }
    let mut images: Vec<ArchiveImage> = Vec::new();
    if let Some(bytes) = manifest {
        let entries: Vec<ManifestEntry> = serde_json::from_slice(bytes).map_err(|e| format!("its manifest.json cannot be read ({e})"))?;
        for e in entries {
            let digest = e.config.strip_prefix("blobs/sha256/").or_else(|| e.config.strip_suffix(".json")).map(|h| format!("sha256:{h}"));
            let layers = match text(&clean(&e.config))? {
                Some(config) => serde_json::from_slice::<ImageConfig>(config).ok().and_then(|c| c.rootfs).map(|r| r.diff_ids),
                None => None,
            };
            images.push(ArchiveImage { tags: e.repo_tags.unwrap_or_default(), ids: digest.into_iter().collect(), layers });
        }
    }
    if let Some(bytes) = index {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| format!("its index.json cannot be read ({e})"))?;
        for m in index.manifests {
            let names: Vec<String> = ["io.containerd.image.name", "org.opencontainers.image.ref.name"]
                .iter()
                .filter_map(|k| m.annotations.get(*k))
                .filter(|n| n.contains(':') || n.contains('/'))
                .cloned()
                .collect();
            // The same image as a manifest.json entry when it shares a tag with it.
            match images.iter_mut().find(|i| names.iter().any(|n| i.tags.contains(n))) {
                Some(image) => {
                    image.ids.push(m.digest.clone());
                    image.tags.extend(names.into_iter().filter(|n| !image.tags.contains(n)).collect::<Vec<_>>());
                }
                None => images.push(ArchiveImage { tags: names, ids: vec![m.digest.clone()], layers: None }),
            }
        }
    }
    for image in &mut images {
        image.tags.dedup();
    }
    Ok(images)
}

#[derive(serde::Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct ImageConfig {
    rootfs: Option<RootFs>,
}

#[derive(serde::Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A file of the archive as kept: its bytes, or why not.
#[derive(Debug, PartialEq)]
enum Kept {
    File(Vec<u8>),
    Link,
    TooLarge,
}

/// Whether a file's bytes are kept: JSON, and the blobs of an OCI layout (configs and manifests
/// among them), when small. The rest is read past.
fn worth_keeping(name: &str) -> bool {
    name.ends_with(".json") || name.starts_with("blobs/")
}

/// A path as the engine extracts it: no `.` or empty parts, `..` taken back, no leading `/`.
fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The kept files of a tar stream, by cleaned path; a later entry of the same path replaces an
/// earlier one, as extraction does.
fn tar_files(r: &mut dyn Read) -> io::Result<BTreeMap<String, Kept>> {
    let mut files = BTreeMap::new();
    let mut kept_total = 0u64;
    let mut long_name: Option<String> = None;
    let mut pax: BTreeMap<String, String> = BTreeMap::new();
    let mut header = [0u8; 512];
    loop {
        if !read_block(r, &mut header)? || header.iter().all(|&b| b == 0) {
            return Ok(files);
        }
        let kind = header[156];
        let mut size = octal(&header[124..136])?;
        if let (false, Some(s)) = (matches!(kind, b'x' | b'L'), pax.get("size")) {
            size = s.parse().map_err(|_| bad(format!("PAX size {s} is not a number")))?;
        }
        let padded = size.div_ceil(512) * 512;
        match kind {
            b'x' | b'L' => {
                if size > MAX_KEPT_FILE {
                    return Err(bad(format!("an extended header of {size} bytes")));
                }
                let mut body = vec![0u8; padded as usize];
                r.read_exact(&mut body)?;
                body.truncate(size as usize);
                if kind == b'L' {
                    long_name = Some(String::from_utf8_lossy(body.split(|&b| b == 0).next().unwrap_or_default()).into_owned());
                } else {
                    pax = pax_records(&body)?;
                }
                continue;
            }
            _ => {}
        }
        let name = match (pax.remove("path"), long_name.take()) {
            (Some(p), _) => p,
            (None, Some(l)) => l,
            (None, None) => {
                let field = |b: &[u8]| String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or_default()).into_owned();
                let (name, prefix) = (field(&header[..100]), field(&header[345..500]));
                if &header[257..262] == b"ustar" && !prefix.is_empty() {
                    format!("{prefix}/{name}")
                } else {
                    name
                }
            }
        };
        pax.clear();
        let name = clean(&name);
        let regular = matches!(kind, b'0' | 0 | b'7');
        if matches!(kind, b'1' | b'2') {
            files.insert(name, Kept::Link);
        } else if regular && worth_keeping(&name) {
            if size > MAX_KEPT_FILE {
                files.insert(name, Kept::TooLarge);
            } else {
                kept_total += size;
                if kept_total > MAX_KEPT_TOTAL {
                    return Err(bad(format!("more than {} MiB of JSON", MAX_KEPT_TOTAL >> 20)));
                }
                let mut body = vec![0u8; padded as usize];
                r.read_exact(&mut body)?;
                body.truncate(size as usize);
                files.insert(name, Kept::File(body));
                continue;
            }
        } else if regular || kind == b'5' {
            files.remove(&name);
        }
        let skipped = io::copy(&mut r.take(padded), &mut io::sink())?;
        if skipped != padded {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Read one 512-byte block; false at the end of the stream (an archive without its end blocks).
fn read_block(r: &mut dyn Read, block: &mut [u8; 512]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A tar number field: octal text, or base-256 when its first byte has the high bit.
fn octal(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7f), |n, &b| n.checked_mul(256).map(|n| n + u64::from(b)))
            .ok_or_else(|| bad("a size field overflows".into()));
    }
    let text: String = field.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| bad(format!("a size field {text:?} is not octal")))
}

/// `length key=value\n` records of a PAX header.
fn pax_records(mut body: &[u8]) -> io::Result<BTreeMap<String, String>> {
    let mut records = BTreeMap::new();
    while !body.is_empty() && body[0] != 0 {
        let space = body.iter().position(|&b| b == b' ').ok_or_else(|| bad("a PAX record without its length".into()))?;
        let len: usize =
            std::str::from_utf8(&body[..space]).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad("a PAX record length is not a number".into()))?;
        if len <= space + 1 || len > body.len() {
            return Err(bad("a PAX record's length is out of its header".into()));
        }
        let record = String::from_utf8_lossy(&body[space + 1..len]);
        let record = record.strip_suffix('\n').unwrap_or(&record);
        if let Some((k, v)) = record.split_once('=') {
            records.insert(k.to_string(), v.to_string());
        }
        body = &body[len..];
    }
    Ok(records)
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Read up to `buf.len()` bytes, fewer only at the end of the stream.
fn peek(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A reader that gives back the bytes peeked before reading on.
struct Prefixed<'a> {
    head: Vec<u8>,
    inner: &'a mut dyn Read,
}

impl Read for Prefixed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.head.is_empty() {
            return self.inner.read(buf);
        }
        let n = self.head.len().min(buf.len());
        buf[..n].copy_from_slice(&self.head[..n]);
        self.head.drain(..n);
        Ok(n)
    }
}

/// A reader that tells how much of the file it has read.
struct Counted<'a, R> {
    inner: R,
    read: u64,
    tell: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.tell)(self.read);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry's header and padded body.
    fn entry(name: &str, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn pax(key: &str, value: &str) -> Vec<u8> {
        let record = |len: usize| format!("{len} {key}={value}\n");
        let mut len = record(0).len();
        while record(len).len() != len {
            len = record(len).len();
        }
        entry("PaxHeaders/x", b'x', record(len).as_bytes())
    }

    fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = entries.concat();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn images(bytes: &[u8]) -> Result<Vec<ArchiveImage>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, bytes).unwrap();
        read_archive(&path, &mut |_| {})
    }

    const CONFIG: &str = r#"{"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;

    fn manifest(tags: &[&str]) -> Vec<u8> {
        let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        entry("manifest.json", b'0', format!(r#"[{{"Config":"abc.json","RepoTags":[{}],"Layers":["l/layer.tar"]}}]"#, tags.join(",")).as_bytes())
    }

    #[test]
    fn a_docker_save_archive_gives_its_tags_id_and_layers() {
        let tar = archive(&[entry("l/layer.tar", b'0', &[7u8; 3000]), entry("abc.json", b'0', CONFIG.as_bytes()), manifest(&["oms:4.2.0", "oms:latest"])]);
        let want =
            vec![ArchiveImage { tags: vec!["oms:4.2.0".into(), "oms:latest".into()], ids: vec!["sha256:abc".into()], layers: Some(vec!["sha256:aa".into()]) }];
        assert_eq!(images(&tar).unwrap(), want);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        assert_eq!(images(&gz.finish().unwrap()).unwrap(), want, "gzip");
        let image = &want[0];
        assert!(image.is(Some("sha256:abc"), None, None));
        assert!(image.is(Some("sha256:other"), None, Some(&["sha256:aa".to_string()])), "the containerd store: same layers");
        assert!(!image.is(Some("sha256:other"), Some("sha256:x"), Some(&["sha256:bb".to_string()])));
    }

    #[test]
    fn a_manifest_hidden_behind_long_names_dot_paths_and_pax_is_still_read() {
        // The first manifest.json is replaced by the later one, as extraction does.
        let tar =
            archive(&[manifest(&["first:one"]), pax("path", "./manifest.json"), entry("other", b'0', br#"[{"Config":"d.json","RepoTags":["mariadb:10.6"]}]"#)]);
        assert_eq!(images(&tar).unwrap()[0].tags, vec!["mariadb:10.6"]);
        let gnu =
            archive(&[entry("././@LongLink", b'L', b"x/../manifest.json\0"), entry("whatever", b'0', br#"[{"Config":"d.json","RepoTags":["mariadb:10.6"]}]"#)]);
        assert_eq!(images(&gnu).unwrap()[0].tags, vec!["mariadb:10.6"]);
        let prefixed = {
            let mut e = entry("manifest.json", b'0', br#"[{"Config":"d.json","RepoTags":["mariadb:10.6"]}]"#);
            e[345..347].copy_from_slice(b"./");
            archive(&[e])
        };
        assert_eq!(images(&prefixed).unwrap()[0].tags, vec!["mariadb:10.6"]);
    }

    #[test]
    fn an_oci_index_adds_its_names_and_manifest_digest() {
        let index = br#"{"manifests":[{"digest":"sha256:m1","annotations":{"io.containerd.image.name":"oms:4.2.0","org.opencontainers.image.ref.name":"4.2.0"}},{"digest":"sha256:m2","annotations":{"io.containerd.image.name":"nginx:1.26"}}]}"#;
        let tar = archive(&[
            entry("blobs/sha256/abc", b'0', CONFIG.as_bytes()),
            entry("index.json", b'0', index),
            entry("manifest.json", b'0', br#"[{"Config":"blobs/sha256/abc","RepoTags":["oms:4.2.0"]}]"#),
        ]);
        let got = images(&tar).unwrap();
        assert_eq!(
            got[0],
            ArchiveImage { tags: vec!["oms:4.2.0".into()], ids: vec!["sha256:abc".into(), "sha256:m1".into()], layers: Some(vec!["sha256:aa".into()]) }
        );
        assert_eq!(got[1], ArchiveImage { tags: vec!["nginx:1.26".into()], ids: vec!["sha256:m2".into()], layers: None });
    }

    #[test]
    fn archives_opshost_cannot_read_are_refused_with_the_fix() {
        let err = |bytes: &[u8]| images(bytes).unwrap_err();
        assert!(err(b"BZh91AY&SY").contains("bunzip2"), "{}", err(b"BZh91AY&SY"));
        assert!(err(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1]).contains("xz -d"));
        assert!(err(&[0x28, 0xb5, 0x2f, 0xfd, 0]).contains("zstd -d"));
        assert!(err(&archive(&[entry("hello", b'0', b"x")])).contains("no manifest.json"));
        assert!(err(&archive(&[entry("manifest.json", b'2', b"")])).contains("is a link"));
        let truncated = &manifest(&["a:b"])[..600];
        assert!(err(truncated).contains("not a tar archive"), "{}", err(truncated));
        assert!(err(&archive(&[entry("manifest.json", b'0', b"{not json")])).contains("cannot be read"));
    }

    #[test]
    fn sizes_read_as_octal_or_base_256() {
        assert_eq!(octal(b"00000001750\0").unwrap(), 1000);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[10] = 1;
        assert_eq!(octal(&big).unwrap(), 256);
        assert!(octal(b"zz\0").is_err());
    }
}
