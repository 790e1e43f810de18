//! The health probe's HTTP client: one GET through hyper (HTTP/1.1), over TCP or TLS (rustls:
//! the site's CA file, else the Mozilla roots; or, when the site says so, no verification at
//! all), with chunked bodies decoded and redirects followed (at most [`MAX_REDIRECTS`]). Bodies
//! are read up to 1 MiB. Failures are sorted into "not answering" (ask again) and "invalid"
//! (the configuration is wrong: fix it), because the caller polls a product that is starting.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed before the probe gives up (a loop is a configuration error).
pub const MAX_REDIRECTS: usize = 5;
const MAX_BODY: usize = 1 << 20;

/// Why a GET got no HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub enum GetError {
    /// Nothing answered, or the connection broke before an HTTP response came: refused, reset,
    /// closed early, timed out. A product that is starting or stopping does this; ask again.
    NotAnswering(String),
    /// The request cannot work as configured (a bad URL, an unknown host, a certificate that does
    /// not verify, a redirect loop).
    Invalid(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::NotAnswering(m) | GetError::Invalid(m) => f.write_str(m),
        }
    }
}

/// How the probe trusts an HTTPS server's certificate.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum TlsTrust {
    /// The Mozilla root certificates (a product behind a public certificate).
    #[default]
    WebRoots,
    /// The site's own CA (PEM), as OMS's documented HTTPS setup uses.
    CaFile(PathBuf),
    /// No verification (`health_insecure_tls = true`): the plan says so on every run.
    Insecure,
}

/// An HTTP(S) client for health URLs.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
}

impl HttpClient {
    pub fn new(trust: &TlsTrust) -> Result<HttpClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
        let config = match trust {
            TlsTrust::WebRoots => {
                let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            TlsTrust::CaFile(path) => builder.with_root_certificates(read_ca_file(path)?).with_no_client_auth(),
            TlsTrust::Insecure => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider))).with_no_client_auth(),
        };
        Ok(HttpClient { tls: Arc::new(config) })
    }

    /// GET `url`: the final status and body, after redirects.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), GetError> {
        let fut = async {
            let mut uri: Uri = url.parse().map_err(|e| GetError::Invalid(format!("{url} is not a URL: {e}")))?;
            for _ in 0..=MAX_REDIRECTS {
                let (status, location, body) = self.get_once(&uri).await?;
                match location {
                    Some(next) if (300..400).contains(&status) => uri = follow(&uri, &next)?,
                    _ => return Ok((status, body)),
                }
            }
            Err(GetError::Invalid(format!("{url}: more than {MAX_REDIRECTS} redirects")))
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| GetError::NotAnswering(format!("no answer within {} s", timeout.as_secs())))?
    }

    async fn get_once(&self, uri: &Uri) -> Result<(u16, Option<String>, String), GetError> {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(GetError::Invalid(format!("{uri} is not an http:// or https:// URL"))),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| GetError::Invalid(format!("{uri} has no host")))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((bare_host, port)).await.map_err(|e| connect_error(uri, e))?;
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, concat!("opshost/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| GetError::Invalid(format!("{uri}: {e}")))?;
        if https {
            let name = ServerName::try_from(bare_host.to_string()).map_err(|e| GetError::Invalid(format!("{uri}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await.map_err(|e| tls_error(uri, e))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

/// One request on a fresh HTTP/1.1 connection: status, `Location`, body (chunked or not).
async fn exchange<T>(io: T, request: hyper::Request<Empty<Bytes>>) -> Result<(u16, Option<String>, String), GetError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Once connected, a failure is the server going away mid-answer (or not speaking HTTP yet).
    let broken = |e: hyper::Error| GetError::NotAnswering(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(broken)?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(broken);
    let result = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let location = r.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = Limited::new(r.into_body(), MAX_BODY).collect().await.map_err(|e| GetError::NotAnswering(format!("reading the answer: {e}")))?;
            Ok((status, location, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

/// The URL a redirect points to: absolute, or a path on the same server.
fn follow(from: &Uri, location: &str) -> Result<Uri, GetError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().map_err(|e| GetError::Invalid(format!("{from} redirects to {location}, not a URL: {e}")));
    }
    let base = format!("{}://{}", from.scheme_str().unwrap_or("http"), from.authority().map(|a| a.as_str()).unwrap_or(""));
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = from.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        without_dot_segments(&format!("{dir}/{location}"))
    };
    format!("{base}{path}").parse().map_err(|e| GetError::Invalid(format!("{from} redirects to {location}, not a URL: {e}")))
}

/// A path with its `.` and `..` segments resolved (RFC 3986, 5.2.4), its query kept.
fn without_dot_segments(path: &str) -> String {
    let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let last_is_dir = path.ends_with("/.") || path.ends_with("/..");
    let mut p = format!("/{}", out.join("/"));
    if last_is_dir && !p.ends_with('/') {
        p.push('/');
    }
    match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    }
}

/// Connection-level failures that a starting or stopping server causes are "not answering";
/// anything else (an unknown host name) is the configuration's.
fn connect_error(uri: &Uri, e: std::io::Error) -> GetError {
    use std::io::ErrorKind::*;
    let transient = matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe | UnexpectedEof | TimedOut | AddrNotAvailable | Interrupted
    );
    if transient {
        GetError::NotAnswering(e.to_string())
    } else {
        GetError::Invalid(format!("{uri}: {e}"))
    }
}

/// A certificate that does not verify is the site's to fix; a handshake cut short is a server
/// that is starting.
fn tls_error(uri: &Uri, e: std::io::Error) -> GetError {
    let text = e.to_string();
    if e.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) && !text.contains("peer closed") {
        GetError::Invalid(format!(
            "{uri}: TLS: {text}: give the product's CA certificate as health_ca_file in the product's console section (or health_insecure_tls = true to skip the check)"
        ))
    } else {
        GetError::NotAnswering(format!("TLS: {text}"))
    }
}

/// The CA certificates of a PEM file, for the site's own CA.
pub fn read_ca_file(path: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let fix = "give the PEM file of the CA that signed the product's certificate";
    let text = std::fs::read(path).map_err(|e| format!("health_ca_file {}: {e}: {fix}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| format!("health_ca_file {}: {e}: {fix}", path.display()))?;
        roots.add(cert).map_err(|e| format!("health_ca_file {}: {e}: {fix}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("health_ca_file {} holds no certificate: {fix}", path.display()));
    }
    Ok(roots)
}

/// `health_insecure_tls = true`: any certificate, any name (signatures still checked for form).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_resolve_like_a_browser() {
        let from: Uri = "https://oms:8443/oms/api/health?x=1".parse().unwrap();
        let to = |l: &str| follow(&from, l).unwrap().to_string();
        assert_eq!(to("/oms/health"), "https://oms:8443/oms/health");
        assert_eq!(to("health2"), "https://oms:8443/oms/api/health2");
        assert_eq!(to("../health?y=2"), "https://oms:8443/oms/health?y=2");
        assert_eq!(to("./../../x"), "https://oms:8443/x");
        assert_eq!(to("http://other/x"), "http://other/x");
    }
}
