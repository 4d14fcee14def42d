//! Health, the OpenAPI document, the docs UI, metrics, and the 404/405 fallback.

use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use rosetta_ports::inbound::{Check, CheckStatus, Readiness};
use serde_json::{Value, json};

use super::*;

#[actix_web::test]
async fn liveness_is_always_healthy() {
    let app = start(Mocks::default()).await;
    let reply = send(&app, TestRequest::get().uri("/health")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "healthy", "version": "1.2.3", "checks": {}}));
}

#[actix_web::test]
async fn readiness_reports_each_check() {
    let mut mocks = Mocks::default();
    let check = |status, latency_ms, last_tick_age_seconds| Check { status, latency_ms, last_tick_age_seconds };
    mocks.health.expect_readiness().times(1).returning(move || Readiness {
        database: check(CheckStatus::Healthy, 3, None),
        wal_monitor: check(CheckStatus::Disabled("WAL_MONITOR_ENABLED=false".into()), 0, None),
    });
    mocks.health.expect_readiness().times(1).returning(move || Readiness {
        database: check(CheckStatus::Unhealthy("connection refused".into()), 1000, None),
        wal_monitor: check(CheckStatus::Healthy, 0, Some(42)),
    });
    mocks.health.expect_readiness().times(1).returning(move || Readiness {
        database: check(CheckStatus::Healthy, 2, None),
        wal_monitor: check(CheckStatus::Unhealthy("no tick completed for 900 s".into()), 0, Some(900)),
    });
    let app = start(mocks).await;

    let ready = send(&app, TestRequest::get().uri("/api/v1/health")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.json(),
        json!({"status": "healthy", "version": "1.2.3", "checks": {
            "database": {"status": "healthy", "latency_ms": 3},
            "wal_monitor": {"status": "disabled", "latency_ms": 0, "message": "WAL_MONITOR_ENABLED=false"}
        }})
    );
    let unready = send(&app, TestRequest::get().uri("/api/v1/health")).await;
    assert_eq!(unready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unready.json(),
        json!({"status": "unhealthy", "version": "1.2.3", "checks": {
            "database": {"status": "unhealthy", "latency_ms": 1000, "error": "connection refused"},
            "wal_monitor": {"status": "healthy", "latency_ms": 0, "last_tick_age_seconds": 42}
        }})
    );
    let stalled = send(&app, TestRequest::get().uri("/api/v1/health")).await;
    assert_eq!(stalled.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        stalled.json()["checks"]["wal_monitor"],
        json!({"status": "unhealthy", "latency_ms": 0, "error": "no tick completed for 900 s", "last_tick_age_seconds": 900})
    );
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_the_error_body() {
    let app = start(Mocks::default()).await;
    let reply = send(&app, TestRequest::get().uri("/nowhere")).await;
    assert_eq!(
        reply.assert_error(StatusCode::NOT_FOUND, "NotFound"),
        json!({"error": "NotFound", "message": "No route matches this path", "details": {}})
    );
    send(&app, api(Method::GET, "/api/v1/sources/1/extra")).await.assert_error(StatusCode::NOT_FOUND, "NotFound");
    send(&app, TestRequest::get().uri("/docs/no-such-file.js")).await.assert_error(StatusCode::NOT_FOUND, "NotFound");

    let reply = send(&app, api(Method::DELETE, "/api/v1/sources")).await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let reply = send(&app, api(Method::POST, "/api/v1/pipelines/1")).await;
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS"));
    let reply = send(&app, TestRequest::post().uri("/health")).await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert!(reply.header("x-request-id").is_some());
    let reply = send(&app, api(Method::PUT, "/api/v1/pipelines/1/start")).await;
    assert_eq!(reply.header("allow"), Some("POST, OPTIONS"), "HEAD only where GET is");
}

#[actix_web::test]
async fn options_lists_the_methods_of_a_route() {
    let app = start(Mocks::default()).await;
    let reply = send(&app, api(Method::OPTIONS, "/api/v1/sources/1")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS"));
    assert!(reply.body.is_empty());
    let reply = send(&app, TestRequest::default().method(Method::OPTIONS).uri("/health")).await;
    assert_eq!((reply.status, reply.header("allow")), (StatusCode::NO_CONTENT, Some("GET, HEAD, OPTIONS")));
    send(&app, api(Method::OPTIONS, "/nowhere")).await.assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[actix_web::test]
async fn head_is_served_wherever_get_is() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_get_source().returning(|id| Ok(source(id.get())));
    let app = start(mocks).await;
    let get = send(&app, api(Method::GET, "/api/v1/sources/4")).await;
    // actix_web::test keeps the body of HEAD answers; the server's HTTP codec drops it (a
    // black-box test checks that on the wire).
    let head = send(&app, api(Method::HEAD, "/api/v1/sources/4")).await;
    assert_eq!((head.status, head.header("content-type")), (StatusCode::OK, Some("application/json")));
    assert_eq!(head.header("content-length"), get.header("content-length"));
    let head = send(&app, TestRequest::default().method(Method::HEAD).uri("/health")).await;
    assert_eq!(head.status, StatusCode::OK);
    send(&app, api(Method::HEAD, "/api/v1/pipelines/1/start"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
}

/// Every route of the API, with the prefix.
const ROUTES: [(&str, &str); 57] = [
    ("/health", "get"),
    ("/openapi.json", "get"),
    ("/docs", "get"),
    ("/metrics", "get"),
    ("/api/v1/health", "get"),
    ("/api/v1/sources", "get"),
    ("/api/v1/sources", "post"),
    ("/api/v1/sources/{id}", "get"),
    ("/api/v1/sources/{id}", "put"),
    ("/api/v1/sources/{id}", "patch"),
    ("/api/v1/sources/{id}", "delete"),
    ("/api/v1/destinations", "get"),
    ("/api/v1/destinations", "post"),
    ("/api/v1/destinations/{id}", "get"),
    ("/api/v1/destinations/{id}", "put"),
    ("/api/v1/destinations/{id}", "patch"),
    ("/api/v1/destinations/{id}", "delete"),
    ("/api/v1/pipelines", "get"),
    ("/api/v1/pipelines", "post"),
    ("/api/v1/pipelines/{id}", "get"),
    ("/api/v1/pipelines/{id}", "put"),
    ("/api/v1/pipelines/{id}", "patch"),
    ("/api/v1/pipelines/{id}", "delete"),
    ("/api/v1/pipelines/{id}/start", "post"),
    ("/api/v1/pipelines/{id}/pause", "post"),
    ("/api/v1/pipelines/{id}/refresh", "post"),
    ("/api/v1/metrics/wal", "get"),
    ("/api/v1/wal-monitor", "get"),
    ("/api/v1/wal-monitor/sources/{source_id}", "get"),
    ("/api/v1/wal-monitor/sources/{source_id}/chart.svg", "get"),
    ("/api/v1/metrics/system", "get"),
    ("/api/v1/alerts", "get"),
    ("/api/v1/alerts/{id}", "get"),
    ("/api/v1/alerts/{id}/ack", "post"),
    ("/api/v1/alert-rules", "get"),
    ("/api/v1/alert-rules/{rule}", "patch"),
    ("/api/v1/sources/{id}/alert-rules", "get"),
    ("/api/v1/sources/{id}/alert-rules/{rule}", "patch"),
    ("/api/v1/sources/{id}/alert-rules/{rule}", "delete"),
    ("/api/v1/sources/validate", "post"),
    ("/api/v1/sources/{id}/validate", "post"),
    ("/api/v1/sources/{id}/tables", "get"),
    ("/api/v1/sources/{id}/publication", "get"),
    ("/api/v1/sources/{id}/publication", "put"),
    ("/api/v1/sources/{id}/publication", "delete"),
    ("/api/v1/pipelines/{id}/slot", "post"),
    ("/api/v1/pipelines/{id}/slot", "get"),
    ("/api/v1/pipelines/{id}/slot", "delete"),
    ("/api/v1/cleanup-tasks", "get"),
    ("/api/v1/cleanup-tasks/{id}", "delete"),
    ("/api/v1/notification-channels", "get"),
    ("/api/v1/notification-channels", "post"),
    ("/api/v1/notification-channels/{id}", "get"),
    ("/api/v1/notification-channels/{id}", "patch"),
    ("/api/v1/notification-channels/{id}", "delete"),
    ("/api/v1/notification-channels/{id}/test", "post"),
    ("/api/v1/notification-channels/{id}/deliveries", "get"),
];

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| (path.clone(), method.clone())))
        .collect()
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route_with_its_schemas() {
    let app = start(Mocks::default()).await;
    let reply = send(&app, TestRequest::get().uri("/openapi.json")).await;
    assert_eq!((reply.status, reply.header("content-type")), (StatusCode::OK, Some("application/json")));
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        (document["info"]["title"].as_str(), document["info"]["version"].as_str()),
        (Some("Rosetta"), Some("1.2.3"))
    );

    let expected: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(path, method)| ((*path).to_owned(), (*method).to_owned())).collect();
    assert_eq!(operations(&document), expected);

    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "ErrorBody",
        "FieldError",
        "Source",
        "Destination",
        "Pipeline",
        "PipelineMetadata",
        "SourceCreate",
        "SourceUpdate",
        "DestinationCreate",
        "DestinationUpdate",
        "PipelineCreate",
        "PipelineUpdate",
        "HealthBody",
        "SourceWalState",
        "WalHistoryEntry",
        "ReplicationSlot",
        "SystemSample",
        "WalMonitorStatus",
        "SlotType",
        "WalStatus",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    let create = &document["paths"]["/api/v1/sources"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SourceCreate"
    );
    for status in ["201", "401", "409", "413", "415", "422", "429", "500", "503"] {
        assert!(create["responses"].get(status).is_some(), "POST /sources lacks {status}");
    }
    assert!(create["security"].is_array());
    assert!(document["paths"]["/api/v1/health"]["get"].get("security").is_none(), "readiness is open");
    assert_eq!(document["components"]["securitySchemes"]["api_key"]["name"], "X-API-Key");
}

#[actix_web::test]
async fn write_schemas_name_exactly_the_fields_the_bodies_accept() {
    let document = serde_json::to_value(crate::openapi_document("/api/v1")).unwrap();
    let schemas = &document["components"]["schemas"];
    let source = [
        "name",
        "pg_host",
        "pg_port",
        "pg_database",
        "pg_username",
        "pg_password",
        "pg_sslmode",
        "pg_sslrootcert",
        "publication_name",
        "replication_id",
    ];
    let destination = [
        "name",
        "snowflake_account",
        "snowflake_user",
        "snowflake_database",
        "snowflake_schema",
        "snowflake_role",
        "snowflake_private_key_path",
        "snowflake_host",
        "snowflake_private_key_passphrase",
    ];
    let pipeline = ["name", "source_id", "destination_id", "status"];
    let new_pipeline = ["name", "source_id", "destination_id", "status", "slot_name", "provision"];
    for (schema, fields, uri) in [
        ("SourceCreate", &source[..], "/api/v1/sources"),
        ("SourceUpdate", &source[..], "/api/v1/sources/1"),
        ("DestinationCreate", &destination[..], "/api/v1/destinations"),
        ("DestinationUpdate", &destination[..], "/api/v1/destinations/1"),
        ("PipelineCreate", &new_pipeline[..], "/api/v1/pipelines"),
        ("PipelineUpdate", &pipeline[..], "/api/v1/pipelines/1"),
    ] {
        let properties: BTreeSet<&str> =
            schemas[schema]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(properties, fields.iter().copied().collect(), "{schema}");
        assert_eq!(schemas[schema]["additionalProperties"], false, "{schema}");

        // The reader knows every field: none of them is "extra" (values are deliberately wrong).
        let app = start(Mocks::default()).await;
        let body: serde_json::Map<String, Value> = fields.iter().map(|f| ((*f).to_owned(), json!([]))).collect();
        let method = if uri.ends_with('1') { Method::PATCH } else { Method::POST };
        let reply = send(&app, api_json(method, uri, &Value::Object(body))).await;
        let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError")["details"].clone();
        let kinds: Vec<&str> = details.as_array().unwrap().iter().filter_map(|d| d["type"].as_str()).collect();
        assert_eq!(kinds.len(), fields.len(), "{schema}: {details}");
        assert!(!kinds.contains(&"extra_forbidden"), "{schema}: {details}");
    }
    assert_eq!(schemas["SourceCreate"]["required"].as_array().map(Vec::len), Some(6));
    assert!(schemas["SourceUpdate"].get("required").is_none());
}

#[actix_web::test]
async fn the_docs_ui_is_served_without_any_external_url() {
    let app = start(Mocks::default()).await;
    let page = send(&app, TestRequest::get().uri("/docs")).await;
    assert_eq!(page.status, StatusCode::OK, "no redirect");
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(page.text().contains(r#"<base href="/docs/">"#), "its files resolve under /docs/: {}", page.text());

    let index = send(&app, TestRequest::get().uri("/docs/")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    let html = index.text();
    assert!(html.contains("swagger-ui"), "{html}");
    let stylesheet = send(&app, TestRequest::get().uri("/docs/swagger-ui.css")).await;
    assert_eq!(stylesheet.status, StatusCode::OK);
    let initializer = send(&app, TestRequest::get().uri("/docs/swagger-initializer.js")).await;
    assert_eq!(initializer.status, StatusCode::OK);
    assert!(initializer.text().contains("/openapi.json"));
    for text in [html, initializer.text()] {
        assert!(!text.contains("http://") && !text.contains("https://"), "external URL in {text}");
    }
}

#[actix_web::test]
async fn metrics_are_prometheus_text_labelled_by_route_pattern() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_get_source().returning(|id| Ok(source(id.get())));
    let app = start(mocks).await;
    assert_eq!(send(&app, api(Method::GET, "/api/v1/sources/12345")).await.status, StatusCode::OK);

    let reply = send(&app, TestRequest::get().uri("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let text = reply.text();
    let line = text
        .lines()
        .find(|line| {
            line.starts_with("http_requests_total")
                && line.contains("route=\"/api/v1/sources/{id}\"")
                && line.contains("method=\"GET\"")
        })
        .unwrap_or_else(|| panic!("no request counter in {text}"));
    assert!(line.contains("status=\"200\""), "{line}");
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    assert!(!text.contains("12345"), "raw paths must not become labels");
}
