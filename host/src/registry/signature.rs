//! Plugin signatures: embedded ed25519 signatures in the WebAssembly tool-conventions format
//! (wasmsign2), several per plugin (a vendor's, then a site's countersignature). A plugin runs
//! only when a key in the trust store verifies it, checked on the bytes before they are compiled.

use anyhow::{Context as _, Result};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use wasmsign2::{KeyPair, Module, PublicKey, SecretKey};

/// Trusted public keys, each with the name it is shown under (its file name).
#[derive(Clone, Default)]
pub struct TrustStore {
    keys: Vec<(String, PublicKey)>,
}

impl TrustStore {
    pub fn load(paths: &[PathBuf]) -> Result<TrustStore> {
        let mut t = TrustStore::default();
        for p in paths {
            let pk = PublicKey::from_any_file(p).map_err(|e| anyhow::anyhow!("trusted key {}: {e}", p.display()))?;
            t.keys.push((key_name(p), pk));
        }
        Ok(t)
    }
    pub fn with_key(mut self, name: &str, pem: &str) -> Result<TrustStore> {
        self.keys.push((name.to_string(), PublicKey::from_any(pem.as_bytes()).map_err(|e| anyhow::anyhow!("key {name}: {e}"))?));
        Ok(self)
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The trusted keys whose signature covers these exact bytes.
    pub fn signers(&self, wasm: &[u8]) -> Vec<String> {
        self.keys.iter().filter(|(_, pk)| pk.verify(&mut Cursor::new(wasm), None).is_ok()).map(|(n, _)| n.clone()).collect()
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
    Trusted { signers: Vec<String> },
    /// Accepted only because unsigned plugins are allowed (development).
    Unverified { reason: String },
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
        let signers = self.trust.signers(wasm);
        if !signers.is_empty() {
            return Ok(Verdict::Trusted { signers });
        }
        let reason = if !is_signed(wasm) {
            format!("plugin {origin} is not signed")
        } else if self.trust.is_empty() {
            format!("plugin {origin} is signed, but no key is trusted")
        } else {
            format!("plugin {origin} has no valid signature from a trusted key ({}): it was signed by another key, or changed after signing", self.trust.names().join(", "))
        };
        if self.allow_unsigned {
            eprintln!("WARNING: {reason}; running it anyway because of --allow-unsigned (for plugin development only)");
            return Ok(Verdict::Unverified { reason });
        }
        anyhow::bail!("{reason}: refusing to run it. Trust the vendor's public key (trust = [...] in the site config, or --trust FILE), or for development only pass --allow-unsigned")
    }
}

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
