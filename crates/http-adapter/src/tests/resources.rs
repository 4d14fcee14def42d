//! The resource routes: success shapes, pagination, and the mapping of every `ServiceError`.

use actix_web::http::{Method, StatusCode};
use rosetta_domain::{
    DestinationId, Page, PageLimit, PageRequest, Patch, PipelineId, PipelineName, PipelineStatus, PipelineSummary,
    SourceId,
};
use rosetta_ports::EntityKind;
use rosetta_ports::inbound::{DeleteMode, ServiceError};
use serde_json::json;

use super::*;

#[actix_web::test]
async fn create_source_parses_the_body_and_answers_201_with_the_source() {
    let mut mocks = Mocks::default();
    mocks
        .sources
        .expect_create_source()
        .withf(|new| {
            new.name.as_str() == "orders-primary"
                && new.pg_port.get() == 5432
                && new.pg_password.as_ref().map(|p| p.expose()) == Some("hunter2")
                && new.replication_id.get() == 0
        })
        .returning(|_| Ok(source(1)));
    let app = start(mocks).await;
    let body = json!({
        "name": "Orders-Primary", "pg_host": "db.internal", "pg_database": "app", "pg_username": "rosetta",
        "pg_password": "hunter2", "publication_name": "rosetta_pub", "replication_id": 0
    });
    let reply = send(&app, api_json(Method::POST, "/api/v1/sources", &body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json(), source_json(1));
    assert_eq!(reply.header("location"), Some("/api/v1/sources/1"));
    assert!(!reply.text().contains("hunter2"));
}

#[actix_web::test]
async fn reads_answer_the_wire_shapes() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_get_source().returning(|id| Ok(source(id.get())));
    mocks.destinations.expect_get_destination().returning(|id| Ok(destination(id.get())));
    mocks.pipelines.expect_get_pipeline().returning(|id| Ok(details(id.get(), PipelineStatus::Start)));
    let app = start(mocks).await;

    assert_eq!(send(&app, api(Method::GET, "/api/v1/sources/3")).await.json(), source_json(3));
    assert_eq!(send(&app, api(Method::GET, "/api/v1/destinations/4")).await.json(), destination_json(4));
    let pipeline = send(&app, api(Method::GET, "/api/v1/pipelines/5")).await;
    assert_eq!(pipeline.status, StatusCode::OK);
    assert_eq!(
        pipeline.json(),
        json!({
            "id": 5, "name": "pipe-5", "source_id": 1, "destination_id": 2, "status": "START",
            "slot_name": "rosetta_5", "slot_managed": false,
            "created_at": AT, "updated_at": AT,
            "source": source_json(1), "destination": destination_json(2),
            "pipeline_metadata": {
                "pipeline_id": 5, "status": "RUNNING", "last_error": null, "last_error_at": null,
                "last_start_at": AT, "created_at": AT, "updated_at": AT
            }
        })
    );
}

#[actix_web::test]
async fn put_and_patch_are_both_partial_and_null_clears_a_nullable_field() {
    let mut mocks = Mocks::default();
    mocks
        .sources
        .expect_update_source()
        .withf(|id, patch| {
            id.get() == 9
                && patch.pg_port.map(|p| p.get()) == Some(6432)
                && patch.pg_password == Patch::Clear
                && patch.name.is_none()
                && patch.pg_host.is_none()
        })
        .times(2)
        .returning(|id, _| Ok(source(id.get())));
    mocks
        .destinations
        .expect_update_destination()
        .withf(|id, patch| {
            id.get() == 2
                && patch.snowflake_user == Patch::Clear
                && patch.snowflake_role.as_ref().map(|r| r.as_str()) == Patch::Set("loader")
                && patch.snowflake_private_key_passphrase.is_keep()
                && patch.name.is_none()
        })
        .returning(|id, _| Ok(destination(id.get())));
    let app = start(mocks).await;

    let body = json!({"pg_port": 6432, "pg_password": null});
    for method in [Method::PUT, Method::PATCH] {
        let reply = send(&app, api_json(method.clone(), "/api/v1/sources/9", &body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text());
        assert_eq!(reply.json(), source_json(9));
    }
    let body = json!({"snowflake_user": null, "snowflake_role": "loader"});
    let reply = send(&app, api_json(Method::PATCH, "/api/v1/destinations/2", &body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[actix_web::test]
async fn pipelines_are_created_with_start_by_default_and_patched_with_a_status() {
    let mut mocks = Mocks::default();
    mocks
        .pipelines
        .expect_create_pipeline()
        .withf(|new, provision| {
            !provision
                && new.name.as_str() == "orders"
                && new.source_id == SourceId::new(1)
                && new.destination_id == DestinationId::new(2)
                && new.status == PipelineStatus::Start
        })
        .returning(|_, _| Ok(details(5, PipelineStatus::Start)));
    mocks
        .pipelines
        .expect_update_pipeline()
        .withf(|id, patch| *id == PipelineId::new(5) && patch.status == Some(PipelineStatus::Refresh))
        .returning(|id, _| Ok(details(id.get(), PipelineStatus::Refresh)));
    let app = start(mocks).await;

    let body = json!({"name": "Orders", "source_id": 1, "destination_id": 2});
    let created = send(&app, api_json(Method::POST, "/api/v1/pipelines", &body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.header("location"), Some("/api/v1/pipelines/5"));
    let patched = send(&app, api_json(Method::PATCH, "/api/v1/pipelines/5", &json!({"status": "REFRESH"}))).await;
    assert_eq!(patched.json()["status"], "REFRESH");
}

#[actix_web::test]
async fn lifecycle_actions_ignore_any_body() {
    let mut mocks = Mocks::default();
    for status in PipelineStatus::ALL {
        mocks
            .pipelines
            .expect_set_pipeline_status()
            .withf(move |id, requested| *id == PipelineId::new(5) && *requested == status)
            .times(1)
            .returning(|id, status| Ok(details(id.get(), status)));
    }
    let app = start(mocks).await;
    let start = send(&app, api(Method::POST, "/api/v1/pipelines/5/start")).await;
    assert_eq!((start.status, start.json()["status"].as_str()), (StatusCode::OK, Some("START")));
    let pause = send(&app, api_json(Method::POST, "/api/v1/pipelines/5/pause", &json!({}))).await;
    assert_eq!(pause.json()["pipeline_metadata"]["status"], "PAUSED");
    let refresh = send(
        &app,
        api(Method::POST, "/api/v1/pipelines/5/refresh").insert_header(("Content-Type", "text/plain")).set_payload("x"),
    )
    .await;
    assert_eq!((refresh.status, refresh.json()["status"].as_str()), (StatusCode::OK, Some("REFRESH")));
}

#[actix_web::test]
async fn deletes_answer_204_and_parse_cascade_strictly() {
    let mut mocks = Mocks::default();
    mocks
        .sources
        .expect_delete_source()
        .withf(|id, mode| *id == SourceId::new(1) && *mode == DeleteMode::Restrict)
        .times(2)
        .returning(|_, _| Ok(()));
    mocks
        .destinations
        .expect_delete_destination()
        .withf(|id, mode| *id == DestinationId::new(2) && *mode == DeleteMode::Cascade)
        .returning(|_, _| Ok(()));
    mocks.pipelines.expect_delete_pipeline().returning(|_| Ok(()));
    let app = start(mocks).await;

    for uri in ["/api/v1/sources/1", "/api/v1/sources/1?cascade=false", "/api/v1/destinations/2?cascade=true"] {
        let reply = send(&app, api(Method::DELETE, uri)).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{uri}");
        assert!(reply.body.is_empty(), "{uri}");
    }
    assert_eq!(send(&app, api(Method::DELETE, "/api/v1/pipelines/3")).await.status, StatusCode::NO_CONTENT);

    let reply = send(&app, api(Method::DELETE, "/api/v1/sources/1?cascade=yes")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([{"loc": ["query", "cascade"], "msg": "Input should be a valid boolean: 'true' or 'false'", "type": "bool_parsing"}])
    );
}

#[actix_web::test]
async fn lists_carry_the_total_and_links_to_the_neighbouring_pages() {
    let mut mocks = Mocks::default();
    mocks.destinations.expect_list_destinations().returning(|page: PageRequest| {
        let end = (page.skip + u64::from(page.limit.get())).min(5);
        let items = (page.skip..end).map(|i| destination(i as i64 + 1)).collect();
        Ok(Page { items, total: 5 })
    });
    let app = start(mocks).await;

    let first = send(&app, api(Method::GET, "/api/v1/destinations?limit=2")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-total-count"), Some("5"));
    assert_eq!(first.header("link"), Some("</api/v1/destinations?skip=2&limit=2>; rel=\"next\""));
    assert_eq!(first.json(), json!([destination_json(1), destination_json(2)]));

    let middle = send(&app, api(Method::GET, "/api/v1/destinations?skip=2&limit=2")).await;
    assert_eq!(
        middle.header("link"),
        Some(
            "</api/v1/destinations?skip=4&limit=2>; rel=\"next\", </api/v1/destinations?skip=0&limit=2>; rel=\"prev\""
        )
    );

    let last = send(&app, api(Method::GET, "/api/v1/destinations?skip=4&limit=2")).await;
    assert_eq!(last.header("link"), Some("</api/v1/destinations?skip=2&limit=2>; rel=\"prev\""));
    assert_eq!(last.json().as_array().map(Vec::len), Some(1));

    let beyond = send(&app, api(Method::GET, "/api/v1/destinations?skip=10&limit=2")).await;
    assert_eq!(beyond.header("link"), Some("</api/v1/destinations?skip=4&limit=2>; rel=\"prev\""));
    assert_eq!(beyond.json(), json!([]));

    let only = send(&app, api(Method::GET, "/api/v1/destinations")).await;
    assert_eq!((only.header("link"), only.header("x-total-count")), (None, Some("5")));
}

#[actix_web::test]
async fn lists_use_the_default_page_and_report_every_bad_parameter() {
    let mut mocks = Mocks::default();
    mocks
        .sources
        .expect_list_sources()
        .withf(|page| *page == PageRequest { skip: 0, limit: PageLimit::DEFAULT })
        .returning(|_| Ok(Page { items: vec![source(1)], total: 1 }));
    mocks.pipelines.expect_list_pipelines().returning(|_| Ok(Page { items: vec![], total: 0 }));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/sources?unknown=1")).await;
    assert_eq!(reply.json(), json!([source_json(1)]));
    let empty = send(&app, api(Method::GET, "/api/v1/pipelines?skip=0&limit=1000")).await;
    assert_eq!((empty.json(), empty.header("x-total-count")), (json!([]), Some("0")));

    let reply = send(&app, api(Method::GET, "/api/v1/sources?skip=-1&limit=0")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([
            {"loc": ["query", "skip"], "msg": "Input should be greater than or equal to 0", "type": "greater_than_equal"},
            {"loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1", "type": "greater_than_equal"},
        ])
    );
    let reply = send(&app, api(Method::GET, "/api/v1/sources?skip=x&limit=1001")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([
            {"loc": ["query", "skip"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"},
            {"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"},
        ])
    );
}

#[actix_web::test]
async fn not_found_is_404_with_the_entity() {
    let mut mocks = Mocks::default();
    mocks
        .sources
        .expect_get_source()
        .returning(|id| Err(ServiceError::NotFound { entity: EntityKind::Source, id: id.get() }));
    mocks
        .pipelines
        .expect_set_pipeline_status()
        .returning(|id, _| Err(ServiceError::NotFound { entity: EntityKind::Pipeline, id: id.get() }));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/sources/999")).await;
    reply.assert_error(StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(
        reply.json(),
        json!({"error": "NotFound", "message": "Source with id '999' not found",
               "details": {"entity_type": "Source", "entity_id": "999"}})
    );
    let reply = send(&app, api(Method::POST, "/api/v1/pipelines/8/start")).await;
    assert_eq!(reply.json()["details"], json!({"entity_type": "Pipeline", "entity_id": "8"}));
}

#[actix_web::test]
async fn a_duplicate_name_is_409_naming_the_field() {
    let mut mocks = Mocks::default();
    mocks.destinations.expect_create_destination().returning(|new| {
        Err(ServiceError::Conflict { entity: EntityKind::Destination, field: "name", value: new.name.into_inner() })
    });
    let app = start(mocks).await;
    let reply = send(&app, api_json(Method::POST, "/api/v1/destinations", &json!({"name": "WH"}))).await;
    reply.assert_error(StatusCode::CONFLICT, "Conflict");
    assert_eq!(
        reply.json(),
        json!({"error": "Conflict", "message": "Destination with name 'wh' already exists",
               "details": {"entity_type": "Destination", "field": "name", "value": "wh"}})
    );
}

#[actix_web::test]
async fn deleting_an_entity_in_use_is_409_naming_the_pipelines() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_delete_source().returning(|id, _| {
        Err(ServiceError::InUse {
            entity: EntityKind::Source,
            id: id.get(),
            pipelines: vec![
                PipelineSummary { id: PipelineId::new(4), name: PipelineName::parse("a").unwrap() },
                PipelineSummary { id: PipelineId::new(6), name: PipelineName::parse("b").unwrap() },
            ],
        })
    });
    let app = start(mocks).await;
    let reply = send(&app, api(Method::DELETE, "/api/v1/sources/1")).await;
    reply.assert_error(StatusCode::CONFLICT, "Conflict");
    assert_eq!(
        reply.json()["details"],
        json!({"entity_type": "Source", "entity_id": "1", "pipelines": [{"id": 4, "name": "a"}, {"id": 6, "name": "b"}]})
    );
}

#[actix_web::test]
async fn a_reference_to_a_missing_entity_is_422_on_that_field() {
    let mut mocks = Mocks::default();
    mocks.pipelines.expect_create_pipeline().returning(|new, _| {
        Err(ServiceError::MissingReference {
            field: "destination_id",
            entity: EntityKind::Destination,
            id: new.destination_id.get(),
        })
    });
    let app = start(mocks).await;
    let body = json!({"name": "p", "source_id": 1, "destination_id": 404});
    let reply = send(&app, api_json(Method::POST, "/api/v1/pipelines", &body)).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([{"loc": ["body", "destination_id"], "msg": "Destination with id '404' does not exist", "type": "invalid_reference"}])
    );
}

#[derive(Debug, thiserror::Error)]
#[error("pool timed out: connection to 10.0.0.5:5432 refused")]
struct PoolTimeout;

#[actix_web::test]
async fn unavailable_is_503_with_retry_after_and_a_generic_body() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_list_sources().returning(|_| Err(ServiceError::Unavailable(Box::new(PoolTimeout))));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/sources")).await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert_eq!(reply.json()["details"], json!({}));
    assert!(!reply.text().contains("10.0.0.5"), "the cause stays in the log");
}

#[derive(Debug, thiserror::Error)]
#[error("relation \"sources\" does not exist: SELECT * FROM sources WHERE password = 'hunter2'")]
struct SqlFailure;

#[actix_web::test]
async fn internal_is_500_with_a_generic_body() {
    let mut mocks = Mocks::default();
    mocks.sources.expect_get_source().returning(|_| Err(ServiceError::Unexpected(Box::new(SqlFailure))));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/sources/1")).await;
    reply.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
    assert_eq!(reply.json(), json!({"error": "InternalError", "message": "An internal error occurred", "details": {}}));
    assert_eq!(reply.header("retry-after"), None);
}
