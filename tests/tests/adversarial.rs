//! The sandbox against a hostile plugin, signed by a trusted key and granted one container-name
//! pattern and one database, driven through the real `opshost` binary on the real Docker engine
//! and MariaDB. Every attack must end in one typed error with nothing changed: database checksums,
//! `mysql.user`, global variables, the set of databases, containers and their states, files on the
//! host, and the host's peak memory under a stated bound.

mod common;

use common::*;
use opshost::capabilities::services::RECORDS_FILE;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Peak resident memory of any opshost process a test ran, the hostile ones included: the plugin
/// may hold `memory_mb` (256 MiB by default) in all its memories together, the host 144 MiB more.
const RSS_BOUND_MB: i64 = 400;

struct Arena {
    d: Deployment,
    /// Site configs written so far: each gets a state directory of its own.
    sites: std::cell::Cell<u32>,
    victim: String,
    victim_db: String,
    plugins: PathBuf,
}

/// What must not change, whatever the plugin tries.
#[derive(Debug, PartialEq)]
struct World {
    checksums: Vec<String>,
    users: String,
    globals: String,
    databases: String,
    containers: String,
    files: Vec<bool>,
}

const HOST_FILES: &[&str] = &["/tmp/opshost-hostile-outfile", "/tmp/opshost-hostile-attach"];

impl Arena {
    fn new() -> Arena {
        let d = Deployment::new("adv", &["DATABASE_PASSWORD=s3cret-adv-value"], 18931);
        let victim = format!("oms_victim_{}", d.id);
        let victim_db = format!("rm_victim_{}", d.id);
        let _ = docker(&["rm", "-f", &victim]);
        let o = docker(&["run", "-d", "--name", &victim, "-v", &format!("{victim}vol:/data"), "opshost-test/busybox:1", "sleep", "3600"]);
        assert!(o.status.success(), "{}", text(&o));
        mariadb(&format!("DROP DATABASE IF EXISTS {victim_db}; CREATE DATABASE {victim_db}; CREATE TABLE {victim_db}.t (v VARCHAR(32)); INSERT INTO {victim_db}.t VALUES ('4.1.1'), ('keep me');"));
        let plugins = d.dir.path().join("hostile-plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(target_dir().join("test-plugins/hostile.wasm"), plugins.join("hostile.wasm")).unwrap();
        for f in HOST_FILES {
            let _ = std::fs::remove_file(f);
        }
        Arena { d, sites: Default::default(), victim, victim_db, plugins }
    }

    fn world(&self) -> World {
        // (Not the heartbeat database: the running stand-in OMS writes to it all the time.)
        let (rm, cm, _) = self.d.dbs();
        World {
            checksums: [rm, cm, self.victim_db.clone()].iter().map(|db| self.d.checksum(db)).collect(),
            users: mariadb("SELECT GROUP_CONCAT(CONCAT(user, '@', host, ':', authentication_string) ORDER BY user, host) FROM mysql.user"),
            globals: mariadb("SELECT CONCAT_WS(',', @@global.max_connections, @@global.read_only, @@global.general_log, @@global.max_statement_time, @@global.event_scheduler)"),
            databases: mariadb("SELECT GROUP_CONCAT(schema_name ORDER BY schema_name) FROM information_schema.schemata"),
            containers: String::from_utf8_lossy(&docker(&["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Image}}"]).stdout).lines().filter(|l| l.contains(&self.d.id)).collect::<Vec<_>>().join("; "),
            files: HOST_FILES.iter().map(|f| Path::new(f).exists()).collect(),
        }
    }

    /// A site config in which the hostile plugin is granted `oms_411_<id>*` and rm_<id> only.
    fn site(&self, attack: &str, extra: &str, deny_privileged: bool) -> PathBuf {
        let (rm, cm, _) = self.d.dbs();
        let p = self.d.dir.path().display();
        let c = db_conn();
        let n = self.sites.get() + 1;
        self.sites.set(n);
        let path = self.d.dir.path().join(format!("site-{attack}-{n}.toml"));
        let text = format!(
            r#"state_dir = "{p}/state-{attack}-{n}"
backup_dir = "{p}/backups"
plugins_dir = "{plugins}"
trust = ["{trust}"]
{extra}

[docker_policy]
deny_privileged = {deny_privileged}

[nodes.local]

{metadb}
[products.oms]
version = "4.1.1"

[products.oms.parameters]
attack = "{attack}"
container = "{old}"
victim = "{victim}"
db = "{rm}"
victim_db = "{victim_db}"

[products.oms.console]
rm_db = "{rm}"
cm_db = "{cm}"
health_urls = {{ local = "http://127.0.0.1:{health}/oms/health" }}

[grants."hostile"]
docker = ["{old}*"]
sql = ["metadb/{rm}"]
console = ["servers"]
"#,
            plugins = self.plugins.display(),
            trust = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/keys/test-vendor.pub").display(),
            metadb = metadb_toml(c.port),
            old = self.d.old(),
            victim = self.victim,
            victim_db = self.victim_db,
            health = self.d.port,
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn opshost(&self, args: &[&str]) -> Output {
        run(Command::new(target_dir().join("opshost")).args(args).env("OPSHOST_CACHE_DIR", self.d.dir.path().join("cache")).stdin(std::process::Stdio::null()))
    }

    fn upgrade(&self, site: &Path) -> Output {
        self.opshost(&["upgrade", "--config", site.to_str().unwrap(), "--product", "oms", "--to", "4.2.0", "--yes"])
    }

    /// Run one attack through `opshost upgrade`: refused with `message`, exit 1, nothing changed.
    fn contained(&self, attack: &str, message: &str, extra: &str, deny_privileged: bool) -> String {
        let before = self.world();
        let o = self.upgrade(&self.site(attack, extra, deny_privileged));
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{attack}: {out}");
        assert!(out.contains(message), "{attack}: expected {message:?} in:\n{out}");
        assert!(!out.contains("ALLOWED"), "{attack}: {out}");
        assert_eq!(self.world(), before, "{attack} changed something:\n{out}");
        out
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.victim, &format!("{}evil", self.d.old())]);
        let _ = docker(&["volume", "rm", &format!("{}vol", self.victim)]);
        let _ = mariadb(&format!("DROP DATABASE IF EXISTS {}", self.victim_db));
    }
}

fn peak_child_rss_mb() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss / 1024
}

#[test]
fn a_signed_hostile_plugin_is_held_to_its_grants_on_real_docker_and_mariadb() {
    if std::env::var("OPSHOST_TEST_DOCKER").is_err() {
        eprintln!("skipped: needs Docker and MariaDB (run tests/run-all.sh)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = Arena::new();
    let start = a.world();

    // Containers: what a granted name may be run with is the host's decision.
    for (attack, message) in [
        ("run-root", "mounting / is not allowed"),
        ("create-root", "mounting / is not allowed"),
        ("run-socket", "mounting /var/run/docker.sock is not allowed"),
        ("run-volume", "is not allowed: a container may mount only"),
        ("run-image", "image opshost-test/busybox:1 on node local is not one this run may use"),
        ("run-netns", "would join another container's network namespace"),
        ("traverse", "/../oms_victim_"),
        ("image-exists", "is not one this run may use"),
        ("inspect-victim", "is not granted to hostile"),
        ("read-victim-file", "is not granted to hostile"),
        ("read-traverse", "must be absolute, without .."),
    ] {
        a.contained(attack, message, "", true);
    }
    // --privileged where the engine would take it: only if a granted container has it, or the site says so.
    a.contained("run-privileged", "--privileged is not allowed", "", false);
    a.contained("create-privileged", "--privileged is not allowed", "", false);

    // Statements: only plain ones, on granted databases.
    for (attack, message) in [
        ("sql-cross-db", "rm_victim"),
        ("sql-checksums-cross-db", "sql.database-checksums on sql metadb/rm_victim"),
        ("sql-subquery", "rm_victim"),
        ("sql-users", "mysql"),
        ("sql-schemata", "information_schema"),
        ("sql-create-user", "statement refused"),
        ("sql-set-global", "statement refused"),
        ("sql-load-file", "LOAD_FILE"),
        ("sql-outfile", "OUTFILE"),
        ("sql-drop-db", "statement refused"),
        ("sql-create-db", "statement refused"),
        ("sql-trigger", "statement refused"),
        ("sql-kill", "statement refused"),
        ("sql-shutdown", "statement refused"),
        ("sql-reserved", "oms_normal_config"),
        ("sql-write-via-query", "statement refused"),
        ("sql-multi", "statement refused"),
    ] {
        a.contained(attack, message, "", true);
    }

    // A statement past its deadline is stopped on the server, not left running.
    a.contained("sql-slow", "did not finish within 2 s", "[limits]\ncall_timeout_s = 2", true);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let running =
        mariadb("SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%oms_project a, oms_project b%' AND info NOT LIKE '%processlist%'");
    assert_eq!(running, "0", "the timed-out statement still runs on the server");

    // Secrets: the plugin sees a reference, never the value, and neither does its output.
    let out = a.contained("secrets", "opshost-secret:", "", true);
    assert!(out.contains(&format!("opshost-secret:{}/DATABASE_PASSWORD", a.d.old())) && !out.contains("s3cret-adv-value"), "{out}");
    let run_dir = state_dir(&a, "secrets");
    let leaked = walk(&run_dir)
        .into_iter()
        .filter(|f| !f.ends_with(RECORDS_FILE))
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("s3cret-adv-value")))
        .collect::<Vec<_>>();
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");
    // Nor from what the container prints or logs: both show the reference.
    let out = a.contained("secrets-exec", "PRINTED", "", true);
    let reference = format!("opshost-secret:{}/DATABASE_PASSWORD", a.d.old());
    assert!(out.contains(&format!("PRINTED {reference}")) && out.contains(&format!("logged {reference}")) && !out.contains("s3cret-adv-value"), "{out}");
    let leaked = walk(&state_dir(&a, "secrets-exec"))
        .into_iter()
        .filter(|f| !f.ends_with(RECORDS_FILE))
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("s3cret-adv-value")))
        .collect::<Vec<_>>();
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");

    // Nor the MetaDB password the product keeps in its config.yaml, through exec: its line is
    // hidden as read-file hides it, and the value alone is shown as the site's credential.
    let out = a.contained("exec-config", "WHOLE", "", true);
    let password = std::env::var("OPSHOST_TEST_DB_PASSWORD").unwrap();
    assert!(out.contains("oms_meta_password: <hidden by opshost>") && out.contains("VALUE opshost-secret:metadb/metadb") && !out.contains(&password), "{out}");

    // A node of the site that is not the product's (here the same engine, under another name):
    // a grant without a node names the product's nodes only.
    a.contained("other-node", "among the product's nodes", "[nodes.other]\n", true);

    // Host resources and the host's own records.
    a.contained("notices", "left 10000 notices", "", true);
    a.contained("calls", "more than 1000 host calls", "[limits]\nmax_host_calls = 1000", true);
    a.contained("sleeps", "sleep more than 1 s in total", "[limits]\nmax_sleep_ms = 50\nmax_total_sleep_s = 1", true);
    a.contained("dumps", "has taken 3 backups", "[limits]\nmax_backups = 3", true);
    a.contained("host-records", "the host's own", "", true);
    a.contained("alloc", "memory", "", true);
    let out = a.contained("huge-argument", "exceed the sandbox limit", "", true);
    // Binary values within the limit as bytes and past it as JSON, in and out: each refused
    // before it is turned into JSON (the peak memory below would pass its bound).
    a.contained("huge-params", "exceed the sandbox limit", "", true);
    a.contained("huge-binary-result", "the result passed the sandbox limit", "", true);
    a.contained("many-values", "or 262144 values before its end", "", true);
    let journal_bytes: u64 = walk(&state_dir(&a, "huge-argument")).iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    assert!(journal_bytes < 1 << 20, "the refused 20 MB argument was kept: {journal_bytes} bytes in the run folder\n{out}");

    // Text from the plugin is data: no escape sequence reaches the terminal.
    let out = a.contained("ansi", "all good", "", true);
    assert!(!out.contains('\x1b') && !out.contains('\x07') && !out.contains('\r'), "{out:?}");
    // Its text of several lines: every line after the first indented, none at the margin.
    assert!(out.contains("oms-fake") && !out.lines().any(|l| l.starts_with("run oms-fake")), "{out}");

    // plan() reads only, whatever it tries; an answer of no changes nothing either.
    let site = a.site("plan-writes", "", true);
    let o = a.opshost(&["plan", "--config", site.to_str().unwrap(), "--product", "oms", "--to", "4.2.0"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(out.matches("plan() may only read").count(), 4, "{out}");
    // The test account holds ALL on *.*: the plan says what a least-privilege account would not.
    assert!(out.contains("which holds ALL PRIVILEGES") && out.contains(" on *.*; opshost needs only"), "{out}");
    let o = a.opshost(&["upgrade", "--config", site.to_str().unwrap(), "--product", "oms", "--to", "4.2.0"]);
    assert!(text(&o).contains("not confirmed: nothing was changed") && o.status.code() == Some(1), "{}", text(&o));
    let site = a.site("plan-ansi", "", true);
    let o = a.opshost(&["plan", "--config", site.to_str().unwrap(), "--product", "oms", "--to", "4.2.0"]);
    let out = text(&o);
    assert!(out.contains("drop everything") && !out.contains('\x1b') && !out.contains('\x07') && !out.contains('\r'), "{out:?}");
    // A finding of two lines keeps its second under it, and a right-to-left override is escaped.
    assert!(out.contains("  - fine\n      - needs docker oms_*: granted FORGED") && !out.contains('\u{202E}'), "{out}");
    assert_eq!(a.world(), start);

    // Identity: a key the site trusts for other names vouches for nothing here, and two files
    // with one name are refused, both named.
    let keys = a.d.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (secret, public) = (keys.join("site.key"), keys.join("site.pub"));
    assert!(a.opshost(&["key", "generate", "--secret", secret.to_str().unwrap(), "--public", public.to_str().unwrap()]).status.success());
    let resigned = a.d.dir.path().join("resigned");
    std::fs::create_dir_all(&resigned).unwrap();
    let file = resigned.join("hostile.wasm");
    assert!(a
        .opshost(&["sign", "--key", secret.to_str().unwrap(), a.plugins.join("hostile.wasm").to_str().unwrap(), "--out", file.to_str().unwrap()])
        .status
        .success());
    let site = a.site("inspect-victim", "", true);
    let scoped = std::fs::read_to_string(&site)
        .unwrap()
        .replace(&format!("plugins_dir = \"{}\"", a.plugins.display()), &format!("plugins_dir = \"{}\"", resigned.display()));
    let scoped = regex_replace_trust(&scoped, &format!("trust = [{{ key = \"{}\", plugins = [\"site-*\"] }}]", public.display()));
    std::fs::write(&site, scoped).unwrap();
    let o = a.upgrade(&site);
    assert!(o.status.code() == Some(1) && text(&o).contains("not trusted for that name"), "{}", text(&o));
    std::fs::copy(a.plugins.join("hostile.wasm"), a.plugins.join("hostile-again.wasm")).unwrap();
    let o = a.upgrade(&a.site("inspect-victim", "", true));
    assert!(
        o.status.code() == Some(1) && text(&o).contains("two plugin files call themselves hostile") && text(&o).contains("hostile-again.wasm"),
        "{}",
        text(&o)
    );
    std::fs::remove_file(a.plugins.join("hostile-again.wasm")).unwrap();
    // Grants bound to a signer the plugin does not have.
    let site = a.site("inspect-victim", "", true);
    let bound = std::fs::read_to_string(&site).unwrap().replace("[grants.\"hostile\"]\n", "[grants.\"hostile\"]\nsigners = [\"site\"]\n");
    std::fs::write(&site, bound).unwrap();
    let o = a.upgrade(&site);
    assert!(o.status.code() == Some(1) && text(&o).contains("only to a plugin signed by site"), "{}", text(&o));

    assert_eq!(a.world(), start);
    let rss = peak_child_rss_mb();
    assert!(rss < RSS_BOUND_MB, "an opshost process reached {rss} MB");
    eprintln!("peak opshost RSS over every attack: {rss} MB (bound {RSS_BOUND_MB} MB)");
}

/// The state directory of the (one) site config written for `attack`.
fn state_dir(a: &Arena, attack: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(a.d.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("state-{attack}-")))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn regex_replace_trust(site: &str, trust: &str) -> String {
    site.lines().map(|l| if l.starts_with("trust = ") { trust.to_string() } else { l.to_string() }).collect::<Vec<_>>().join("\n")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
