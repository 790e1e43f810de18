//! A hostile plugin for the sandbox tests (host/tests/sandbox.rs on the fake host,
//! tests/tests/adversarial.rs through the real binary on Docker and MariaDB). Parameter `attack`
//! picks what `upgrade` (or, for `plan-*`, `plan`) tries; each attack must be contained by the host
//! with a typed error and nothing changed. Other parameters name the objects of the deployment:
//! `container` (granted), `victim` (a container not granted), `db` (granted), `victim_db` (not
//! granted), `image` (an image on the engine the site never named).

use opshost_procedures::bindings::opshost::plugin::{docker, host, sql};
use opshost_procedures::ctx::{failed, Params};
use opshost_procedures::{Context, Error, Manifest, Need, ParameterSpec, Plan, Step};

struct Hostile;

fn need(capability: &str, target: &str) -> Need {
    Need { capability: capability.into(), target: target.into(), why: "sandbox test".into() }
}

fn param(name: &str, description: &str, default: &str) -> ParameterSpec {
    ParameterSpec { name: name.into(), description: description.into(), default: Some(default.into()) }
}

/// The deployment's objects, from the parameters.
struct Names {
    container: String,
    victim: String,
    db: String,
    victim_db: String,
    image: String,
}

impl Names {
    fn of(ctx: &Context) -> Names {
        let p = Params(ctx);
        Names {
            container: p.or("container", "oms_411"),
            victim: p.or("victim", "oms_victim"),
            db: p.or("db", "rm_411"),
            victim_db: p.or("victim_db", "rm_victim"),
            image: p.or("image", "opshost-test/busybox:1"),
        }
    }
}

/// A successor of the granted container with one change, run under a granted name.
fn run_changed(n: &Names, change: impl FnOnce(&mut docker::RunSpec)) -> Result<(), Error> {
    let old = docker::inspect("local", &n.container)?.ok_or_else(|| failed(format!("no container {}", n.container)))?;
    let mut spec = old.spec;
    spec.name = format!("{}evil", n.container);
    change(&mut spec);
    docker::run("local", &spec).map(|_| ())
}

/// The same through `create` (created, then started): held to the same policy as `run`.
fn create_changed(n: &Names, change: impl FnOnce(&mut docker::RunSpec)) -> Result<(), Error> {
    let old = docker::inspect("local", &n.container)?.ok_or_else(|| failed(format!("no container {}", n.container)))?;
    let mut spec = old.spec;
    spec.name = format!("{}evil", n.container);
    change(&mut spec);
    docker::create("local", &spec)?;
    docker::start("local", &spec.name)
}

fn mount(source: &str, target: &str) -> docker::Mount {
    docker::Mount { source: source.into(), target: target.into(), read_only: false }
}

fn query(n: &Names, statement: &str) -> Result<(), Error> {
    sql::query("metadb", &n.db, statement, &[]).map(|_| ())
}

fn execute(n: &Names, statement: &str) -> Result<(), Error> {
    sql::execute("metadb", &n.db, statement, &[]).map(|_| ())
}

/// What a plan that tries to change things gets back: each attempt's error, as findings.
fn plan_writes(n: &Names) -> Vec<String> {
    let tries: Vec<(&str, Result<(), Error>)> = vec![
        ("docker.stop", docker::stop("local", &n.container, 1)),
        ("sql.execute", execute(n, "DELETE FROM oms_version")),
        ("sql.drop-database", sql::drop_database("metadb", &n.db)),
        ("host.record", host::record("planned", "yes")),
    ];
    tries.into_iter().map(|(call, r)| format!("{call}: {}", r.err().map(|e| format!("{e:?}")).unwrap_or_else(|| "ALLOWED".into()))).collect()
}

impl opshost_procedures::bindings::Guest for Hostile {
    fn manifest() -> Manifest {
        Manifest {
            name: "hostile".into(),
            product: "oms".into(),
            sources: vec!["4.1.1".into()],
            target: "4.2.0".into(),
            needs: vec![need("docker", "oms_*"), need("sql", "metadb/rm_*"), need("console", "servers")],
            parameters: vec![
                ParameterSpec { name: "attack".into(), description: "what to try".into(), default: None },
                param("container", "a container the site grants", "oms_411"),
                param("victim", "a container the site does not grant", "oms_victim"),
                param("db", "a database the site grants", "rm_411"),
                param("victim_db", "a database the site does not grant", "rm_victim"),
                param("image", "an image on the engine that the site never named", "opshost-test/busybox:1"),
            ],
        }
    }
    fn plan(ctx: Context) -> Result<Plan, Error> {
        let n = Names::of(&ctx);
        match Params(&ctx).or("attack", "").as_str() {
            "plan-writes" => Ok(Plan { findings: plan_writes(&n), steps: vec![], rollback: vec![] }),
            "plan-ansi" => Ok(Plan {
                // Escapes; a line of its own that reads as the host's; a right-to-left override
                // that would show the host's text after it backwards.
                findings: vec!["\x1b[32mall clear\x1b[0m".into(), "fine\n  - needs docker oms_*: granted FORGED".into(), "ok \u{202E}dehsinif".into()],
                steps: vec![Step { title: "drop everything\x1b[2K\r  1. harmless".into(), detail: "\x1b]52;c;cm0gLXJmIC8=\x07".into(), changes: true }],
                rollback: vec![],
            }),
            // So many findings that the host's own lines scroll out of sight.
            "plan-flood" => Ok(Plan { findings: vec!["filler".into(); 10_000], steps: vec![], rollback: vec![] }),
            _ => Ok(Plan { findings: vec![], steps: vec![], rollback: vec![] }),
        }
    }
    fn upgrade(ctx: Context) -> Result<(), Error> {
        let n = Names::of(&ctx);
        let attack = Params(&ctx).or("attack", "");
        match attack.as_str() {
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(s) => Err(failed(format!("READ /etc/passwd: {} bytes", s.len()))),
                Err(e) => Err(failed(format!("read failed: {e}"))),
            },
            "env" => Err(failed(format!("env vars: {}, args: {}", std::env::vars().count(), std::env::args().count()))),
            "socket" => match std::net::TcpStream::connect("127.0.0.1:22") {
                Ok(_) => Err(failed("CONNECTED to 127.0.0.1:22".to_string())),
                Err(e) => Err(failed(format!("connect failed: {e}"))),
            },
            "docker-undeclared" => docker::stop("local", "mariadb-prod", 1),
            "docker-ungranted" => docker::stop("local", "oms_999", 1),
            "sql-undeclared" => sql::execute("metadb", "mysql", "DROP TABLE user", &[]).map(|_| ()),
            "sql-ungranted" => sql::execute("metadb", "rm_other", "DROP TABLE t", &[]).map(|_| ()),
            "inject" => sql::query("metadb", "rm_411`; DROP DATABASE rm_411; -- ", "SELECT 1", &[]).map(|_| ()),
            "huge-argument" => sql::query("metadb", "rm_411", &format!("SELECT '{}'", "x".repeat(20 << 20)), &[]).map(|_| ()),
            // Within max_payload_bytes as raw bytes, four times past it as the JSON the host
            // journals: a list of numbers, 32 bytes of memory each once parsed.
            "huge-params" => sql::query("metadb", &n.db, "SELECT LENGTH(?)", &[sql::Value::Bytes(vec![0xff; 15 << 20])]).map(|_| ()),
            "huge-binary-result" => query(&n, "SELECT REPEAT(UNHEX('FF'), 15000000)"),
            // 9^6 = 531,441 empty strings: 6.4 MB as JSON text, about 370 MB as the host's JSON
            // tree. (A cross join: MariaDB stops a recursive CTE at max_recursive_iterations.)
            "many-values" => {
                let nine = "(SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
                let from: Vec<String> = (0..6).map(|i| format!("{nine} AS t{i}")).collect();
                query(&n, &format!("SELECT '' FROM {}", from.join(" CROSS JOIN ")))
            }
            "huge-result" => sql::query("metadb", "rm_411", "SELECT zeroblob(20000000)", &[]).map(|_| ()),
            "huge-error" => Err(failed("E".repeat(8 << 20))),
            // Lists of many tiny items: a few bytes an item in the guest, hundreds in the host's
            // JSON of the call's arguments. Each call's answer is shown.
            "long-lists" => {
                let many = 200_000;
                let requests: Vec<sql::BackupRequest> = (0..many).map(|_| sql::BackupRequest { database: String::new(), backup_name: String::new() }).collect();
                let dumps = sql::dump_databases("metadb", &requests).map(|_| ());
                let checksums = sql::database_checksums("metadb", &vec![String::new(); many]).map(|_| ());
                let params = sql::query("metadb", &n.db, "SELECT 1", &vec![sql::Value::Null; 70_000]).map(|_| ());
                let exec = docker::exec("local", &n.container, &vec![String::new(); many]).map(|_| ());
                let old = docker::inspect("local", &n.container)?.ok_or_else(|| failed(format!("no container {}", n.container)))?;
                let mut spec = old.spec;
                spec.labels = vec![(String::new(), String::new()); many];
                let check = docker::check_run("local", &spec).map(|_| ());
                let run = docker::run("local", &spec).map(|_| ());
                Err(failed(format!("DUMPS {dumps:?} CHECKSUMS {checksums:?} PARAMS {params:?} EXEC {exec:?} CHECK {check:?} RUN {run:?}")))
            }
            "huge-log" => {
                host::log(host::Level::Info, &"L".repeat(8 << 20));
                Err(failed("logged".to_string()))
            }
            // Control characters, which the host writes escaped (six bytes each), in lines and
            // in progress labels of their own.
            "log-flood" => {
                let line = "\u{1}\n".repeat(32 << 10);
                for i in 0..100 {
                    host::log(host::Level::Info, &line);
                    host::progress(1, 2, &format!("{i}{line}"));
                }
                Err(failed("flooded".to_string()))
            }
            "trap-midway" => {
                docker::stop("local", "oms_411", 1)?;
                panic!("hostile plugin crashed after stopping oms_411");
            }
            // Containers: the power behind a granted name.
            "run-root" => run_changed(&n, |s| s.mounts.push(mount("/", "/host"))),
            "run-socket" => run_changed(&n, |s| s.mounts.push(mount("/var/run/docker.sock", "/var/run/docker.sock"))),
            "run-volume" => run_changed(&n, |s| s.mounts.push(mount(&format!("{}vol", n.victim), "/victim"))),
            "run-image" => run_changed(&n, |s| s.image = n.image.clone()),
            "run-netns" => run_changed(&n, |s| s.network_mode = format!("container:{}", n.victim)),
            "run-privileged" => run_changed(&n, |s| s.privileged = true),
            "create-root" => create_changed(&n, |s| s.mounts.push(mount("/", "/host"))),
            "create-privileged" => create_changed(&n, |s| s.privileged = true),
            // The engine's --privileged probe (a container created and started) with an image the
            // run may not use, or one borrowed from a container the plugin is not granted.
            "check-run-probe" => {
                let old = docker::inspect("local", &n.container)?.ok_or_else(|| failed(format!("no container {}", n.container)))?;
                let mut spec = old.spec;
                spec.name = format!("{}evil", n.container);
                spec.image = n.image.clone();
                spec.privileged = true;
                spec.labels.push(("opshost.successor-of".into(), n.victim.clone()));
                Err(failed(format!("CHECKED {:?}", docker::check_run("local", &spec).map(|s| s.privileged))))
            }
            // A node of the site config that is not the product's, where the grant's container
            // name means nothing.
            "other-node" => docker::stop("other", &n.container, 1),
            "traverse" => docker::stop("local", &format!("{}/../{}", n.container, n.victim), 1),
            "image-exists" => docker::image_exists("local", &n.image).map(|_| ()),
            "inspect-victim" => docker::inspect("local", &n.victim).map(|_| ()),
            "read-victim-file" => docker::read_file("local", &n.victim, "/etc/hostname").map(|_| ()),
            "read-traverse" => docker::read_file("local", &n.container, "/home/admin/../../etc/shadow").map(|_| ()),
            // What a config file shows a plugin: the secrets' values are hidden by the host.
            "read-config" => docker::read_file("local", &n.container, "/home/admin/conf/config.yaml").and_then(|t| Err(failed(format!("READ {t}")))),
            // Statements: the power behind a granted database.
            "sql-cross-db" => query(&n, &format!("SELECT * FROM {}.t", n.victim_db)),
            // A granted database beside one that is not, in one call.
            "sql-checksums-cross-db" => sql::database_checksums("metadb", &[n.db.clone(), n.victim_db.clone()]).map(|_| ()),
            "sql-subquery" => execute(&n, &format!("DELETE FROM oms_version WHERE version IN (SELECT v FROM {}.t)", n.victim_db)),
            "sql-users" => query(&n, "SELECT user, password FROM mysql.user"),
            "sql-schemata" => query(&n, "SELECT schema_name FROM information_schema.schemata"),
            "sql-create-user" => execute(&n, "CREATE USER evil IDENTIFIED BY 'evil'"),
            "sql-set-global" => execute(&n, "SET GLOBAL max_connections = 7"),
            "sql-load-file" => query(&n, "SELECT LOAD_FILE('/etc/passwd')"),
            "sql-outfile" => query(&n, "SELECT 1 INTO OUTFILE '/tmp/opshost-hostile-outfile'"),
            "sql-drop-db" => execute(&n, &format!("DROP DATABASE {}", n.victim_db)),
            "sql-create-db" => execute(&n, "CREATE DATABASE evil_db"),
            "sql-trigger" => execute(&n, &format!("CREATE TRIGGER evil AFTER INSERT ON oms_version FOR EACH ROW INSERT INTO {}.t VALUES (1)", n.victim_db)),
            "sql-kill" => execute(&n, "KILL 1"),
            "sql-shutdown" => execute(&n, "SHUTDOWN"),
            "sql-reserved" => query(&n, "SELECT cfg_value FROM oms_normal_config"),
            "sql-write-via-query" => query(&n, "DELETE FROM oms_version"),
            "sql-multi" => execute(&n, &format!("DELETE FROM oms_version; DROP DATABASE {}", n.victim_db)),
            "sql-attach" => execute(&n, "ATTACH DATABASE '/tmp/opshost-hostile-attach' AS evil"),
            // A granted database's tables, the console's own among them, carried into another
            // granted database, where the statement policy does not reserve them.
            "sql-restore-elsewhere" => {
                sql::dump_database("metadb", &n.db, "moved")?;
                let one = sql::restore_database("metadb", "rm_evil", "moved");
                let set = sql::restore_databases("metadb", &[sql::BackupRequest { database: "rm_evil".into(), backup_name: "moved".into() }]);
                Err(failed(format!("ONE {one:?} SET {set:?}")))
            }
            "sql-slow" => query(&n, "SELECT COUNT(*) FROM oms_project a, oms_project b, oms_project c, oms_project d"),
            // Host resources.
            "notices" => {
                for i in 0..10_000 {
                    host::notice(&format!("notice {i}"));
                }
                Err(failed("left 10000 notices".to_string()))
            }
            "calls" => {
                for _ in 0..10_000_000u64 {
                    std::hint::black_box(host::now());
                }
                Err(failed("made 10 million calls".to_string()))
            }
            "sleeps" => loop {
                host::sleep(600_000);
            },
            "dumps" => {
                for i in 0..1000 {
                    sql::dump_database("metadb", &n.db, &format!("fill-{i}")).map_err(|e| failed(format!("dump {i}: {e:?}")))?;
                }
                Err(failed("took 1000 backups".to_string()))
            }
            "host-records" => {
                let wrote = host::record("opshost.approved", "{}");
                let read = host::recall("opshost.approved");
                Err(failed(format!("record: {wrote:?}; recall: {read:?}")))
            }
            "secrets" => {
                let old = docker::inspect("local", &n.container)?.ok_or_else(|| failed(format!("no container {}", n.container)))?;
                Err(failed(format!("environment of {}: {:?}", n.container, old.spec.env)))
            }
            // The value, not the reference, is in the container: what it prints, and what it logs.
            "secrets-exec" => {
                let busybox = |args: &[&str]| std::iter::once("/bin/busybox").chain(args.iter().copied()).map(str::to_string).collect::<Vec<_>>();
                let printed = docker::exec("local", &n.container, &busybox(&["sh", "-c", "echo \"$DATABASE_PASSWORD\""]))?;
                docker::exec("local", &n.container, &busybox(&["sh", "-c", "echo \"logged $DATABASE_PASSWORD\" > /proc/1/fd/1"]))?;
                // The engine takes a moment to log what went to the terminal.
                let mut logged = String::new();
                for _ in 0..50 {
                    logged = docker::logs("local", &n.container, 5)?;
                    if logged.contains("logged ") {
                        break;
                    }
                    host::sleep(100);
                }
                Err(failed(format!("PRINTED {} LOGGED {}", printed.stdout.trim(), logged.trim())))
            }
            // The product's config file through exec, whole and as its password's value alone.
            "exec-config" => {
                let busybox = |args: &[&str]| std::iter::once("/bin/busybox").chain(args.iter().copied()).map(str::to_string).collect::<Vec<_>>();
                let whole = docker::exec("local", &n.container, &busybox(&["cat", "/home/admin/conf/config.yaml"]))?;
                let value =
                    docker::exec("local", &n.container, &busybox(&["sh", "-c", "grep oms_meta_password /home/admin/conf/config.yaml | cut -d ' ' -f 2"]))?;
                Err(failed(format!("WHOLE {} VALUE {}", whole.stdout, value.stdout.trim())))
            }
            "ansi" => {
                host::log(host::Level::Info, "\x1b[2K\x1b[1Aupgrade finished: OMS 4.2.0 is running");
                // Lines of its own, as opshost writes its own at the margin.
                host::log(host::Level::Info, "step done\nrun oms-fake: upgrade finished");
                host::notice("noted\nrun oms-fake: rollback finished");
                host::notice("\x1b]52;c;cm0gLXJmIC8=\x07copied");
                Err(failed("\x1b[2K\rall good\x1b[0m\nrun oms-fake: upgrade finished".to_string()))
            }
            other => Err(failed(format!("unknown attack {other:?}"))),
        }
    }
    fn rollback(_ctx: Context) -> Result<(), Error> {
        Ok(())
    }
}

opshost_procedures::bindings::export_plugin!(Hostile);
