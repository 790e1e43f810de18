//! A hostile plugin for the sandbox tests (host/tests/sandbox.rs). Parameter `attack` picks what
//! `upgrade` tries; each attack must be contained by the host with a clear error.

use opshost_procedures::bindings::opshost::plugin::{docker, host, sql};
use opshost_procedures::ctx::{failed, Params};
use opshost_procedures::{Context, Error, Manifest, Need, ParameterSpec, Plan};

struct Hostile;

fn need(capability: &str, target: &str) -> Need {
    Need { capability: capability.into(), target: target.into(), why: "sandbox test".into() }
}

impl opshost_procedures::bindings::Guest for Hostile {
    fn manifest() -> Manifest {
        Manifest {
            name: "hostile".into(),
            product: "oms".into(),
            sources: vec!["4.1.1".into()],
            target: "4.2.0".into(),
            needs: vec![need("docker", "oms_*"), need("sql", "metadb/rm_*"), need("console", "servers")],
            parameters: vec![ParameterSpec { name: "attack".into(), description: "what to try".into(), default: None }],
        }
    }
    fn plan(_ctx: Context) -> Result<Plan, Error> {
        Ok(Plan { findings: vec![], steps: vec![], rollback: vec![] })
    }
    fn upgrade(ctx: Context) -> Result<(), Error> {
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
            "huge-result" => sql::query("metadb", "rm_411", "SELECT zeroblob(20000000)", &[]).map(|_| ()),
            "huge-error" => Err(failed("E".repeat(8 << 20))),
            "huge-log" => {
                host::log(host::Level::Info, &"L".repeat(8 << 20));
                Err(failed("logged".to_string()))
            }
            "trap-midway" => {
                docker::stop("local", "oms_411", 1)?;
                panic!("hostile plugin crashed after stopping oms_411");
            }
            other => Err(failed(format!("unknown attack {other:?}"))),
        }
    }
    fn rollback(_ctx: Context) -> Result<(), Error> {
        Ok(())
    }
}

opshost_procedures::bindings::export_plugin!(Hostile);
