//! `opshost key generate`, `opshost sign`, `opshost verify`: vendor and site signatures.

use crate::registry::signature::{generate, secret_key, sign, TrustStore};
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Make an ed25519 key pair (PEM files; the secret one readable by you only).
    Generate {
        /// Where to write the secret key (keep it off the hosts that run upgrades).
        #[arg(long)]
        secret: PathBuf,
        /// Where to write the public key (what operators trust).
        #[arg(long)]
        public: PathBuf,
        /// Print the result as JSON for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct SignArgs {
    /// Secret key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The plugin file (.wasm) to sign.
    pub plugin: PathBuf,
    /// Where to write the signed plugin (default: in place). Existing signatures are kept.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the result as JSON for scripts instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The plugin; it must be signed by at least one key given with --trust.
    pub plugin: PathBuf,
    /// Print the verdict as JSON for scripts instead of text (the exit code is the same).
    #[arg(long)]
    pub json: bool,
}

pub fn key(cmd: &KeyCmd) -> Result<i32> {
    match cmd {
        KeyCmd::Generate { secret, public, json } => {
            anyhow::ensure!(!secret.exists(), "{} exists: refusing to overwrite a secret key", secret.display());
            generate(secret, public)?;
            if *json {
                println!("{}", serde_json::json!({"secret": secret, "public": public}));
            } else {
                println!("secret key: {}\npublic key: {}", secret.display(), public.display());
            }
            Ok(0)
        }
    }
}

pub fn sign_cmd(a: &SignArgs) -> Result<i32> {
    let wasm = std::fs::read(&a.plugin).with_context(|| format!("reading {}", a.plugin.display()))?;
    let signed = sign(&wasm, &secret_key(&a.key)?)?;
    let out = a.out.clone().unwrap_or_else(|| a.plugin.clone());
    std::fs::write(&out, signed).with_context(|| format!("writing {}", out.display()))?;
    if a.json {
        println!("{}", serde_json::json!({"plugin": a.plugin, "out": out}));
    } else {
        println!("signed {} -> {}", a.plugin.display(), out.display());
    }
    Ok(0)
}

pub fn verify_cmd(trusted: &[PathBuf], a: &VerifyArgs) -> Result<i32> {
    anyhow::ensure!(!trusted.is_empty(), "give the trusted public keys with --trust FILE (repeatable)");
    let trust = TrustStore::load(trusted)?;
    let wasm = std::fs::read(&a.plugin).with_context(|| format!("reading {}", a.plugin.display()))?;
    let signers = trust.signers(&wasm);
    if signers.is_empty() {
        let why = if crate::registry::signature::is_signed(&wasm) {
            "it carries signatures, but none from a trusted key verifies these bytes (another key, or changed after signing)"
        } else {
            "it is not signed"
        };
        if a.json {
            println!("{}", serde_json::json!({"plugin": a.plugin, "trusted": false, "why": why}));
        } else {
            println!("{}: NOT trusted: {why}", a.plugin.display());
        }
        return Ok(1);
    }
    if a.json {
        println!("{}", serde_json::json!({"plugin": a.plugin, "trusted": true, "signers": signers}));
    } else {
        println!("{}: signed by {}", a.plugin.display(), signers.join(", "));
    }
    Ok(0)
}
