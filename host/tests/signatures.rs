//! Signed plugins: only bytes a trusted key signed are compiled and run; every kind of tampering
//! is refused before compilation, with the reason.

use opshost::registry::signature::{generate, secret_key, sign, Policy, TrustStore, Verdict};
use opshost::registry::Plugin;
use opshost::runtime::engine::Runtime;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The OMS plugin as the build signed it with the test vendor key.
fn signed_plugin() -> Vec<u8> {
    std::fs::read(Path::new(env!("OPSHOST_SIGNED_PLUGINS")).join("oms_4_2_0.wasm")).unwrap()
}

fn vendor() -> TrustStore {
    TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap()
}

fn refused(policy: &Policy, wasm: &[u8]) -> String {
    match policy.check(wasm, "p.wasm") {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// The bytes without any signature section (custom section "signature", id 0).
fn strip(wasm: &[u8]) -> Vec<u8> {
    let m = wasmsign2::Module::deserialize(&mut std::io::Cursor::new(wasm)).unwrap();
    let (m, _) = m
        .split(|s| !matches!(s, wasmsign2::Section::Custom(c) if c.is_signature_header()))
        .unwrap()
        .detach_signature()
        .unwrap_or_else(|_| (wasmsign2::Module::deserialize(&mut std::io::Cursor::new(wasm)).unwrap(), vec![]));
    let mut out = Vec::new();
    m.serialize(&mut out).unwrap();
    out
}

#[test]
fn the_bundled_plugin_verifies_under_the_test_vendor_key() {
    let p = Policy { trust: vendor(), allow_unsigned: false };
    assert_eq!(p.check(&signed_plugin(), "oms").unwrap(), Verdict::Trusted { signers: vec!["test-vendor".into()] });
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let p = Policy { trust: vendor(), allow_unsigned: false };
    let wasm = signed_plugin();
    // Start, signature section, code, end: every region.
    for at in [9, 40, 120, wasm.len() / 4, wasm.len() / 2, wasm.len() * 3 / 4, wasm.len() - 1] {
        let mut bad = wasm.clone();
        bad[at] ^= 0x01;
        let e = refused(&p, &bad);
        assert!(e.contains("refusing to run it"), "byte {at}: {e}");
    }
}

#[test]
fn a_wrong_key_a_stripped_signature_and_no_trust_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("other.key"), dir.path().join("other.pub"));
    generate(&sk, &pk).unwrap();
    let other = Policy { trust: TrustStore::load(std::slice::from_ref(&pk)).unwrap(), allow_unsigned: false };
    assert!(refused(&other, &signed_plugin()).contains("no valid signature from a trusted key (other)"));
    let stripped = strip(&signed_plugin());
    assert!(!opshost::registry::signature::is_signed(&stripped));
    assert!(refused(&Policy { trust: vendor(), allow_unsigned: false }, &stripped).contains("is not signed"));
    assert!(refused(&Policy::default(), &signed_plugin()).contains("no key is trusted"));
}

#[test]
fn a_signature_copied_from_another_plugin_is_refused() {
    // Sign two different modules with the vendor key; graft the first's signature onto the second.
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("v.key"), dir.path().join("v.pub"));
    generate(&sk, &pk).unwrap();
    let key = secret_key(&sk).unwrap();
    let plugin = strip(&signed_plugin());
    // A different plugin: one byte of its code differs.
    let mut other = plugin.clone();
    let at = other.len() / 2;
    other[at] ^= 0x20;
    let signed_other = sign(&other, &key).unwrap();
    let (_, donor_signature) = wasmsign2::Module::deserialize(&mut std::io::Cursor::new(&signed_other)).unwrap().detach_signature().unwrap();
    let recipient = wasmsign2::Module::deserialize(&mut std::io::Cursor::new(&plugin)).unwrap().attach_signature(&donor_signature).unwrap();
    let mut grafted = Vec::new();
    recipient.serialize(&mut grafted).unwrap();
    assert!(opshost::registry::signature::is_signed(&grafted));
    let p = Policy { trust: TrustStore::load(&[pk]).unwrap(), allow_unsigned: false };
    assert!(p.check(&signed_other, "other").is_ok(), "the donor itself verifies");
    assert!(refused(&p, &grafted).contains("changed after signing"));
}

#[test]
fn a_partial_signature_does_not_cover_appended_code() {
    let p = Policy { trust: vendor(), allow_unsigned: false };
    let mut extended = signed_plugin();
    extended.extend_from_slice(&[0, 6, 5, b'e', b'v', b'i', b'l', b'!']);
    assert!(refused(&p, &extended).contains("refusing to run it"));
}

#[test]
fn a_site_countersignature_keeps_the_vendor_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("site.key"), dir.path().join("site.pub"));
    generate(&sk, &pk).unwrap();
    let both = sign(&signed_plugin(), &secret_key(&sk).unwrap()).unwrap();
    let trust = TrustStore::load(&[root().join("plugins/keys/test-vendor.pub"), pk.clone()]).unwrap();
    assert_eq!(trust.signers(&both), vec!["test-vendor".to_string(), "site".to_string()]);
    // Trusting only the site key is enough too.
    assert_eq!(TrustStore::load(&[pk]).unwrap().signers(&both), vec!["site".to_string()]);
}

#[tokio::test]
async fn unsigned_plugins_are_never_compiled_unless_allowed() {
    let runtime = Runtime::new(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("unsigned.wasm");
    std::fs::write(&f, strip(&signed_plugin())).unwrap();
    let strict = Policy { trust: vendor(), allow_unsigned: false };
    let e = Plugin::open(&runtime, &f, &strict).await.err().unwrap().to_string();
    assert!(e.contains("is not signed") && e.contains("--allow-unsigned"), "{e}");
    let dev = Policy { trust: vendor(), allow_unsigned: true };
    let p = Plugin::open(&runtime, &f, &dev).await.unwrap();
    assert!(matches!(p.verdict, Verdict::Unverified { .. }));
}

#[test]
fn the_cli_signs_verifies_and_lists_signers() {
    let bin = env!("CARGO_BIN_EXE_opshost");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| Command::new(bin).args(args).env("OPSHOST_CACHE_DIR", d.join("cache")).output().unwrap();
    let o = run(&["key", "generate", "--secret", d.join("s.key").to_str().unwrap(), "--public", d.join("s.pub").to_str().unwrap()]);
    assert!(o.status.success());
    std::fs::write(d.join("p.wasm"), strip(&signed_plugin())).unwrap();
    let o = run(&["verify", "--trust", d.join("s.pub").to_str().unwrap(), d.join("p.wasm").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT trusted: it is not signed"));
    let o = run(&["sign", "--key", d.join("s.key").to_str().unwrap(), d.join("p.wasm").to_str().unwrap(), "--out", d.join("signed.wasm").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["verify", "--trust", d.join("s.pub").to_str().unwrap(), d.join("signed.wasm").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    std::fs::create_dir(d.join("plugins")).unwrap();
    std::fs::copy(d.join("signed.wasm"), d.join("plugins/signed.wasm")).unwrap();
    std::fs::copy(d.join("p.wasm"), d.join("plugins/unsigned.wasm")).unwrap();
    let o = run(&["plugins", "list", "--dir", d.join("plugins").to_str().unwrap(), "--trust", d.join("s.pub").to_str().unwrap()]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "a plugin no trusted key signed makes the listing exit 1: {t}{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.contains("signed by s") && t.lines().any(|l| l.contains("NOT TRUSTED: unsigned") && l.ends_with("unsigned.wasm")), "{t}");
}
