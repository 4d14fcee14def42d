//! The source-operation routes over mocked ports: bodies, the 502/504 error body, the 409/422
//! rules, and `/sources/validate` next to `/sources/{id}`.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use rosetta_domain::{
    CheckName, CheckStatus, LiveSlot, PipelineId, PipelineSlot, Preflight, PreflightCheck, PublicationTables, SlotName,
    SourceId, TableName,
};
use rosetta_ports::inbound::{ServiceError, SlotCreated};
use rosetta_ports::sources::SourceError;
use serde_json::json;

use super::*;

fn slot(live: bool, managed: bool) -> PipelineSlot {
    PipelineSlot {
        slot_name: SlotName::parse("rosetta_3").unwrap(),
        managed,
        live: live.then(|| LiveSlot {
            active: false,
            plugin: Some("pgoutput".into()),
            restart_lsn: Some(rosetta_domain::Lsn::from_bytes(0x16B_3748)),
            confirmed_flush_lsn: None,
            retained_bytes: Some(72),
            wal_status: Some(rosetta_domain::WalStatus::Reserved),
        }),
    }
}

#[actix_web::test]
async fn validate_is_its_own_route_beside_a_source_id() {
    let mut mocks = Mocks::default();
    mocks.source_operations.expect_validate_settings().returning(|_| {
        Ok(Preflight {
            checks: vec![PreflightCheck {
                name: CheckName::Connect,
                status: CheckStatus::Fail,
                message: "cannot connect: refused".into(),
                fix: Some("check the host".into()),
            }],
        })
    });
    let app = start(mocks).await;
    let body = json!({"name": "s", "pg_host": "h", "pg_database": "d", "pg_username": "u", "publication_name": "p",
                      "replication_id": 1});
    let reply = send(&app, api_json(Method::POST, "/api/v1/sources/validate", &body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"ok": false, "checks": [{"name": "connect", "status": "fail", "message": "cannot connect: refused",
                                        "fix": "check the host"}]})
    );
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let reply = send(&app, api(method.clone(), "/api/v1/sources/validate")).await;
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
        assert_eq!(reply.header("allow"), Some("POST, OPTIONS"), "{method}");
    }
    let reply = send(&app, api(Method::OPTIONS, "/api/v1/sources/validate")).await;
    assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
}

#[actix_web::test]
async fn source_failures_are_502_and_504_with_the_source_and_sqlstate() {
    let mut mocks = Mocks::default();
    mocks.source_operations.expect_list_tables().returning(|id| {
        Err(ServiceError::Source {
            source_id: id,
            error: SourceError::Connect {
                message: "FATAL 28P01: password authentication failed".into(),
                sqlstate: Some("28P01".into()),
            },
        })
    });
    mocks.source_operations.expect_get_publication().returning(|id| {
        Err(ServiceError::Source { source_id: id, error: SourceError::Timeout(Duration::from_secs(10)) })
    });
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/sources/4/tables")).await;
    let body = reply.assert_error(StatusCode::BAD_GATEWAY, "SourceError");
    assert_eq!(body["details"], json!({"source_id": 4, "sqlstate": "28P01"}));
    let reply = send(&app, api(Method::GET, "/api/v1/sources/4/publication")).await;
    let body = reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "SourceTimeout");
    assert_eq!(body["details"], json!({"source_id": 4, "sqlstate": null}));
}

#[actix_web::test]
async fn a_publication_body_names_tables_or_all_tables() {
    let mut mocks = Mocks::default();
    mocks
        .source_operations
        .expect_set_publication()
        .withf(|id, tables| {
            *id == SourceId::new(2)
                && *tables == PublicationTables::exactly(vec![TableName::parse("public.Orders").unwrap()]).unwrap()
        })
        .returning(|_, _| Err(ServiceError::MissingTables(vec!["public.Orders".into()])));
    let app = start(mocks).await;
    let path = "/api/v1/sources/2/publication";
    let reply = send(&app, api_json(Method::PUT, path, &json!({"tables": ["public.Orders", "public.Orders"]}))).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(body["details"][0]["loc"], json!(["body", "tables"]));
    assert!(body["details"][0]["msg"].as_str().unwrap().contains("public.Orders"));
    for wrong in [json!({}), json!({"all_tables": false}), json!({"tables": ["public.a"], "all_tables": true})] {
        let reply = send(&app, api_json(Method::PUT, path, &wrong)).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    }
    let reply = send(&app, api_json(Method::PUT, path, &json!({"tables": ["orders", 3]}))).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(body["details"][0]["loc"], json!(["body", "tables", "0"]));
    assert_eq!(body["details"][1]["loc"], json!(["body", "tables", "1"]));
    let reply = send(&app, api_json(Method::PUT, path, &json!({"tables": []}))).await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
}

#[actix_web::test]
async fn slots_are_201_when_created_200_when_they_existed_and_409_while_consumed() {
    let mut mocks = Mocks::default();
    mocks
        .slots
        .expect_create_slot()
        .withf(|id| *id == PipelineId::new(3))
        .returning(|_| Ok(SlotCreated { slot: slot(true, true), created: true }));
    mocks
        .slots
        .expect_create_slot()
        .withf(|id| *id == PipelineId::new(4))
        .returning(|_| Ok(SlotCreated { slot: slot(true, false), created: false }));
    mocks.slots.expect_get_slot().returning(|_| Ok(slot(false, true)));
    mocks
        .slots
        .expect_drop_slot()
        .withf(|_, force| !force)
        .returning(|_, _| Err(ServiceError::Refused("a consumer is attached; use ?force=true".into())));
    mocks.slots.expect_drop_slot().withf(|_, force| *force).returning(|_, _| Ok(()));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::POST, "/api/v1/pipelines/3/slot")).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.json(),
        json!({"slot_name": "rosetta_3", "exists": true, "active": false, "plugin": "pgoutput",
               "restart_lsn": "0/16B3748", "confirmed_flush_lsn": null, "retained_bytes": 72,
               "wal_status": "reserved", "managed": true})
    );
    let reply = send(&app, api(Method::POST, "/api/v1/pipelines/4/slot")).await;
    assert_eq!((reply.status, reply.json()["managed"].clone()), (StatusCode::OK, json!(false)));
    let reply = send(&app, api(Method::GET, "/api/v1/pipelines/3/slot")).await;
    assert_eq!(reply.json()["exists"], false);
    send(&app, api(Method::DELETE, "/api/v1/pipelines/3/slot")).await.assert_error(StatusCode::CONFLICT, "Conflict");
    assert_eq!(
        send(&app, api(Method::DELETE, "/api/v1/pipelines/3/slot?force=true")).await.status,
        StatusCode::NO_CONTENT
    );
    let reply = send(&app, api(Method::DELETE, "/api/v1/pipelines/3/slot?force=maybe")).await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
}
