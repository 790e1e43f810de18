//! A stand-in for the OMS CE container (no OMS image can be had here), behaving like OMS where
//! the upgrade procedures touch it:
//!
//! - `serve` (the image's command): reads the mounted config.yaml, refuses to come up unless the
//!   mounted store directory belongs to this deployment (a container started with other mounts
//!   stays unhealthy), waits while the MetaDB schema is older than its version (until
//!   docker_init.sh has run: it signals the server when done, SIGUSR1, as the vendor's script
//!   starts OMS's services itself; without the signal the schema is looked at every 0.5 s) and
//!   refuses to start on a newer one, stays offline while the store
//!   holds `standin-hold` (a test's fault that is fixed later), then marks its server online,
//!   logs `OMS service start successfully`, writes heartbeat rows continuously and serves
//!   `GET /oms/health` (in chunks; over HTTPS when the vendor's certificate files are mounted at
//!   /etc/pki/nginx/oms_server.crt|key). On SIGTERM (docker stop) it marks its server offline.
//! - `init` (/root/docker_init.sh): applies this version's schema changes to rm, cm and cm_hb (in
//!   a region after the first, only its own heartbeat database's);
//!   refuses without IS_UPGRADE=true from 3.3.1 on, as the vendor's does. `STANDIN_FAIL_INIT=<version>`
//!   in the environment makes it change part of the schema and exit 1 (fault injection).

#[path = "shared/http.rs"]
mod http;

use mysql_async::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const CONFIG: &str = "/home/admin/conf/config.yaml";
const STORE_MARKER: &str = "/home/ds/store/standin-identity";
/// While this file exists, a starting stand-in stays offline (tests of a wait that times out).
const HOLD: &str = "/home/ds/store/standin-hold";
const INIT_LOG: &str = "/home/admin/logs/docker_init.log";

type Result<T> = std::result::Result<T, String>;

fn version() -> String {
    std::env::var("STANDIN_VERSION").unwrap_or_else(|_| "0.0.0".into())
}

fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The flat `key: value` lines of OMS's config.yaml.
fn config() -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(CONFIG).map_err(|e| format!("{CONFIG}: {e} (is config.yaml mounted?)"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('\'').trim_matches('"').to_string()))
        .filter(|(k, _)| !k.starts_with('#'))
        .collect())
}

struct Oms {
    cfg: HashMap<String, String>,
    pool: mysql_async::Pool,
}

impl Oms {
    fn new() -> Result<Oms> {
        let cfg = config()?;
        let get = |k: &str| cfg.get(k).cloned().ok_or_else(|| format!("config.yaml has no {k}"));
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(get("oms_meta_host")?)
            .tcp_port(get("oms_meta_port")?.parse().map_err(|_| "oms_meta_port is not a number")?)
            .user(Some(get("oms_meta_user")?))
            .pass(cfg.get("oms_meta_password").cloned())
            .prefer_socket(false);
        Ok(Oms { pool: mysql_async::Pool::new(opts), cfg })
    }
    fn db(&self, key: &str) -> String {
        self.cfg.get(key).cloned().unwrap_or_default()
    }
    fn ip(&self) -> String {
        std::env::var("OMS_HOST_IP").unwrap_or_else(|_| "127.0.0.1".into())
    }
    async fn conn(&self) -> Result<mysql_async::Conn> {
        self.pool.get_conn().await.map_err(|e| format!("MetaDB: {e}"))
    }
    async fn schema_version(&self) -> Result<String> {
        let mut c = self.conn().await?;
        let v: Option<String> = c.query_first(format!("SELECT version FROM `{}`.oms_version", self.db("drc_rm_db"))).await.map_err(|e| e.to_string())?;
        v.ok_or_else(|| "oms_version is empty".into())
    }
    async fn set_status(&self, status: &str) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop(format!("UPDATE `{}`.host SET host_status = ? WHERE ip = ?", self.db("drc_cm_db")), (status, self.ip())).await.map_err(|e| e.to_string())
    }
}

fn log(msg: &str) {
    println!("{msg}");
}

async fn serve() -> Result<()> {
    // PID 1 ignores SIGTERM unless it handles it: handle it from the start, as OMS does.
    let mut term = Stop::new()?;
    // docker_init.sh's "done": installed first, as SIGUSR1 unhandled would end the server.
    let mut init_done = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let oms = Arc::new(Oms::new()?);
    let mine = version();
    let healthy = Arc::new(AtomicBool::new(false));
    // STANDIN_HTTP_PORT (stand-in only): nodes that share one config.yaml on one test machine
    // (--net host) cannot all listen on its nginx_server_port, as OMS on separate servers would.
    let port: u16 = std::env::var("STANDIN_HTTP_PORT").ok().or_else(|| oms.cfg.get("nginx_server_port").cloned()).and_then(|p| p.parse().ok()).unwrap_or(8089);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| format!("port {port}: {e}"))?;
    let tls = tls_acceptor()?;
    log(&format!("health on {} port {port}", if tls.is_some() { "HTTPS" } else { "HTTP" }));
    let h = healthy.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let ok = h.load(Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(s).await {
                            answer(s, ok).await;
                        }
                    }
                    None => answer(s, ok).await,
                }
            });
        }
    });
    let identity: Option<String> = {
        let mut c = oms.conn().await?;
        c.query_first(format!("SELECT identity FROM `{}`.standin_identity", oms.db("drc_rm_db"))).await.map_err(|e| e.to_string())?
    };
    let marker = std::fs::read_to_string(STORE_MARKER).unwrap_or_default();
    if identity.as_deref() != Some(marker.trim()) {
        log("ERROR store directory /home/ds/store does not belong to this deployment (mounts differ from the old container?): staying unhealthy");
        term.wait().await;
        return Ok(());
    }
    loop {
        let schema = oms.schema_version().await?;
        if schema == mine {
            break;
        }
        if parse_version(&schema) > parse_version(&mine) {
            log(&format!("ERROR MetaDB schema is {schema}, newer than this OMS {mine}: refusing to start (restore the MetaDB backup first)"));
            term.wait().await;
            return Ok(());
        }
        log(&format!("waiting for docker_init.sh: MetaDB schema {schema}, OMS {mine}"));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = init_done.recv() => {}
            _ = term.wait() => return Ok(()),
        }
    }
    // A test's stand-in for whatever keeps a new OMS from coming up (a port in use, a slow
    // disk): while the store holds this file, it stays offline.
    let mut held = false;
    while std::path::Path::new(HOLD).exists() {
        if !held {
            log(&format!("held: {HOLD} exists, staying offline"));
            held = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = term.wait() => return Ok(()),
        }
    }
    oms.set_status("ONLINE").await?;
    healthy.store(true, Ordering::SeqCst);
    log("OMS service start successfully");
    let beat_ms: u64 = oms.cfg.get("standin_heartbeat_ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
    let o = oms.clone();
    tokio::spawn(async move {
        loop {
            if let Ok(mut c) = o.conn().await {
                let _ = c
                    .exec_drop(
                        format!("INSERT INTO `{}`.heatbeat_sequence (node, gmt_created) VALUES (?, UNIX_TIMESTAMP() * 1000)", o.db("drc_cm_heartbeat_db")),
                        (o.ip(),),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(beat_ms)).await;
        }
    });
    term.wait().await;
    let _ = oms.set_status("OFFLINE").await;
    log("OMS service stopped");
    Ok(())
}

/// Where the vendor's `docker run` mounts OMS's HTTPS certificate and key: with both present,
/// the stand-in answers HTTPS, as OMS's nginx does.
const TLS_CERT: &str = "/etc/pki/nginx/oms_server.crt";
const TLS_KEY: &str = "/etc/pki/nginx/oms_server.key";

fn tls_acceptor() -> Result<Option<tokio_rustls::TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    if !std::path::Path::new(TLS_CERT).exists() || !std::path::Path::new(TLS_KEY).exists() {
        return Ok(None);
    }
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(TLS_CERT)
        .map_err(|e| format!("{TLS_CERT}: {e}"))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{TLS_CERT}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(TLS_KEY).map_err(|e| format!("{TLS_KEY}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{TLS_CERT}: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// One HTTP/1.1 exchange: `GET /oms/health` answers OMS's JSON in chunks (Transfer-Encoding:
/// chunked, as a Spring Boot service sends it), anything else 404.
async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S, ok: bool) {
    let req = http::read_request(&mut s).await;
    let (status, body) = if req.starts_with("GET /oms/health") {
        ("200 OK", format!("{{\"success\":true,\"data\":{{\"healthy\":{ok}}}}}"))
    } else {
        ("404 Not Found", "{}".to_string())
    };
    let (a, b) = body.split_at(body.len() / 2);
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// SIGTERM (docker stop) or SIGINT.
struct Stop(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

impl Stop {
    fn new() -> Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Stop(signal(SignalKind::terminate()).map_err(|e| e.to_string())?, signal(SignalKind::interrupt()).map_err(|e| e.to_string())?))
    }
    async fn wait(&mut self) {
        tokio::select! { _ = self.0.recv() => {}, _ = self.1.recv() => {} }
    }
}

async fn init() -> Result<()> {
    let oms = Oms::new()?;
    let mine = version();
    let schema = oms.schema_version().await?;
    let mut logf = std::fs::OpenOptions::new().create(true).append(true).open(INIT_LOG).ok();
    let mut note = |m: &str| {
        println!("{m}");
        if let Some(f) = logf.as_mut() {
            use std::io::Write;
            let _ = writeln!(f, "{m}");
        }
    };
    let (rm, cm, hb) = (oms.db("drc_rm_db"), oms.db("drc_cm_db"), oms.db("drc_cm_heartbeat_db"));
    let col = format!("v{}", mine.replace('.', "_"));
    if schema == mine {
        // Another region's docker_init.sh upgraded rm and cm: this region's heartbeat database
        // (its config.yaml names it) still needs its change, as the vendor runs the script once
        // per region.
        let mut c = oms.conn().await?;
        let has: Option<u64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'heatbeat_sequence' AND COLUMN_NAME = ?",
                (&hb, format!("{col}_region")),
            )
            .await
            .map_err(|e| e.to_string())?;
        if has == Some(0) {
            note(&format!("upgrading heartbeat database {hb} of this region to {mine}"));
            c.query_drop(format!("ALTER TABLE `{hb}`.heatbeat_sequence ADD COLUMN {col}_region VARCHAR(64) NULL")).await.map_err(|e| e.to_string())?;
        }
        note(&format!("MetaDB already at {mine}"));
        return Ok(());
    }
    if parse_version(&schema) > parse_version(&mine) {
        return Err(format!("MetaDB schema {schema} is newer than {mine}"));
    }
    if parse_version(&mine) >= (3, 3, 1) && std::env::var("IS_UPGRADE").as_deref() != Ok("true") {
        return Err(format!("upgrading the MetaDB from {schema} to {mine} needs IS_UPGRADE=true"));
    }
    let mut c = oms.conn().await?;
    note(&format!("upgrading MetaDB {rm}, {cm}, {hb} from {schema} to {mine}"));
    c.query_drop(format!("ALTER TABLE `{cm}`.host ADD COLUMN {col}_cpu_cores INT DEFAULT 8")).await.map_err(|e| e.to_string())?;
    if std::env::var("STANDIN_FAIL_INIT").as_deref() == Ok(mine.as_str()) {
        return Err(format!("ERROR 1060 (42S21) at line 88: Duplicate column name '{col}_cpu_cores' (injected by STANDIN_FAIL_INIT)"));
    }
    c.query_drop(format!("ALTER TABLE `{hb}`.heatbeat_sequence ADD COLUMN {col}_region VARCHAR(64) NULL")).await.map_err(|e| e.to_string())?;
    c.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{rm}`.oms_upgrade_history (id INT AUTO_INCREMENT PRIMARY KEY, from_version VARCHAR(32), to_version VARCHAR(32))"
    ))
    .await
    .map_err(|e| e.to_string())?;
    c.exec_drop(format!("INSERT INTO `{rm}`.oms_upgrade_history (from_version, to_version) VALUES (?, ?)"), (&schema, &mine))
        .await
        .map_err(|e| e.to_string())?;
    // A release's schema step may touch its system parameters too: this one notes itself in
    // ha.config, which the upgrade's "set enable to true" must then keep (the vendor edits the
    // value as it stands after this script).
    let has_params: Option<u64> = c
        .exec_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'oms_normal_config'", (&rm,))
        .await
        .map_err(|e| e.to_string())?;
    if has_params == Some(1) {
        c.exec_drop(
            format!("UPDATE `{rm}`.oms_normal_config SET cfg_value = JSON_SET(cfg_value, '$.standinSchemaVersion', ?) WHERE cfg_name = 'ha.config' AND JSON_VALID(cfg_value)"),
            (&mine,),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    c.exec_drop(format!("UPDATE `{rm}`.oms_version SET version = ?"), (&mine,)).await.map_err(|e| e.to_string())?;
    note(&format!("MetaDB upgraded to {mine}"));
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let r = match cmd.as_str() {
        "serve" => serve().await,
        "init" => init().await,
        _ => Err("usage: oms-standin serve|init".into()),
    };
    if let Err(e) = r {
        eprintln!("{e}");
        if cmd == "init" {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(INIT_LOG) {
                use std::io::Write;
                let _ = writeln!(f, "{e}");
            }
        }
        std::process::exit(1);
    }
}
