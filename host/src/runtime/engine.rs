//! The wasmtime engine: component model, epoch interruption driven by a ticker thread, and a
//! compile cache on disk keyed by the plugin's SHA-256 and the engine's compatibility hash
//! (only artifacts this host compiled itself are ever deserialized).

use crate::bindings::UpgradePluginPre;
use crate::runtime::state::HostState;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine};

/// How often the epoch advances; the CPU budget is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub struct Runtime {
    pub engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
}

/// A compiled plugin, ready to instantiate.
pub struct LoadedPlugin {
    pub pre: UpgradePluginPre<HostState>,
    pub engine: Engine,
    /// `sha256:<hex>` of the component bytes.
    pub hash: String,
    /// Whether it came from the compile cache.
    pub cached: bool,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The default compile cache: `$OPSHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/opshost`, else `~/.cache/opshost`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OPSHOST_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("opshost"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/opshost"))
}

impl Runtime {
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).context("creating the wasmtime engine")?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("opshost-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| anyhow::anyhow!("starting the epoch ticker: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("adding WASI to the linker")?;
        crate::bindings::UpgradePlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).context("adding opshost interfaces to the linker")?;
        Ok(Runtime { engine, linker, cache_dir })
    }

    /// Compile (or load from the cache) a plugin whose bytes the caller has already accepted.
    pub fn load(&self, wasm: &[u8]) -> Result<LoadedPlugin> {
        let hash = sha256_hex(wasm);
        let (component, cached) = self.compile_cached(wasm, &hash)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .context("the plugin imports something this host does not provide (is it built for opshost:plugin@0.1.0?)")?;
        let pre = UpgradePluginPre::new(pre).context("the plugin does not export the upgrade-plugin world")?;
        Ok(LoadedPlugin { pre, engine: self.engine.clone(), hash, cached })
    }

    /// What a plugin's `manifest()` answered before, by the plugin's hash: the manifest, or the
    /// reason it gave none (a manifest that never returns costs its deadline once, not on every
    /// scan of the directory).
    pub fn cached_manifest(&self, hash: &str) -> Option<Result<crate::bindings::Manifest, String>> {
        let path = self.manifest_path(hash).filter(|p| is_ours(p))?;
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn store_manifest(&self, hash: &str, answer: &Result<crate::bindings::Manifest, String>) {
        if let (Some(path), Ok(text)) = (self.manifest_path(hash), serde_json::to_vec(answer)) {
            // A cache that cannot be written only costs time.
            let _ = store_in_cache(&path, &text);
        }
    }

    fn manifest_path(&self, hash: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(format!("{}.manifest.json", hash.trim_start_matches("sha256:"))))
    }

    fn cache_path(&self, hash: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let key = format!("{}-{:016x}.cwasm", hash.trim_start_matches("sha256:"), h.finish());
        self.cache_dir.as_ref().map(|d| d.join(key))
    }

    fn compile_cached(&self, wasm: &[u8], hash: &str) -> Result<(Component, bool)> {
        let path = self.cache_path(hash);
        if let Some(p) = path.as_deref().filter(|p| p.exists() && is_ours(p)) {
            // SAFETY: files in the cache are written only by `store_in_cache` below from bytes this
            // engine compiled (`is_ours`: no other user could have put or changed one there); the
            // key binds the plugin hash and the engine's compatibility hash.
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, p) } {
                return Ok((c, true));
            }
        }
        let bytes = self.engine.precompile_component(wasm).context("compiling the plugin: is it a WebAssembly component?")?;
        if let Some(p) = &path {
            // A cache that cannot be written only costs time.
            let _ = store_in_cache(p, &bytes);
        }
        // SAFETY: `bytes` were produced just now by this engine.
        let c = unsafe { Component::deserialize(&self.engine, &bytes) }.context("loading the compiled plugin")?;
        Ok((c, false))
    }
}

/// Whether a cache file, and the directory it is in, belong to this process's user and no one
/// else can write them: a compiled artifact is native code the host runs, and a cached manifest
/// names the plugin (and so its grants), so one another user could have placed or changed (a
/// shared `OPSHOST_CACHE_DIR`, a `HOME` kept under sudo) is not used; the plugin is compiled and
/// asked again.
fn is_ours(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let private = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.uid() == me && m.mode() & 0o022 == 0 && !m.file_type().is_symlink());
        private(path) && path.parent().is_some_and(private)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

fn store_in_cache(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache file has a directory");
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Whatever the umask: [`is_ours`] uses only what no one else can write.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache file is used only while it and its directory are this user's and no one else's to
    /// write: one another user could change is compiled again instead.
    #[cfg(unix)]
    #[test]
    fn a_cache_file_others_could_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache").join("x.manifest.json");
        store_in_cache(&file, b"{}").unwrap();
        assert!(is_ours(&file));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!is_ours(&file), "a file others may write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(file.parent().unwrap(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!is_ours(&file), "a directory others may write");
        std::fs::set_permissions(file.parent().unwrap(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = file.with_file_name("link.manifest.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(is_ours(&file) && !is_ours(&link), "a link is not the file");
        // Another user's file (root can make one).
        if std::os::unix::fs::chown(&file, Some(65534), None).is_ok() {
            assert!(!is_ours(&file), "another user's file");
        }
    }
}
