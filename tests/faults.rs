//! Black-box fault tests: the metadata database going away under a running server, and
//! graceful shutdown.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rosetta_test_support::{ClusterOptions, PgCluster};
use support::{TestApp, source_body};

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_metadata_database_gives_503_then_recovers_without_restart() {
    let cluster = tokio::task::spawn_blocking(|| PgCluster::start(ClusterOptions::default()))
        .await
        .expect("join")
        .expect("throwaway cluster");
    let url = cluster.url("postgres");
    let app = TestApp::spawn_with(&url, &[("DB_POOL_TIMEOUT", "2")]).await;
    assert_eq!(app.post("/api/v1/sources", &source_body("before")).await.status(), StatusCode::CREATED);

    cluster.stop().expect("stopping the metadata database");
    let started = Instant::now();
    let during = app.get("/api/v1/sources").await;
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(10), "503 within the pool timeout, took {:?}", started.elapsed());
    assert!(during.headers().contains_key("retry-after"));
    let body: serde_json::Value = during.json().await.expect("JSON");
    assert_eq!((body["error"].as_str(), &body["details"]), (Some("Unavailable"), &serde_json::json!({})));
    let readiness = app.client.get(app.url("/api/v1/health")).send().await.expect("GET");
    assert_eq!(readiness.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.client.get(app.url("/health")).send().await.expect("GET").status(), StatusCode::OK, "liveness");

    cluster.start_again().expect("restarting the metadata database");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app.get("/api/v1/sources").await;
        if response.status() == StatusCode::OK {
            let sources: serde_json::Value = response.json().await.expect("JSON");
            assert_eq!(sources[0]["name"], "before", "data survived");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after the database came back: {}", response.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.post("/api/v1/sources", &source_body("after")).await.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut app = TestApp::spawn().await;
    // A request whose body is still arriving when SIGTERM lands: it must still complete.
    let body = serde_json::to_vec(&source_body("in-flight")).expect("JSON");
    let (head, tail) = body.split_at(body.len() / 2);
    let authority = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
    let request = format!(
        "POST /api/v1/sources HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        support::API_KEY,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write head");
    stream.write_all(head).await.expect("write half the body");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = app.pid();
    let terminate = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill")
    });
    assert!(terminate.await.expect("join").success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(tail).await.expect("write the rest of the body");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read response");
    assert!(response.starts_with("HTTP/1.1 201"), "in-flight request was not completed: {response}");

    let status = app.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}:\n{}", app.logs());
    assert!(app.logs().contains("stopped"), "shutdown is logged");
    // New connections are refused once the server has stopped.
    assert!(tokio::net::TcpStream::connect(&authority).await.is_err());
}
