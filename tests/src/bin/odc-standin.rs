//! A stand-in for the ODC server container and the nginx in front of an HA ODC (no ODC or nginx
//! image can be had here), behaving like them where the upgrade procedures touch them:
//!
//! - `serve` (the ODC image's command): reads `DATABASE_HOST/PORT/USERNAME/PASSWORD/NAME`,
//!   `ODC_PROFILE_MODE`, `ODC_ADMIN_INITIAL_PASSWORD`, `ODC_SERVER_PORT` (8989); logs a start
//!   line; migrates its MetaDB schema on start as ODC does (flyway-style `migrate_schema_history`
//!   rows, tables whose shape changes between versions), under a MetaDB lock so that nodes
//!   starting together migrate once; **refuses to start** (logs an ERROR line, exits 1) when the
//!   schema is newer than itself, which is what happens when an old image is run on a MetaDB that
//!   a newer ODC migrated; then serves `GET /api/v1/heartbeat/isHealthy` -> `{"data":true}` and
//!   `GET /api/v1/info` -> `{"data":{"version":…}}`. Stops cleanly on SIGTERM (docker stop).
//! - `nginx` (the nginx image's command): reads `/etc/nginx/conf.d/default.conf` (`listen N;`,
//!   or `listen N ssl;` with `ssl_certificate` and `ssl_certificate_key`: it then answers HTTPS as
//!   the vendor's HA nginx does, and the `server host:port;` lines of its `upstream` block),
//!   replies in chunks (Transfer-Encoding: chunked), forwards every connection to an
//!   upstream ODC node picked by a hash of the client address (`ip_hash`), trying the next one
//!   when a node does not answer, as nginx's `proxy_next_upstream error` does.
//!
//! The mode is the first argument, else `STANDIN_MODE`; the version is `STANDIN_VERSION` (both
//! baked into the images by tests/images/build.sh). `STANDIN_FAIL_MIGRATE=<version>` makes the
//! migration to that version apply part of its changes and exit 1 (fault injection).

#[path = "shared/http.rs"]
mod http;

use mysql_async::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

type Result<T> = std::result::Result<T, String>;

fn version() -> String {
    std::env::var("STANDIN_VERSION").unwrap_or_else(|_| "0.0.0".into())
}

/// The release a version (or a migration version such as 4.3.0.2) belongs to.
fn release(v: &str) -> (u32, u32, u32) {
    let mut it = v.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn full(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn log(msg: &str) {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    println!("{ms} {msg}");
}

/// ODC's schema migrations: (version, description, statements). `{admin_password}` is bound as
/// the first parameter where a statement has a `?`.
const MIGRATIONS: &[(&str, &str, &[&str])] = &[
    (
        "4.2.0.1",
        "init schema",
        &[
            "CREATE TABLE iam_user (id BIGINT AUTO_INCREMENT PRIMARY KEY, account_name VARCHAR(128) NOT NULL UNIQUE, name VARCHAR(128) NOT NULL, password VARCHAR(256) NOT NULL, enabled TINYINT NOT NULL DEFAULT 1)",
            "INSERT INTO iam_user (account_name, name, password) VALUES ('admin', 'admin', SHA2(?, 256))",
            "CREATE TABLE connect_connection (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128) NOT NULL, host VARCHAR(256) NOT NULL, port INT NOT NULL, username VARCHAR(128), cluster_name VARCHAR(128), tenant_name VARCHAR(128), creator_id BIGINT NOT NULL)",
            "CREATE TABLE config_system_configuration (`key` VARCHAR(256) NOT NULL PRIMARY KEY, value VARCHAR(1024), description VARCHAR(512))",
            "INSERT INTO config_system_configuration VALUES ('odc.session.sql-execute.max-result-set-rows', '1000', 'rows returned per query'), ('odc.security.default.customDataSourceEncryptionKey', 'standin', NULL)",
        ],
    ),
    (
        "4.2.2.1",
        "connection ssl options",
        &["ALTER TABLE connect_connection ADD COLUMN ssl_enabled TINYINT NOT NULL DEFAULT 0", "INSERT INTO config_system_configuration VALUES ('odc.connect.ssl.enabled', 'false', 'SSL to data sources')"],
    ),
    (
        "4.3.0.1",
        "collaboration environments",
        &[
            "CREATE TABLE collaboration_environment (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, style VARCHAR(16) NOT NULL)",
            "INSERT INTO collaboration_environment VALUES (1, 'Default', 'GREEN'), (2, 'Dev', 'BLUE'), (3, 'Prod', 'RED')",
            "ALTER TABLE connect_connection ADD COLUMN environment_id BIGINT NOT NULL DEFAULT 1",
        ],
    ),
    (
        "4.3.0.2",
        "user login time, longer configuration values",
        &["ALTER TABLE iam_user ADD COLUMN last_login_time DATETIME NULL", "ALTER TABLE config_system_configuration MODIFY value TEXT"],
    ),
    (
        "4.3.1.1",
        "approval flows",
        &["CREATE TABLE flow_instance (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128), status VARCHAR(32), creator_id BIGINT)", "UPDATE config_system_configuration SET value = '2000' WHERE `key` = 'odc.session.sql-execute.max-result-set-rows'"],
    ),
];

fn env_required(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set: pass it with -e {name}=..."))
}

struct Odc {
    db: String,
    pool: mysql_async::Pool,
}

impl Odc {
    fn from_env() -> Result<Odc> {
        let port: u16 = env_required("DATABASE_PORT")?.parse().map_err(|_| "DATABASE_PORT is not a port number".to_string())?;
        let db = env_required("DATABASE_NAME")?;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(env_required("DATABASE_HOST")?)
            .tcp_port(port)
            .user(Some(env_required("DATABASE_USERNAME")?))
            .pass(std::env::var("DATABASE_PASSWORD").ok())
            .db_name(Some(db.clone()))
            .prefer_socket(false);
        Ok(Odc { db, pool: mysql_async::Pool::new(opts) })
    }

    /// The MetaDB, retried for a while (ODC waits for its database on start).
    async fn conn(&self) -> Result<mysql_async::Conn> {
        let start = Instant::now();
        loop {
            match self.pool.get_conn().await {
                Ok(c) => return Ok(c),
                Err(e) if start.elapsed() > Duration::from_secs(30) => return Err(format!("MetaDB {}: {e}", self.db)),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Applied migrations (successful ones), in order.
    async fn applied(c: &mut mysql_async::Conn) -> Result<Vec<String>> {
        let exists: Option<String> = c.query_first("SHOW TABLES LIKE 'migrate_schema_history'").await.map_err(|e| e.to_string())?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let mut v: Vec<String> = c.query("SELECT version FROM migrate_schema_history WHERE success = 1").await.map_err(|e| e.to_string())?;
        v.sort_by_key(|s| full(s));
        Ok(v)
    }

    /// Bring the schema to this version, or refuse when a newer ODC migrated it.
    async fn migrate(&self, mine: &str) -> Result<()> {
        let mut c = self.conn().await?;
        let locked: Option<i64> = c.query_first("SELECT GET_LOCK('odc_schema_migration', 120)").await.map_err(|e| e.to_string())?;
        if locked != Some(1) {
            return Err("could not take the schema migration lock in 120 s: another ODC node is migrating".into());
        }
        let r = self.migrate_locked(&mut c, mine).await;
        let _ = c.query_drop("SELECT RELEASE_LOCK('odc_schema_migration')").await;
        r
    }

    async fn migrate_locked(&self, c: &mut mysql_async::Conn, mine: &str) -> Result<()> {
        let applied = Self::applied(c).await?;
        if let Some(newest) = applied.iter().rfind(|v| release(v) > release(mine)) {
            return Err(format!(
                "REFUSING TO START: MetaDB {} has schema version {newest} (migrate_schema_history), newer than this ODC {mine}; an older ODC cannot run on a newer schema: restore the MetaDB backup taken before the upgrade, or run the newer ODC",
                self.db
            ));
        }
        c.query_drop(
            "CREATE TABLE IF NOT EXISTS migrate_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, installed_by VARCHAR(100) NOT NULL, execution_time INT NOT NULL, success TINYINT NOT NULL)",
        )
        .await
        .map_err(|e| e.to_string())?;
        let pending: Vec<_> = MIGRATIONS.iter().filter(|(v, _, _)| release(v) <= release(mine) && !applied.iter().any(|a| a == v)).collect();
        if pending.is_empty() {
            log(&format!("MetaDB {} schema is up to date (version {})", self.db, applied.last().map(String::as_str).unwrap_or("none")));
            return Ok(());
        }
        let from = applied.last().cloned().unwrap_or_else(|| "empty".into());
        log(&format!("Migrating schema of MetaDB {} from {from} to {}", self.db, pending.last().unwrap().0));
        let password = std::env::var("ODC_ADMIN_INITIAL_PASSWORD").unwrap_or_default();
        if applied.is_empty() && password.is_empty() {
            return Err("ODC_ADMIN_INITIAL_PASSWORD is not set: a new ODC needs the admin's initial password".into());
        }
        let fail_at = std::env::var("STANDIN_FAIL_MIGRATE").ok();
        for (v, description, statements) in pending {
            let started = Instant::now();
            for (i, s) in statements.iter().enumerate() {
                if s.contains('?') { c.exec_drop(*s, (password.as_str(),)).await } else { c.query_drop(*s).await }
                    .map_err(|e| format!("migration {v} ({description}), statement {}: {e}", i + 1))?;
                if i == 0 && fail_at.as_deref().is_some_and(|f| release(f) == release(v)) {
                    return Err(format!("migration {v} ({description}) failed after its first statement (injected by STANDIN_FAIL_MIGRATE)"));
                }
            }
            let rank: Option<i64> =
                c.query_first("SELECT COALESCE(MAX(installed_rank), 0) + 1 FROM migrate_schema_history").await.map_err(|e| e.to_string())?;
            c.exec_drop(
                "INSERT INTO migrate_schema_history VALUES (?, ?, ?, 'SQL', ?, 'odc', ?, 1)",
                (
                    rank.unwrap_or(1),
                    v,
                    description,
                    format!("V_{}__{}.sql", v.replace('.', "_"), description.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
                    started.elapsed().as_millis() as i64,
                ),
            )
            .await
            .map_err(|e| e.to_string())?;
            log(&format!("Migrated to {v}: {description}"));
        }
        Ok(())
    }
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

/// One JSON reply in two chunks (Transfer-Encoding: chunked, as ODC's Spring Boot sends it).
async fn respond<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, status: &str, body: &str) {
    let (a, b) = body.split_at(body.len() / 2);
    let _ = s
        .write_all(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
            .as_bytes(),
        )
        .await;
    let _ = s.shutdown().await;
}

async fn serve() -> Result<()> {
    // PID 1 ignores SIGTERM unless it handles it: handle it from the start.
    let mut term = Stop::new()?;
    let mine = version();
    let port: u16 = std::env::var("ODC_SERVER_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8989);
    let profile = std::env::var("ODC_PROFILE_MODE").unwrap_or_else(|_| "alipay".into());
    let started = Instant::now();
    log(&format!("Starting OdcServer {mine} (profile {profile}, port {port})"));
    let odc = Odc::from_env()?;
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| format!("port {port}: {e}"))?;
    let r = ready.clone();
    let (v, p) = (mine.clone(), profile.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let ok = r.load(Ordering::SeqCst);
            let info = format!("{{\"successful\":true,\"data\":{{\"version\":\"{v}\",\"profile\":\"{p}\",\"port\":{port}}}}}");
            tokio::spawn(async move {
                let req = http::read_request(&mut s).await;
                if req.starts_with("GET /api/v1/heartbeat/isHealthy") {
                    respond(&mut s, "200 OK", &format!("{{\"successful\":true,\"data\":{ok}}}")).await;
                } else if req.starts_with("GET /api/v1/info") && ok {
                    respond(&mut s, "200 OK", &info).await;
                } else {
                    respond(&mut s, "404 Not Found", "{\"successful\":false}").await;
                }
            });
        }
    });
    tokio::select! {
        r = odc.migrate(&mine) => r?,
        _ = term.wait() => return Ok(()),
    }
    ready.store(true, Ordering::SeqCst);
    log(&format!("OdcServer {mine} started in {} ms, listening on {port}", started.elapsed().as_millis()));
    term.wait().await;
    log("OdcServer stopped");
    Ok(())
}

/// What the stand-in nginx reads of its config.
#[derive(Debug)]
struct NginxConfig {
    listen: u16,
    upstreams: Vec<String>,
    /// `listen N ssl;` with `ssl_certificate` and `ssl_certificate_key`: (certificate, key) paths.
    tls: Option<(String, String)>,
}

/// `listen N [ssl];`, `ssl_certificate[_key] PATH;` and the `server host:port …;` lines of the
/// upstream block of an nginx config.
fn nginx_config(text: &str) -> Result<NginxConfig> {
    let (mut listen, mut ssl, mut cert, mut key) = (None, false, None, None);
    let mut upstreams = Vec::new();
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
        let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
        match words.as_slice() {
            ["listen", port, rest @ ..] => {
                listen = port.rsplit(':').next().and_then(|p| p.parse().ok());
                ssl = rest.contains(&"ssl");
            }
            ["ssl_certificate", path] => cert = Some(path.to_string()),
            ["ssl_certificate_key", path] => key = Some(path.to_string()),
            ["server", addr, ..] if addr.contains(':') => upstreams.push(addr.to_string()),
            _ => {}
        }
    }
    let listen = listen.ok_or("the nginx config has no `listen PORT;` line")?;
    if upstreams.is_empty() {
        return Err("the nginx config's upstream block has no `server HOST:PORT;` line".into());
    }
    let tls = match (ssl, cert, key) {
        (false, _, _) => None,
        (true, Some(c), Some(k)) => Some((c, k)),
        _ => return Err("`listen … ssl` needs ssl_certificate and ssl_certificate_key".into()),
    };
    Ok(NginxConfig { listen, upstreams, tls })
}

fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(cert).map_err(|e| format!("{cert}: {e}"))?.collect::<std::result::Result<_, _>>().map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{cert}: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Forward one client connection to an upstream picked by the client's address (`ip_hash`),
/// trying the next when one does not answer.
async fn proxy<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut client: S, peer: &std::net::SocketAddr, ups: &[String]) {
    let ip = peer.ip().to_string();
    let first = ip.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % ups.len();
    for i in 0..ups.len() {
        let up = &ups[(first + i) % ups.len()];
        if let Ok(Ok(mut server)) = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(up.as_str())).await {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            return;
        }
    }
    respond(&mut client, "502 Bad Gateway", "{\"successful\":false,\"error\":\"no upstream answers\"}").await;
}

async fn nginx() -> Result<()> {
    let mut term = Stop::new()?;
    let path = std::env::var("NGINX_CONF").unwrap_or_else(|_| "/etc/nginx/conf.d/default.conf".into());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e} (is the nginx config mounted?)"))?;
    let NginxConfig { listen: port, upstreams, tls } = nginx_config(&text).map_err(|e| format!("{path}: {e}"))?;
    let acceptor = match &tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| format!("port {port}: {e}"))?;
    log(&format!("nginx/{} listening on {port}{}, upstream odc (ip_hash): {}", version(), if tls.is_some() { " ssl" } else { "" }, upstreams.join(", ")));
    let upstreams = Arc::new(upstreams);
    let accept = async {
        while let Ok((client, peer)) = listener.accept().await {
            let ups = upstreams.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(client).await {
                            proxy(s, &peer, &ups).await;
                        }
                    }
                    None => proxy(client, &peer, &ups).await,
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = term.wait() => {}
    }
    log("nginx stopped");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = std::env::args().nth(1).or_else(|| std::env::var("STANDIN_MODE").ok()).unwrap_or_default();
    let r = match mode.as_str() {
        "serve" => serve().await,
        "nginx" => nginx().await,
        _ => Err("usage: odc-standin serve|nginx (or STANDIN_MODE)".into()),
    };
    if let Err(e) = r {
        log(&format!("ERROR {e}"));
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_of_an_ha_odc() {
        let conf = "upstream odc {\n  ip_hash;\n  server 10.0.0.1:8989 max_fails=3;\n  server 10.0.0.2:8989;\n}\nserver {\n  listen 80;\n  location / { proxy_pass http://odc; }\n}\n";
        let c = nginx_config(conf).unwrap();
        assert_eq!((c.listen, c.upstreams, c.tls), (80, vec!["10.0.0.1:8989".to_string(), "10.0.0.2:8989".to_string()], None));
        assert!(nginx_config("listen 80;").is_err());
        let tls = "upstream odc {\n  server 10.0.0.1:8989;\n}\nserver {\n  listen 443 ssl;\n  ssl_certificate /etc/pki/nginx/server.crt;\n  ssl_certificate_key /etc/pki/nginx/server.key;\n}\n";
        let c = nginx_config(tls).unwrap();
        assert_eq!((c.listen, c.tls), (443, Some(("/etc/pki/nginx/server.crt".to_string(), "/etc/pki/nginx/server.key".to_string()))));
        assert!(nginx_config("upstream odc {\n  server 10.0.0.1:8989;\n}\nlisten 443 ssl;").unwrap_err().contains("ssl_certificate"));
    }

    #[test]
    fn migration_releases() {
        assert!(release("4.3.0.2") > release("4.2.2"));
        assert_eq!(release("4.3.0.2"), release("4.3.0"));
        assert!(full("4.2.10.1") > full("4.2.2.1"));
    }
}
