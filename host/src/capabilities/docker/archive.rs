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
    /// Its config's run settings ([`run_settings`]), when the archive holds the config.
    pub settings: Option<serde_json::Value>,
}

/// An image as the engine shows it, for [`ArchiveImage::is`].
pub struct EngineImage<'a> {
    pub id: Option<&'a str>,
    /// The digest of its manifest: shown by an engine with the containerd image store only.
    pub digest: Option<&'a str>,
    pub layers: Option<&'a [String]>,
    /// Its config's run settings ([`run_settings`] of the engine's `Config`).
    pub settings: serde_json::Value,
}

impl ArchiveImage {
    /// Whether the engine's image is this one. On the classic store its ID is its config's
    /// digest, and that decides. The containerd store shows a manifest's digest instead, which a
    /// `docker save` archive of the classic kind does not hold: there the same layers and the
    /// same run settings are the same image.
    pub fn is(&self, e: &EngineImage) -> bool {
        let known = |x: Option<&str>| x.is_some_and(|x| self.ids.iter().any(|i| i == x));
        if known(e.id) || known(e.digest) {
            return true;
        }
        let containerd = e.digest.is_some();
        containerd
            && matches!((&self.layers, e.layers), (Some(a), Some(b)) if !a.is_empty() && a.as_slice() == b)
            && self.settings.as_ref().is_some_and(|s| *s == e.settings)
    }
}

/// What an image config says a container runs with (`Cmd`, `Entrypoint`, `Env`, `User`,
/// `WorkingDir`, `Labels`, `ExposedPorts`, `Volumes`, `StopSignal`), empty ones left out, from an
/// image config's `config` object or an engine's `Config`.
pub fn run_settings(config: Option<&serde_json::Value>) -> serde_json::Value {
    const KEYS: [&str; 9] = ["Cmd", "Entrypoint", "Env", "User", "WorkingDir", "Labels", "ExposedPorts", "Volumes", "StopSignal"];
    let mut out = serde_json::Map::new();
    for k in KEYS {
        match config.and_then(|c| c.get(k)) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) if s.is_empty() => {}
            Some(serde_json::Value::Array(a)) if a.is_empty() => {}
            Some(serde_json::Value::Object(o)) if o.is_empty() => {}
            Some(v) => {
                out.insert(k.to_string(), v.clone());
            }
        }
    }
    serde_json::Value::Object(out)
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
    // The magic numbers `docker load` tells compression by (moby's DetectCompression), zstd's
    // skippable frames (0x184D2A50 to 0x184D2A5F) among them: the same bytes must be read as the
    // same format here, or opshost would check another archive than the engine loads.
    let files = if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        tar_files(&mut flate2::read::MultiGzDecoder::new(Prefixed { head, inner: &mut counted }))
    } else if head.starts_with(b"BZh") {
        return compressed("bzip2", "bunzip2");
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return compressed("xz", "xz -d");
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]) {
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
            // The image ID is the digest of the config's bytes, as the engine computes it: never
            // the file's name, which an archive may set to another image's ID.
            let (ids, layers, settings) = match text(&clean(&e.config))? {
                Some(config) => {
                    let parsed = serde_json::from_slice::<ImageConfig>(config).ok();
                    let layers = parsed.as_ref().and_then(|c| c.rootfs.as_ref()).map(|r| r.diff_ids.clone());
                    (vec![sha256_id(config)], layers, parsed.map(|c| run_settings(c.config.as_ref())))
                }
                None => (Vec::new(), None, None),
            };
            images.push(ArchiveImage { tags: e.repo_tags.unwrap_or_default().iter().map(|t| normalized(t)).collect(), ids, layers, settings });
        }
    }
    if let Some(bytes) = index {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| format!("its index.json cannot be read ({e})"))?;
        for m in index.manifests {
            let names: Vec<String> = ["io.containerd.image.name", "org.opencontainers.image.ref.name"]
                .iter()
                .filter_map(|k| m.annotations.get(*k))
                .filter(|n| n.contains(':') || n.contains('/'))
                .map(|n| normalized(n))
                .collect();
            // A manifest's digest identifies the image only when the archive holds the manifest
            // and its bytes have that digest.
            let verified = m.digest.strip_prefix("sha256:").and_then(|hex| match files.get(&format!("blobs/sha256/{hex}")) {
                Some(Kept::File(bytes)) if sha256_id(bytes) == m.digest => Some(m.digest.clone()),
                _ => None,
            });
            // The same image as a manifest.json entry when it shares a tag with it.
            match images.iter_mut().find(|i| names.iter().any(|n| i.tags.contains(n))) {
                Some(image) => {
                    image.ids.extend(verified);
                    image.tags.extend(names.into_iter().filter(|n| !image.tags.contains(n)).collect::<Vec<_>>());
                }
                None => images.push(ArchiveImage { tags: names, ids: verified.into_iter().collect(), layers: None, settings: None }),
            }
        }
    }
    for image in &mut images {
        image.tags.dedup();
    }
    Ok(images)
}

/// `sha256:<hex>` of `bytes`.
fn sha256_id(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)))
}

/// An image reference as the engine names it: `docker.io/library/nginx:1.26` for `nginx:1.26`,
/// `docker.io/oceanbase/odc:4.3.1` for `oceanbase/odc:4.3.1`, `:latest` where no tag is given.
/// `docker save` writes one form in `manifest.json` and the other in `index.json`.
pub fn normalized(reference: &str) -> String {
    let (name, suffix) = match reference.split_once('@') {
        Some((name, digest)) => (name, format!("@{digest}")),
        None => match reference.rfind(':') {
            Some(colon) if !reference[colon..].contains('/') => (&reference[..colon], reference[colon..].to_string()),
            _ => (reference, ":latest".to_string()),
        },
    };
    let name = match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    };
    format!("{name}{suffix}")
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
    config: Option<serde_json::Value>,
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
/// earlier one, as extraction does. Strict where Go's `archive/tar` (which `docker load` reads
/// with) and this reader could read the same bytes two ways, so that opshost never checks
/// another manifest than the engine applies: a bad header checksum, a size on a link, device or
/// directory entry, a PAX path beside a GNU long name, two of either, PAX sparse files, global
/// PAX headers and the other GNU extensions, an entry under or over a link, and anything but a
/// second zero block after the first are all refused (`docker save` writes none of them).
fn tar_files(r: &mut dyn Read) -> io::Result<BTreeMap<String, Kept>> {
    let mut files = BTreeMap::new();
    let mut links: std::collections::BTreeSet<String> = Default::default();
    let mut kept_total = 0u64;
    let mut long_name: Option<String> = None;
    let mut pax: Option<BTreeMap<String, String>> = None;
    let mut header = [0u8; 512];
    loop {
        if !read_block(r, &mut header)? {
            return Ok(files);
        }
        if header.iter().all(|&b| b == 0) {
            if read_block(r, &mut header)? && header.iter().any(|&b| b != 0) {
                return Err(bad("a header after the archive's end block".into()));
            }
            return Ok(files);
        }
        check_checksum(&header)?;
        let kind = header[156];
        let mut size = octal(&header[124..136])?;
        let padded = |size: u64| size.checked_add(511).map(|s| s / 512 * 512).ok_or_else(|| bad(format!("a size of {size} bytes")));
        match kind {
            b'x' | b'L' => {
                if size > MAX_KEPT_FILE {
                    return Err(bad(format!("an extended header of {size} bytes")));
                }
                let body = read_body(r, size, padded(size)?)?;
                if kind == b'L' {
                    if long_name.is_some() {
                        return Err(bad("two GNU long names for one entry".into()));
                    }
                    long_name = Some(String::from_utf8_lossy(body.split(|&b| b == 0).next().unwrap_or_default()).into_owned());
                } else {
                    if pax.is_some() {
                        return Err(bad("two PAX headers for one entry".into()));
                    }
                    pax = Some(pax_records(&body)?);
                }
                continue;
            }
            b'g' | b'K' | b'S' | b'V' | b'M' | b'N' => {
                return Err(bad(format!("an entry of type {:?}, which docker save never writes", kind as char)));
            }
            _ => {}
        }
        let pax = pax.take().unwrap_or_default();
        if pax.keys().any(|k| k.starts_with("GNU.sparse")) {
            return Err(bad("a PAX sparse file".into()));
        }
        if let Some(s) = pax.get("size") {
            size = s.parse().map_err(|_| bad(format!("PAX size {s} is not a number")))?;
        }
        if matches!(kind, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') && size != 0 {
            return Err(bad(format!("a link, device or directory entry of type {:?} with a size of its own", kind as char)));
        }
        let name = match (pax.get("path"), long_name.take()) {
            (Some(_), Some(_)) => return Err(bad("both a PAX path and a GNU long name for one entry".into())),
            (Some(p), None) => p.clone(),
            (None, Some(l)) => l,
            (None, None) => {
                let field = |b: &[u8]| String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or_default()).into_owned();
                let (name, prefix) = (field(&header[..100]), field(&header[345..500]));
                // Only POSIX ustar has a name prefix there; GNU keeps times in those bytes.
                if &header[257..263] == b"ustar\0" && !prefix.is_empty() {
                    format!("{prefix}/{name}")
                } else {
                    name
                }
            }
        };
        let name = clean(&name);
        // Extraction writes an entry under a link (`d -> .`, then `d/manifest.json`) through it,
        // and one over a link through it too on some engines.
        if links.contains(&name) || links.iter().any(|l| name.starts_with(&format!("{l}/"))) {
            return Err(bad(format!("entry {name:?} under or over a link")));
        }
        let regular = matches!(kind, b'0' | 0 | b'7');
        if matches!(kind, b'1' | b'2') {
            links.insert(name.clone());
            files.insert(name, Kept::Link);
        } else if regular && worth_keeping(&name) {
            if size > MAX_KEPT_FILE {
                files.insert(name, Kept::TooLarge);
            } else {
                kept_total += size;
                if kept_total > MAX_KEPT_TOTAL {
                    return Err(bad(format!("more than {} MiB of JSON", MAX_KEPT_TOTAL >> 20)));
                }
                files.insert(name, Kept::File(read_body(r, size, padded(size)?)?));
                continue;
            }
        } else if regular || kind == b'5' {
            files.remove(&name);
        }
        let padded = padded(size)?;
        let skipped = io::copy(&mut r.take(padded), &mut io::sink())?;
        if skipped != padded {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// An entry's `size` bytes of body, read with their padding (`padded` bytes in all): callers keep
/// only bodies of at most [`MAX_KEPT_FILE`].
fn read_body(r: &mut dyn Read, size: u64, padded: u64) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; padded as usize];
    r.read_exact(&mut body)?;
    body.truncate(size as usize);
    Ok(body)
}

/// A header's checksum, as Go's reader takes it: the sum of its bytes with the checksum field
/// as spaces, unsigned or signed.
fn check_checksum(header: &[u8; 512]) -> io::Result<()> {
    let recorded = octal(&header[148..156])?;
    let field = 148..156;
    let unsigned: i64 = header.iter().enumerate().map(|(i, &b)| if field.contains(&i) { 32 } else { i64::from(b) }).sum();
    let signed: i64 = header.iter().enumerate().map(|(i, &b)| if field.contains(&i) { 32 } else { i64::from(b as i8) }).sum();
    if recorded as i64 == unsigned || recorded as i64 == signed {
        Ok(())
    } else {
        Err(bad("a header whose checksum does not match".into()))
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

    /// A tar header (checksum last, after `edit`) and its padded body.
    fn entry_with(name: &str, kind: u8, body: &[u8], edit: impl FnOnce(&mut [u8; 512])) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        edit(&mut h);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn entry(name: &str, kind: u8, body: &[u8]) -> Vec<u8> {
        entry_with(name, kind, body, |_| {})
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

    const CONFIG: &str = r#"{"config":{"Cmd":["/bin/oms"],"Env":["A=1"],"User":""},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;

    fn manifest(tags: &[&str]) -> Vec<u8> {
        let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        entry("manifest.json", b'0', format!(r#"[{{"Config":"abc.json","RepoTags":[{}],"Layers":["l/layer.tar"]}}]"#, tags.join(",")).as_bytes())
    }

    fn settings() -> serde_json::Value {
        serde_json::json!({"Cmd": ["/bin/oms"], "Env": ["A=1"]})
    }

    #[test]
    fn a_docker_save_archive_gives_its_tags_id_layers_and_settings() {
        let tar = archive(&[
            entry("l/layer.tar", b'0', &[7u8; 3000]),
            entry("abc.json", b'0', CONFIG.as_bytes()),
            manifest(&["oms:4.2.0", "reg.example.com/oms:latest"]),
        ]);
        let want = vec![ArchiveImage {
            tags: vec!["docker.io/library/oms:4.2.0".into(), "reg.example.com/oms:latest".into()],
            ids: vec![sha256_id(CONFIG.as_bytes())],
            layers: Some(vec!["sha256:aa".into()]),
            settings: Some(settings()),
        }];
        assert_eq!(images(&tar).unwrap(), want);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        assert_eq!(images(&gz.finish().unwrap()).unwrap(), want, "gzip");
        let image = &want[0];
        let engine = |id: &'static str, digest: Option<&'static str>, layers: &'static [String], settings: serde_json::Value| EngineImage {
            id: Some(id),
            digest,
            layers: Some(layers),
            settings,
        };
        let aa: &'static [String] = Box::leak(Box::new(["sha256:aa".to_string()]));
        let bb: &'static [String] = Box::leak(Box::new(["sha256:bb".to_string()]));
        let id: &'static str = Box::leak(sha256_id(CONFIG.as_bytes()).into_boxed_str());
        assert!(image.is(&engine(id, None, bb, serde_json::json!({}))), "the classic store: its config's digest");
        assert!(!image.is(&engine("sha256:other", None, aa, settings())), "the classic store: layers alone are not the image");
        assert!(image.is(&engine("sha256:other", Some("sha256:m"), aa, settings())), "the containerd store: same layers and settings");
        assert!(!image.is(&engine("sha256:other", Some("sha256:m"), aa, serde_json::json!({"Cmd": ["/bin/sh"]}))), "another command");
        assert!(!image.is(&engine("sha256:other", Some("sha256:m"), bb, settings())), "other layers");
    }

    #[test]
    fn the_image_id_is_the_configs_digest_not_its_file_name() {
        // A manifest naming another image's ID as its config file: the ID is what the bytes hash to.
        let victim = format!("sha256:{}", "ab".repeat(32));
        let tar = archive(&[
            entry(&format!("blobs/sha256/{}", "ab".repeat(32)), b'0', CONFIG.as_bytes()),
            entry("manifest.json", b'0', format!(r#"[{{"Config":"blobs/sha256/{}","RepoTags":["mariadb:10.6"]}}]"#, "ab".repeat(32)).as_bytes()),
        ]);
        let got = images(&tar).unwrap();
        assert_eq!(got[0].ids, vec![sha256_id(CONFIG.as_bytes())]);
        assert!(!got[0].is(&EngineImage { id: Some(&victim), digest: None, layers: None, settings: serde_json::json!({}) }));
    }

    #[test]
    fn a_manifest_named_by_long_names_dot_paths_and_pax_is_read_as_go_reads_it() {
        // The first manifest.json is replaced by the later one, as extraction does.
        let other = br#"[{"Config":"d.json","RepoTags":["mariadb:10.6"]}]"#;
        let tar = archive(&[manifest(&["first:one"]), pax("path", "./manifest.json"), entry("other", b'0', other)]);
        assert_eq!(images(&tar).unwrap()[0].tags, vec!["docker.io/library/mariadb:10.6"]);
        let gnu = archive(&[entry("././@LongLink", b'L', b"x/../manifest.json\0"), entry("whatever", b'0', other)]);
        assert_eq!(images(&gnu).unwrap()[0].tags, vec!["docker.io/library/mariadb:10.6"]);
        let prefixed = archive(&[entry_with("manifest.json", b'0', other, |h| h[345..347].copy_from_slice(b"./"))]);
        assert_eq!(images(&prefixed).unwrap()[0].tags, vec!["docker.io/library/mariadb:10.6"]);
        // GNU's magic: the bytes at 345 are times there, not a prefix.
        let gnu_magic = archive(&[entry_with("manifest.json", b'0', other, |h| {
            h[257..265].copy_from_slice(b"ustar  \0");
            h[345..349].copy_from_slice(b"evil");
        })]);
        assert_eq!(images(&gnu_magic).unwrap()[0].tags, vec!["docker.io/library/mariadb:10.6"]);
    }

    #[test]
    fn what_go_and_this_reader_could_read_two_ways_is_refused() {
        let other = br#"[{"Config":"d.json","RepoTags":["mariadb:10.6"]}]"#;
        let refused = |bytes: &[u8], says: &str| {
            let e = images(bytes).unwrap_err();
            assert!(e.contains(says), "{says}: {e}");
        };
        // A directory with a size: Go reads no body for it, this reader would skip one.
        refused(&archive(&[entry_with("d/", b'5', b"", |h| h[124..135].copy_from_slice(b"00000001000")), manifest(&["a:b"])]), "with a size of its own");
        refused(
            &archive(&[pax("path", "manifest.json"), entry("././@LongLink", b'L', b"x\0"), entry("y", b'0', other)]),
            "both a PAX path and a GNU long name",
        );
        refused(&archive(&[pax("path", "a"), pax("path", "manifest.json"), entry("y", b'0', other)]), "two PAX headers");
        refused(&archive(&[entry("g", b'g', b"9 path=x\n"), manifest(&["a:b"])]), "docker save never writes");
        refused(&archive(&[pax("GNU.sparse.name", "manifest.json"), entry("y", b'0', other)]), "sparse");
        refused(&archive(&[entry_with("d", b'2', b"", |h| h[157..158].copy_from_slice(b".")), entry("d/manifest.json", b'0', other)]), "under or over a link");
        let mut bad_sum = manifest(&["a:b"]);
        bad_sum[0] ^= 1;
        refused(&archive(&[bad_sum]), "checksum does not match");
        let mut after_end = archive(&[manifest(&["a:b"])]);
        after_end.truncate(after_end.len() - 512);
        after_end.extend(manifest(&["mariadb:10.6"]));
        refused(&after_end, "after the archive's end");
    }

    #[test]
    fn an_oci_index_adds_its_names_and_verified_manifest_digests() {
        let m1 = br#"{"schemaVersion":2,"config":{"digest":"sha256:abc"}}"#;
        let d1 = sha256_id(m1);
        let index = format!(
            r#"{{"manifests":[{{"digest":"{d1}","annotations":{{"io.containerd.image.name":"docker.io/oceanbase/odc:4.3.1","org.opencontainers.image.ref.name":"4.3.1"}}}},{{"digest":"sha256:{}","annotations":{{"io.containerd.image.name":"nginx:1.26"}}}}]}}"#,
            "cd".repeat(32)
        );
        let tar = archive(&[
            entry("blobs/sha256/abc", b'0', CONFIG.as_bytes()),
            entry(&format!("blobs/sha256/{}", &d1["sha256:".len()..]), b'0', m1),
            entry("index.json", b'0', index.as_bytes()),
            entry("manifest.json", b'0', br#"[{"Config":"blobs/sha256/abc","RepoTags":["oceanbase/odc:4.3.1"]}]"#),
        ]);
        let got = images(&tar).unwrap();
        // Docker 25's save names it short in manifest.json and whole in index.json: one image.
        assert_eq!(got[0].tags, vec!["docker.io/oceanbase/odc:4.3.1"]);
        assert_eq!(got[0].ids, vec![sha256_id(CONFIG.as_bytes()), d1]);
        // A digest whose manifest the archive does not hold proves nothing.
        assert_eq!(got[1], ArchiveImage { tags: vec!["docker.io/library/nginx:1.26".into()], ids: vec![], layers: None, settings: None });
    }

    #[test]
    fn references_are_named_as_the_engine_names_them() {
        for (written, engine) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.26", "docker.io/library/nginx:1.26"),
            ("oceanbase/odc:4.3.1", "docker.io/oceanbase/odc:4.3.1"),
            ("reg.example.com/oceanbase/oms:feature_4.2.0-ce", "reg.example.com/oceanbase/oms:feature_4.2.0-ce"),
            ("reg:5000/oms", "reg:5000/oms:latest"),
            ("localhost/oms:1", "localhost/oms:1"),
            ("docker.io/library/nginx:1.26", "docker.io/library/nginx:1.26"),
        ] {
            assert_eq!(normalized(written), engine, "{written}");
        }
    }

    #[test]
    fn archives_opshost_cannot_read_are_refused_with_the_fix() {
        let err = |bytes: &[u8]| images(bytes).unwrap_err();
        assert!(err(b"BZh91AY&SY").contains("bunzip2"), "{}", err(b"BZh91AY&SY"));
        assert!(err(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1]).contains("xz -d"));
        assert!(err(&[0x28, 0xb5, 0x2f, 0xfd, 0]).contains("zstd -d"));
        assert!(err(&[0x5a, 0x2a, 0x4d, 0x18, 0, 0]).contains("zstd -d"), "a zstd skippable frame");
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
        let mut huge = [0xffu8; 12];
        huge[0] = 0xff;
        assert!(octal(&huge).is_err() || images(&archive(&[entry_with("x", b'0', b"", |h| h[124..136].copy_from_slice(&huge))])).is_err());
    }
}
