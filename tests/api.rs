//! Black-box tests of the HTTP API: the real server binary over HTTP against real PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{API_KEY, TestApp, destination_body, source_body};

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

async fn create(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.post(path, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "POST {path}");
    json(response).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_round_trip_without_ever_returning_the_password() {
    let app = TestApp::spawn().await;
    let created = create(&app, "/api/v1/sources", source_body("Orders-Primary")).await;
    assert_eq!(created["name"], "orders-primary");
    assert_eq!(created["has_password"], true);
    assert!(created.get("pg_password").is_none());
    let id = created["id"].as_i64().expect("id");

    let read = json(app.get(&format!("/api/v1/sources/{id}")).await).await;
    assert_eq!(read, created);

    let patched = app.patch(&format!("/api/v1/sources/{id}"), &json!({"pg_port": 6432, "pg_password": null})).await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched = json(patched).await;
    assert_eq!((patched["pg_port"].as_i64(), patched["has_password"].as_bool()), (Some(6432), Some(false)));
    assert_eq!(patched["pg_host"], "db.internal", "omitted fields are kept");

    let put = app.put(&format!("/api/v1/sources/{id}"), &json!({"pg_host": "db2.internal"})).await;
    assert_eq!(put.status(), StatusCode::OK, "PUT is partial too");
    assert_eq!(json(put).await["pg_port"], 6432);

    let deleted = app.delete(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.bytes().await.expect("body").is_empty());
    let gone = app.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json(gone).await,
        json!({"error": "NotFound", "message": format!("Source with id '{id}' not found"),
               "details": {"entity_type": "Source", "entity_id": id.to_string()}})
    );

    let logs = app.logs();
    for secret in ["source-password-do-not-leak", support::SECRET_KEY, API_KEY] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    create(&app, "/api/v1/sources", source_body("alpha")).await;
    let clash = app.post("/api/v1/sources", &source_body("ALPHA")).await;
    assert_eq!(clash.status(), StatusCode::CONFLICT);
    let body = json(clash).await;
    assert_eq!(body["error"], "Conflict");
    assert_eq!(body["details"], json!({"entity_type": "Source", "field": "name", "value": "alpha"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_nest_their_source_destination_and_metadata_and_follow_the_lifecycle() {
    let app = TestApp::spawn().await;
    let source = create(&app, "/api/v1/sources", source_body("src")).await;
    let destination = create(&app, "/api/v1/destinations", destination_body("dst")).await;
    assert_eq!(destination["has_private_key_passphrase"], true);
    assert!(destination.get("snowflake_private_key_passphrase").is_none());

    let missing = app
        .post("/api/v1/pipelines", &json!({"name": "p", "source_id": 999_999, "destination_id": destination["id"]}))
        .await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(missing).await["details"][0]["loc"], json!(["body", "source_id"]));

    let pipeline = create(
        &app,
        "/api/v1/pipelines",
        json!({"name": "Orders", "source_id": source["id"], "destination_id": destination["id"]}),
    )
    .await;
    assert_eq!(pipeline["status"], "START");
    assert_eq!(pipeline["source"], source);
    assert_eq!(pipeline["destination"], destination);
    assert_eq!(pipeline["pipeline_metadata"]["status"], "RUNNING");
    let id = pipeline["id"].as_i64().expect("id");

    let paused = json(app.post(&format!("/api/v1/pipelines/{id}/pause"), &json!({})).await).await;
    assert_eq!(
        (paused["status"].as_str(), paused["pipeline_metadata"]["status"].as_str()),
        (Some("PAUSE"), Some("PAUSED"))
    );
    let started = json(app.post(&format!("/api/v1/pipelines/{id}/start"), &json!({})).await).await;
    assert_eq!(started["pipeline_metadata"]["status"], "RUNNING");
    assert!(started["pipeline_metadata"]["last_start_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let again = json(app.post(&format!("/api/v1/pipelines/{id}/start"), &json!({})).await).await;
    assert_eq!(again, started, "start is idempotent");
    let refreshed = json(app.patch(&format!("/api/v1/pipelines/{id}"), &json!({"status": "REFRESH"})).await).await;
    assert_eq!(refreshed["status"], "REFRESH");
    assert_eq!(refreshed["pipeline_metadata"], started["pipeline_metadata"]);

    // The source is in use: refused without cascade, removed with its pipeline with cascade.
    let source_id = source["id"].as_i64().expect("id");
    let refused = app.delete(&format!("/api/v1/sources/{source_id}")).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        json(refused).await["details"],
        json!({"entity_type": "Source", "entity_id": source_id.to_string(), "pipelines": [{"id": id, "name": "orders"}]})
    );
    let cascaded = app.delete(&format!("/api/v1/sources/{source_id}?cascade=true")).await;
    assert_eq!(cascaded.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v1/pipelines/{id}")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_page_by_id_with_total_and_links() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        create(&app, "/api/v1/destinations", json!({"name": format!("d{i}")})).await;
    }
    let page = app.get("/api/v1/destinations?skip=2&limit=2").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-total-count"], "5");
    let link = page.headers()["link"].to_str().expect("link").to_owned();
    assert!(link.contains("rel=\"next\"") && link.contains("rel=\"prev\""), "{link}");
    let names: Vec<String> =
        json(page).await.as_array().expect("array").iter().map(|d| d["name"].as_str().unwrap_or("").into()).collect();
    assert_eq!(names, ["d2", "d3"]);
    let last = app.get("/api/v1/destinations?skip=4&limit=2").await;
    assert!(!last.headers()["link"].to_str().expect("link").contains("rel=\"next\""));
    let bad = app.get("/api/v1/destinations?limit=0&skip=-1").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(bad).await["details"].as_array().map(Vec::len), Some(2), "every problem at once");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_one_error_body_listing_every_problem() {
    let app = TestApp::spawn().await;
    let body = json!({
        "name": "",
        "pg_host": "h",
        "pg_port": 65536,
        "pg_database": "x".repeat(256),
        "pg_username": "u",
        "pg_password": "secret-in-a-bad-body",
        "publication_name": "bad name'",
        "replication_id": "1",
        "surprise": true
    });
    let response = app.post("/api/v1/sources", &body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = response.text().await.expect("body");
    assert!(!text.contains("secret-in-a-bad-body"));
    let error: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(error["error"], "ValidationError");
    let mut locs: Vec<String> = error["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["loc"][1].as_str().unwrap_or("").to_owned())
        .collect();
    locs.sort();
    assert_eq!(locs, ["name", "pg_database", "pg_port", "publication_name", "replication_id", "surprise"]);

    let malformed = app
        .request(reqwest::Method::POST, "/api/v1/sources")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(malformed).await["details"][0]["loc"], json!(["body"]));

    let wrong_type = app
        .request(reqwest::Method::POST, "/api/v1/sources")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json(wrong_type).await["error"], "UnsupportedMediaType");

    let huge = json!({"name": "x".repeat(70 * 1024)});
    let too_large = app.post("/api/v1/sources", &huge).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let not_an_id = app.get("/api/v1/sources/abc").await;
    assert_eq!(not_an_id.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(not_an_id).await["details"][0]["loc"], json!(["path", "id"]));

    let unknown = app.get("/api/v1/nothing-here").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(unknown).await["error"], "NotFound");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_guard_every_versioned_route_but_health() {
    let app = TestApp::spawn().await;
    let anonymous = app.client.get(app.url("/api/v1/sources")).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body = json(anonymous).await;
    assert_eq!((body["error"].as_str(), &body["details"]), (Some("Unauthorized"), &json!({})));

    let wrong = app.client.get(app.url("/api/v1/sources")).bearer_auth("not-the-key-0000000000").send().await;
    assert_eq!(wrong.expect("GET").status(), StatusCode::UNAUTHORIZED);
    let header = app.client.get(app.url("/api/v1/sources")).header("X-API-Key", API_KEY).send().await;
    assert_eq!(header.expect("GET").status(), StatusCode::OK);

    for open in ["/health", "/api/v1/health", "/openapi.json", "/docs/", "/metrics"] {
        let response = app.client.get(app.url(open)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{open} must not need a key");
    }
    let readiness = json(app.client.get(app.url("/api/v1/health")).send().await.expect("GET")).await;
    assert_eq!(readiness["status"], "healthy");
    assert_eq!(readiness["checks"]["database"]["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let echoed = app.request(reqwest::Method::GET, "/api/v1/sources").header("X-Request-Id", "req-42").send().await;
    assert_eq!(echoed.expect("GET").headers()["x-request-id"], "req-42");
    let generated = app.get("/api/v1/sources/999").await;
    let id = generated.headers()["x-request-id"].to_str().expect("id").to_owned();
    assert!(id.len() >= 16, "generated id {id:?}");
    assert!(app.logs().contains("req-42"), "the request id is in the request's log lines");
}

#[tokio::test(flavor = "multi_thread")]
async fn head_answers_like_get_without_a_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn().await;
    let created = create(&app, "/api/v1/sources", source_body("head")).await;
    let path = format!("/api/v1/sources/{}", created["id"]);
    let get = app.get(&path).await;
    let length = get.headers()["content-length"].to_str().expect("length").to_owned();

    // On the wire: the headers GET would send, then nothing (the connection closes, as asked).
    let authority = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
    let request = format!(
        "HEAD {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_string(&mut response))
        .await
        .expect("answered in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("content-length: {length}")), "{head}");
    assert_eq!(body, "", "HEAD answers carry no body");

    for open in ["/health", "/docs", "/openapi.json"] {
        let head = app.client.head(app.url(open)).send().await.expect("HEAD");
        assert_eq!(head.status(), StatusCode::OK, "{open}");
    }
    let docs = app.client.get(app.url("/docs")).send().await.expect("GET /docs");
    assert_eq!(docs.status(), StatusCode::OK, "no redirect");
}
