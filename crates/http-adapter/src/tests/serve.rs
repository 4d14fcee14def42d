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
        let error = Api::new(services(), &settings, metrics_handle()).expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{prefix:?}");
    }
    for (per_second, burst) in [(0, 1), (1, 0)] {
        let settings = HttpSettings { rate_limit: Some(RateLimit { per_second, burst }), ..settings() };
        let error = Api::new(services(), &settings, metrics_handle()).expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    }
    let api = Api::new(services(), &settings(), metrics_handle()).expect("api");
    for settings in [
        HttpSettings { body_timeout: Duration::ZERO, ..settings() },
        HttpSettings { head_timeout: Duration::ZERO, ..settings() },
        HttpSettings { max_connections: 0, ..settings() },
    ] {
        let refused = serve(listener(), api.clone(), Vec::new(), &settings).err().map(|error| error.kind());
        assert_eq!(refused, Some(ErrorKind::InvalidInput), "{settings:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_over_tcp_and_stops_gracefully() {
    let listener = listener();
    let address = listener.local_addr().expect("address");
    let settings = HttpSettings { workers: 0, ..settings() };
    let api = Api::new(services(), &settings, metrics_handle()).expect("api");
    let mounts: Vec<crate::Mount> = vec![Arc::new(super::composition::console)];
    let server = serve(listener, api, mounts, &settings).expect("serve");
    let handle = server.handle();
    let running = tokio::spawn(server);

    let get = |path: &'static str| {
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(address).expect("connect");
            write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("write");
            let mut response = String::new();
            stream.read_to_string(&mut response).expect("read");
            response
        })
    };
    let response = get("/health").await.expect("client");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id: "), "{response}");
    assert!(response.contains(r#"{"status":"healthy","version":"1.2.3","checks":{}}"#), "{response}");
    let response = get("/console/no-such-page").await.expect("client");
    assert!(response.starts_with("HTTP/1.1 404 Not Found"), "{response}");
    assert!(response.ends_with("<p>no such page</p>"), "the mount's own page: {response}");

    handle.stop(true).await;
    running.await.expect("join").expect("server result");
}
