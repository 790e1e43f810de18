//! Plugin signatures: embedded ed25519 signatures in the WebAssembly tool-conventions format
//! (wasmsign2), several per plugin (a vendor's, then a site's countersignature). A plugin runs
//! only when a key in the trust store verifies it, checked on the bytes before they are compiled,
//! and a key scoped to plugin names vouches only for plugins whose manifest bears such a name.

use anyhow::{Context as _, Result};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use wasmsign2::{KeyPair, Module, PublicKey, SecretKey};

/// A trusted key in the site config: a PEM file, trusted for every plugin, or a table that
/// scopes it to plugin names (`{ key = "vendor.pub", plugins = ["oms-*", "odc-*"] }`).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum TrustEntry {
    Key(PathBuf),
    Scoped { key: PathBuf, plugins: Vec<String> },
}

impl From<PathBuf> for TrustEntry {
    fn from(p: PathBuf) -> Self {
        TrustEntry::Key(p)
    }
}

/// A trusted key: the name it is shown under (its file name), and the plugin names it may sign
/// (None: any).
#[derive(Clone)]
struct TrustedKey {
    name: String,
    key: PublicKey,
    plugins: Option<Vec<String>>,
}

/// Trusted public keys.
#[derive(Clone, Default)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
}

impl TrustStore {
    pub fn load(paths: &[PathBuf]) -> Result<TrustStore> {
        Self::load_entries(&paths.iter().cloned().map(TrustEntry::from).collect::<Vec<_>>())
    }
    pub fn load_entries(entries: &[TrustEntry]) -> Result<TrustStore> {
        let mut t = TrustStore::default();
        for e in entries {
            let (p, plugins) = match e {
                TrustEntry::Key(p) => (p, None),
                TrustEntry::Scoped { key, plugins } => (key, Some(plugins.clone())),
            };
            // Read first: the key library says only "I/O error" for a file it cannot open.
            let text = std::fs::read(p).map_err(|e| {
                anyhow::anyhow!("trusted key {}: {e}: correct the path in trust (site config or --trust), or put the vendor's public key there", p.display())
            })?;
            let key = PublicKey::from_any(&text).map_err(|e| {
                anyhow::anyhow!(
                    "trusted key {}: {e}: it must be an Ed25519 public key (PEM, DER or raw: the vendor's .pub file, as `opshost key generate` writes it)",
                    p.display()
                )
            })?;
            t.add(TrustedKey { name: key_name(p), key, plugins }, &p.display().to_string())?;
        }
        Ok(t)
    }
    pub fn with_key(mut self, name: &str, pem: &str) -> Result<TrustStore> {
        let key = PublicKey::from_any(pem.as_bytes()).map_err(|e| anyhow::anyhow!("key {name}: {e}"))?;
        self.add(TrustedKey { name: name.to_string(), key, plugins: None }, name)?;
        Ok(self)
    }

    /// A key is known by its name (its file's name without the extension) in grants (`signers`)
    /// and scopes: two keys of one name would let the one's signature count as the other's.
    fn add(&mut self, key: TrustedKey, from: &str) -> Result<()> {
        // The same key with the same scope, named twice (--trust and the site's trust): one key.
        if self.keys.iter().any(|k| k.name == key.name && k.key == key.key && k.plugins == key.plugins) {
            return Ok(());
        }
        if self.keys.iter().any(|k| k.name == key.name) {
            anyhow::bail!(
                "trusted key {from}: another trusted key is also named {:?} (keys are named by their file name): rename one of the files, since grants and scopes name a key by it",
                key.name
            );
        }
        self.keys.push(key);
        Ok(())
    }

    /// Of `signers`, the keys trusted to sign a plugin called `plugin`; and the scopes of the others.
    pub fn scoped_signers(&self, signers: &[String], plugin: &str) -> (Vec<String>, Vec<String>) {
        let mut ok = Vec::new();
        let mut scopes = Vec::new();
        for k in self.keys.iter().filter(|k| signers.contains(&k.name)) {
            match &k.plugins {
                Some(ps) if !ps.iter().any(|p| crate::grants::matches(p, plugin)) => scopes.push(format!("{} (trusted for {})", k.name, ps.join(", "))),
                _ => ok.push(k.name.clone()),
            }
        }
        (ok, scopes)
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name.clone()).collect()
    }

    /// The trusted keys whose signature covers these exact bytes.
    pub fn signers(&self, wasm: &[u8]) -> Vec<String> {
        self.keys.iter().filter(|k| k.key.verify(&mut Cursor::new(wasm), None).is_ok()).map(|k| k.name.clone()).collect()
    }
}

fn key_name(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

/// Whether the bytes carry a signature section at all.
pub fn is_signed(wasm: &[u8]) -> bool {
    wasmsign2::signature_info_from_reader(&mut Cursor::new(wasm), None).map(|i| i.is_signed()).unwrap_or(false)
}

/// What the trust policy says about a plugin.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Trusted {
        signers: Vec<String>,
    },
    /// Accepted only because unsigned plugins are allowed (development).
    Unverified {
        reason: String,
    },
}

/// The trust policy of a command: trusted keys, and whether unsigned plugins may run.
#[derive(Clone, Default)]
pub struct Policy {
    pub trust: TrustStore,
    pub allow_unsigned: bool,
}

impl Policy {
    /// Accept or refuse plugin bytes, before anything compiles them.
    pub fn check(&self, wasm: &[u8], origin: &str) -> Result<Verdict> {
        let verdict = self.judge(wasm, origin);
        let Verdict::Unverified { reason } = verdict else { return Ok(verdict) };
        if self.allow_unsigned {
            eprintln!("WARNING: {reason}; running it anyway because of --allow-unsigned (for plugin development only)");
            return Ok(Verdict::Unverified { reason });
        }
        anyhow::bail!("{reason}: refusing to run it. {TRUST_HINT}, or for development only pass --allow-unsigned")
    }

    /// What the policy says of the bytes, refusing nothing: for reading a manifest (`plugins
    /// list`/`inspect`), which runs with no host at all.
    pub fn judge(&self, wasm: &[u8], origin: &str) -> Verdict {
        let signers = self.trust.signers(wasm);
        if !signers.is_empty() {
            return Verdict::Trusted { signers };
        }
        let reason = if !is_signed(wasm) {
            format!("plugin {origin} is not signed")
        } else if self.trust.is_empty() {
            format!("plugin {origin} is signed, but no key is trusted")
        } else {
            format!(
                "plugin {origin} has no valid signature from a trusted key ({}): it was signed by another key, or changed after signing",
                self.trust.names().join(", ")
            )
        };
        Verdict::Unverified { reason }
    }
}

/// How to trust a vendor's key, for messages.
pub const TRUST_HINT: &str = "Trust the vendor's public key (trust = [...] in the site config, or --trust FILE)";

/// A new key pair as PEM files.
pub fn generate(secret: &Path, public: &Path) -> Result<()> {
    let kp = KeyPair::generate();
    std::fs::write(secret, kp.sk.to_pem()).with_context(|| format!("writing {}", secret.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(secret, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(public, kp.pk.to_pem()).with_context(|| format!("writing {}", public.display()))?;
    Ok(())
}

/// Add a signature by `key` to the plugin bytes, keeping the signatures already there.
pub fn sign(wasm: &[u8], key: &SecretKey) -> Result<Vec<u8>> {
    let module = Module::deserialize(&mut Cursor::new(wasm)).map_err(|e| anyhow::anyhow!("not a WebAssembly module or component: {e}"))?;
    let (signed, _) = key.sign_multi(module, None, false, false).map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let mut out = Vec::new();
    signed.serialize(&mut out).map_err(|e| anyhow::anyhow!("writing the signed plugin: {e}"))?;
    Ok(out)
}

pub fn secret_key(path: &Path) -> Result<SecretKey> {
    SecretKey::from_any_file(path).map_err(|e| anyhow::anyhow!("secret key {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trusted key that is not there, or not a key, is refused naming the file and the fix.
    #[test]
    fn an_unreadable_trusted_key_names_its_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("vendor.pub");
        let e = TrustStore::load(std::slice::from_ref(&missing)).err().unwrap().to_string();
        assert!(e.contains(&missing.display().to_string()) && e.contains("correct the path in trust"), "{e}");
        std::fs::write(&missing, "not a key").unwrap();
        let e = TrustStore::load(std::slice::from_ref(&missing)).err().unwrap().to_string();
        assert!(e.contains("it must be an Ed25519 public key"), "{e}");
    }

    /// Keys are named by their file name, and grants and scopes name them so: a scoped site key
    /// named as the vendor's (`…/vendor/public.pem`, `…/site/public.pem`) would have counted as the
    /// vendor's unscoped key, so two keys of one name are refused.
    #[test]
    fn two_trusted_keys_of_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["vendor", "site"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            generate(&dir.path().join(sub).join("secret.pem"), &dir.path().join(sub).join("public.pem")).unwrap();
        }
        let entries = [
            TrustEntry::Key(dir.path().join("vendor/public.pem")),
            TrustEntry::Scoped { key: dir.path().join("site/public.pem"), plugins: vec!["site-*".into()] },
        ];
        let e = TrustStore::load_entries(&entries).err().unwrap().to_string();
        assert!(e.contains("site/public.pem: another trusted key is also named \"public\"") && e.contains("rename one of the files"), "{e}");
        // The same key twice is one key.
        assert_eq!(TrustStore::load_entries(&[entries[0].clone(), entries[0].clone()]).unwrap().names(), ["public"]);
    }
}
