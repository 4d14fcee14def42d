//! Handler tests: the whole app (middleware, routes, error mapping) against mocked inbound ports,
//! through `actix_web::test`. No database.

mod chart;
mod composition;
mod meta;
mod resources;
mod security;
mod serve;
mod source_operations;
mod validation;
mod wal;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_http::Request;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::web::Bytes;
use chrono::{TimeZone, Utc};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rosetta_domain::{
    Destination, DestinationId, DestinationName, PgDatabase, PgHost, PgPort, PgUsername, Pipeline, PipelineDetails,
    PipelineId, PipelineMetadata, PipelineName, PipelineStatus, PublicationName, ReplicationId, ShortText,
    SnowflakeAccount, SnowflakeSettings, Source, SourceId, SourceName, Timestamp,
};
use rosetta_ports::alerts::{MockAlertService, MockChannelService};
use rosetta_ports::inbound::{
    MockCleanupTaskService, MockDestinationService, MockHealthService, MockPipelineService, MockSlotService,
    MockSourceOperationsService, MockSourceService,
};
use rosetta_ports::wal::MockWalMonitorService;
use serde_json::Value;

use crate::app::build_app;
use crate::{Api, ApiServices, HttpSettings};

/// The key the test settings accept.
pub(crate) const KEY: &str = "test-key-0123456789";

/// One mock per inbound port; a mock without expectations panics when called.
#[derive(Default)]
pub(crate) struct Mocks {
    pub sources: MockSourceService,
    pub destinations: MockDestinationService,
    pub pipelines: MockPipelineService,
    pub health: MockHealthService,
    pub wal_monitor: MockWalMonitorService,
    pub alerts: MockAlertService,
    pub channels: MockChannelService,
    pub source_operations: MockSourceOperationsService,
    pub slots: MockSlotService,
    pub cleanup_tasks: MockCleanupTaskService,
}

impl Mocks {
    /// The services the app is built with.
    pub(crate) fn into_services(self) -> ApiServices {
        ApiServices {
            sources: Arc::new(self.sources),
            destinations: Arc::new(self.destinations),
            pipelines: Arc::new(self.pipelines),
            health: Arc::new(self.health),
            wal_monitor: Arc::new(self.wal_monitor),
            alerts: Arc::new(self.alerts),
            channels: Arc::new(self.channels),
            source_operations: Arc::new(self.source_operations),
            slots: Arc::new(self.slots),
            cleanup_tasks: Arc::new(self.cleanup_tasks),
        }
    }
}

/// Settings with authentication on and no rate limit.
pub(crate) fn settings() -> HttpSettings {
    HttpSettings {
        api_prefix: "/api/v1".to_owned(),
        api_keys: vec!["other-key".to_owned(), KEY.to_owned()],
        body_limit_bytes: crate::DEFAULT_BODY_LIMIT,
        body_timeout: crate::DEFAULT_BODY_TIMEOUT,
        head_timeout: Duration::from_secs(5),
        max_connections: 1000,
        rate_limit: None,
        workers: 1,
        shutdown_timeout: Duration::from_secs(1),
        version: "1.2.3".to_owned(),
    }
}

/// The process-wide metrics recorder and log subscriber, installed once before any app exists:
/// a subscriber installed later would race with callsites other tests register first.
fn metrics_handle() -> crate::RenderMetrics {
    let handle = recorder();
    Arc::new(move || handle.render())
}

/// The process-wide recorder (see [`metrics_handle`]).
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let subscriber = tracing_subscriber::fmt().with_writer(Capture).with_ansi(false).finish();
            tracing::subscriber::set_global_default(subscriber).expect("install the subscriber");
            PrometheusBuilder::new().install_recorder().expect("install the recorder")
        })
        .clone()
}

/// Every log line of this test binary.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// A `MakeWriter` that appends to [`LOGS`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capture;

/// The log lines written so far, by every test (filter them by request id).
pub(crate) fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().expect("log buffer")).into_owned()
}

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        Capture
    }
}

/// The app with `mocks` and `settings`.
pub(crate) async fn start_with(
    mocks: Mocks,
    settings: HttpSettings,
) -> impl Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> {
    let api = Api::new(mocks.into_services().shared(), &settings, metrics_handle()).expect("valid settings");
    test::init_service(build_app(&api.0, &[])).await
}

/// The app with `mocks` and the default test settings.
pub(crate) async fn start(
    mocks: Mocks,
) -> impl Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> {
    start_with(mocks, settings()).await
}

/// A request with the API key.
pub(crate) fn api(method: Method, uri: &str) -> TestRequest {
    TestRequest::default().method(method).uri(uri).insert_header(("Authorization", format!("Bearer {KEY}")))
}

/// A JSON request with the API key.
pub(crate) fn api_json(method: Method, uri: &str, body: &Value) -> TestRequest {
    api(method, uri).insert_header(("Content-Type", "application/json")).set_payload(body.to_string())
}

/// A response, read completely.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status and that the body is the one error body with `error`.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode, error: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        assert_eq!(body["error"], error, "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert!(body.get("details").is_some(), "{body}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(3), "only error, message, details: {body}");
        body
    }
}

/// Sends `request` and reads the whole response.
pub(crate) async fn send(
    app: &impl Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    request: TestRequest,
) -> Reply {
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    Reply { status, headers, body }
}

/// `2026-01-14T10:06:33.454666Z`.
pub(crate) fn at() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 14, 10, 6, 33).single().expect("valid date") + chrono::Duration::microseconds(454_666)
}

pub(crate) const AT: &str = "2026-01-14T10:06:33.454666Z";

pub(crate) fn source(id: i64) -> Source {
    Source {
        id: SourceId::new(id),
        name: SourceName::parse(format!("source-{id}")).unwrap(),
        pg_host: PgHost::parse("db.internal").unwrap(),
        pg_port: PgPort::new(5432).unwrap(),
        pg_database: PgDatabase::parse("app").unwrap(),
        pg_username: PgUsername::parse("rosetta").unwrap(),
        has_password: true,
        pg_sslmode: rosetta_domain::PgSslMode::VerifyFull,
        pg_sslrootcert: None,
        publication_name: PublicationName::parse("rosetta_pub").unwrap(),
        replication_id: ReplicationId::new(7).unwrap(),
        created_at: at(),
        updated_at: at(),
    }
}

pub(crate) fn source_json(id: i64) -> Value {
    serde_json::json!({
        "id": id, "name": format!("source-{id}"), "pg_host": "db.internal", "pg_port": 5432,
        "pg_database": "app", "pg_username": "rosetta", "has_password": true,
        "pg_sslmode": "verify-full", "pg_sslrootcert": null,
        "publication_name": "rosetta_pub", "replication_id": 7, "created_at": AT, "updated_at": AT
    })
}

pub(crate) fn destination(id: i64) -> Destination {
    Destination {
        id: DestinationId::new(id),
        name: DestinationName::parse(format!("dest-{id}")).unwrap(),
        settings: SnowflakeSettings {
            snowflake_account: Some(SnowflakeAccount::parse("xy12345.eu-central-1").unwrap()),
            snowflake_user: Some(ShortText::parse("loader").unwrap()),
            snowflake_database: None,
            snowflake_schema: None,
            snowflake_role: None,
            snowflake_private_key_path: Some(ShortText::parse("/keys/rsa.p8").unwrap()),
            snowflake_host: None,
        },
        has_private_key_passphrase: false,
        created_at: at(),
        updated_at: at(),
    }
}

pub(crate) fn destination_json(id: i64) -> Value {
    serde_json::json!({
        "id": id, "name": format!("dest-{id}"), "snowflake_account": "xy12345.eu-central-1",
        "snowflake_user": "loader", "snowflake_database": null, "snowflake_schema": null,
        "snowflake_role": null, "snowflake_private_key_path": "/keys/rsa.p8", "snowflake_host": null,
        "has_private_key_passphrase": false, "created_at": AT, "updated_at": AT
    })
}

pub(crate) fn details(id: i64, status: PipelineStatus) -> PipelineDetails {
    let pipeline_id = PipelineId::new(id);
    PipelineDetails {
        pipeline: Pipeline {
            id: pipeline_id,
            name: PipelineName::parse(format!("pipe-{id}")).unwrap(),
            source_id: SourceId::new(1),
            destination_id: DestinationId::new(2),
            status,
            slot_name: rosetta_domain::SlotName::for_pipeline(pipeline_id),
            slot_managed: false,
            metadata: PipelineMetadata::initial(pipeline_id, status, at()),
            created_at: at(),
            updated_at: at(),
        },
        source: source(1),
        destination: destination(2),
    }
}
