//! The one error body of the API and the mapping of every failure onto it.

use std::error::Error as StdError;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::sources::SourceError;
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client should wait before retrying a 503.
const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// The body of every error response: `{"error", "message", "details"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": "NotFound", "message": "Source with id '999' not found",
    "details": {"entity_type": "Source", "entity_id": "999"}}))]
pub(crate) struct ErrorBody {
    /// A stable machine-readable category: `ValidationError`, `NotFound`, `Conflict`, `Unauthorized`,
    /// `RateLimited`, `Unavailable`, `InternalError`, `MethodNotAllowed`, `PayloadTooLarge`,
    /// `UnsupportedMediaType`, `RequestTimeout`, `BadRequest`, `SourceError`, `SourceTimeout`.
    pub error: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// Structured details; their shape depends on `error`.
    pub details: ErrorDetails,
}

/// The `details` of an error body. The branches are disjoint (each object branch names its
/// required fields and allows no others), so every error body matches exactly one.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ErrorDetails {
    /// `ValidationError`: one entry per problem, all problems at once.
    Validation(Vec<FieldError>),
    /// `NotFound` for an entity.
    NotFound(NotFoundDetails),
    /// `Conflict` on a unique field.
    Duplicate(DuplicateDetails),
    /// `Conflict`: the entity is still used by pipelines.
    InUse(InUseDetails),
    /// `RateLimited`.
    RateLimited(RateLimitedDetails),
    /// `SourceError` and `SourceTimeout`: which source, and the SQLSTATE it answered with.
    Source(SourceDetails),
    /// Every other error.
    Empty(NoDetails),
}

/// `details` of `NotFound` for an entity.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotFoundDetails {
    /// `Source`, `Destination`, `Pipeline`, `Alert`, `NotificationChannel`, `AlertRule`, `CleanupTask`
    /// or `Publication`.
    entity_type: &'static str,
    /// The id that was looked for.
    entity_id: String,
}

/// `details` of a `Conflict` on a unique field.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DuplicateDetails {
    /// The kind of entity written.
    entity_type: &'static str,
    /// The unique field.
    field: &'static str,
    /// The clashing value.
    value: String,
}

/// `details` of a `Conflict`: the entity is still used by pipelines.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InUseDetails {
    /// The kind of entity to delete.
    entity_type: &'static str,
    /// Its id.
    entity_id: String,
    /// The pipelines that use it.
    pipelines: Vec<PipelineRef>,
}

/// `details` of `RateLimited`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitedDetails {
    /// Seconds until a request will be accepted again.
    retry_after_seconds: u64,
}

/// `details` of `SourceError` / `SourceTimeout`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceDetails {
    /// The source (0 for settings that are not saved).
    source_id: i64,
    /// The server's SQLSTATE (`28P01`: wrong password; `42501`: missing privilege); null when it
    /// did not answer.
    sqlstate: Option<String>,
}

/// `details` of every other error: an empty object.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoDetails {}

/// A pipeline named by a refused delete.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineRef {
    /// Pipeline id.
    pub id: i64,
    /// Pipeline name.
    pub name: String,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"loc": ["body", "pg_port"], "msg": "must be at most 65535", "type": "less_than_equal"}))]
pub(crate) struct FieldError {
    /// Where the problem is: `["body"]`, `["body", field]`, `["query", name]` or `["path", name]`.
    pub loc: Vec<String>,
    /// What is wrong. Never repeats the rejected input.
    pub msg: String,
    /// A stable machine-readable code (`missing`, `extra_forbidden`, `int_type`, `string_too_long`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// A problem at `loc`.
    pub(crate) fn new(loc: &[&str], kind: impl Into<String>, msg: impl Into<String>) -> Self {
        Self { loc: loc.iter().map(|part| (*part).to_owned()).collect(), msg: msg.into(), kind: kind.into() }
    }
}

/// An error response: a status, the error body and the headers that go with it.
///
/// It never holds the cause of a 5xx: that is logged once where the error is mapped, and the
/// body stays generic.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    /// Boxed: an `ApiError` travels in every `Result` of the request path.
    body: Box<ErrorBody>,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// `Allow`, for 405.
    allow: Option<String>,
    /// Close the connection after answering.
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>, details: ErrorDetails) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody { error, message: message.into(), details }),
            retry_after: None,
            allow: None,
            close: false,
        }
    }

    /// 422 listing every problem.
    pub(crate) fn validation(problems: Vec<FieldError>) -> Self {
        let message = match problems.len() {
            1 => "Request validation failed: 1 problem".to_owned(),
            n => format!("Request validation failed: {n} problems"),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", message, ErrorDetails::Validation(problems))
    }

    /// 404 for an alert rule that does not exist (rules are named, not numbered).
    pub(crate) fn rule_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("AlertRule with id '{name}' not found"),
            ErrorDetails::NotFound(NotFoundDetails { entity_type: "AlertRule", entity_id: name.to_owned() }),
        )
    }

    /// 404 for a path no route serves.
    pub(crate) fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "No route matches this path", ErrorDetails::Empty(NoDetails {}))
    }

    /// 405 for a known path asked with another method; `allow` lists the methods it serves.
    pub(crate) fn method_not_allowed(allow: String) -> Self {
        let message = format!("Method not allowed on this route; allowed: {allow}");
        let mut error =
            Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message, ErrorDetails::Empty(NoDetails {}));
        error.allow = Some(allow);
        error
    }

    /// 413.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("Request body exceeds the limit of {limit} bytes"),
            ErrorDetails::Empty(NoDetails {}),
        )
    }

    /// 415.
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json",
            ErrorDetails::Empty(NoDetails {}),
        )
    }

    /// 400 for a body that could not be received (a broken upload).
    pub(crate) fn unreadable_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body could not be read",
            ErrorDetails::Empty(NoDetails {}),
        )
    }

    /// 408: the body did not arrive within `limit`. The connection is closed after the answer:
    /// the rest of the body may still be on its way.
    pub(crate) fn request_timeout(limit: std::time::Duration) -> Self {
        let mut error = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!("The request body did not arrive within {} s", limit.as_secs_f64()),
            ErrorDetails::Empty(NoDetails {}),
        );
        error.close = true;
        error
    }

    /// 401.
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Missing or invalid API key",
            ErrorDetails::Empty(NoDetails {}),
        )
    }

    /// 429 with the seconds to wait.
    pub(crate) fn rate_limited(retry_after_seconds: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimited",
            format!("Rate limit exceeded; retry in {retry_after_seconds} s"),
            ErrorDetails::RateLimited(RateLimitedDetails { retry_after_seconds }),
        );
        error.retry_after = Some(retry_after_seconds);
        error
    }

    /// 500 with the generic body. The caller logs the cause.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error occurred",
            ErrorDetails::Empty(NoDetails {}),
        )
    }

    /// 503 with the generic body and `Retry-After`. The caller logs the cause.
    fn unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The service is temporarily unavailable; retry later",
            ErrorDetails::Empty(NoDetails {}),
        );
        error.retry_after = Some(UNAVAILABLE_RETRY_AFTER_SECONDS);
        error
    }

    /// The error body for a response some other layer produced with `status` and no JSON body
    /// (a framework error, an unknown static file), so that every error looks the same.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::route_not_found(),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large_unknown(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(),
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable(),
            status if status.is_server_error() => Self::internal(),
            status => {
                let error = if status == StatusCode::METHOD_NOT_ALLOWED { "MethodNotAllowed" } else { "BadRequest" };
                Self::new(
                    status,
                    error,
                    status.canonical_reason().unwrap_or("Bad request"),
                    ErrorDetails::Empty(NoDetails {}),
                )
            }
        }
    }

    fn payload_too_large_unknown() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "Request is too large",
            ErrorDetails::Empty(NoDetails {}),
        )
    }

    /// The body.
    #[cfg(test)]
    pub(crate) fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        if let Some(allow) = self.allow.as_deref().and_then(|allow| HeaderValue::from_str(allow).ok()) {
            response.insert_header((header::ALLOW, allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if self.close {
            response.force_close();
        }
        response.json(&self.body)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound { entity, id } => Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{entity} with id '{id}' not found"),
                ErrorDetails::NotFound(NotFoundDetails { entity_type: entity.as_str(), entity_id: id.to_string() }),
            ),
            ServiceError::Conflict { entity, field, value } => Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("{entity} with {field} '{value}' already exists"),
                ErrorDetails::Duplicate(DuplicateDetails { entity_type: entity.as_str(), field, value }),
            ),
            ServiceError::InUse { entity, id, pipelines } => Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("{entity} with id '{id}' is still used by {} pipeline(s)", pipelines.len()),
                ErrorDetails::InUse(InUseDetails {
                    entity_type: entity.as_str(),
                    entity_id: id.to_string(),
                    pipelines: pipelines
                        .into_iter()
                        .map(|p| PipelineRef { id: p.id.get(), name: p.name.into_inner() })
                        .collect(),
                }),
            ),
            ServiceError::MissingReference { field, entity, id } => Self::validation(vec![FieldError::new(
                &["body", field],
                "invalid_reference",
                format!("{entity} with id '{id}' does not exist"),
            )]),
            ServiceError::InvalidInput { field, error } => {
                Self::validation(vec![FieldError::new(&["body", field], error.kind.code(), error.message)])
            }
            ServiceError::InvalidQuery { parameter, error } => {
                Self::validation(vec![FieldError::new(&["query", parameter], error.kind.code(), error.message)])
            }
            ServiceError::Refused(reason) => {
                Self::new(StatusCode::CONFLICT, "Conflict", reason, ErrorDetails::Empty(NoDetails {}))
            }
            ServiceError::MissingTables(tables) => Self::validation(
                tables
                    .into_iter()
                    .map(|table| {
                        FieldError::new(
                            &["body", "tables"],
                            "invalid_reference",
                            format!("table {table} does not exist"),
                        )
                    })
                    .collect(),
            ),
            ServiceError::PublicationNotFound { name } => Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Publication '{name}' not found"),
                ErrorDetails::NotFound(NotFoundDetails { entity_type: "Publication", entity_id: name }),
            ),
            ServiceError::Source { source_id, error } => {
                let details =
                    SourceDetails { source_id: source_id.get(), sqlstate: error.sqlstate().map(str::to_owned) };
                let (status, kind) = match error {
                    SourceError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "SourceTimeout"),
                    _ => (StatusCode::BAD_GATEWAY, "SourceError"),
                };
                tracing::warn!(source_id = %source_id, error = %error, "source operation failed");
                Self::new(status, kind, format!("Source {source_id}: {error}"), ErrorDetails::Source(details))
            }
            ServiceError::Unavailable(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "a dependency is unavailable");
                Self::unavailable()
            }
            ServiceError::Unexpected(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "internal error");
                Self::internal()
            }
        }
    }
}

/// `outer: inner: innermost`: the whole chain of causes on one line.
fn cause_chain(error: &(dyn StdError + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn the_cause_chain_is_joined() {
        assert_eq!(cause_chain(&Outer(Inner)), "outer: inner");
    }

    #[test]
    fn framework_statuses_get_the_error_body() {
        assert_eq!(ApiError::for_status(StatusCode::BAD_GATEWAY).body().error, "InternalError");
        assert_eq!(ApiError::for_status(StatusCode::NOT_FOUND).body().error, "NotFound");
        assert_eq!(ApiError::for_status(StatusCode::URI_TOO_LONG).status_code(), StatusCode::URI_TOO_LONG);
    }
}
