//! Rosetta's outbound notifications: [`HttpNotifier`] implements the `Notifier` port over
//! reqwest, with the payload of each channel kind (SPEC, "Notification channels"):
//!
//! * `webhook`: `{"type", "timestamp", "data"}` with the Standard Webhooks headers
//!   (`webhook-id`, `webhook-timestamp`, and `webhook-signature` when the channel has a signing
//!   secret: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`);
//! * `slack`: an incoming-webhook message;
//! * `alertmanager`: one alert POSTed to `{url}/api/v2/alerts`.
//!
//! Each send is one attempt: no redirects followed, bounded by the timeout. Errors never carry
//! the URL (a credential) or a secret.

mod payload;
mod signature;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rosetta_domain::{ChannelKind, ChannelTarget, SendResult, Timestamp};
use rosetta_ports::alerts::{Message, Notifier};

pub use signature::sign;

/// The longest error text kept from a receiver's answer.
const MAX_ERROR_CHARS: usize = 200;

/// Why the notifier could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for notifications: {0}")]
pub struct NotifierError(String);

/// Sends notifications over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
    timeout: Duration,
    alertmanager_hold: Duration,
}

impl HttpNotifier {
    /// A notifier whose every send is bounded by `timeout` (connect, send and the answer).
    pub fn new(timeout: Duration) -> Result<Self, NotifierError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("rosetta/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifierError(e.without_url().to_string()))?;
        Ok(Self { client, timeout, alertmanager_hold: Duration::from_secs(8 * 3600) })
    }

    /// How long Alertmanager keeps a firing alert without hearing of it again (its `endsAt`):
    /// Alertmanager resolves an alert it is not told about within its `resolve_timeout`
    /// (5 minutes by default), while Rosetta re-notifies only every `ALERT_RENOTIFY_SECONDS`;
    /// the server sets this to twice that interval. Default 8 h.
    pub fn with_alertmanager_hold(self, hold: Duration) -> Self {
        Self { alertmanager_hold: hold, ..self }
    }
}

#[async_trait]
impl Notifier for HttpNotifier {
    async fn send(&self, target: &ChannelTarget, message: &Message, now: Timestamp) -> SendResult {
        let started = Instant::now();
        let request = match target.channel.kind {
            ChannelKind::Webhook => {
                let (id, body) = payload::webhook(message, now);
                let timestamp = now.timestamp().to_string();
                let mut request = self
                    .client
                    .post(target.url.expose())
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", &timestamp);
                if let Some(secret) = &target.signing_secret {
                    match sign(secret, &id, &timestamp, &body) {
                        Ok(signature) => request = request.header("webhook-signature", signature),
                        Err(_) => {
                            return SendResult {
                                status_code: None,
                                error: Some("the signing secret cannot key HMAC-SHA256".to_owned()),
                                duration_ms: 0,
                            };
                        }
                    }
                }
                request.body(body)
            }
            ChannelKind::Slack => self
                .client
                .post(target.url.expose())
                .header("content-type", "application/json")
                .body(payload::slack(message)),
            ChannelKind::Alertmanager => {
                let url = format!("{}/api/v2/alerts", target.url.expose().trim_end_matches('/'));
                self.client.post(url).header("content-type", "application/json").body(payload::alertmanager(
                    message,
                    now,
                    self.alertmanager_hold,
                ))
            }
        };
        let outcome = request.send().await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(response) => {
                let status = response.status();
                let error = if status.is_success() {
                    None
                } else if status.is_redirection() {
                    Some(format!("the receiver answered {} (redirects are not followed)", status.as_u16()))
                } else {
                    // A few words of the receiver's answer help the operator; never more.
                    let text = response.text().await.unwrap_or_default();
                    let text: String = text.chars().filter(|c| !c.is_control()).take(MAX_ERROR_CHARS).collect();
                    Some(if text.is_empty() {
                        format!("the receiver answered {}", status.as_u16())
                    } else {
                        format!("the receiver answered {}: {text}", status.as_u16())
                    })
                };
                SendResult { status_code: Some(status.as_u16()), error, duration_ms }
            }
            Err(error) => SendResult { status_code: None, error: Some(describe(&error, self.timeout)), duration_ms },
        }
    }
}

/// What went wrong, in words that never contain the URL.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", timeout.as_secs_f64())
    } else if error.is_connect() {
        let mut cause = std::error::Error::source(error);
        let mut detail = String::new();
        while let Some(inner) = cause {
            detail = inner.to_string();
            cause = inner.source();
        }
        if detail.is_empty() { "could not connect".to_owned() } else { format!("could not connect: {detail}") }
    } else if error.is_body() || error.is_decode() {
        "the receiver's answer could not be read".to_owned()
    } else {
        "the request failed".to_owned()
    }
}
