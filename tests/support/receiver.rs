//! A real HTTP receiver for notifications: it records every request and answers as told (a
//! status, or never).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// How to answer the n-th request (0-based).
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Read the request, never answer.
    Hang,
}

/// A receiver on 127.0.0.1 with its requests.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts a receiver that answers request `n` with `reply(n)`.
    pub async fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let reply = Arc::new(reply);
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let log = Arc::clone(&log);
                let reply = Arc::clone(&reply);
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else { return };
                    let n = {
                        let mut log = log.lock().expect("log");
                        log.push(request);
                        log.len() - 1
                    };
                    match reply(n) {
                        Reply::Status(code) => {
                            let answer =
                                format!("HTTP/1.1 {code} Status\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                            let _ = stream.write_all(answer.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        Receiver { url, received }
    }

    /// The requests so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    /// Waits until at least `count` requests arrived (or `limit` passes) and returns them.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} of {count} requests within {limit:?}: {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    let head_end = loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Received { method, path, headers, body: String::from_utf8_lossy(&body).to_string() })
}
