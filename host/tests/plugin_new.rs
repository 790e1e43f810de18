//! `opshost plugin new` end to end: the crate it writes builds for wasm32-wasip2 with cargo (in
//! the shared target dir `target/plugin-new-test`, so reruns are warm), passes its own scenarios
//! on the fake host, fails them when the hop is wrong, and signs and verifies as the printed next
//! steps say; and the command refuses what it cannot make.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn opshost(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join("opshost-plugin-new-test-cache");
    Command::new(env!("CARGO_BIN_EXE_opshost")).args(args).env("OPSHOST_CACHE_DIR", cache).env_remove("OPSHOST_PLUGINS").output().expect("running opshost")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `cargo build --release --target wasm32-wasip2` in the crate, as its author would; the .wasm.
fn build(dir: &Path, krate: &str) -> PathBuf {
    let target_dir = repo().join("target/plugin-new-test");
    let o = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        .current_dir(dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("running cargo");
    assert!(o.status.success(), "building the generated crate {} failed:\n{}", dir.display(), text(&o));
    let wasm = target_dir.join("wasm32-wasip2/release").join(format!("{krate}.wasm"));
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    wasm
}

/// `opshost plugin new` for one hop into a fresh temp dir; the crate's directory.
fn new_plugin(tmp: &Path, from: &str, to: &str) -> PathBuf {
    let dir = tmp.join(format!("oms-{to}"));
    let o = opshost(&["plugin", "new", "--product", "oms", "--from", from, "--to", to, dir.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let krate = format!("oms_{}", to.replace('.', "_"));
    for must in [
        format!("created plugin oms-{to} (OMS {from} -> {to})"),
        "cargo build --release --target wasm32-wasip2".to_string(),
        format!("opshost test --allow-unsigned target/wasm32-wasip2/release/{krate}.wasm --scenario scenarios"),
        "opshost key generate".to_string(),
        format!("[grants.\"oms-{to}\"]"),
    ] {
        assert!(t.contains(&must), "plugin new output lacks {must:?}:\n{t}");
    }
    for f in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "src/lib.rs", &format!("scenarios/_oms-{from}-deployment.toml")] {
        assert!(dir.join(f).is_file(), "plugin new did not write {f}");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let procedures = repo().join("plugins/procedures").canonicalize().unwrap();
    assert!(manifest.contains(&format!("path = \"{}\"", procedures.display())), "Cargo.toml does not depend on {}:\n{manifest}", procedures.display());
    assert!(manifest.contains("[workspace]"), "Cargo.toml is not standalone:\n{manifest}");
    assert!(std::fs::read_to_string(dir.join("rust-toolchain.toml")).unwrap().contains("wasm32-wasip2"));
    dir
}

/// Run the crate's scenarios; (exit code, output).
fn test_scenarios(wasm: &Path, scenarios: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["test", wasm.to_str().unwrap(), "--scenario", scenarios.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = opshost(&args);
    (o.status.code(), text(&o))
}

const SCENARIOS: [&str; 4] = [
    "then rollback",
    "the new container does not start, rollback restores everything",
    "docker_init.sh exits 1 half way, rollback restores the MetaDB",
    "is refused",
];

fn assert_all_pass(to: &str, code: Option<i32>, out: &str) {
    assert_eq!(code, Some(0), "{out}");
    for s in SCENARIOS {
        let line = out.lines().find(|l| l.trim_start().starts_with(&format!("passed oms-{to}: ")) && l.contains(s));
        assert!(line.is_some(), "no pass line for the scenario {s:?}:\n{out}");
    }
    assert!(out.contains("4 passed, 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn new_oms_4_2_1_builds_passes_its_scenarios_fails_them_when_wrong_and_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_plugin(tmp.path(), "4.2.0", "4.2.1");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    for must in ["hop_plugin!", "name: \"oms-4.2.1\"", "sources: &[\"4.2.0\"]", "target: \"4.2.1\"", "is_upgrade_env: true", "ha_step: true"] {
        assert!(lib.contains(must), "src/lib.rs lacks {must:?}:\n{lib}");
    }
    let wasm = build(&dir, "oms_4_2_1");
    let (code, out) = test_scenarios(&wasm, &dir.join("scenarios"), &["--allow-unsigned"]);
    assert_all_pass("4.2.1", code, &out);
    // Unsigned and not allowed: refused before any scenario runs.
    let (code, out) = test_scenarios(&wasm, &dir.join("scenarios"), &[]);
    assert_eq!(code, Some(2), "{out}");

    // The next steps the command printed: a key, a signature, a verification, a trusted test run.
    let key = tmp.path().join("vendor.key");
    let public = tmp.path().join("vendor.pub");
    let signed = tmp.path().join("oms_4_2_1.wasm");
    let o = opshost(&["key", "generate", "--secret", key.to_str().unwrap(), "--public", public.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = opshost(&["sign", "--key", key.to_str().unwrap(), wasm.to_str().unwrap(), "--out", signed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = opshost(&["verify", "--trust", public.to_str().unwrap(), signed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("signed by"), "{}", text(&o));
    let (code, out) = test_scenarios(&signed, &dir.join("scenarios"), &["--trust", public.to_str().unwrap()]);
    assert_all_pass("4.2.1", code, &out);

    // The scenarios hold the hop to what it must do: without the HA step they fail.
    std::fs::write(dir.join("src/lib.rs"), lib.replace("ha_step: true", "ha_step: false")).unwrap();
    let wasm = build(&dir, "oms_4_2_1");
    let (code, out) = test_scenarios(&wasm, &dir.join("scenarios"), &["--allow-unsigned"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL plan mentions \"HA is on\""), "{out}");
    assert!(out.contains("FAILED oms-4.2.1: 4.2.0 -> 4.2.1, then rollback"), "{out}");
}

#[test]
fn new_oms_3_3_0_has_no_ha_and_no_is_upgrade_and_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_plugin(tmp.path(), "3.2.2", "3.3.0");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("is_upgrade_env: false") && lib.contains("ha_step: false"), "{lib}");
    let wasm = build(&dir, "oms_3_3_0");
    let (code, out) = test_scenarios(&wasm, &dir.join("scenarios"), &["--allow-unsigned"]);
    assert_all_pass("3.3.0", code, &out);
}

#[test]
fn new_oms_4_0_0_from_3_3_1_names_the_image_whose_tag_style_changes_and_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_plugin(tmp.path(), "3.3.1", "4.0.0");
    let base = std::fs::read_to_string(dir.join("scenarios/_oms-3.3.1-deployment.toml")).unwrap();
    assert!(base.contains("image = \"reg.example.com/oceanbase/oms:feature_4.0.0-ce\""), "{base}");
    let wasm = build(&dir, "oms_4_0_0");
    let (code, out) = test_scenarios(&wasm, &dir.join("scenarios"), &["--allow-unsigned"]);
    assert_all_pass("4.0.0", code, &out);
}

/// A refusal: exit 2, the message, and nothing written.
fn refused(args: &[&str], dir: &Path, says: &str) {
    let mut all = vec!["plugin", "new"];
    all.extend_from_slice(args);
    all.push(dir.to_str().unwrap());
    let o = opshost(&all);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
    assert!(t.contains(says), "{args:?}: the refusal does not say {says:?}:\n{t}");
    assert!(!dir.join("Cargo.toml").exists(), "{args:?}: wrote into {} although it refused", dir.display());
}

#[test]
fn plugin_new_refuses_what_it_cannot_make() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh");
    let oms = ["--product", "oms"];
    let hop = |from: &'static str, to: &'static str| [oms[0], oms[1], "--from", from, "--to", to];

    // A directory with something in it is left alone.
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    refused(&hop("4.2.0", "4.2.1"), &busy, "busy exists and is not empty: give a new directory, or empty this one");
    assert_eq!(std::fs::read_to_string(busy.join("notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    for (from, to, says) in [
        ("4.2", "4.2.1", "--from version \"4.2\" is not a product version: give three numbers separated by dots, e.g. 4.2.0"),
        ("4.2.0", "v4.2.1", "--to version \"v4.2.1\" is not a product version"),
        ("4.2.0", "4.2.x", "--to version \"4.2.x\" is not a product version"),
        ("4.2.1", "4.2.0", "--from 4.2.1 is not older than --to 4.2.0"),
        ("4.2.0", "4.2.0", "--from 4.2.0 is not older than --to 4.2.0"),
    ] {
        refused(&hop(from, to), &fresh, says);
    }
    refused(&["--product", "odc", "--from", "4.2.0", "--to", "4.3.0"], &fresh, "ODC templates are not available yet");
    refused(&["--product", "obproxy", "--from", "4.2.0", "--to", "4.3.0"], &fresh, "unknown product \"obproxy\"");
    let not_procedures = repo().join("plugins/oms-4.2.0");
    let mut args = hop("4.2.0", "4.2.1").to_vec();
    args.extend_from_slice(&["--procedures", not_procedures.to_str().unwrap()]);
    refused(&args, &fresh, "is not the opshost-procedures crate");
    assert!(!fresh.exists(), "a refusal created {}", fresh.display());

    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = opshost(&["plugin", "new", "--product", "oms", "--from", "4.2.0", "--to", "4.2.1", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(empty.join("scenarios/01-happy-path-then-rollback.toml").is_file());
}
