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

pub async fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let (hostport, path) = split_url(url).ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&hostport).await.map_err(|e| e.to_string())?;
        let host = hostport.split(':').next().unwrap_or("");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("not an HTTP response")?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
}

#[async_trait]
impl HealthProbe for HttpHealth {
    async fn healthy(&self, node: &str) -> Result<bool, Error> {
        let url = self.urls.get(node).ok_or_else(|| not_found(format!("no health URL for node {node}: set health_url in the product's console section")))?;
        match http_get(url, Duration::from_secs(10)).await {
            Ok((200, body)) => Ok(healthy_body(&body)),
            Ok(_) => Ok(false),
            // Not listening (yet) is "not healthy", not an error: the product may still be starting.
            Err(e) if e.contains("refused") || e.contains("no answer") => Ok(false),
            Err(e) => Err(failed(format!("health check {url}: {e}"))),
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
}
