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

/// Reads from `stream` until the peer closes it or `limit` passes; returns what arrived and
/// whether the peer closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_finishes_is_answered_408_and_its_connection_closed() {
    use tokio::io::AsyncWriteExt;

    let database = support::fresh_database().await;
    let app = TestApp::spawn_with(database.url(), &[("REQUEST_BODY_TIMEOUT_SECONDS", "1")]).await;
    let authority = app.address.trim_start_matches("http://").to_owned();
    let length = "Content-Length: 100\r\n\r\n{\"name\": \"";
    let chunked = "Transfer-Encoding: chunked\r\n\r\nA\r\n{\"name\": \"\r\n";
    // A body the handler reads, and bodies of routes that read none (and of a route without a
    // key): each must be bounded, not only those a handler asks for.
    let cases = [
        ("POST /api/v1/sources", length),
        ("POST /api/v1/sources", chunked),
        ("POST /api/v1/pipelines/1/start", chunked),
        ("GET /health", chunked),
    ];
    for (target, head) in cases {
        let mut stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
        let request = format!(
            "{target} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\n{head}",
            support::API_KEY
        );
        stream.write_all(request.as_bytes()).await.expect("write the head and part of the body");
        let started = Instant::now();
        let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        println!(
            "{target}, unfinished body ({}): answered and closed after {elapsed:?}",
            head.lines().next().unwrap_or("")
        );
        assert!(response.starts_with("HTTP/1.1 408"), "{response}");
        assert!(response.contains("\"error\":\"RequestTimeout\""), "the one error body: {response}");
        assert!(closed, "the connection is closed after the 408");
        assert!(elapsed < Duration::from_secs(6), "bounded by the 1 s body timeout (took {elapsed:?})");
    }
}

/// Open file descriptors of process `pid` (its sockets among them).
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_slow_clients_cannot_exhaust_the_server() {
    use tokio::io::AsyncWriteExt;

    let database = support::fresh_database().await;
    let limit: usize = 64;
    let app = TestApp::spawn_with(
        database.url(),
        &[("REQUEST_BODY_TIMEOUT_SECONDS", "1"), ("MAX_CONNECTIONS", &limit.to_string())],
    )
    .await;
    let authority = app.address.trim_start_matches("http://").to_owned();
    let baseline = open_descriptors(app.pid());
    let started = Instant::now();
    let clients = (0..500).map(|_| {
        let authority = authority.clone();
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&authority).await.ok()?;
            let request = format!(
                "POST /api/v1/sources HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
                support::API_KEY
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            Some(read_until_closed(&mut stream, Duration::from_secs(60)).await)
        })
    });
    let clients: Vec<_> = clients.collect();
    // While they hang, the server holds at most its connection limit and keeps answering.
    let mut peak = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        peak = peak.max(open_descriptors(app.pid()).saturating_sub(baseline));
    }
    println!("descriptors above baseline while 500 slow clients connect: at most {peak} (limit {limit})");
    assert!(peak <= limit + 16, "{peak} descriptors for a limit of {limit} connections");

    let mut answered = 0;
    for client in clients {
        if let Some((response, closed)) = client.await.expect("join") {
            assert!(closed, "every slow connection is closed");
            answered += usize::from(response.starts_with("HTTP/1.1 408"));
        }
    }
    let drained = started.elapsed();
    println!("500 slow clients drained in {drained:?}; {answered} were answered 408");
    assert!(answered >= 450, "only {answered} of 500 slow clients got a 408");
    let health = app.client.get(app.url("/health")).send().await.expect("the server still answers");
    assert_eq!(health.status(), StatusCode::OK);
    assert!(drained < Duration::from_secs(45), "took {drained:?}");
}

/// A UDP "name server" that receives queries and never answers.
fn silent_name_server(address: &str) -> std::net::UdpSocket {
    std::net::UdpSocket::bind(address)
        .unwrap_or_else(|e| panic!("binding {address} (this test needs root, as CI runs it): {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_at_once_while_a_source_name_lookup_hangs() {
    let _name_server = silent_name_server("127.0.0.77:53");
    let resolv = tempfile::NamedTempFile::new().expect("resolv.conf");
    std::fs::write(resolv.path(), "nameserver 127.0.0.77\n").expect("write resolv.conf");
    let database = support::fresh_database().await;
    // The server runs in a mount namespace of its own whose /etc/resolv.conf names the silent
    // server: every lookup of the source's host blocks a resolver thread for 30 s.
    let mut app = TestApp::spawn_wrapped(
        database.url(),
        &[
            ("WAL_MONITOR_INTERVAL_SECONDS", "1"),
            ("WAL_MONITOR_TIMEOUT_SECONDS", "1"),
            ("RES_OPTIONS", "timeout:30 attempts:1"),
        ],
        &[
            "unshare",
            "--mount",
            "--",
            "sh",
            "-c",
            r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#,
            resolv.path().to_str().expect("utf-8 path"),
        ],
    )
    .await;
    let mut body = source_body("unresolvable");
    body["pg_host"] = serde_json::json!("db.never-answers.example");
    let created: serde_json::Value = app.post("/api/v1/sources", &body).await.json().await.expect("JSON");
    let path = format!("/api/v1/wal-monitor/sources/{}", created["id"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state: serde_json::Value = app.get(&path).await.json().await.expect("JSON");
        if state["status"] == "ERROR" {
            assert!(state["error"].as_str().is_some_and(|e| e.contains("no answer")), "{state}");
            break;
        }
        assert!(Instant::now() < deadline, "the lookup never timed out: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let pid = app.pid();
    let signalled = Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = app.wait_for_exit(Duration::from_secs(40));
    let total = signalled.elapsed();
    let stopped = app.logs().lines().any(|line| line.contains("\"stopped\""));
    println!("SIGTERM with a hung name lookup: exit {exit} after {total:?}");
    assert!(exit.success(), "{}", app.logs());
    assert!(stopped, "the server logged its stop:\n{}", app.logs());
    assert!(total < Duration::from_secs(5), "exit must follow `stopped` at once, took {total:?}");
}
