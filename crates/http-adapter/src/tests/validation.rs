//! Request validation: bodies, ids and the transport-level refusals (413, 415). The mocks have no
//! expectations: a request that reaches a service fails the test.

use actix_web::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;

fn valid_source() -> Value {
    json!({
        "name": "orders", "pg_host": "db.internal", "pg_port": 5432, "pg_database": "app",
        "pg_username": "rosetta", "publication_name": "rosetta_pub", "replication_id": 1
    })
}

/// POSTs `body` to `/api/v1/sources` and returns the `details` of the 422.
async fn source_problems(body: &Value) -> Value {
    let app = start(Mocks::default()).await;
    let reply = send(&app, api_json(Method::POST, "/api/v1/sources", body)).await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError")["details"].clone()
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn problem(field: &str, kind: &str, msg: &str) -> Value {
    json!({"loc": ["body", field], "msg": msg, "type": kind})
}

#[actix_web::test]
async fn every_problem_is_reported_at_once_without_echoing_the_input() {
    let body = json!({
        "name": "",
        "pg_host": "h",
        "pg_port": 65536,
        "pg_database": "x".repeat(256),
        "pg_username": "u",
        "pg_password": "hunter2-in-a-bad-body",
        "publication_name": "bad name'",
        "replication_id": "1",
        "surprise": true
    });
    let app = start(Mocks::default()).await;
    let reply = send(&app, api_json(Method::POST, "/api/v1/sources", &body)).await;
    assert!(!reply.text().contains("hunter2"), "the password was echoed");
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(body["message"], "Request validation failed: 6 problems");
    assert_eq!(
        body["details"],
        json!([
            problem("name", "string_too_short", "must not be empty"),
            problem("pg_port", "less_than_equal", "must be at most 65535"),
            problem("pg_database", "string_too_long", "must be at most 255 characters"),
            problem(
                "publication_name",
                "string_pattern_mismatch",
                "must be a PostgreSQL identifier: a letter or '_' followed by letters, digits or '_'"
            ),
            problem("replication_id", "int_type", "Input should be a valid integer"),
            problem("surprise", "extra_forbidden", "Extra inputs are not permitted"),
        ])
    );
}

#[actix_web::test]
async fn missing_required_fields_are_each_reported() {
    let details = source_problems(&json!({})).await;
    let missing: Vec<&str> = details.as_array().unwrap().iter().map(|d| d["loc"][1].as_str().unwrap()).collect();
    assert_eq!(missing, ["name", "pg_host", "pg_database", "pg_username", "publication_name", "replication_id"]);
    assert!(details.as_array().unwrap().iter().all(|d| d["type"] == "missing" && d["msg"] == "Field required"));
}

#[actix_web::test]
async fn field_bounds_come_from_the_domain() {
    let cases = [
        ("name", json!("a".repeat(256)), "string_too_long", "must be at most 255 characters"),
        ("name", json!("has space"), "string_pattern_mismatch", "may contain only letters, digits, '-' and '_'"),
        ("pg_host", json!(""), "string_too_short", "must not be empty"),
        ("pg_host", json!("h".repeat(256)), "string_too_long", "must be at most 255 characters"),
        ("pg_database", json!(""), "string_too_short", "must not be empty"),
        ("pg_username", json!("u".repeat(256)), "string_too_long", "must be at most 255 characters"),
        ("pg_port", json!(0), "greater_than_equal", "must be at least 1"),
        ("pg_port", json!(65536), "less_than_equal", "must be at most 65535"),
        ("replication_id", json!(-1), "greater_than_equal", "must be at least 0"),
        ("pg_password", json!(""), "string_too_short", "must not be empty (send null to remove it)"),
    ];
    for (field, value, kind, msg) in cases {
        let details = source_problems(&with(valid_source(), field, value)).await;
        assert_eq!(details, json!([problem(field, kind, msg)]), "{field}");
    }
    for bad in ["pub'x", "pub x", "1pub", "pub-x"] {
        let details = source_problems(&with(valid_source(), "publication_name", json!(bad))).await;
        assert_eq!(details[0]["type"], "string_pattern_mismatch", "{bad}");
    }
    let details = source_problems(&with(valid_source(), "publication_name", json!("p".repeat(64)))).await;
    assert_eq!(details, json!([problem("publication_name", "string_too_long", "must be at most 63 bytes")]));
}

#[actix_web::test]
async fn tls_settings_are_checked() {
    let details = source_problems(&with(valid_source(), "pg_sslmode", json!("allow"))).await;
    assert_eq!(details[0]["loc"], json!(["body", "pg_sslmode"]), "{details}");
    assert!(details[0]["msg"].as_str().unwrap().contains("verify-full"), "{details}");
    let cases = [
        ("not a certificate", "must hold at least one PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----", "certificate 1 is not valid base64"),
    ];
    for (pem, msg) in cases {
        let details = source_problems(&with(valid_source(), "pg_sslrootcert", json!(pem))).await;
        assert_eq!(details.as_array().map(Vec::len), Some(1), "{details}");
        assert_eq!(details[0]["loc"], json!(["body", "pg_sslrootcert"]), "{details}");
        assert!(details[0]["msg"].as_str().unwrap().contains(msg), "{details}");
    }
}

#[actix_web::test]
async fn json_types_are_not_coerced() {
    let cases = [
        ("pg_port", json!("5432"), "int_type"),
        ("pg_port", json!(5432.5), "int_type"),
        ("pg_port", json!(null), "int_type"),
        ("replication_id", json!(true), "int_type"),
        ("name", json!(5), "string_type"),
        ("pg_host", json!(null), "string_type"),
        ("pg_username", json!(["u"]), "string_type"),
        ("pg_password", json!(1234), "string_type"),
    ];
    for (field, value, kind) in cases {
        let details = source_problems(&with(valid_source(), field, value.clone())).await;
        assert_eq!(details.as_array().map(Vec::len), Some(1), "{field} = {value}: {details}");
        assert_eq!((&details[0]["loc"], &details[0]["type"]), (&json!(["body", field]), &json!(kind)), "{value}");
    }
}

#[actix_web::test]
async fn integral_numbers_are_integers_as_json_schema_says() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_create_source().withf(|new| new.pg_port.get() == 5433).returning(|_| Ok(source(1)));
    let app = start(mocks).await;
    let reply =
        send(&app, api_json(Method::POST, "/api/v1/sources", &with(valid_source(), "pg_port", json!(5433.0)))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[actix_web::test]
async fn duplicate_keys_are_refused() {
    let app = start(Mocks::default()).await;
    let request = api(Method::POST, "/api/v1/sources")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(r#"{"name": "a", "pg_host": "h", "name": "b"}"#);
    let body = send(&app, request).await.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([{"loc": ["body", "name"], "msg": "A key appears more than once in this JSON object", "type": "duplicate_key"}])
    );
}

#[actix_web::test]
async fn updates_refuse_null_for_non_nullable_fields_and_unknown_fields() {
    let app = start(Mocks::default()).await;
    let body = json!({"name": null, "snowflake_account": "bad account", "pg_host": "h"});
    let reply = send(&app, api_json(Method::PATCH, "/api/v1/destinations/1", &body)).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([
            problem("name", "string_type", "Input should be a valid string"),
            problem("snowflake_account", "string_pattern_mismatch", "may contain only letters, digits, '.' and '-'"),
            problem("pg_host", "extra_forbidden", "Extra inputs are not permitted"),
        ])
    );
    let body = json!({"status": "start", "source_id": "1", "snowflake_private_key_passphrase": "x"});
    let reply = send(&app, api_json(Method::PUT, "/api/v1/pipelines/1", &body)).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([
            problem("source_id", "int_type", "Input should be a valid integer"),
            problem("status", "string_pattern_mismatch", "must be one of 'START', 'PAUSE', 'REFRESH'"),
            problem("snowflake_private_key_passphrase", "extra_forbidden", "Extra inputs are not permitted"),
        ])
    );
}

#[actix_web::test]
async fn a_secret_in_an_invalid_body_never_comes_back() {
    let app = start(Mocks::default()).await;
    let secret = "s3cr3t-passphrase-value";
    for body in [
        json!({"name": "", "snowflake_private_key_passphrase": secret}),
        json!({"name": "ok", "snowflake_private_key_passphrase": [secret]}),
        json!({"name": "ok", "snowflake_private_key_passphrase": "x".repeat(1025) + secret}),
    ] {
        let reply = send(&app, api_json(Method::POST, "/api/v1/destinations", &body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!reply.text().contains(secret), "{}", reply.text());
    }
    let raw = format!("{{\"name\": \"ok\", \"pg_password\": \"{secret}\" ");
    let reply = send(
        &app,
        api(Method::POST, "/api/v1/sources").insert_header(("Content-Type", "application/json")).set_payload(raw),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!reply.text().contains(secret), "{}", reply.text());
}

#[actix_web::test]
async fn malformed_json_empty_bodies_and_non_objects_are_422_on_the_body() {
    let app = start(Mocks::default()).await;
    let raw = |payload: &'static str| {
        api(Method::POST, "/api/v1/sources").insert_header(("Content-Type", "application/json")).set_payload(payload)
    };
    let reply = send(&app, raw("{\"name\": ")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([{"loc": ["body"], "msg": "Invalid JSON at line 1 column 9", "type": "json_invalid"}])
    );

    let reply = send(&app, raw("[1, 2]")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([{"loc": ["body"], "msg": "Input should be a JSON object", "type": "dict_type"}])
    );

    let reply = send(&app, api(Method::POST, "/api/v1/sources")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(body["details"], json!([{"loc": ["body"], "msg": "Field required", "type": "missing"}]));
}

#[actix_web::test]
async fn a_non_integer_id_is_422_on_the_path() {
    let app = start(Mocks::default()).await;
    for (method, uri) in [
        (Method::GET, "/api/v1/sources/abc"),
        (Method::DELETE, "/api/v1/destinations/1.5"),
        (Method::POST, "/api/v1/pipelines/99999999999999999999/start"),
    ] {
        let reply = send(&app, api(method, uri)).await;
        let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
        assert_eq!(
            body["details"],
            json!([{"loc": ["path", "id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]),
            "{uri}"
        );
    }
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413() {
    let app = start_with(Mocks::default(), HttpSettings { body_limit_bytes: 100, ..settings() }).await;
    let body = json!({"name": "x".repeat(200)});
    let reply = send(&app, api_json(Method::POST, "/api/v1/destinations", &body)).await;
    let error = reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
    assert_eq!(error["message"], "Request body exceeds the limit of 100 bytes");
    // A body longer than it declared is cut off while it streams in.
    let lying = api_json(Method::POST, "/api/v1/destinations", &body).insert_header(("Content-Length", "10"));
    send(&app, lying).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415() {
    let app = start(Mocks::default()).await;
    let text = api(Method::POST, "/api/v1/sources").insert_header(("Content-Type", "text/plain")).set_payload("{}");
    send(&app, text).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType");
    let untyped = api(Method::PATCH, "/api/v1/sources/1").set_payload("{}");
    send(&app, untyped).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType");
}

#[actix_web::test]
async fn json_with_a_charset_is_accepted() {
    let mut mocks = Mocks::default();
    mocks.destinations.expect_update_destination().returning(|id, _| Ok(destination(id.get())));
    let app = start(mocks).await;
    let request = api(Method::PATCH, "/api/v1/destinations/1")
        .insert_header(("Content-Type", "application/json; charset=utf-8"))
        .set_payload("{}");
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
}
