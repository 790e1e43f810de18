//! The `opshost` binary as an operator uses it: exit codes, messages, JSON output, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn opshost(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join("opshost-cli-test-cache");
    let trust = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("plugins/keys/test-vendor.pub");
    let needs_trust = !matches!(args.first(), Some(&"demo") | Some(&"key") | Some(&"sign") | Some(&"verify"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opshost"));
    cmd.args(args).env("OPSHOST_CACHE_DIR", cache).env_remove("OPSHOST_PLUGINS");
    if needs_trust {
        cmd.arg("--trust").arg(trust);
    }
    cmd.output().expect("running opshost")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn plugin() -> String {
    Path::new(env!("OPSHOST_BUNDLED_PLUGINS")).join("oms_4_2_0.wasm").display().to_string()
}

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("plugins/oms-4.2.0/scenarios")
}

/// -q leaves warnings and notices, -v adds every host call with its duration, -vv their
/// arguments; RUST_LOG sets the diagnostics' filter instead. The command's own output (stdout)
/// is the same at every level.
#[test]
fn verbosity_flags_and_rust_log_set_what_reaches_stderr() {
    let run = |flags: &[&str], rust_log: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opshost"));
        cmd.args(flags).arg("demo").env("OPSHOST_CACHE_DIR", std::env::temp_dir().join("opshost-cli-test-cache")).env_remove("RUST_LOG");
        if let Some(v) = rust_log {
            cmd.env("RUST_LOG", v);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (out, normal) = run(&[], None);
    let (out_q, quiet) = run(&["-q"], None);
    let (out_v, verbose) = run(&["-v"], None);
    let (_, very) = run(&["-vv"], None);
    let (_, logged) = run(&[], Some("opshost::call=debug"));
    assert!(normal.contains("stopped oms_411 on node local") && !normal.contains("opshost::call"), "{normal}");
    assert!(!quiet.contains("stopped oms_411") && quiet.contains("notice: OMS upgraded to 4.2.0"), "-q keeps notices only:\n{quiet}");
    assert!(verbose.contains("opshost::call: docker.stop -> ok") && verbose.contains(" ms="), "-v shows each call:\n{verbose}");
    assert!(!verbose.contains("args=") && very.contains("args={\"container\":\"oms_411\""), "-vv adds the arguments:\n{very}");
    assert!(logged.contains("opshost::call: docker.stop -> ok"), "RUST_LOG sets the filter:\n{logged}");
    let demo_lines = |o: &str| o.lines().filter(|l| !l.contains("ms")).count();
    assert_eq!((demo_lines(&out_q), demo_lines(&out_v)), (demo_lines(&out), demo_lines(&out)), "stdout does not depend on the level");
    let o = opshost(&["-q", "-v", "demo"]);
    assert_eq!(o.status.code(), Some(2), "-q and -v together: {}", text(&o));
}

#[test]
fn demo_upgrades_then_restores_the_oms() {
    let o = opshost(&["demo"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for must in [
        "== plan ==",
        "== upgrade ==",
        "== rollback ==",
        "stop old container",
        "restored rm_411",
        "ok database rm_411 content as before",
        "ok parameter ha.config as before",
        "demo passed: OMS restored",
    ] {
        assert!(t.contains(must), "demo output lacks {must:?}:\n{t}");
    }
    assert_eq!(t.matches("notice: OMS upgraded to 4.2.0").count(), 1, "each notice is printed once:\n{t}");
}

#[test]
fn test_passes_the_shipped_scenarios_and_prints_json() {
    let dir = scenarios();
    let o = opshost(&["test", &plugin(), "--scenario", dir.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let reports: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON only");
    let reports = reports.as_array().unwrap();
    assert!(reports.len() >= 20);
    assert!(reports.iter().all(|r| r["passed"] == true));
    // The transcript is in the report: every call with its arguments and outcome.
    let first = &reports[0]["steps"][0]["calls"][0];
    assert!(first["call"].is_string() && first["args"].is_object() && first["outcome"].is_object(), "{first}");
}

#[test]
fn test_exits_1_when_an_expectation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenarios().join("05-wrong-source-version.toml")).unwrap();
    let base = scenarios().join("_oms-4.1.1-deployment.toml");
    let bad = src
        .replace("base = \"_oms-4.1.1-deployment.toml\"", &format!("base = {:?}", base.display().to_string()))
        .replace("error_kind = \"invalid-input\"\nerror_contains", "error_kind = \"timeout\"\nerror_contains");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, bad).unwrap();
    let o = opshost(&["test", &plugin(), "--scenario", file.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL error kind timeout") && t.contains("0 passed, 1 failed"), "{t}");
}

#[test]
fn plan_shows_the_steps_and_refuses_a_wrong_source_version() {
    let o = opshost(&["plan", &plugin(), "--scenario", scenarios().join("01-happy-path-then-rollback.toml").to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("Upgrade steps:") && t.contains("[changes]") && t.contains("docker stop oms_411"), "{t}");
    let o = opshost(&["plan", &plugin(), "--scenario", scenarios().join("05-wrong-source-version.toml").to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("refused") && t.contains("from 4.1.1 only, but the deployment is at 4.1.0"), "{t}");
}

#[test]
fn plugins_list_and_inspect_read_the_manifest() {
    let o = opshost(&["plugins", "list", "--dir", env!("OPSHOST_BUNDLED_PLUGINS"), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let oms = rows.as_array().unwrap().iter().find(|r| r["name"] == "oms-4.2.0").expect("oms-4.2.0 listed");
    assert_eq!(oms["sources"], serde_json::json!(["4.1.1"]));
    assert_eq!(oms["target"], "4.2.0");
    assert!(oms["hash"].as_str().unwrap().starts_with("sha256:"));
    let o = opshost(&["plugins", "inspect", &plugin()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("oms-4.2.0 — oms 4.1.1 -> 4.2.0") && t.contains("trim_heartbeat") && t.contains("[default: true]"), "{t}");
}

#[test]
fn a_file_that_is_not_a_plugin_gets_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    // Read to describe it (no trust needed for that), the compiler refuses it with the reason.
    let o = opshost(&["plugins", "inspect", junk.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("is it a WebAssembly component?") && !t.contains("WARNING"), "{t}");
    // The directory listing names the bad file instead of skipping it.
    let o = opshost(&["plugins", "list", "--dir", dir.path().to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("unusable") && t.contains("junk.wasm"), "{t}");
}

/// A new user's first command, with no key trusted yet: every plugin on one line, named, marked
/// not trusted, and one line saying how to trust a key; inspect shows the manifest and says the
/// same. Running one is still refused.
#[test]
fn plugins_list_and_inspect_without_a_trusted_key_say_not_trusted() {
    let bare = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_opshost"))
            .args(args)
            .env("OPSHOST_CACHE_DIR", std::env::temp_dir().join("opshost-cli-test-cache"))
            .env_remove("OPSHOST_PLUGINS")
            .output()
            .unwrap()
    };
    let o = bare(&["plugins", "list", "--dir", env!("OPSHOST_BUNDLED_PLUGINS")]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let lines: Vec<&str> = t.lines().collect();
    let files =
        std::fs::read_dir(env!("OPSHOST_BUNDLED_PLUGINS")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wasm")).count();
    assert_eq!(lines.len(), files + 1, "one line per plugin and one hint:\n{t}");
    assert!(
        lines.iter().any(|l| l.starts_with("oms-4.2.0 ") && l.contains("4.1.1 -> 4.2.0") && l.contains("NOT TRUSTED: signed; no key is trusted yet")),
        "{t}"
    );
    assert!(lines.last().unwrap().contains("not trusted: plan and upgrade refuse them") && lines.last().unwrap().contains("--trust FILE"), "{t}");
    let o = bare(&["plugins", "list", "--dir", env!("OPSHOST_BUNDLED_PLUGINS"), "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let oms = rows.as_array().unwrap().iter().find(|r| r["name"] == "oms-4.2.0").unwrap();
    assert_eq!((oms["trusted"].as_bool(), oms["target"].as_str()), (Some(false), Some("4.2.0")), "{oms}");
    let o = bare(&["plugins", "inspect", &plugin()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("oms-4.2.0 — oms 4.1.1 -> 4.2.0") && t.contains("trim_heartbeat") && t.contains("NOT TRUSTED"), "{t}");
    // Reading is not running: plan refuses it as before.
    let o = bare(&["plan", &plugin(), "--scenario", scenarios().join("01-happy-path-then-rollback.toml").to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("refusing to run it"), "{t}");
}

#[test]
fn an_unknown_plugin_name_lists_what_is_there() {
    let o = opshost(&[
        "plan",
        "oms-9.9.9",
        "--plugins-dir",
        env!("OPSHOST_BUNDLED_PLUGINS"),
        "--scenario",
        scenarios().join("01-happy-path-then-rollback.toml").to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("no plugin named oms-9.9.9") && t.contains("oms-4.2.0"), "{t}");
}

/// Colour only on a terminal, and never under NO_COLOR: `script` gives the binary a terminal.
#[test]
fn colour_on_a_terminal_unless_no_color() {
    let on_a_terminal = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("{} -v demo", env!("CARGO_BIN_EXE_opshost")), "/dev/null"]).env_remove("RUST_LOG");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let o = cmd.output().expect("script (util-linux) gives the binary a terminal");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let coloured = on_a_terminal(false);
    assert!(coloured.contains("opshost::call") && coloured.contains("\x1b["), "no colour on a terminal:\n{coloured}");
    let plain = on_a_terminal(true);
    assert!(plain.contains("opshost::call") && !plain.contains("\x1b["), "colour under NO_COLOR:\n{plain}");
    // Not a terminal: no colour either.
    let o = opshost(&["-v", "demo"]);
    assert!(!text(&o).contains("\x1b["), "colour without a terminal");
}

/// Every command whose output a script would read takes --json, and prints one JSON document:
/// the keys, signatures and the demo here; the others in their own tests.
#[test]
fn every_command_with_a_result_takes_json() {
    let help = |args: &[&str]| text(&opshost(&[args, &["--help"]].concat()));
    for cmd in [
        &["demo"][..],
        &["key", "generate"],
        &["sign"],
        &["verify"],
        &["plan"],
        &["check"],
        &["upgrade"],
        &["rollback"],
        &["resume"],
        &["runs"],
        &["test"],
        &["plugins", "list"],
        &["plugins", "inspect"],
    ] {
        assert!(help(cmd).contains("--json"), "{cmd:?} has no --json");
    }
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = (dir.path().join("k.sec"), dir.path().join("k.pub"));
    let json = |args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let o = opshost(args);
        (o.status.code(), serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&o))))
    };
    let (code, v) = json(&["key", "generate", "--secret", secret.to_str().unwrap(), "--public", public.to_str().unwrap(), "--json"]);
    assert_eq!((code, v["public"].as_str()), (Some(0), public.to_str()), "{v}");
    let signed = dir.path().join("signed.wasm");
    let (code, v) = json(&["sign", "--key", secret.to_str().unwrap(), &plugin(), "--out", signed.to_str().unwrap(), "--json"]);
    assert_eq!((code, v["out"].as_str()), (Some(0), signed.to_str()), "{v}");
    let (code, v) = json(&["verify", signed.to_str().unwrap(), "--trust", public.to_str().unwrap(), "--json"]);
    assert_eq!((code, v["trusted"].as_bool(), v["signers"].as_array().map(Vec::len)), (Some(0), Some(true), Some(1)), "{v}");
    let other = dir.path().join("other.pub");
    opshost(&["key", "generate", "--secret", dir.path().join("o.sec").to_str().unwrap(), "--public", other.to_str().unwrap()]);
    let (code, v) = json(&["verify", signed.to_str().unwrap(), "--trust", other.to_str().unwrap(), "--json"]);
    assert_eq!((code, v["trusted"].as_bool()), (Some(1), Some(false)), "{v}");
    let (code, v) = json(&["demo", "--json"]);
    assert_eq!((code, v["report"]["passed"].as_bool(), v["plugin"]["name"].as_str()), (Some(0), Some(true), Some("oms-4.2.0")), "{v}");
}

/// The OPSHOST_* variables are clap's own (shown in --help), OPSHOST_CONFIG stands for --config
/// on every command that takes a site config, and -y answers yes.
#[test]
fn environment_variables_stand_for_their_flags_and_help_shows_them() {
    let o = opshost(&["upgrade", "--help"]);
    let t = text(&o);
    for must in ["[env: OPSHOST_CONFIG=", "[env: OPSHOST_PLUGINS=", "[env: OPSHOST_CACHE_DIR=", "-y, --yes"] {
        assert!(t.contains(must), "upgrade --help lacks {must:?}:\n{t}");
    }
    let missing = std::env::temp_dir().join("opshost-no-such-site.toml");
    for args in [
        vec!["upgrade", "--product", "oms", "--to", "4.2.0", "-y"],
        vec!["rollback", "--product", "oms", "-y"],
        vec!["plan", "--product", "oms", "--to", "4.2.0"],
        vec!["runs"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_opshost")).args(&args).env("OPSHOST_CONFIG", &missing).output().unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(&format!("reading site config {}", missing.display())), "{args:?}: {t}");
    }
}

/// Shell completions and the man page come from the same command tree as --help.
#[test]
fn completions_and_man_page_cover_every_command() {
    let o = opshost(&["completions", "bash"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for must in ["_opshost()", "upgrade", "rollback", "resume", "--rerun-in-doubt", "--config"] {
        assert!(t.contains(must), "bash completions lack {must:?}");
    }
    let o = opshost(&["completions", "zsh"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("#compdef opshost"), "{}", text(&o));
    let o = opshost(&["man"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && t.contains(".TH opshost 1") && t.contains("opshost\\-upgrade(1)"), "{t}");
    let dir = tempfile::tempdir().unwrap();
    let o = opshost(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let upgrade = std::fs::read_to_string(dir.path().join("opshost-upgrade.1")).unwrap();
    assert!(upgrade.contains("OPSHOST_CONFIG") && upgrade.contains("\\-\\-yes"), "{upgrade}");
    assert!(dir.path().join("opshost-resume.1").exists() && dir.path().join("opshost.1").exists());
}
