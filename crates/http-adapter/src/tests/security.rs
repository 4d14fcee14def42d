//! API keys, the rate limit, request ids and what reaches the log.

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use rosetta_domain::{Page, Secret};
use rosetta_ports::inbound::{Check, CheckStatus, Readiness, ServiceError};
use serde_json::json;

use super::*;
use crate::RateLimit;

fn list_ok(mocks: &mut Mocks) {
    mocks.sources.expect_list_sources().returning(|_| Ok(Page { items: vec![], total: 0 }));
}

fn ready(mocks: &mut Mocks) {
    let check = |status| Check { status, latency_ms: 1, last_tick_age_seconds: None };
    mocks.health.expect_readiness().returning(move || Readiness {
        database: check(CheckStatus::Healthy),
        wal_monitor: check(CheckStatus::Healthy),
    });
}

#[actix_web::test]
async fn versioned_routes_need_a_key_in_either_header() {
    let mut mocks = Mocks::default();
    list_ok(&mut mocks);
    let app = start(mocks).await;
    let get = || TestRequest::get().uri("/api/v1/sources");

    let anonymous = send(&app, get()).await;
    let body = anonymous.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    assert_eq!(body, json!({"error": "Unauthorized", "message": "Missing or invalid API key", "details": {}}));
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));

    for wrong in [
        get().insert_header(("Authorization", "Bearer not-the-key")),
        get().insert_header(("Authorization", format!("Basic {KEY}"))),
        get().insert_header(("X-API-Key", "not-the-key")),
        get().insert_header(("X-API-Key", format!("{KEY}x"))),
    ] {
        send(&app, wrong).await.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    for right in [
        get().insert_header(("Authorization", format!("Bearer {KEY}"))),
        get().insert_header(("Authorization", "bearer other-key")),
        get().insert_header(("X-API-Key", KEY)),
    ] {
        assert_eq!(send(&app, right).await.status, StatusCode::OK);
    }
}

#[actix_web::test]
async fn unknown_versioned_routes_need_a_key_too() {
    let app = start(Mocks::default()).await;
    let anonymous = send(&app, TestRequest::get().uri("/api/v1/nothing-here")).await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    // Percent-encoding does not route around the guard.
    let encoded = send(&app, TestRequest::get().uri("/api/%761/sources")).await;
    encoded.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    let with_key = send(&app, api(Method::GET, "/api/v1/nothing-here")).await;
    with_key.assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[actix_web::test]
async fn health_docs_spec_and_metrics_stay_open() {
    let mut mocks = Mocks::default();
    ready(&mut mocks);
    let app = start(mocks).await;
    for open in ["/health", "/api/v1/health", "/openapi.json", "/docs/", "/metrics"] {
        assert_eq!(send(&app, TestRequest::get().uri(open)).await.status, StatusCode::OK, "{open}");
    }
}

#[actix_web::test]
async fn without_keys_authentication_is_off() {
    let mut mocks = Mocks::default();
    list_ok(&mut mocks);
    let app = start_with(mocks, HttpSettings { api_keys: vec![], ..settings() }).await;
    assert_eq!(send(&app, TestRequest::get().uri("/api/v1/sources")).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn the_rate_limit_answers_429_per_client_and_spares_readiness() {
    let mut mocks = Mocks::default();
    list_ok(&mut mocks);
    ready(&mut mocks);
    let limited = HttpSettings { rate_limit: Some(RateLimit { per_second: 1, burst: 2 }), ..settings() };
    let app = start_with(mocks, limited).await;
    let from = |ip: &str| api(Method::GET, "/api/v1/sources").peer_addr(format!("{ip}:40000").parse().unwrap());

    assert_eq!(send(&app, from("10.0.0.1")).await.status, StatusCode::OK);
    assert_eq!(send(&app, from("10.0.0.1")).await.status, StatusCode::OK);
    let refused = send(&app, from("10.0.0.1")).await;
    let body = refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    assert_eq!(body["details"], json!({"retry_after_seconds": 1}));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.header("x-request-id").is_some());

    assert_eq!(send(&app, from("10.0.0.2")).await.status, StatusCode::OK, "another client has its own quota");
    let readiness = TestRequest::get().uri("/api/v1/health").peer_addr("10.0.0.1:40000".parse().unwrap());
    assert_eq!(send(&app, readiness).await.status, StatusCode::OK, "readiness is not limited");
    // Without a peer address the request shares one bucket; it is never a 500.
    let anonymous = send(&app, api(Method::GET, "/api/v1/sources")).await;
    assert_eq!(anonymous.status, StatusCode::OK);
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated_on_every_response() {
    let mut mocks = Mocks::default();
    list_ok(&mut mocks);
    let app = start(mocks).await;
    let echoed = send(&app, api(Method::GET, "/api/v1/sources").insert_header(("X-Request-Id", "req-42"))).await;
    assert_eq!(echoed.header("x-request-id"), Some("req-42"));

    let on_error =
        send(&app, TestRequest::get().uri("/api/v1/sources").insert_header(("X-Request-Id", "req-43"))).await;
    assert_eq!((on_error.status, on_error.header("x-request-id")), (StatusCode::UNAUTHORIZED, Some("req-43")));

    let generated = send(&app, api(Method::GET, "/nowhere")).await;
    let id = generated.header("x-request-id").expect("an id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    for unacceptable in ["a".repeat(129), "two words".to_owned()] {
        let reply =
            send(&app, api(Method::GET, "/api/v1/sources").insert_header(("X-Request-Id", unacceptable.clone()))).await;
        let id = reply.header("x-request-id").expect("an id");
        assert_ne!(id, unacceptable);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection reset by peer")]
struct Reset;

#[actix_web::test]
async fn every_request_logs_one_access_line_with_its_id_and_no_secret() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_create_source().returning(|new| {
        assert_eq!(new.pg_password, Some(Secret::parse("log-me-not").unwrap()));
        Ok(source(1))
    });
    mocks.sources.expect_get_source().returning(|_| Err(ServiceError::Unexpected(Box::new(Reset))));
    let app = start(mocks).await;

    let body = json!({"name": "a", "pg_host": "h", "pg_database": "d", "pg_username": "u",
                      "pg_password": "log-me-not", "publication_name": "p", "replication_id": 1});
    let created =
        send(&app, api_json(Method::POST, "/api/v1/sources", &body).insert_header(("X-Request-Id", "req-created")))
            .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let failed = send(&app, api(Method::GET, "/api/v1/sources/1").insert_header(("X-Request-Id", "req-failed"))).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);

    let logs = captured_logs();
    let lines_of = |id: &str| logs.lines().filter(|line| line.contains(id)).map(str::to_owned).collect::<Vec<_>>();
    let created_lines = lines_of("request_id=req-created");
    assert_eq!(created_lines.len(), 1, "{logs}");
    assert!(created_lines[0].contains("request completed") && created_lines[0].contains("http.status_code=201"));
    let failed_lines = lines_of("request_id=req-failed");
    assert_eq!(failed_lines.len(), 2, "one cause line, one access line: {logs}");
    assert!(
        failed_lines[0].contains("ERROR")
            && failed_lines[0].contains("internal error")
            && failed_lines[0].contains("connection reset by peer")
    );
    assert!(!logs.contains("log-me-not"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}
