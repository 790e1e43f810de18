//! HttpHealth: is the product healthy on a node, by its health endpoint (OMS `GET /oms/health`
//! answers `{"data":{"healthy":true}}`, ODC `GET /api/v1/heartbeat/isHealthy` answers
//! `{"data":true}`), asked through [`super::http::HttpClient`] (HTTP or HTTPS, chunked bodies,
//! redirects).

pub use super::http::GetError;
use super::http::{HttpClient, TlsTrust};
use super::HealthProbe;
use crate::bindings::Error;
use crate::capabilities::errors::{failed, not_found};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct HttpHealth {
    /// Node name -> health URL (`http(s)://host:port/path`).
    pub urls: BTreeMap<String, String>,
    pub client: HttpClient,
}

/// Why the health probe cannot ask `url`, if it cannot: not `http://` or `https://`, no host, a
/// bad port.
pub fn check_url(url: &str) -> Result<(), String> {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err("is not an http:// or https:// URL".into());
    }
    let uri: hyper::Uri = url.parse().map_err(|e| format!("is not a URL ({e})"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    // The text after the host (an IPv6 host is in brackets): `Uri` leaves a port that is no u16 out.
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, rest)| rest);
    match after_host.rsplit_once(':').map(|(_, port)| port.parse::<u16>()) {
        Some(Ok(0) | Err(_)) => Err("has no valid port".into()),
        _ => Ok(()),
    }
}

/// Healthy when the body's `data` is `true` or `data.healthy` is `true`.
pub fn healthy_body(body: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => v["data"] == serde_json::Value::Bool(true) || v["data"]["healthy"] == serde_json::Value::Bool(true),
        Err(_) => false,
    }
}

/// One GET with the Mozilla roots for HTTPS (tests and scripts; the probe uses the site's trust).
pub async fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), GetError> {
    static CLIENT: std::sync::OnceLock<HttpClient> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| HttpClient::new(&TlsTrust::WebRoots).expect("the web roots make a TLS configuration"));
    client.get(url, timeout).await
}

#[async_trait]
impl HealthProbe for HttpHealth {
    async fn healthy(&self, node: &str) -> Result<bool, Error> {
        let url = self.urls.get(node).ok_or_else(|| not_found(format!("no health URL for node {node}: set health_urls in the product's console section")))?;
        match self.client.get(url, Duration::from_secs(10)).await {
            Ok((200, body)) => Ok(healthy_body(&body)),
            Ok(_) => Ok(false),
            // Not listening yet, or dropping the connection while it starts or dies, is "not
            // healthy": the caller keeps polling and watches the container's state.
            Err(GetError::NotAnswering(_)) => Ok(false),
            Err(e) => Err(failed(format!("health check {url}: {e}: fix health_urls in the product's console section"))),
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
        assert_eq!(check_url("http://10.0.0.5:8089/oms/health"), Ok(()));
        assert_eq!(check_url("http://oms-a/oms/health"), Ok(()));
        assert_eq!(check_url("https://10.0.0.5:8443/oms/health"), Ok(()));
        assert!(check_url("10.0.0.5:8089/oms/health").unwrap_err().contains("not an http:// or https:// URL"));
        assert!(check_url("ftp://10.0.0.5/oms/health").unwrap_err().contains("not an http:// or https:// URL"));
        assert!(check_url("http://10.0.0.5:80890/oms/health").unwrap_err().contains("no valid port"));
        assert!(check_url("http://:8089/oms/health").is_err());
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
        let client = HttpClient::new(&TlsTrust::WebRoots).unwrap();
        let probe = HttpHealth { urls: BTreeMap::from([("local".to_string(), format!("http://127.0.0.1:{port}/health"))]), client: client.clone() };
        assert!(!probe.healthy("local").await.unwrap());
        assert!(!probe.healthy("local").await.unwrap());
        server.await.unwrap();
        // Nothing listening any more: refused, also "not healthy".
        assert!(!probe.healthy("local").await.unwrap());
        // A URL that cannot work is an error naming the fix.
        let bad = HttpHealth { urls: BTreeMap::from([("local".to_string(), "ftp://x/health".to_string())]), client };
        let e = bad.healthy("local").await.unwrap_err();
        assert!(format!("{e:?}").contains("health_urls"), "{e:?}");
    }
}
