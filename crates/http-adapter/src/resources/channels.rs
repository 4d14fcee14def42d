//! `{prefix}/notification-channels`: where alerts are sent, and what was sent.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use rosetta_domain::{
    ChannelId, ChannelKind, ChannelName, ChannelPatch, ChannelUrl, Delivery, NewChannel, NotificationChannel,
    SendResult, Severity, SigningSecret,
};
use rosetta_ports::alerts::ChannelService;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ListQuery, created, id_path, page, timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::input::body::{Body, Fields, WriteBody, described_body};
use crate::input::path::Path;
use crate::input::query::Query;

/// A channel as read: the URL and signing secret are write-only.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NotificationChannel)]
pub(crate) struct ChannelBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    pub name: String,
    /// `webhook`, `slack` or `alertmanager`.
    #[schema(example = "webhook")]
    pub kind: &'static str,
    /// Scheme, host and port of the URL (the URL itself is a credential and never returned).
    #[schema(example = "https://hooks.example.com")]
    pub url_host: String,
    /// Whether a signing secret is stored.
    pub has_signing_secret: bool,
    /// Only transitions of alerts at least this severe are sent.
    #[schema(example = "warning")]
    pub min_severity: &'static str,
    /// Whether transitions are sent.
    pub enabled: bool,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<NotificationChannel> for ChannelBody {
    fn from(channel: NotificationChannel) -> Self {
        Self {
            id: channel.id.get(),
            name: channel.name.into_inner(),
            kind: channel.kind.as_str(),
            url_host: channel.url_host,
            has_signing_secret: channel.has_signing_secret,
            min_severity: channel.min_severity.as_str(),
            enabled: channel.enabled,
            created_at: timestamp(channel.created_at),
            updated_at: timestamp(channel.updated_at),
        }
    }
}

/// One delivery of an alert transition to a channel.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NotificationDelivery)]
pub(crate) struct DeliveryBody {
    /// Identifier (the `webhook-id` of every attempt).
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// The transition: `alert.firing`, `alert.escalated`, `alert.resolved`, `alert.renotify`.
    #[serde(rename = "type")]
    #[schema(example = "alert.firing")]
    pub notification_type: &'static str,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    #[schema(example = "DELIVERED")]
    pub state: &'static str,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's HTTP status.
    pub status_code: Option<u16>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// When the transition happened.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the receiver accepted it.
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// When the next attempt is due (pending deliveries).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
}

impl From<Delivery> for DeliveryBody {
    fn from(delivery: Delivery) -> Self {
        Self {
            id: delivery.id.get(),
            alert_id: delivery.alert_id.get(),
            notification_type: delivery.notification_type.as_str(),
            state: delivery.state.as_str(),
            attempts: delivery.attempts,
            status_code: delivery.status_code,
            error: delivery.error,
            created_at: timestamp(delivery.created_at),
            delivered_at: delivery.delivered_at.map(timestamp),
            next_attempt_at: delivery.next_attempt_at.map(timestamp),
        }
    }
}

/// What a test message gave.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestResult {
    /// Whether the receiver accepted it (2xx).
    pub delivered: bool,
    /// Its HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it did not work.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: u64,
}

impl From<SendResult> for TestResult {
    fn from(result: SendResult) -> Self {
        Self {
            delivered: result.delivered(),
            status_code: result.status_code,
            error: result.error,
            duration_ms: result.duration_ms,
        }
    }
}

const NAME: &str = "Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.";
const KIND: &str = "The receiver: `webhook` (Standard Webhooks), `slack` (incoming webhook) or `alertmanager`.";
const URL: &str = "The receiver's `http`/`https` URL (for `alertmanager` its base URL). Write-only: a credential.";
const SECRET: &str = "Webhooks only: the signing secret (≥ 16 characters; `whsec_<base64>` is used decoded). \
                      Write-only; `null` removes it.";
const MIN_SEVERITY: &str = "Send only transitions of alerts at least this severe.";
const ENABLED: &str = "Send transitions at all.";

impl WriteBody for NewChannel {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required::<ChannelName>("name", NAME);
        let kind = f.required::<ChannelKind>("kind", KIND);
        let url = f.required::<ChannelUrl>("url", URL);
        let signing_secret = f.nullable::<SigningSecret>("signing_secret", SECRET).apply(None);
        let min_severity = f.optional::<Severity>("min_severity", MIN_SEVERITY);
        let enabled = f.optional::<bool>("enabled", ENABLED);
        Some(Self {
            name: name?,
            kind: kind?,
            url: url?,
            signing_secret,
            min_severity: min_severity.unwrap_or(Severity::Warning),
            enabled: enabled.unwrap_or(true),
        })
    }
}

impl WriteBody for ChannelPatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", NAME),
            kind: f.optional("kind", KIND),
            url: f.optional("url", URL),
            signing_secret: f.nullable("signing_secret", SECRET),
            min_severity: f.optional("min_severity", MIN_SEVERITY),
            enabled: f.optional("enabled", ENABLED),
        })
    }
}

described_body!(ChannelCreate for NewChannel, "The body of `POST /notification-channels`.");
described_body!(
    ChannelUpdate for ChannelPatch,
    "The body of `PATCH /notification-channels/{id}`: every field optional (omitted = unchanged); `null` removes \
     the signing secret."
);
id_path!(
    /// `/notification-channels/{id}`.
    ChannelPath(ChannelId),
    "id",
    "Channel id"
);

/// Creates a notification channel.
#[utoipa::path(
    tag = "alerts",
    request_body = ChannelCreate,
    responses(
        (status = 201, description = "Created", body = ChannelBody,
            headers(("Location" = String, description = "The new channel's URL"))),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body (every problem listed)", body = ErrorBody),
    )
)]
#[post("/notification-channels")]
pub(crate) async fn create_channel(
    req: HttpRequest,
    channels: web::Data<dyn ChannelService>,
    body: Body<ChannelCreate>,
) -> Result<HttpResponse, ApiError> {
    let channel = channels.create_channel(body.0).await?;
    Ok(created(&req, channel.id.get(), ChannelBody::from(channel)))
}

/// Lists notification channels by id.
#[utoipa::path(
    tag = "alerts",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, ordered by id", body = [ChannelBody], headers(
            ("X-Total-Count" = u64, description = "Number of channels"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 422, description = "Invalid `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/notification-channels")]
pub(crate) async fn list_channels(
    req: HttpRequest,
    channels: web::Data<dyn ChannelService>,
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = query.0.0;
    let list = channels.list_channels(paging).await?;
    Ok(page(&req, paging, list, ChannelBody::from))
}

/// Reads a notification channel.
#[utoipa::path(
    tag = "alerts",
    params(ChannelPath),
    responses(
        (status = 200, description = "The channel", body = ChannelBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/notification-channels/{id}")]
pub(crate) async fn get_channel(
    channels: web::Data<dyn ChannelService>,
    path: Path<ChannelPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ChannelBody::from(channels.get_channel(path.0.0).await?)))
}

/// Changes a notification channel: omitted fields are kept.
#[utoipa::path(
    tag = "alerts",
    params(ChannelPath),
    request_body = ChannelUpdate,
    responses(
        (status = 200, description = "The updated channel", body = ChannelBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id", body = ErrorBody),
    )
)]
#[patch("/notification-channels/{id}")]
pub(crate) async fn patch_channel(
    channels: web::Data<dyn ChannelService>,
    path: Path<ChannelPath>,
    body: Body<ChannelUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ChannelBody::from(channels.update_channel(path.0.0, body.0).await?)))
}

/// Deletes a notification channel and its deliveries.
#[utoipa::path(
    tag = "alerts",
    params(ChannelPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[delete("/notification-channels/{id}")]
pub(crate) async fn delete_channel(
    channels: web::Data<dyn ChannelService>,
    path: Path<ChannelPath>,
) -> Result<HttpResponse, ApiError> {
    channels.delete_channel(path.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends a test message now, once, without retries (also to a disabled channel).
#[utoipa::path(
    tag = "alerts",
    params(ChannelPath),
    responses(
        (status = 200, description = "What the receiver did with it", body = TestResult),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/notification-channels/{id}/test")]
pub(crate) async fn test_channel(
    channels: web::Data<dyn ChannelService>,
    path: Path<ChannelPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(TestResult::from(channels.test_channel(path.0.0).await?)))
}

/// Lists a channel's deliveries, newest first.
#[utoipa::path(
    tag = "alerts",
    params(ChannelPath, ListQuery),
    responses(
        (status = 200, description = "One page, newest first", body = [DeliveryBody], headers(
            ("X-Total-Count" = u64, description = "Number of the channel's deliveries"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "Invalid id, `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/notification-channels/{id}/deliveries")]
pub(crate) async fn list_deliveries(
    req: HttpRequest,
    channels: web::Data<dyn ChannelService>,
    path: Path<ChannelPath>,
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = query.0.0;
    let list = channels.list_deliveries(path.0.0, paging).await?;
    Ok(page(&req, paging, list, DeliveryBody::from))
}
