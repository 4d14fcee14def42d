//! Cross-cutting request handling: the request context of the whole app (request ids, the tracing
//! root span with its access log line, request metrics), the API's boundary (body receipt, the
//! uniform error body) and the guard of its versioned scope (rate limit, then API key).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tracing::Instrument;

use crate::RateLimit;
use crate::error::ApiError;
use crate::input::body::{BodySettings, Unreceived, receive_body};

/// An answer's body that keeps the rest of the request's unreceived body alive until it has been
/// written: the HTTP server then sees the request body unread (rather than abandoned) and closes
/// the connection after the answer instead of reading the rest for as long as the client sends
/// it (see `receive_body`).
struct ClosingBody {
    answer: BoxBody,
    _rest: actix_web::dev::Payload,
}

impl MessageBody for ClosingBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.answer.size()
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.answer).poll_next(cx)
    }
}

/// The request id header, accepted from the client and echoed in every response.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The API key header accepted besides `Authorization: Bearer`.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// The longest client-supplied request id kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The client's `X-Request-Id` when it is 1–128 visible ASCII characters: anything else could
/// forge log lines or bloat them.
fn incoming_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(X_REQUEST_ID)?.to_str().ok()?;
    let acceptable =
        !value.is_empty() && value.len() <= MAX_REQUEST_ID_LEN && value.bytes().all(|byte| byte.is_ascii_graphic());
    acceptable.then(|| value.to_owned())
}

/// The request context, outermost around an app serving the API (and whatever is mounted next
/// to it): assigns the request id, opens the request's root span (method, route, path, client,
/// request id, status) and writes one access log line when the request ends, echoes the id in
/// `X-Request-Id`, and records `http_requests_total` / `http_request_duration_seconds`. It
/// leaves bodies alone: error bodies are the business of the scope that answered.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = incoming_request_id(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Field values are computed only when the span is enabled (not at LOG_LEVEL=warn).
    let span = tracing::info_span!(
        "HTTP request",
        http.method = %req.method(),
        http.target = %req.path(),
        http.route = tracing::field::Empty,
        http.client_ip = %client_ip(&req),
        http.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    let method = method_label(req.method());
    // Every inner layer turns its errors into responses, so `Err` only comes from a mount that
    // does not; actix renders it.
    let mut response = next.call(req).instrument(span.clone()).await?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }

    // The matched pattern (never the raw path) keeps the label set bounded.
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if !span.is_disabled() {
        span.record("http.route", route.as_str());
        span.record("http.status_code", status);
        span.in_scope(|| {
            tracing::info!(http.status_code = status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request completed");
        });
    }
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    Ok(response)
}

/// The boundary of the API's scope: receives the request body within the configured limit and
/// time, routes `HEAD` as `GET` (RFC 9110: a server serving GET serves HEAD; the HTTP codec,
/// which remembers the request was HEAD, sends the headers without the body), and gives every
/// error the API answers the one error body — framework errors (an extractor, an unknown
/// static file of the docs UI) included.
pub(crate) async fn api_boundary(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let settings = req.app_data::<BodySettings>().copied().unwrap_or_default();
    let response = match receive_body(&mut req, settings).await {
        // Every inner layer turns its errors into responses, so `Err` cannot reach here; if one
        // ever does, actix renders it.
        Ok(()) => next.call(req).await?.map_into_boxed_body(),
        Err(Unreceived { error, rest }) => {
            let response =
                error.error_response().map_body(|_, answer| BoxBody::new(ClosingBody { answer, _rest: rest }));
            req.into_response(response)
        }
    };
    if response.status().as_u16() >= 400 && !is_json(response.headers()) {
        return Ok(uniform_error(response));
    }
    Ok(response)
}

/// The peer's IP address for the log, empty when unknown (e.g. a Unix socket).
fn client_ip(req: &ServiceRequest) -> String {
    req.peer_addr().map(|peer| peer.ip().to_string()).unwrap_or_default()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// Replaces a non-JSON error response (a framework error, an unknown static file) by the error
/// body for its status.
fn uniform_error(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if status.is_server_error() {
        // The request span carries the request id.
        let cause = response.response().error().map(ToString::to_string).unwrap_or_default();
        tracing::error!(status = status.as_u16(), error = %cause, "request failed");
    }
    let (request, _) = response.into_parts();
    ServiceResponse::new(request, ApiError::for_status(status).error_response())
}

/// A bounded label for the method: extension methods would let clients mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// What guards the versioned routes: an optional per-client rate limit and optional API keys.
#[derive(Debug)]
pub(crate) struct Guard {
    /// The path, below the prefix, that needs neither key nor quota (readiness).
    pub open_path: &'static str,
    /// `None`: authentication is off.
    pub keys: Option<ApiKeys>,
    /// `None`: no rate limit.
    pub limiter: Option<ClientLimiter>,
}

/// The guard of the versioned scope: the rate limit first (so that key guessing is throttled
/// too), then the API key. The readiness route is exempt from both.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(guard) = req.app_data::<web::Data<Guard>>().cloned() else {
        tracing::error!("the API guard is not configured");
        return Ok(req.into_response(ApiError::internal().error_response()).map_into_right_body());
    };
    // The part of the path the scope's router will match, so the exemption agrees with routing
    // (percent-encoding and all).
    if req.match_info().unprocessed() != guard.open_path {
        if let Some(limiter) = &guard.limiter
            && let Err(retry_after) = limiter.check(req.peer_addr().map(|peer| peer.ip()))
        {
            let response = ApiError::rate_limited(retry_after).error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
        if let Some(keys) = &guard.keys
            && !keys.accepts(req.headers())
        {
            return Ok(req.into_response(ApiError::unauthorized().error_response()).map_into_right_body());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// The configured API keys, kept as SHA-256 digests so that every comparison is between equal
/// lengths and runs in constant time.
pub(crate) struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    /// Empty keys are dropped: they would let an empty bearer token in.
    pub(crate) fn new(keys: &[String]) -> Self {
        Self { digests: keys.iter().filter(|key| !key.is_empty()).map(|key| digest(key.as_bytes())).collect() }
    }

    /// Whether `Authorization: Bearer <key>` or `X-API-Key: <key>` holds a configured key.
    fn accepts(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().as_bytes());
        let api_key = headers.get(X_API_KEY).map(HeaderValue::as_bytes);
        let mut accepted = Choice::from(0);
        for presented in [bearer, api_key].into_iter().flatten().filter(|key| !key.is_empty()) {
            let presented = digest(presented);
            // No early exit: every configured key is compared.
            for known in &self.digests {
                accepted |= known.ct_eq(&presented);
            }
        }
        accepted.into()
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Who a request is counted against: its peer IP (IPv6 by /64, which one host usually owns), or
/// one shared bucket for requests without a peer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    Ip(IpAddr),
    Unknown,
}

impl ClientKey {
    fn of(peer: Option<IpAddr>) -> Self {
        match peer.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(ip)) => {
                let segments = ip.segments();
                Self::Ip(IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                )))
            }
            Some(ip) => Self::Ip(ip),
            None => Self::Unknown,
        }
    }
}

/// A per-client GCRA limiter shared by every worker.
pub(crate) struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    checks: AtomicU64,
}

impl std::fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientLimiter({} clients)", self.limiter.len())
    }
}

impl ClientLimiter {
    /// How many checks pass between two purges of idle clients.
    const PURGE_EVERY: u64 = 1024;

    /// `None` when the rate or the burst is zero.
    pub(crate) fn new(limit: RateLimit) -> Option<Self> {
        let quota = Quota::per_second(NonZeroU32::new(limit.per_second)?).allow_burst(NonZeroU32::new(limit.burst)?);
        Some(Self { limiter: RateLimiter::keyed(quota), checks: AtomicU64::new(0) })
    }

    /// `Err(seconds to wait)` when the client is over its quota.
    fn check(&self, peer: Option<IpAddr>) -> Result<(), u64> {
        // Keyed state grows with every client ever seen; forget the ones back at full quota.
        if self.checks.fetch_add(1, Ordering::Relaxed) % Self::PURGE_EVERY == Self::PURGE_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ClientKey::of(peer)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: "retry in 0 s" would invite an immediate retry that fails again.
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn keys_are_accepted_from_either_header() {
        let keys = ApiKeys::new(&["k1".to_owned(), "second-key".to_owned(), String::new()]);
        assert!(keys.accepts(&headers(&[("authorization", "Bearer second-key")])));
        assert!(keys.accepts(&headers(&[("authorization", "bearer k1")])));
        assert!(keys.accepts(&headers(&[("x-api-key", "k1")])));
        assert!(!keys.accepts(&headers(&[("authorization", "Bearer k2")])));
        assert!(!keys.accepts(&headers(&[("authorization", "Basic k1")])));
        assert!(!keys.accepts(&headers(&[("authorization", "Bearer ")])));
        assert!(!keys.accepts(&headers(&[("x-api-key", "")])));
        assert!(!keys.accepts(&HeaderMap::new()));
        assert!(!ApiKeys::new(&[String::new()]).accepts(&headers(&[("x-api-key", "")])));
    }

    #[test]
    fn request_ids_must_be_short_visible_ascii() {
        assert_eq!(incoming_request_id(&headers(&[("x-request-id", "req-42")])).as_deref(), Some("req-42"));
        assert_eq!(incoming_request_id(&headers(&[("x-request-id", &"a".repeat(128))])).map(|id| id.len()), Some(128));
        assert!(incoming_request_id(&headers(&[("x-request-id", &"a".repeat(129))])).is_none());
        assert!(incoming_request_id(&headers(&[("x-request-id", "has space")])).is_none());
        assert!(incoming_request_id(&headers(&[("x-request-id", "")])).is_none());
    }

    #[test]
    fn ipv6_clients_are_counted_by_prefix() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ClientKey::of(Some(a)), ClientKey::of(Some(b)));
        assert_eq!(ClientKey::of(Some(mapped)), ClientKey::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(ClientKey::of(None), ClientKey::Unknown);
    }

    #[test]
    fn the_limiter_allows_the_burst_then_asks_to_wait() {
        let limiter = ClientLimiter::new(RateLimit { per_second: 1, burst: 2 }).unwrap();
        let peer = Some("10.0.0.1".parse().unwrap());
        assert!(limiter.check(peer).is_ok());
        assert!(limiter.check(peer).is_ok());
        assert_eq!(limiter.check(peer), Err(1));
        assert!(limiter.check(Some("10.0.0.2".parse().unwrap())).is_ok(), "other clients have their own quota");
        assert!(ClientLimiter::new(RateLimit { per_second: 0, burst: 1 }).is_none());
    }
}
