//! HttpHealth: is the product healthy on a node, by its health endpoint (OMS `GET /oms/health`
//! answers `{"data":{"healthy":true}}`, ODC `GET /api/v1/heartbeat/isHealthy` answers
//! `{"data":true}`). A minimal HTTP/1.1 client over tokio: one GET, no redirects, no TLS.

use super::HealthProbe;
use crate::bindings::Error;
use crate::capabilities::{failed, not_found};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct HttpHealth {
    /// Node name -> health URL (`http://host:port/path`).
    pub urls: BTreeMap<String, String>,
}

fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let hostport = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") };
    Some((hostport, path))
}

/// Healthy when the body's `data` is `true` or `data.healthy` is `true`.
pub fn healthy_body(body: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => v["data"] == serde_json::Value::Bool(true) || v["data"]["healthy"] == serde_json::Value::Bool(true),
        Err(_) => false,
    }
}

/// Why a GET got no HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub enum GetError {
    /// Nothing answered, or the connection broke before an HTTP response came: refused, reset,
    /// closed early, timed out. A product that is starting or stopping does this; ask again.
    NotAnswering(String),
    /// The request cannot work as configured (not an http:// URL, unknown host name).
    Invalid(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::NotAnswering(m) | GetError::Invalid(m) => f.write_str(m),
        }
    }
}

/// Connection-level failures that a starting or stopping server causes.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe | UnexpectedEof | TimedOut | AddrNotAvailable | Interrupted
    )
}

pub async fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), GetError> {
    let (hostport, path) = split_url(url).ok_or_else(|| GetError::Invalid(format!("{url} is not an http:// URL")))?;
    let io = |e: std::io::Error| if transient(&e) { GetError::NotAnswering(e.to_string()) } else { GetError::Invalid(e.to_string()) };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&hostport).await.map_err(io)?;
        let host = hostport.split(':').next().unwrap_or("");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n\r\n");
        // Once connected, any failure is the server going away mid-answer.
        let broken = |e: std::io::Error| GetError::NotAnswering(e.to_string());
        s.write_all(request.as_bytes()).await.map_err(broken)?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await.map_err(broken)?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| GetError::NotAnswering(if buf.is_empty() { "closed without an answer".into() } else { "not an HTTP response".into() }))?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok::<_, GetError>((status, body))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| GetError::NotAnswering(format!("no answer within {} s", timeout.as_secs())))?
}

#[async_trait]
impl HealthProbe for HttpHealth {
    async fn healthy(&self, node: &str) -> Result<bool, Error> {
        let url = self.urls.get(node).ok_or_else(|| not_found(format!("no health URL for node {node}: set health_url in the product's console section")))?;
        match http_get(url, Duration::from_secs(10)).await {
            Ok((200, body)) => Ok(healthy_body(&body)),
            Ok(_) => Ok(false),
            // Not listening yet, or dropping the connection while it starts or dies, is "not
            // healthy": the caller keeps polling and watches the container's state.
            Err(GetError::NotAnswering(_)) => Ok(false),
            Err(e) => Err(failed(format!("health check {url}: {e}: fix health_url in the product's console section"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_bodies_of_oms_and_odc() {
        assert!(healthy_body(r#"{"data":{"healthy":true}}"#));
        assert!(healthy_body(r#"{"data":true}"#));
        assert!(!healthy_body(r#"{"data":{"healthy":false}}"#));
        assert!(!healthy_body(r#"{"data":"true"}"#));
        assert!(!healthy_body("<html>"));
        assert_eq!(split_url("http://10.0.0.5:8089/oms/health"), Some(("10.0.0.5:8089".into(), "/oms/health".into())));
    }

    /// A server that accepts and then drops the connection (a product dying mid-start) is "not
    /// healthy", so the caller keeps watching the container instead of failing the run.
    #[tokio::test]
    async fn a_dropped_connection_is_not_healthy_rather_than_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                // Linger 0: close with RST, as a killed process's socket does.
                s.set_zero_linger().unwrap();
                drop(s);
            }
        });
        let probe = HttpHealth { urls: BTreeMap::from([("local".to_string(), format!("http://127.0.0.1:{port}/health"))]) };
        assert!(!probe.healthy("local").await.unwrap());
        assert!(!probe.healthy("local").await.unwrap());
        server.await.unwrap();
        // Nothing listening any more: refused, also "not healthy".
        assert!(!probe.healthy("local").await.unwrap());
        // A URL that cannot work is an error naming the fix.
        let bad = HttpHealth { urls: BTreeMap::from([("local".to_string(), "https://x/health".to_string())]) };
        let e = bad.healthy("local").await.unwrap_err();
        assert!(format!("{e:?}").contains("health_url"), "{e:?}");
    }
}
