//! Builds the plugins workspace (../plugins) for wasm32-wasip2 as part of building the host, so
//! `cargo build` at the root produces `opshost` and the bundled plugins with no separate step.
//! The components land in `<target>/<profile>/plugins/` (the binary's default plugin directory)
//! and in OUT_DIR (the demo embeds the OMS 4.2.0 plugin).

use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let host_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host_dir.parent().unwrap();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let profile_dir = out_dir.ancestors().nth(3).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let wasm_target_dir = target_dir.join("wasm-plugins");

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.lock").display());
    for entry in std::fs::read_dir(&plugins).expect("plugins/ exists").flatten() {
        let p = entry.path();
        if p.join("Cargo.toml").exists() {
            println!("cargo:rerun-if-changed={}", p.join("Cargo.toml").display());
            println!("cargo:rerun-if-changed={}", p.join("src").display());
        }
    }

    ensure_wasm_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", WASM_TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&wasm_target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("running cargo to build the plugins");
    assert!(status.success(), "building the plugins for {WASM_TARGET} failed (see above)");

    // The bundled plugins ship signed by the test vendor key (plugins/keys/): the demo and the
    // tests trust its public half. A real vendor signs with its own key (`opshost sign`).
    let key_path = plugins.join("keys/test-vendor.key");
    println!("cargo:rerun-if-changed={}", key_path.display());
    let key = wasmsign2::SecretKey::from_any_file(&key_path).unwrap_or_else(|e| panic!("test vendor key {}: {e}", key_path.display()));
    let built = wasm_target_dir.join(WASM_TARGET).join("release");
    let bundled = profile_dir.join("plugins");
    let test_only = profile_dir.join("test-plugins");
    std::fs::create_dir_all(&bundled).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(&built).unwrap().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "wasm") {
            let name = p.file_name().unwrap();
            let module = wasmsign2::Module::deserialize_from_file(&p).unwrap();
            let (signed, _) = key.sign_multi(module, None, false, false).unwrap();
            let mut bytes = Vec::new();
            signed.serialize(&mut bytes).unwrap();
            write_if_changed(&bytes, &out_dir.join(name));
            // Test-only plugins (hostile*) stay out of the binary's plugin directory: the
            // end-to-end tests take them from test-plugins/.
            if name.to_string_lossy().starts_with("hostile") {
                std::fs::create_dir_all(&test_only).unwrap();
                write_if_changed(&bytes, &test_only.join(name));
            } else {
                write_if_changed(&bytes, &bundled.join(name));
            }
            n += 1;
        }
    }
    assert!(n > 0, "no plugin components in {}", built.display());
    println!("cargo:rustc-env=OPSHOST_BUNDLED_PLUGINS={}", bundled.display());
    println!("cargo:rustc-env=OPSHOST_SIGNED_PLUGINS={}", out_dir.display());
}

fn write_if_changed(new: &[u8], to: &Path) {
    if std::fs::read(to).ok().as_deref() != Some(new) {
        std::fs::write(to, new).unwrap();
    }
}

/// Cargo does not install targets listed in rust-toolchain.toml by itself: add it with rustup
/// when it is missing, or say exactly what to run.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_ref().is_some_and(|d| d.join("libcore").exists() || std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(false)) {
        return;
    }
    println!("cargo:warning=installing the {WASM_TARGET} target with rustup (needed to build the plugins)");
    let ok = Command::new("rustup").args(["target", "add", WASM_TARGET]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "the {WASM_TARGET} target is missing and `rustup target add {WASM_TARGET}` failed: run it yourself, then build again");
}
