//! The sandbox holds against a hostile plugin: every attack is contained with a clear error, and
//! nothing changes that the grants did not allow. Runs on the fake host through the real runtime.

use opshost::fakehost::runner::{run_scenario, ScenarioReport};
use opshost::fakehost::scenario::Scenario;
use opshost::registry::signature::{Policy, TrustStore};
use opshost::registry::Plugin;
use opshost::report::Silent;
use opshost::runtime::engine::Runtime;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Run the hostile plugin's `attack` on the OMS 4.1.1 fake deployment. The site grants it
/// oms_411 and rm_411 only.
async fn attack(name: &str, extra: &str) -> ScenarioReport {
    let expect = r#"[expect.upgrade]
outcome = "error"
databases_as_initial = ["rm_411", "cm_411", "cm_hb_411"]"#;
    hostile(name, "upgrade", extra, expect).await
}

/// The hostile plugin's `attack` in one step (`plan` or `upgrade`) with these expectations.
async fn hostile(name: &str, step: &str, extra: &str, expect: &str) -> ScenarioReport {
    let plugin = signed("hostile.wasm").await;
    let base = deployment();
    let grants = if extra.contains("grants") { "" } else { r#"grants = { docker = ["oms_411"], sql = ["metadb/rm_411"], console = ["servers"] }"# };
    let case = format!(
        r#"
name = "hostile: {name}"
steps = ["{step}"]
parameters = {{ attack = "{name}" }}
{grants}
{extra}
{expect}
"#
    );
    let mut s = Scenario::parse_layers(&[&base, &case], name).unwrap();
    s.parameters.retain(|k, _| k == "attack");
    run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap()
}

/// A plugin the build signed with the test vendor key, opened as a site trusting that key.
async fn signed(file: &str) -> Plugin {
    let runtime = Runtime::new(None).unwrap();
    let policy = Policy { trust: TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    Plugin::open(&runtime, &Path::new(env!("OPSHOST_SIGNED_PLUGINS")).join(file), &policy).await.unwrap()
}

/// The OMS 4.1.1 fake deployment the attacks run on.
fn deployment() -> String {
    std::fs::read_to_string(root().join("plugins/oms-4.2.0/scenarios/_oms-4.1.1-deployment.toml")).unwrap()
}

fn error_of(r: &ScenarioReport) -> (String, String) {
    let e = r.steps[0].error.as_ref().unwrap_or_else(|| panic!("{} did not fail: {}", r.scenario, serde_json::to_string_pretty(r).unwrap()));
    (e.kind().to_string(), e.message().to_string())
}

fn assert_contained(r: &ScenarioReport, kind: &str, message: &str) {
    let (k, m) = error_of(r);
    assert_eq!(k, kind, "{}: {m}", r.scenario);
    assert!(m.contains(message), "{}: expected {message:?} in {m:.300}", r.scenario);
    assert!(r.passed, "{}: state changed: {:?}", r.scenario, r.steps[0].checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    assert!(r.changes.is_empty(), "{}: {:?}", r.scenario, r.changes);
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_cpu_budget() {
    let r = attack("loop", "limits = { cpu_seconds = 1 }").await;
    assert_contained(&r, "failed", "more than 1 s of its own CPU time");
}

#[tokio::test]
async fn unbounded_allocation_is_stopped_by_the_memory_limit() {
    let r = attack("alloc", "limits = { memory_mb = 32 }").await;
    assert_contained(&r, "failed", "the plugin stopped");
    let (_, m) = error_of(&r);
    assert!(m.contains("memory"), "{m}");
}

#[tokio::test]
async fn no_host_files_environment_or_sockets() {
    assert_contained(&attack("read-file", "").await, "failed", "read failed");
    assert_contained(&attack("env", "").await, "failed", "env vars: 0, args: 0");
    assert_contained(&attack("socket", "").await, "failed", "connect failed");
}

#[tokio::test]
async fn ungranted_containers_and_databases_are_denied_with_the_fix() {
    let r = attack("docker-undeclared", "").await;
    assert_contained(&r, "denied", "does not declare that need in its manifest");
    let r = attack("docker-ungranted", "").await;
    assert_contained(&r, "denied", "add \"local/oms_999\" to docker in [grants.\"hostile\"]");
    // The denial is in the transcript; the backend never saw the call.
    let stop = r.steps[0].calls.iter().find(|c| c.call == "docker.stop").unwrap();
    assert_eq!(stop.outcome["error"]["kind"], "denied");
    assert_contained(&attack("sql-undeclared", "").await, "denied", "does not declare");
    assert_contained(&attack("sql-ungranted", "").await, "denied", "add \"metadb/rm_other\" to sql");
}

#[tokio::test]
async fn identifiers_cannot_carry_sql() {
    let r = attack("inject", "grants = { sql = [\"metadb/*\"], docker = [\"oms_411\"] }").await;
    assert_contained(&r, "invalid-input", "is not a plain identifier");
}

#[tokio::test]
async fn oversized_arguments_results_and_messages_are_capped() {
    assert_contained(&attack("huge-argument", "").await, "denied", "exceed the sandbox limit");
    assert_contained(&attack("huge-result", "").await, "failed", "the result passed the sandbox limit");
    assert_contained(&attack("many-values", "").await, "failed", "or 262144 values before its end");
    // Lists of many tiny items are refused by their length, before the host copies them.
    let r = attack("long-lists", "").await;
    let (_, message) = error_of(&r);
    for (call, list, n, max) in [
        ("sql.dump-databases", "requests", 200_000, 4096),
        ("sql.database-checksums", "databases", 200_000, 4096),
        ("sql.query", "params", 70_000, 65_535),
        ("docker.exec", "command", 200_000, 4096),
        ("docker.check-run", "labels", 200_000, 4096),
        ("docker.run", "labels", 200_000, 4096),
    ] {
        let said = format!("InvalidInput(\"{call}: {list} holds {n} items, more than the {max} a host call takes\")");
        assert!(message.contains(&said), "{said} in {message}");
    }
    let r = attack("huge-error", "").await;
    let (_, m) = error_of(&r);
    assert!(m.len() < 100_000 && m.ends_with("[clipped]"), "{}", m.len());
    assert_contained(&attack("huge-log", "").await, "failed", "logged");
}

/// `check-run` asks the engine whether it permits `--privileged` by starting a throwaway container
/// of an image: one the run may use already, or that of the granted container the spec succeeds.
/// An image the run may not use, on an engine that refuses, is not probed (the refusal would say
/// the probe ran), nor is one borrowed from a container the plugin is not granted.
#[tokio::test]
async fn check_run_probes_the_engine_only_with_images_the_run_may_use() {
    let grants = r#"grants = { docker = ["oms_411", "oms_411evil"], sql = ["metadb/rm_411"], console = ["servers"] }
[docker]
refuses_privileged = ["local"]"#;
    let r = attack("check-run-probe", grants).await;
    assert_contained(&r, "failed", "CHECKED Ok(true)");
}

/// What a plugin writes to the run log in one call is bounded by `max_log_mb`, counted as written
/// (a control character escaped takes six bytes): a hundred 64 KiB lines of them, and as many
/// progress labels, leave about a megabyte under a 1 MiB limit, and one warning.
#[tokio::test]
async fn the_run_log_takes_at_most_max_log_mb_from_a_plugin() {
    let plugin = signed("hostile.wasm").await;
    let case = r#"
name = "hostile: log-flood"
steps = ["upgrade"]
parameters = { attack = "log-flood" }
grants = { docker = ["oms_411"], sql = ["metadb/rm_411"], console = ["servers"] }
limits = { max_log_mb = 1 }
[expect.upgrade]
outcome = "error"
"#;
    let mut s = Scenario::parse_layers(&[&deployment(), case], "log-flood").unwrap();
    s.parameters.retain(|k, _| k == "attack");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.log");
    let r = run_scenario(&plugin.loaded, &s, Arc::new(opshost::report::RunLog::open(&path).unwrap())).await.unwrap();
    assert_eq!(error_of(&r).1, "flooded");
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(log.len() < (1 << 20) + (64 << 10), "the run log holds {} bytes", log.len());
    assert!(log.len() > 1 << 19, "the lines within the limit are kept: {} bytes", log.len());
    assert_eq!(log.matches("the rest are dropped (max_log_mb in [limits])").count(), 1);
}

#[tokio::test]
async fn a_trap_midway_stops_the_run_and_only_granted_changes_happened() {
    // (Its expectations differ from the others: the stop did happen.)
    let r = attack("trap-midway", "").await;
    let (kind, m) = error_of(&r);
    assert_eq!(kind, "failed");
    assert!(m.contains("the plugin stopped") && m.contains("trapped in upgrade()"), "{m}");
    // The one change: the granted stop of oms_411 before the crash (and the stopped OMS marking
    // its server offline in cm_411, as the product does).
    assert_eq!(r.changes, vec!["container oms_411 on local: running -> exited".to_string(), "database cm_411: content changed".to_string()]);
    assert!(r.steps[0].calls.iter().filter(|c| c.call.starts_with("docker.") || c.call.starts_with("sql.")).all(|c| c.call == "docker.stop"));
}

#[tokio::test]
async fn a_hung_backend_times_out_and_the_plugin_gets_a_typed_error() {
    // The OMS plugin itself, with docker.stop hanging for 3 s and a 1 s call deadline.
    let plugin = signed("oms_4_2_0.wasm").await;
    let base = deployment();
    let case = r#"
name = "hung engine"
steps = ["upgrade", "rollback"]
limits = { call_timeout_s = 1 }
faults = [{ call = "docker.stop", delay_ms = 3000 }]
[expect.upgrade]
outcome = "error"
error_kind = "timeout"
error_contains = "docker.stop did not finish within 1 s"
[expect.rollback]
# cm_hb_411 lost the rows the heartbeat trim's first pass deleted before the stop.
databases_as_initial = ["rm_411", "cm_411"]
parameters_as_initial = ["ha.config"]
"#;
    let s = Scenario::parse_layers(&[&base, case], "hung engine").unwrap();
    let started = std::time::Instant::now();
    let r = run_scenario(&plugin.loaded, &s, Arc::new(Silent)).await.unwrap();
    assert!(r.passed, "{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the call was not cut at its deadline");
}

#[tokio::test]
async fn plan_is_read_only_whatever_the_plugin_tries() {
    let expect = r#"[expect.plan]
databases_as_initial = ["rm_411", "cm_411", "cm_hb_411"]"#;
    let r = hostile("plan-writes", "plan", r#"grants = { docker = ["oms_*"], sql = ["metadb/rm_411"], console = ["servers"] }"#, expect).await;
    assert!(r.passed, "{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(r.changes.is_empty(), "{:?}", r.changes);
    let findings = &r.steps[0].plan.as_ref().unwrap().findings;
    assert_eq!(findings.len(), 4, "{findings:?}");
    for f in findings {
        assert!(f.contains("Denied") && f.contains("plan() may only read"), "{f}");
    }
}

#[tokio::test]
async fn plugin_text_reaches_no_terminal_as_control_characters() {
    let r = hostile("plan-ansi", "plan", "", "").await;
    let plan = r.steps[0].plan.as_ref().unwrap();
    let text = serde_json::to_string(plan).unwrap();
    assert!(!plan.findings[0].contains('\x1b') && !plan.steps[0].title.contains('\r') && !plan.steps[0].detail.contains('\x07'), "{text}");
    assert!(plan.steps[0].title.contains("\\u{1b}[2K\\u{d}"), "{}", plan.steps[0].title);
    assert_eq!(plan.findings[2], "ok \\u{202e}dehsinif", "a right-to-left override is escaped");
    let r = hostile("plan-flood", "plan", "", "").await;
    let (kind, m) = error_of(&r);
    assert!(kind == "invalid-input" && m.contains("the plugin's plan has 10000 findings, more than the 200 opshost shows"), "{kind}: {m}");
    let r = attack("ansi", "").await;
    let (_, m) = error_of(&r);
    assert!(!m.contains('\x1b') && !m.contains('\r') && m.contains("\\u{1b}[2K"), "{m}");
    assert!(r.steps[0].notices.iter().all(|n| !n.contains('\x1b') && !n.contains('\x07')), "{:?}", r.steps[0].notices);
}

#[tokio::test]
async fn containers_are_what_the_host_allows_not_what_a_granted_name_asks() {
    let grants = r#"grants = { docker = ["oms_411*"], sql = ["metadb/rm_411"], console = ["servers"] }"#;
    for (attack_name, kind, message) in [
        ("run-root", "denied", "mounting / is not allowed"),
        ("create-root", "denied", "mounting / is not allowed"),
        ("run-socket", "denied", "mounting /var/run/docker.sock is not allowed"),
        ("run-volume", "denied", "mounting oms_victimvol is not allowed"),
        ("run-image", "denied", "image opshost-test/busybox:1 on node local is not one this run may use"),
        ("run-netns", "denied", "would join another container's network namespace"),
        ("traverse", "denied", "docker local/oms_411/../oms_victim: plugin hostile does not declare"),
        ("image-exists", "denied", "image opshost-test/busybox:1 on node local"),
        ("inspect-victim", "denied", "not granted"),
        ("read-victim-file", "denied", "not granted"),
        ("read-traverse", "invalid-input", "must be absolute, without .."),
    ] {
        let r = attack(attack_name, grants).await;
        assert_contained(&r, kind, message);
        assert!(
            r.steps[0].calls.iter().all(|c| !["docker.run", "docker.create"].contains(&c.call.as_str()) || c.outcome.get("ok").is_none()),
            "{attack_name}: a run went through"
        );
    }
}

/// A config file reaches the plugin, and the run's journal, with its secrets' values hidden.
#[tokio::test]
async fn a_granted_containers_config_file_is_read_without_its_secrets() {
    let r = attack("read-config", "").await;
    let (kind, m) = error_of(&r);
    assert_eq!(kind, "failed", "{m}");
    assert!(m.contains("drc_rm_db: rm_411") && m.contains("oms_meta_password: <hidden by opshost>"), "{m}");
    assert!(!m.contains("oms-meta-secret"), "{m}");
    let call = r.steps[0].calls.iter().find(|c| c.call == "docker.read-file").expect("the read is in the transcript");
    assert!(!call.outcome.to_string().contains("oms-meta-secret") && call.outcome.to_string().contains("<hidden by opshost>"), "{}", call.outcome);
    assert!(r.changes.is_empty(), "{:?}", r.changes);
}

#[tokio::test]
async fn statements_reach_only_granted_databases_and_plain_statements() {
    for (attack_name, message) in [
        ("sql-cross-db", "rm_victim"),
        ("sql-subquery", "rm_victim"),
        ("sql-users", "mysql"),
        ("sql-schemata", "information_schema"),
        ("sql-create-user", "refused"),
        ("sql-set-global", "refused"),
        ("sql-load-file", "LOAD_FILE"),
        ("sql-outfile", "OUTFILE"),
        ("sql-drop-db", "refused"),
        ("sql-create-db", "refused"),
        ("sql-trigger", "refused"),
        ("sql-kill", "refused"),
        ("sql-shutdown", "refused"),
        ("sql-reserved", "oms_normal_config"),
        ("sql-write-via-query", "refused"),
        ("sql-multi", "refused"),
        ("sql-attach", "refused"),
    ] {
        let r = attack(attack_name, "").await;
        assert_contained(&r, "denied", message);
    }
}

/// A backup goes back only into the database it was taken of: into another granted one, it would
/// carry the console's reserved table where the statement policy does not reserve it.
#[tokio::test]
async fn a_backup_is_restored_only_into_the_database_it_was_taken_of() {
    let grants = r#"grants = { docker = ["oms_411"], sql = ["metadb/rm_411", "metadb/rm_evil"], console = ["servers"] }"#;
    let r = attack("sql-restore-elsewhere", grants).await;
    let (kind, message) = error_of(&r);
    assert_eq!(kind, "failed", "{message}");
    assert_eq!(message.matches("Denied(\"backup moved was taken of database rm_411, not rm_evil").count(), 2, "{message}");
    assert!(r.passed && r.changes.is_empty(), "{:?}", r.changes);
}

#[tokio::test]
async fn host_resources_are_bounded() {
    // Notices: the first hundred are kept, the rest dropped.
    let r = attack("notices", "").await;
    assert_contained(&r, "failed", "left 10000 notices");
    assert_eq!(r.steps[0].notices.len(), 100);
    // Notices (and logs, and progress) count as host calls: ten thousand of them stop it too.
    assert_contained(&attack("notices", "limits = { max_host_calls = 1000 }").await, "failed", "more than 1000 host calls");
    // Calls and sleeps: the plugin is stopped.
    assert_contained(&attack("calls", "limits = { max_host_calls = 1000 }").await, "failed", "more than 1000 host calls");
    assert_contained(&attack("sleeps", "limits = { max_total_sleep_s = 3600 }").await, "failed", "sleep more than 3600 s in total");
    // Backups: a plugin cannot fill the backup disk by dumping over and over.
    let r = attack("dumps", "limits = { max_backups = 3 }").await;
    let (_, m) = error_of(&r);
    assert!(m.starts_with("dump 3: Error::Denied") && m.contains("has taken 3 backups") && m.contains("max_backups"), "{m}");
    // The host's own records are neither written nor read by the plugin.
    let r = attack("host-records", "").await;
    let (_, m) = error_of(&r);
    assert!(m.contains("InvalidInput") && m.contains("the host's own") && m.contains("recall: None"), "{m}");
    // An oversized argument is kept as its digest, not whole.
    let r = attack("huge-argument", "").await;
    let call = r.steps[0].calls.iter().find(|c| c.call == "sql.query").unwrap();
    assert!(call.args.to_string().len() < 1000 && call.args["digest"].as_str().unwrap().starts_with("sha256:"), "{}", call.args);
}

#[tokio::test]
async fn a_manifest_that_never_returns_cannot_hang_a_scan() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let policy = Policy { trust: TrustStore::load(&[root().join("plugins/keys/test-vendor.pub")]).unwrap(), allow_unsigned: false };
    let file = Path::new(env!("OPSHOST_SIGNED_PLUGINS")).join("hostile_manifest.wasm");
    let started = std::time::Instant::now();
    let e = format!("{:#}", Plugin::open(&runtime, &file, &policy).await.err().expect("a manifest() that never returns was accepted"));
    assert!(e.contains("more than 2 s of its own CPU time"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "took {:?}", started.elapsed());
    // The answer is cached by the plugin's hash: the next scan does not wait again.
    let again = std::time::Instant::now();
    let e2 = format!("{:#}", Plugin::open(&runtime, &file, &policy).await.err().unwrap());
    assert!(e2.contains("more than 2 s of its own CPU time") && again.elapsed() < std::time::Duration::from_secs(1), "{e2} in {:?}", again.elapsed());
}

/// Resume of an upgrade whose first call, a change, had begun when the host stopped: whether it
/// happened is unknown, so it runs again only with the operator's --rerun-in-doubt (never --yes).
#[tokio::test]
async fn an_in_doubt_change_runs_again_only_when_the_operator_says_so() {
    use opshost::journal::entry::Header;
    use opshost::journal::Journal;
    use opshost::runtime::calls::Effect;
    let plugin = signed("hostile.wasm").await;
    let base = deployment();
    let case =
        "name = \"in doubt\"\nsteps = [\"upgrade\"]\nconfirm = true\nparameters = { attack = \"sql-drop-db\" }\ngrants = { sql = [\"metadb/rm_411\"] }\n";
    let mut s = Scenario::parse_layers(&[&base, case], "in doubt").unwrap();
    s.parameters.retain(|k, _| k == "attack");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.journal");
    let header = Header {
        run: "r".into(),
        operation: "upgrade".into(),
        plugin: "hostile".into(),
        plugin_hash: plugin.loaded.hash.clone(),
        site_config_hash: String::new(),
    };
    let j = Journal::create(&path, header).unwrap();
    let args = serde_json::json!({"connection": "metadb", "database": "rm_411", "statement": "DROP DATABASE rm_victim", "params": []});
    j.begin(j.next(), "sql.execute", Effect::Write, &args).unwrap();
    drop(j);
    for (rerun, want) in [(false, "resume stopped at call 1: sql.execute"), (true, "statement refused")] {
        let mut fake = opshost::fakehost::FakeHost::new(&s, Arc::new(Silent)).unwrap();
        fake.bind_grants(&plugin.manifest, s.grants.clone());
        fake.env.journal = Some(Arc::new(Journal::reopen(&path).unwrap().0));
        fake.env.rerun_in_doubt = rerun;
        // The operator answers yes to everything: that must not matter.
        let ctx = opshost::registry::context_for(&plugin.manifest, &s.product, &s.source, &s.target, &s.parameters, &s.nodes).unwrap();
        let outcome = plugin.loaded.upgrade(&fake.env, &ctx).await;
        let text = match outcome {
            Ok(o) => format!("{:?}", o.result),
            Err(trap) => format!("{trap:#}"),
        };
        assert!(text.contains(want), "rerun_in_doubt = {rerun}: {text}");
    }
}
