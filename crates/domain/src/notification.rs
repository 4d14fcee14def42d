//! Notification channels (where alerts are sent) and deliveries (one alert transition to one
//! channel).

use std::fmt;
use std::str::FromStr;

use crate::text::resource_name;
use crate::{
    AlertId, ChannelId, DeliveryId, InvalidKind, InvalidValue, NotificationType, Patch, Secret, Severity, Timestamp,
};

resource_name!(
    /// A channel's unique name: 1–255 letters, digits, `-`, `_`, lower-cased.
    ChannelName
);

/// The kind of receiver, which decides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// A JSON POST with the Standard Webhooks headers (and signature, with a signing secret).
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// An Alertmanager (`{url}/api/v2/alerts`).
    Alertmanager,
}

impl ChannelKind {
    /// Every kind.
    pub const ALL: [Self; 3] = [Self::Webhook, Self::Slack, Self::Alertmanager];

    /// `webhook`, `slack` or `alertmanager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Alertmanager => "alertmanager",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| {
            InvalidValue::new(InvalidKind::PatternMismatch, "must be 'webhook', 'slack' or 'alertmanager'")
        })
    }
}

/// A channel's `http`/`https` URL. It is a credential (a Slack URL holds a token), so it is
/// handled like a [`Secret`]: `Debug` hides it, and what may be shown is [`ChannelUrl::host`].
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelUrl {
    url: Secret,
    host: String,
}

impl ChannelUrl {
    /// The longest URL accepted.
    pub const MAX_CHARS: usize = Secret::MAX_CHARS;

    /// Parses an absolute `http` or `https` URL with a host (and optional user info, port, path,
    /// query). Error messages never repeat the URL.
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value: String = value.into();
        let bad = |message: &str| InvalidValue::new(InvalidKind::PatternMismatch, message);
        if value.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                InvalidKind::TooLong,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        // White space as JSON Schema (ECMA-262 `\s`) has it: Unicode's, plus the BOM.
        if value.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\u{feff}') {
            return Err(bad("must not contain spaces or control characters"));
        }
        let lower = value.to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("https://") {
            ("https", &value["https://".len()..])
        } else if lower.starts_with("http://") {
            ("http", &value["http://".len()..])
        } else {
            return Err(bad("must be an http:// or https:// URL"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // User info (basic auth for a proxy or Alertmanager) is part of the secret, not the host.
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let (host, port) = split_host_port(host_port).ok_or_else(|| bad("must name a host (and a port 1–65535)"))?;
        let port = port.map(|port| format!(":{port}")).unwrap_or_default();
        Ok(Self { host: format!("{scheme}://{}{port}", host.to_ascii_lowercase()), url: Secret::parse(value)? })
    }

    /// Scheme, host and port: what responses show instead of the URL.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL itself. Call only where it must leave the process (sending, sealing).
    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    /// The URL as a secret, for sealing.
    pub fn secret(&self) -> &Secret {
        &self.url
    }
}

impl fmt::Debug for ChannelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelUrl({}/***)", self.host)
    }
}

/// `host[:port]`: the host (a name or IPv4 address; bracketed IPv6 literals are not accepted —
/// use a name) and the port, if both are well-formed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !host_ok {
        return None;
    }
    match port {
        None => Some((host, None)),
        // Digits only, no leading zero (`+80` and `080` are not ports to us, as for the schema).
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) && !port.starts_with('0') => {
            port.parse::<u16>().ok().map(|port| (host, Some(port)))
        }
        Some(_) => None,
    }
}

/// A webhook's signing secret: at least 16 characters; `whsec_<base64>` keys are used decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SigningSecret(Secret);

impl SigningSecret {
    /// The shortest secret accepted.
    pub const MIN_CHARS: usize = 16;

    /// Wraps a signing secret of 16–1024 characters.
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
        let value: String = value.into();
        if value.chars().count() < Self::MIN_CHARS {
            return Err(InvalidValue::new(
                InvalidKind::TooShort,
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        Secret::parse(value).map(Self)
    }

    /// The secret, for signing and sealing.
    pub fn secret(&self) -> &Secret {
        &self.0
    }
}

/// Where alerts are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationChannel {
    /// Identifier.
    pub id: ChannelId,
    /// Unique name.
    pub name: ChannelName,
    /// Receiver kind.
    pub kind: ChannelKind,
    /// Scheme, host and port of its URL (the URL itself is write-only).
    pub url_host: String,
    /// Whether a signing secret is stored (webhooks).
    pub has_signing_secret: bool,
    /// Only transitions of alerts at least this severe are sent.
    pub min_severity: Severity,
    /// Whether transitions are sent at all.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A channel with its secrets opened: what sending needs.
#[derive(Debug, Clone)]
pub struct ChannelTarget {
    /// The channel.
    pub channel: NotificationChannel,
    /// Its URL.
    pub url: ChannelUrl,
    /// Its signing secret, if any.
    pub signing_secret: Option<SigningSecret>,
}

/// Why channel settings cannot be used together, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {error}")]
pub struct InvalidChannel {
    /// The field: `signing_secret`.
    pub field: &'static str,
    /// What is wrong.
    pub error: InvalidValue,
}

fn check_secret_kind(kind: ChannelKind, has_secret: bool) -> Result<(), InvalidChannel> {
    if has_secret && kind != ChannelKind::Webhook {
        return Err(InvalidChannel {
            field: "signing_secret",
            error: InvalidValue::new(InvalidKind::PatternMismatch, format!("a {kind} channel has no signing secret")),
        });
    }
    Ok(())
}

/// A channel to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    /// Unique name.
    pub name: ChannelName,
    /// Receiver kind.
    pub kind: ChannelKind,
    /// URL.
    pub url: ChannelUrl,
    /// Signing secret (webhooks only).
    pub signing_secret: Option<SigningSecret>,
    /// Default `warning`.
    pub min_severity: Severity,
    /// Default true.
    pub enabled: bool,
}

impl NewChannel {
    /// Checks that the fields fit together (a signing secret only on a webhook).
    pub fn check(&self) -> Result<(), InvalidChannel> {
        check_secret_kind(self.kind, self.signing_secret.is_some())
    }
}

/// A partial change of a channel: `None` / `Patch::Keep` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelPatch {
    /// New name.
    pub name: Option<ChannelName>,
    /// New kind.
    pub kind: Option<ChannelKind>,
    /// New URL.
    pub url: Option<ChannelUrl>,
    /// New signing secret, or `Clear` to remove it.
    pub signing_secret: Patch<SigningSecret>,
    /// New minimum severity.
    pub min_severity: Option<Severity>,
    /// Turn sending on or off.
    pub enabled: Option<bool>,
}

impl ChannelPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.kind.is_none()
            && self.url.is_none()
            && self.signing_secret.is_keep()
            && self.min_severity.is_none()
            && self.enabled.is_none()
    }

    /// Checks the patch against the channel it changes.
    pub fn check(&self, current: &NotificationChannel) -> Result<(), InvalidChannel> {
        let kind = self.kind.unwrap_or(current.kind);
        let has_secret = match &self.signing_secret {
            Patch::Keep => current.has_signing_secret,
            Patch::Clear => false,
            Patch::Set(_) => true,
        };
        check_secret_kind(kind, has_secret)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not sent yet, or to be retried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a 4xx other than 408 / 429, or retried until the maximum age.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| InvalidValue::new(InvalidKind::PatternMismatch, "must be PENDING, DELIVERED or FAILED"))
    }
}

/// One alert transition to be sent to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifier (the `webhook-id` of every attempt).
    pub id: DeliveryId,
    /// The channel.
    pub channel_id: ChannelId,
    /// The alert.
    pub alert_id: AlertId,
    /// The transition.
    pub notification_type: NotificationType,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got one.
    pub status_code: Option<u16>,
    /// The last attempt's error, if it failed.
    pub error: Option<String>,
    /// When the transition happened.
    pub created_at: Timestamp,
    /// When the receiver accepted it.
    pub delivered_at: Option<Timestamp>,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<Timestamp>,
}

/// What one attempt to send gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// The HTTP status, if the receiver answered.
    pub status_code: Option<u16>,
    /// Why it did not work (no secret, no URL in it).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: u64,
}

impl SendResult {
    /// Whether the receiver accepted it (2xx).
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|code| (200..300).contains(&code))
    }

    /// Whether trying again may work: no answer (network, timeout), 408, 429 or 5xx.
    pub fn retryable(&self) -> bool {
        match self.status_code {
            None => true,
            Some(code) => code == 408 || code == 429 || code >= 500,
        }
    }
}

/// The retry policy of deliveries (SPEC): exponential backoff from 1 s, doubling, capped at
/// 5 min, until the delivery is `max_age` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up on a delivery this much after its transition.
    pub max_age_seconds: u64,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Delivered.
    Delivered,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Given up.
    Failed,
}

impl RetryPolicy {
    /// The first retry's delay.
    pub const FIRST_DELAY_SECONDS: u64 = 1;
    /// The longest delay between attempts.
    pub const MAX_DELAY_SECONDS: u64 = 300;

    /// What follows attempt number `attempts` (1 = the first) of a delivery created at
    /// `created_at`, which gave `result` at `now`.
    pub fn after(&self, result: &SendResult, attempts: u32, created_at: Timestamp, now: Timestamp) -> AfterAttempt {
        if result.delivered() {
            return AfterAttempt::Delivered;
        }
        if !result.retryable() {
            return AfterAttempt::Failed;
        }
        let exponent = attempts.saturating_sub(1).min(16);
        let delay = (Self::FIRST_DELAY_SECONDS << exponent).min(Self::MAX_DELAY_SECONDS);
        let next = now + chrono::TimeDelta::seconds(i64::try_from(delay).unwrap_or(i64::MAX));
        let deadline = created_at + chrono::TimeDelta::seconds(i64::try_from(self.max_age_seconds).unwrap_or(i64::MAX));
        if next > deadline { AfterAttempt::Failed } else { AfterAttempt::RetryAt(next) }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host_and_show_only_the_host() {
        let url = ChannelUrl::parse("https://hooks.slack.com/services/T0/B0/secret-token").unwrap();
        assert_eq!(url.host(), "https://hooks.slack.com");
        assert!(!format!("{url:?}").contains("secret-token"));
        assert_eq!(ChannelUrl::parse("http://user:pw@127.0.0.1:9093").unwrap().host(), "http://127.0.0.1:9093");
        assert_eq!(ChannelUrl::parse("HTTP://localhost:8080/x?y").unwrap().host(), "http://localhost:8080");
        assert_eq!(ChannelUrl::parse("https://Example.COM?q=1").unwrap().host(), "https://example.com");
        for bad in [
            "ftp://example.com",
            "example.com/hook",
            "https://",
            "https:///path",
            "https://host:0/",
            "https://host:99999/",
            "https://host:port/",
            "https://ho st/",
            "https://host/\n",
            "javascript:alert(1)",
            "https://[::1]/",
            "https://[]/",
            "https://host:080/",
            "https://host:+80/",
            "https://ho%st/",
        ] {
            let err = ChannelUrl::parse(bad).unwrap_err();
            assert!(!err.message.contains(bad), "{bad}: {err}");
        }
        assert_eq!(
            ChannelUrl::parse(format!("https://h/{}", "x".repeat(2048))).unwrap_err().kind,
            InvalidKind::TooLong
        );
    }

    #[test]
    fn signing_secrets_are_at_least_16_characters_and_only_for_webhooks() {
        assert_eq!(SigningSecret::parse("short").unwrap_err().kind, InvalidKind::TooShort);
        let secret = SigningSecret::parse("0123456789abcdef").unwrap();
        let mut new = NewChannel {
            name: ChannelName::parse("ops").unwrap(),
            kind: ChannelKind::Slack,
            url: ChannelUrl::parse("https://hooks.slack.com/x").unwrap(),
            signing_secret: Some(secret),
            min_severity: Severity::Warning,
            enabled: true,
        };
        assert_eq!(new.check().unwrap_err().field, "signing_secret");
        new.kind = ChannelKind::Webhook;
        assert!(new.check().is_ok());
    }

    #[test]
    fn retries_double_from_one_second_capped_at_five_minutes_until_the_maximum_age() {
        let policy = RetryPolicy { max_age_seconds: 86_400 };
        let t0 = Timestamp::default();
        let failed = |code| SendResult { status_code: code, error: Some("no".into()), duration_ms: 1 };
        let ok = SendResult { status_code: Some(204), error: None, duration_ms: 1 };
        assert_eq!(policy.after(&ok, 1, t0, t0), AfterAttempt::Delivered);
        assert_eq!(policy.after(&failed(Some(400)), 1, t0, t0), AfterAttempt::Failed);
        assert_eq!(policy.after(&failed(Some(404)), 1, t0, t0), AfterAttempt::Failed);
        for code in [None, Some(408), Some(429), Some(500), Some(503)] {
            assert_eq!(policy.after(&failed(code), 1, t0, t0), AfterAttempt::RetryAt(t0 + TimeDelta::seconds(1)));
        }
        assert_eq!(policy.after(&failed(None), 2, t0, t0), AfterAttempt::RetryAt(t0 + TimeDelta::seconds(2)));
        assert_eq!(policy.after(&failed(None), 9, t0, t0), AfterAttempt::RetryAt(t0 + TimeDelta::seconds(256)));
        assert_eq!(policy.after(&failed(None), 10, t0, t0), AfterAttempt::RetryAt(t0 + TimeDelta::seconds(300)));
        assert_eq!(policy.after(&failed(None), 1000, t0, t0), AfterAttempt::RetryAt(t0 + TimeDelta::seconds(300)));
        let late = t0 + TimeDelta::seconds(86_400 - 100);
        assert_eq!(policy.after(&failed(None), 30, t0, late), AfterAttempt::Failed, "past the maximum age");
        let redirect = SendResult { status_code: Some(302), error: None, duration_ms: 1 };
        assert_eq!(policy.after(&redirect, 1, t0, t0), AfterAttempt::Failed, "redirects are not followed");
    }
}
