//! The stand-in products' one HTTP need: a request read to the end of its headers before it is
//! answered. A server that answers after its first read and closes can find the rest of the
//! request still unread (a client may write it in pieces): the kernel then resets the
//! connection, and the client sees no answer at all.

use tokio::io::AsyncReadExt;

/// The request head (up to the blank line, or 4 KiB, or the client's end of writing).
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while buf.len() < 4096 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
