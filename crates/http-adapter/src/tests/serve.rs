//! `serve`: settings checks, and one real request over TCP with a graceful stop.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};

use super::*;
use crate::{RateLimit, serve};

fn services() -> crate::ServicesFactory {
    Mocks::default().into_services().shared()
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_refused_before_listening() {
    for prefix in ["", "/", "api/v1", "/api/v1/"] {
        let settings = HttpSettings { api_prefix: prefix.to_owned(), ..settings() };
        let error = serve(listener(), services(), settings, metrics_handle()).err().expect("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{prefix:?}");
    }
    for (per_second, burst) in [(0, 1), (1, 0)] {
        let settings = HttpSettings { rate_limit: Some(RateLimit { per_second, burst }), ..settings() };
        let error = serve(listener(), services(), settings, metrics_handle()).err().expect("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_over_tcp_and_stops_gracefully() {
    let listener = listener();
    let address = listener.local_addr().expect("address");
    let server =
        serve(listener, services(), HttpSettings { workers: 0, ..settings() }, metrics_handle()).expect("serve");
    let handle = server.handle();
    let running = tokio::spawn(server);

    let response = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    })
    .await
    .expect("client");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id: "), "{response}");
    assert!(response.contains(r#"{"status":"healthy","version":"1.2.3","checks":{}}"#), "{response}");

    handle.stop(true).await;
    running.await.expect("join").expect("server result");
}
