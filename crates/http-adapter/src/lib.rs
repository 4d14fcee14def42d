//! Rosetta's HTTP API (actix-web).
//!
//! Handlers parse their input strictly, call one inbound port ([`rosetta_ports::inbound`], and
//! [`rosetta_ports::wal::WalMonitorService`] for the WAL monitor's routes) and map the result; every failure answers with the one error body
//! `{"error", "message", "details"}`. Around them: request ids, an access log line per request,
//! request metrics, API-key authentication and an optional per-client rate limit on the versioned
//! routes, the OpenAPI document at `/openapi.json` and Swagger UI at `/docs/` (served from the
//! binary).
//!
//! The API is a value ([`Api`]) that mounts into any actix `App` ([`Api::configure`]), next to
//! scopes of other kinds (a console with its own content types and headers): its error rewriting
//! covers only what the API answers. The binary builds the [`Api`] with the services, the
//! settings and the Prometheus handle of the recorder it installed, calls [`serve`] with it and
//! the other mounts, and stops the returned server itself (signals are not handled here).

mod app;
mod chart;
mod error;
mod input;
mod middleware;
mod openapi;
mod resources;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::Server;
use rosetta_ports::alerts::{AlertService, ChannelService};
use rosetta_ports::inbound::{
    CleanupTaskService, DestinationService, HealthService, PipelineService, SlotService, SourceOperationsService,
    SourceService,
};
use rosetta_ports::wal::WalMonitorService;

pub use middleware::request_context;
pub use openapi::openapi_document;

/// The body limit when none is configured: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long a request body may take to arrive when none is configured.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The use cases the API calls.
#[derive(Clone)]
pub struct ApiServices {
    /// Sources.
    pub sources: Arc<dyn SourceService>,
    /// Destinations.
    pub destinations: Arc<dyn DestinationService>,
    /// Pipelines and their lifecycle.
    pub pipelines: Arc<dyn PipelineService>,
    /// Readiness.
    pub health: Arc<dyn HealthService>,
    /// What the WAL monitor recorded: latest state per source, WAL and host history.
    pub wal_monitor: Arc<dyn WalMonitorService>,
    /// Alerts and their rules.
    pub alerts: Arc<dyn AlertService>,
    /// Notification channels and their deliveries.
    pub channels: Arc<dyn ChannelService>,
    /// Preflight, tables and publication of sources.
    pub source_operations: Arc<dyn SourceOperationsService>,
    /// Pipelines' replication slots.
    pub slots: Arc<dyn SlotService>,
    /// Cleanup tasks.
    pub cleanup_tasks: Arc<dyn CleanupTaskService>,
}

impl ApiServices {
    /// A factory that hands every worker these same services (tests, or services that spawn
    /// nothing per connection).
    pub fn shared(self) -> ServicesFactory {
        Arc::new(move || self.clone())
    }
}

/// Builds the services of one HTTP worker. [`serve`] calls it once on each worker thread as the
/// worker starts, so whatever the services spawn lazily (the database connections' I/O tasks)
/// runs on that worker's own single-threaded runtime: a request then never waits for another
/// thread to be woken to talk to the database.
pub type ServicesFactory = Arc<dyn Fn() -> ApiServices + Send + Sync>;

impl fmt::Debug for ApiServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServices").finish_non_exhaustive()
    }
}

/// A per-client (peer IP) request rate limit on the versioned routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second a client is granted in the long run (> 0).
    pub per_second: u32,
    /// Requests a client may send at once before it must slow down (> 0).
    pub burst: u32,
}

/// How the API is served.
#[derive(Clone)]
pub struct HttpSettings {
    /// Where the versioned routes live, e.g. `/api/v1`: starts with `/`, no trailing `/`.
    pub api_prefix: String,
    /// Accepted API keys; empty turns authentication off.
    pub api_keys: Vec<String>,
    /// The largest request body accepted, in bytes (the default is [`DEFAULT_BODY_LIMIT`]).
    pub body_limit_bytes: usize,
    /// How long a request body may take to arrive (the default is [`DEFAULT_BODY_TIMEOUT`]);
    /// a slower one is answered 408 and its connection closed.
    pub body_timeout: Duration,
    /// How long the request head may take to arrive (then 408 and the connection is closed),
    /// and how long an idle keep-alive connection stays open.
    pub head_timeout: Duration,
    /// The most connections served at once, over all workers; more wait in the listen backlog.
    pub max_connections: usize,
    /// The per-client rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Worker threads; 0 lets actix choose (one per physical core).
    pub workers: usize,
    /// How long a graceful stop waits for in-flight requests (whole seconds, rounded up).
    pub shutdown_timeout: Duration,
    /// The version reported by health and the OpenAPI document.
    pub version: String,
}

impl fmt::Debug for HttpSettings {
    /// Keys are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSettings")
            .field("api_prefix", &self.api_prefix)
            .field("api_keys", &format_args!("[{} redacted]", self.api_keys.len()))
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("body_timeout", &self.body_timeout)
            .field("head_timeout", &self.head_timeout)
            .field("max_connections", &self.max_connections)
            .field("rate_limit", &self.rate_limit)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("version", &self.version)
            .finish()
    }
}

/// The API, ready to be mounted: its settings checked, its OpenAPI document built, and the
/// factory of each worker's services. Cheap to clone (one per worker).
#[derive(Clone, Debug)]
pub struct Api(app::AppState);

impl Api {
    /// The API over the services `services` builds, served as `settings` says; `metrics`
    /// writes what `/metrics` serves.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an API prefix that does not start with `/` or ends with `/`, or a rate
    /// limit with a zero rate or burst.
    pub fn new(services: ServicesFactory, settings: &HttpSettings, metrics: RenderMetrics) -> std::io::Result<Self> {
        describe_metrics();
        app::AppState::new(services, settings, metrics).map(Self)
    }

    /// Mounts the API into an app: `App::new().configure(|cfg| api.configure(cfg))`, inside
    /// the app's factory (it builds the services of the worker that calls it). Wrap the app in
    /// [`request_context`] for request ids, access logs and request metrics.
    ///
    /// The API is one scope at the root that serves its routes and answers every path nothing
    /// registered before it serves (the API's 404 / 405), so register other scopes (a console)
    /// first. Only what that scope answers is rewritten into the error body; the other scopes
    /// keep their own bodies, content types and headers. Its paths are absolute (the document
    /// names them so): mount it in the app itself, not below a path.
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        self.0.configure(cfg);
    }
}

/// Writes the Prometheus text exposition `/metrics` serves (the binary joins the recorder's
/// metrics with those it keeps itself, such as the per-source WAL gauges). Called off the HTTP
/// workers' threads.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Routes served next to the API (the console, say), registered before it in every worker's
/// app so that they take precedence over its catch-all.
pub type Mount = Arc<dyn Fn(&mut actix_web::web::ServiceConfig) + Send + Sync>;

/// Starts serving `api`, with `mounts` next to it, on `listener`: call inside a Tokio runtime;
/// await the returned [`Server`] and stop it through its handle (`stop(true)` for a graceful
/// stop): OS signals are left to the caller. The server's own settings (workers, timeouts,
/// connection limit) come from `settings`.
///
/// The request metrics (`http_requests_total{method,route,status}`,
/// `http_request_duration_seconds{method,route}`) go to the globally installed recorder.
///
/// # Errors
///
/// `InvalidInput` for a zero timeout or connection limit; any error of listening on `listener`.
pub fn serve(listener: TcpListener, api: Api, mounts: Vec<Mount>, settings: &HttpSettings) -> std::io::Result<Server> {
    if settings.body_timeout.is_zero() || settings.head_timeout.is_zero() || settings.max_connections == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "timeouts and the connection limit must be greater than zero",
        ));
    }
    let timeout = settings.shutdown_timeout;
    let shutdown_seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let workers = if settings.workers > 0 {
        settings.workers
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    };
    let server = HttpServer::new(move || app::build_app(&api.0, &mounts))
        .disable_signals()
        .shutdown_timeout(shutdown_seconds)
        // A response written in more than one segment (a long list) must not wait for the
        // client's delayed ACK before its last segment goes out (Nagle).
        .tcp_nodelay(true)
        .workers(workers)
        // Slow or silent clients are cut off: the head within `head_timeout` (actix answers
        // 408), the body within `body_timeout` (the body reader answers 408), and each worker
        // serves at most its share of `max_connections` (the rest wait in the backlog).
        .client_request_timeout(settings.head_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(settings.head_timeout)
        .max_connections((settings.max_connections / workers).max(1));
    Ok(server.listen(listener)?.run())
}

fn describe_metrics() {
    metrics::describe_counter!("http_requests_total", "HTTP requests by method, route pattern and status.");
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request duration by method and route pattern."
    );
}
