//! The health probe's HTTP client against local servers: HTTPS with the site's CA, refused
//! without it (naming the fix), accepted with the visible insecure flag; chunked bodies; redirects
//! followed, and a redirect loop refused.

use opshost::capabilities::console::http::{GetError, HttpClient, TlsTrust};
use opshost::capabilities::console::real::healthy_body;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls")
}

/// What the test server answers for a path.
fn answer(path: &str) -> String {
    match path {
        // OMS's health body, in three chunks, as a Spring Boot server sends it.
        "/oms/health" => {
            let body = r#"{"data":{"healthy":true}}"#;
            let (a, rest) = body.split_at(5);
            let (b, c) = rest.split_at(9);
            let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{}{}{}0\r\n\r\n", chunk(a), chunk(b), chunk(c))
        }
        "/old/health" => "HTTP/1.1 302 Found\r\nLocation: /oms/health\r\nContent-Length: 0\r\n\r\n".to_string(),
        "/relative/start" => "HTTP/1.1 301 Moved Permanently\r\nLocation: ../oms/health\r\nContent-Length: 0\r\n\r\n".to_string(),
        "/loop" => "HTTP/1.1 307 Temporary Redirect\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".to_string(),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
    }
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let _ = s.write_all(answer(&path).as_bytes()).await;
    let _ = s.shutdown().await;
}

/// A server on a free port: plain HTTP, or HTTPS with the test CA's localhost certificate.
async fn server(tls: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls.then(|| {
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(tls_dir().join("server.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(tls_dir().join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(tcp).await {
                            serve_one(s).await
                        }
                    }
                    None => serve_one(tcp).await,
                }
            });
        }
    });
    port
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn https_with_the_sites_ca_reads_a_chunked_health_body() {
    let port = server(true).await;
    let client = HttpClient::new(&TlsTrust::CaFile(tls_dir().join("ca.pem"))).unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let (status, body) = client.get(&format!("https://{host}:{port}/oms/health"), T).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"data":{"healthy":true}}"#);
        assert!(healthy_body(&body));
    }
}

#[tokio::test]
async fn a_certificate_the_probe_cannot_verify_is_the_sites_to_fix() {
    let port = server(true).await;
    let client = HttpClient::new(&TlsTrust::WebRoots).unwrap();
    match client.get(&format!("https://localhost:{port}/oms/health"), T).await {
        Err(GetError::Invalid(m)) => assert!(m.contains("health_ca_file") && m.contains("health_insecure_tls"), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // The flag the plan warns about accepts it.
    let insecure = HttpClient::new(&TlsTrust::Insecure).unwrap();
    let (status, body) = insecure.get(&format!("https://localhost:{port}/oms/health"), T).await.unwrap();
    assert_eq!((status, healthy_body(&body)), (200, true));
}

#[tokio::test]
async fn redirects_are_followed_and_a_loop_is_refused() {
    let port = server(false).await;
    let client = HttpClient::new(&TlsTrust::WebRoots).unwrap();
    for start in ["/old/health", "/relative/start"] {
        let (status, body) = client.get(&format!("http://127.0.0.1:{port}{start}"), T).await.unwrap();
        assert_eq!((status, healthy_body(&body)), (200, true), "{start}: {body}");
    }
    match client.get(&format!("http://127.0.0.1:{port}/loop"), T).await {
        Err(GetError::Invalid(m)) => assert!(m.contains("more than 5 redirects"), "{m}"),
        other => panic!("expected a redirect loop to be refused, got {other:?}"),
    }
    // A port nothing listens on is "not answering" (the product is starting), not an error.
    drop(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(matches!(client.get(&format!("http://127.0.0.1:{closed}/oms/health"), T).await, Err(GetError::NotAnswering(_))));
}

#[test]
fn a_ca_file_that_is_no_certificate_is_refused_naming_it() {
    let e = HttpClient::new(&TlsTrust::CaFile(tls_dir().join("README.md"))).err().unwrap();
    assert!(e.contains("holds no certificate") && e.contains("README.md"), "{e}");
    let e = HttpClient::new(&TlsTrust::CaFile(tls_dir().join("missing.pem"))).err().unwrap();
    assert!(e.contains("missing.pem") && e.contains("No such file"), "{e}");
}
