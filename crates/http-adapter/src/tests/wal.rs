//! The WAL monitor's routes: latest state, WAL history, host history, their query validation and
//! the OpenAPI schemas.

use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use chrono::{TimeZone, Utc};
use rosetta_domain::{
    Lsn, PageLimit, PipelineId, PipelineStatus, SlotName, SlotSample, SlotType, SourceId, SourceWalState, SystemSample,
    WalMonitorStatus, WalSample, WalStatus,
};
use rosetta_ports::EntityKind;
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::outbound::SourcePipeline;
use rosetta_ports::wal::{SystemHistoryQuery, WalHistoryEntry, WalHistoryQuery, WalReport};
use serde_json::{Value, json};

use super::*;

/// `0/16B3748`, the current position of every sample below.
const CURRENT: u64 = 0x16B_3748;

/// `2026-01-14T10:11:33.454666Z`, five minutes after [`at`].
fn later() -> Timestamp {
    at() + chrono::Duration::minutes(5)
}

const LATER: &str = "2026-01-14T10:11:33.454666Z";

fn slot(name: &str, slot_type: SlotType, active: bool, restart: Option<u64>, confirmed: Option<u64>) -> SlotSample {
    SlotSample {
        slot_name: name.to_owned(),
        slot_type,
        active,
        temporary: false,
        restart_lsn: restart.map(Lsn::from_bytes),
        confirmed_flush_lsn: confirmed.map(Lsn::from_bytes),
        wal_status: Some(WalStatus::Reserved),
        safe_wal_size_bytes: None,
        conflicting: None,
        inactive_since: None,
        synced: None,
        invalidation_reason: None,
    }
}

/// A logical slot without a consumer, a physical slot streaming, a slot whose WAL is gone, and a
/// logical slot invalidated by a recovery conflict that still reports its `restart_lsn`.
fn sample() -> WalSample {
    WalSample {
        sampled_at: at(),
        in_recovery: false,
        current_lsn: Lsn::from_bytes(CURRENT),
        wal_dir_bytes: Some(16_777_216),
        slots: vec![
            SlotSample {
                safe_wal_size_bytes: Some(1_073_741_824),
                conflicting: Some(false),
                inactive_since: Some(at()),
                synced: None,
                invalidation_reason: None,
                ..slot("rosetta_slot", SlotType::Logical, false, Some(0x16B_0000), Some(0x16B_3000))
            },
            SlotSample {
                wal_status: Some(WalStatus::Extended),
                ..slot("replica", SlotType::Physical, true, Some(0x16B_3700), None)
            },
            SlotSample {
                wal_status: Some(WalStatus::Lost),
                conflicting: Some(false),
                ..slot("gone", SlotType::Logical, false, None, Some(0x100_0000))
            },
            SlotSample {
                conflicting: Some(true),
                ..slot("conflicted", SlotType::Logical, false, Some(0x100_0000), Some(0x100_0000))
            },
        ],
    }
}

/// [`sample`] as the API shows it.
fn sample_json() -> Value {
    json!({
        "sampled_at": AT, "in_recovery": false, "current_lsn": "0/16B3748", "current_lsn_bytes": 23_803_720,
        "wal_dir_bytes": 16_777_216,
        // The largest retention among the slots as shown: the conflicted slot's stale
        // `restart_lsn` (0/1000000, 7 MB back) does not count.
        "size_bytes": 14_152,
        "slots": [
            {
                "slot_name": "rosetta_slot", "slot_type": "logical", "active": false, "temporary": false,
                "restart_lsn": "0/16B0000", "confirmed_flush_lsn": "0/16B3000",
                "retained_bytes": 14_152, "confirmed_lag_bytes": 1_864,
                "wal_status": "reserved", "safe_wal_size_bytes": 1_073_741_824, "conflicting": false,
                "inactive_since": AT, "invalidation_reason": null, "lost": false, "pipeline_id": null
            },
            {
                "slot_name": "replica", "slot_type": "physical", "active": true, "temporary": false,
                "restart_lsn": "0/16B3700", "confirmed_flush_lsn": null,
                "retained_bytes": 72, "confirmed_lag_bytes": null,
                "wal_status": "extended", "safe_wal_size_bytes": null, "conflicting": null,
                "inactive_since": null, "invalidation_reason": null, "lost": false, "pipeline_id": null
            },
            {
                "slot_name": "gone", "slot_type": "logical", "active": false, "temporary": false,
                "restart_lsn": null, "confirmed_flush_lsn": "0/1000000",
                "retained_bytes": null, "confirmed_lag_bytes": null,
                "wal_status": "lost", "safe_wal_size_bytes": null, "conflicting": false,
                "inactive_since": null, "invalidation_reason": null, "lost": true, "pipeline_id": null
            },
            {
                "slot_name": "conflicted", "slot_type": "logical", "active": false, "temporary": false,
                "restart_lsn": "0/1000000", "confirmed_flush_lsn": "0/1000000",
                "retained_bytes": null, "confirmed_lag_bytes": null,
                "wal_status": "reserved", "safe_wal_size_bytes": null, "conflicting": true,
                "inactive_since": null, "invalidation_reason": null, "lost": true, "pipeline_id": null
            }
        ]
    })
}

/// Every sample field null: no sample.
fn no_sample_json() -> Value {
    json!({
        "sampled_at": null, "in_recovery": null, "current_lsn": null, "current_lsn_bytes": null,
        "wal_dir_bytes": null, "size_bytes": null, "slots": null
    })
}

/// `head` with the sample fields of `sample` added.
fn merged(mut head: Value, sample: Value) -> Value {
    if let (Some(head), Value::Object(sample)) = (head.as_object_mut(), sample) {
        head.extend(sample);
    }
    head
}

#[actix_web::test]
async fn the_latest_state_of_every_source_shows_slots_lsns_and_bytes() {
    let mut mocks = Mocks::default();
    mocks.wal_monitor.expect_list_wal_states().times(1).returning(|| {
        let report = |state| WalReport { state, pipelines: Vec::new() };
        Ok(vec![
            WalReport {
                state: SourceWalState {
                    source_id: SourceId::new(1),
                    status: WalMonitorStatus::Idle,
                    last_sample: Some(sample()),
                    error: None,
                    last_attempt_at: Some(at()),
                },
                // The pipeline naming one of its slots.
                pipelines: vec![SourcePipeline {
                    pipeline_id: PipelineId::new(9),
                    source_id: SourceId::new(1),
                    slot_name: SlotName::parse("rosetta_slot").unwrap(),
                    status: PipelineStatus::Start,
                }],
            },
            // Failing now: the last good values are kept.
            report(SourceWalState {
                source_id: SourceId::new(2),
                status: WalMonitorStatus::Error,
                last_sample: Some(WalSample { slots: vec![], wal_dir_bytes: None, ..sample() }),
                error: Some("no answer within 30s".into()),
                last_attempt_at: Some(later()),
            }),
            // Never reached.
            report(SourceWalState {
                source_id: SourceId::new(3),
                status: WalMonitorStatus::Error,
                last_sample: None,
                error: Some("cannot connect: connection refused".into()),
                last_attempt_at: Some(later()),
            }),
        ])
    });
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/wal-monitor")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let mut owned = sample_json();
    owned["slots"][0]["pipeline_id"] = json!(9);
    assert_eq!(
        reply.json(),
        json!([
            merged(json!({"source_id": 1, "status": "IDLE", "error": null, "last_attempt_at": AT}), owned),
            merged(
                json!({"source_id": 2, "status": "ERROR", "error": "no answer within 30s", "last_attempt_at": LATER}),
                json!({
                    "sampled_at": AT, "in_recovery": false, "current_lsn": "0/16B3748",
                    "current_lsn_bytes": 23_803_720, "wal_dir_bytes": null, "size_bytes": null, "slots": []
                })
            ),
            merged(
                json!({"source_id": 3, "status": "ERROR", "error": "cannot connect: connection refused",
                       "last_attempt_at": LATER}),
                no_sample_json()
            ),
        ])
    );
}

#[actix_web::test]
async fn the_state_of_one_source_is_200_even_before_its_first_sample() {
    let mut mocks = Mocks::default();
    mocks.wal_monitor.expect_get_wal_state().withf(|id| *id == SourceId::new(1)).returning(|id| {
        Ok(Some(WalReport {
            state: SourceWalState {
                source_id: id,
                status: WalMonitorStatus::Active,
                last_sample: Some(WalSample { slots: vec![], in_recovery: true, ..sample() }),
                error: None,
                last_attempt_at: Some(at()),
            },
            pipelines: Vec::new(),
        }))
    });
    mocks.wal_monitor.expect_get_wal_state().withf(|id| *id == SourceId::new(7)).returning(|_| Ok(None));
    let app = start(mocks).await;

    let sampled = send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/1")).await;
    assert_eq!(sampled.status, StatusCode::OK, "{}", sampled.text());
    assert_eq!(
        sampled.json(),
        json!({
            "source_id": 1, "status": "ACTIVE", "error": null, "last_attempt_at": AT,
            "sampled_at": AT, "in_recovery": true, "current_lsn": "0/16B3748", "current_lsn_bytes": 23_803_720,
            "wal_dir_bytes": 16_777_216, "size_bytes": 16_777_216, "slots": []
        })
    );

    let unsampled = send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/7")).await;
    assert_eq!(unsampled.status, StatusCode::OK, "{}", unsampled.text());
    assert_eq!(
        unsampled.json(),
        merged(json!({"source_id": 7, "status": null, "error": null, "last_attempt_at": null}), no_sample_json())
    );
}

#[actix_web::test]
async fn the_state_of_an_unknown_source_is_404_and_a_bad_id_422() {
    let mut mocks = Mocks::default();
    mocks
        .wal_monitor
        .expect_get_wal_state()
        .returning(|id| Err(ServiceError::NotFound { entity: EntityKind::Source, id: id.get() }));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/999")).await;
    reply.assert_error(StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(
        reply.json(),
        json!({"error": "NotFound", "message": "Source with id '999' not found",
               "details": {"entity_type": "Source", "entity_id": "999"}})
    );

    let reply = send(&app, api(Method::GET, "/api/v1/wal-monitor/sources/abc")).await;
    let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(
        body["details"],
        json!([{"loc": ["path", "source_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}])
    );
}

#[actix_web::test]
async fn wal_history_passes_the_query_and_shows_failed_rows_with_null_samples() {
    let mut mocks = Mocks::default();
    mocks
        .wal_monitor
        .expect_wal_history()
        .withf(|query| {
            *query
                == WalHistoryQuery {
                    source_id: Some(SourceId::new(1)),
                    // `+02:00`, percent-encoded, is the same instant in UTC.
                    from: Some(Utc.with_ymd_and_hms(2026, 1, 14, 8, 0, 0).unwrap()),
                    to: Some(at()),
                    limit: PageLimit::new(2).unwrap(),
                }
        })
        .times(1)
        .returning(|_| {
            Ok(vec![
                WalHistoryEntry {
                    source_id: SourceId::new(1),
                    recorded_at: later(),
                    status: WalMonitorStatus::Error,
                    sample: None,
                    error: Some("query failed: canceling statement due to statement timeout".into()),
                },
                WalHistoryEntry {
                    source_id: SourceId::new(1),
                    recorded_at: at(),
                    status: WalMonitorStatus::Idle,
                    sample: Some(sample()),
                    error: None,
                },
            ])
        });
    let app = start(mocks).await;
    let uri = format!("/api/v1/metrics/wal?source_id=1&from=2026-01-14T10:00:00%2B02:00&to={AT}&limit=2");
    let reply = send(&app, api(Method::GET, &uri)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!([
            merged(
                json!({"source_id": 1, "recorded_at": LATER, "status": "ERROR",
                       "error": "query failed: canceling statement due to statement timeout"}),
                no_sample_json()
            ),
            merged(json!({"source_id": 1, "recorded_at": AT, "status": "IDLE", "error": null}), sample_json()),
        ])
    );
}

#[actix_web::test]
async fn wal_history_defaults_to_the_newest_100_rows_of_every_source() {
    let mut mocks = Mocks::default();
    mocks
        .wal_monitor
        .expect_wal_history()
        .withf(|query| *query == WalHistoryQuery::default())
        .returning(|_| Ok(vec![]));
    // An offset sent with a raw `+` arrives as a space; it still means that offset.
    mocks
        .wal_monitor
        .expect_wal_history()
        .withf(|query| query.from == Some(Utc.with_ymd_and_hms(2026, 1, 14, 8, 0, 0).unwrap()) && query.to.is_none())
        .returning(|_| Ok(vec![]));
    let app = start(mocks).await;
    for uri in ["/api/v1/metrics/wal", "/api/v1/metrics/wal?from=2026-01-14T10:00:00+02:00&other=1"] {
        let reply = send(&app, api(Method::GET, uri)).await;
        assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!([])), "{uri}");
    }
}

fn query_problem(name: &str, kind: &str, msg: &str) -> Value {
    json!({"loc": ["query", name], "msg": msg, "type": kind})
}

const DATETIME: &str = "Input should be an RFC 3339 date-time with an offset, e.g. 2026-01-14T10:06:33Z";

#[actix_web::test]
async fn history_queries_report_every_bad_parameter_at_once() {
    // No expectations: a query that reaches the service fails the test.
    let app = start(Mocks::default()).await;
    let problems = |uri: &'static str| {
        let app = &app;
        async move {
            let reply = send(app, api(Method::GET, uri)).await;
            reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError")["details"].clone()
        }
    };

    assert_eq!(
        problems("/api/v1/metrics/wal?limit=0&from=bad&source_id=x").await,
        json!([
            query_problem(
                "source_id",
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer"
            ),
            query_problem("from", "datetime_parsing", DATETIME),
            query_problem("limit", "greater_than_equal", "Input should be greater than or equal to 1"),
        ])
    );
    let details = problems("/api/v1/metrics/system?limit=1001&from=2026-01-14T11:00:00Z").await;
    assert_eq!(
        details,
        json!([query_problem("limit", "less_than_equal", "Input should be less than or equal to 1000")]),
    );
    // A time without an offset names no instant; neither does an empty value.
    assert_eq!(
        problems("/api/v1/metrics/system?from=2026-01-14T10:00:00&to=&limit=").await,
        json!([
            query_problem("from", "datetime_parsing", DATETIME),
            query_problem("to", "datetime_parsing", DATETIME),
            query_problem(
                "limit",
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer"
            ),
        ])
    );
}

#[actix_web::test]
async fn system_history_lists_host_samples() {
    let mut mocks = Mocks::default();
    mocks
        .wal_monitor
        .expect_system_history()
        .withf(|query| *query == SystemHistoryQuery { from: Some(at()), to: None, limit: PageLimit::new(1).unwrap() })
        .returning(|_| {
            Ok(vec![SystemSample {
                sampled_at: later(),
                cpu_percent: 12.5,
                memory_used_bytes: 3_221_225_472,
                memory_total_bytes: 8_589_934_592,
                swap_used_bytes: 0,
                swap_total_bytes: 2_147_483_648,
            }])
        });
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, &format!("/api/v1/metrics/system?from={AT}&limit=1"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!([{
            "sampled_at": LATER, "cpu_percent": 12.5, "memory_used_bytes": 3_221_225_472_u64,
            "memory_total_bytes": 8_589_934_592_u64, "swap_used_bytes": 0, "swap_total_bytes": 2_147_483_648_u64
        }])
    );
}

#[derive(Debug, thiserror::Error)]
#[error("pool timed out")]
struct PoolTimeout;

#[actix_web::test]
async fn service_failures_use_the_error_body() {
    let mut mocks = Mocks::default();
    mocks.wal_monitor.expect_list_wal_states().returning(|| Err(ServiceError::Unavailable(Box::new(PoolTimeout))));
    let app = start(mocks).await;
    let reply = send(&app, api(Method::GET, "/api/v1/wal-monitor")).await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
}

#[actix_web::test]
async fn every_wal_route_needs_the_key() {
    let app = start(Mocks::default()).await;
    for uri in [
        "/api/v1/metrics/wal",
        "/api/v1/metrics/wal?limit=0",
        "/api/v1/wal-monitor",
        "/api/v1/wal-monitor/sources/1",
        "/api/v1/metrics/system",
    ] {
        send(&app, TestRequest::get().uri(uri)).await.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let reply = send(&app, api(Method::POST, "/api/v1/wal-monitor")).await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[actix_web::test]
async fn an_inverted_range_is_an_empty_range() {
    let mut mocks = Mocks::default();
    mocks.wal_monitor.expect_wal_history().returning(|_| Ok(vec![]));
    mocks.wal_monitor.expect_system_history().returning(|_| Ok(vec![]));
    let app = start(mocks).await;
    for uri in [
        "/api/v1/metrics/wal?from=2026-01-14T11:00:00Z&to=2026-01-14T12:00:00%2B02:00",
        "/api/v1/metrics/system?from=2026-01-14T11:00:00Z&to=2026-01-14T10:00:00Z",
    ] {
        let reply = send(&app, api(Method::GET, uri)).await;
        assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!([])), "{uri}");
    }
}

#[actix_web::test]
async fn the_openapi_document_describes_the_wal_routes() {
    let document = serde_json::to_value(crate::openapi_document("/api/v1")).unwrap();
    let paths = &document["paths"];
    let schemas = &document["components"]["schemas"];
    let parameters = |path: &str| -> Vec<(String, bool)> {
        paths[path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (format!("{}:{}", p["in"].as_str().unwrap(), p["name"].as_str().unwrap()), p["required"] == true))
            .collect()
    };
    let query = |name: &str| (format!("query:{name}"), false);
    assert_eq!(parameters("/api/v1/metrics/wal"), [query("source_id"), query("from"), query("to"), query("limit")]);
    assert_eq!(parameters("/api/v1/metrics/system"), [query("from"), query("to"), query("limit")]);
    assert_eq!(parameters("/api/v1/wal-monitor/sources/{source_id}"), [("path:source_id".to_owned(), true)]);

    let body_ref = |path: &str, status: &str| {
        paths[path]["get"]["responses"][status]["content"]["application/json"]["schema"].clone()
    };
    let list_of = |schema: &str| json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{schema}")}});
    assert_eq!(body_ref("/api/v1/metrics/wal", "200"), list_of("WalHistoryEntry"));
    assert_eq!(body_ref("/api/v1/wal-monitor", "200"), list_of("SourceWalState"));
    assert_eq!(body_ref("/api/v1/metrics/system", "200"), list_of("SystemSample"));
    assert_eq!(
        body_ref("/api/v1/wal-monitor/sources/{source_id}", "200"),
        json!({"$ref": "#/components/schemas/SourceWalState"})
    );
    for (path, statuses) in [
        ("/api/v1/metrics/wal", &["401", "422", "429", "500", "503"][..]),
        ("/api/v1/wal-monitor", &["401", "429", "500", "503"][..]),
        ("/api/v1/wal-monitor/sources/{source_id}", &["401", "404", "422", "429", "500", "503"][..]),
        ("/api/v1/metrics/system", &["401", "422", "429", "500", "503"][..]),
    ] {
        let operation = &paths[path]["get"];
        assert!(operation["security"].is_array(), "{path} is guarded");
        for status in statuses {
            assert!(operation["responses"].get(*status).is_some(), "{path} lacks {status}");
        }
    }

    // Every field the handlers write is in a schema.
    let properties = |schema: &Value| -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut parts = vec![schema.clone()];
        while let Some(part) = parts.pop() {
            if let Some(reference) = part["$ref"].as_str() {
                parts.push(schemas[reference.trim_start_matches("#/components/schemas/")].clone());
            }
            parts.extend(part["allOf"].as_array().cloned().unwrap_or_default());
            names.extend(part["properties"].as_object().into_iter().flat_map(|p| p.keys().cloned()));
        }
        names
    };
    let keys = |value: &Value| -> BTreeSet<String> { value.as_object().unwrap().keys().cloned().collect() };
    let state = merged(json!({"source_id": 1, "status": null, "error": null, "last_attempt_at": null}), sample_json());
    let entry = merged(json!({"source_id": 1, "recorded_at": AT, "status": "IDLE", "error": null}), sample_json());
    assert_eq!(properties(&schemas["SourceWalState"]), keys(&state));
    assert_eq!(properties(&schemas["WalHistoryEntry"]), keys(&entry));
    assert_eq!(properties(&schemas["ReplicationSlot"]), keys(&sample_json()["slots"][0]));
    let check = properties(&schemas["CheckBody"]);
    assert!(check.contains("last_tick_age_seconds"), "{check:?}");
}
