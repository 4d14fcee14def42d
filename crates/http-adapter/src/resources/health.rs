//! Liveness (`GET /health`) and readiness (`GET {prefix}/health`).

use actix_web::{HttpResponse, get, web};
use rosetta_ports::inbound::{Check, CheckStatus, HealthService};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Version;

/// `healthy` or `unhealthy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OverallStatus {
    /// Serving.
    Healthy,
    /// Not ready to serve.
    Unhealthy,
}

/// The state of the service and of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthBody {
    /// Overall status.
    status: OverallStatus,
    /// The running version.
    version: String,
    /// One entry per dependency; empty for liveness.
    checks: Checks,
}

/// The readiness checks (absent from liveness).
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct Checks {
    /// The metadata database.
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<CheckBody>,
    /// The WAL monitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    wal_monitor: Option<CheckBody>,
}

/// `healthy`, `unhealthy` or `disabled`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckState {
    /// Working.
    Healthy,
    /// Not working.
    Unhealthy,
    /// Not running here, by configuration; does not make the service unready.
    Disabled,
    /// Working, but part of its work fails for a reason an operator must fix (see `error`);
    /// does not make the service unready.
    Degraded,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckBody {
    /// Outcome.
    status: CheckState,
    /// How long the check took.
    latency_ms: u64,
    /// Why the check failed (`unhealthy`), or what part of it fails (`degraded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Why the check does not run (only when `disabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// WAL monitor only: seconds since this process last completed a tick. Absent before the
    /// first completed tick and from every other check.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_tick_age_seconds: Option<u64>,
}

impl From<Check> for CheckBody {
    fn from(check: Check) -> Self {
        let (status, error, message) = match check.status {
            CheckStatus::Healthy => (CheckState::Healthy, None, None),
            CheckStatus::Unhealthy(error) => (CheckState::Unhealthy, Some(error), None),
            CheckStatus::Disabled(reason) => (CheckState::Disabled, None, Some(reason)),
            CheckStatus::Degraded(error) => (CheckState::Degraded, Some(error), None),
        };
        Self {
            status,
            latency_ms: check.latency_ms,
            error,
            message,
            last_tick_age_seconds: check.last_tick_age_seconds,
        }
    }
}

/// Liveness: the process serves HTTP. Never touches a dependency.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The process is alive", body = HealthBody,
        example = json!({"status": "healthy", "version": "0.1.0", "checks": {}})))
)]
#[get("/health")]
pub(crate) async fn liveness(version: web::Data<Version>) -> HttpResponse {
    HttpResponse::Ok().json(HealthBody {
        status: OverallStatus::Healthy,
        version: version.0.clone(),
        checks: Checks::default(),
    })
}

/// Readiness: every enabled dependency works. Needs no API key.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "Not ready (this body, not the error body)", body = HealthBody),
    )
)]
#[get("/health")]
pub(crate) async fn readiness(health: web::Data<dyn HealthService>, version: web::Data<Version>) -> HttpResponse {
    let readiness = health.readiness().await;
    let ready = readiness.is_ready();
    let body = HealthBody {
        status: if ready { OverallStatus::Healthy } else { OverallStatus::Unhealthy },
        version: version.0.clone(),
        checks: Checks { database: Some(readiness.database.into()), wal_monitor: Some(readiness.wal_monitor.into()) },
    };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
