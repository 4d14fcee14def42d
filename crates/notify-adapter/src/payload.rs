//! The bodies each channel kind receives.

use chrono::SecondsFormat;
use rosetta_domain::{Alert, AlertState, Timestamp};
use rosetta_ports::alerts::Message;
use serde::Serialize;
use serde_json::json;

fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The alert object of the API, as webhooks receive it in `data`.
#[derive(Debug, Serialize)]
struct AlertData<'a> {
    id: i64,
    rule: &'static str,
    severity: &'static str,
    state: &'static str,
    source_id: Option<i64>,
    source_name: &'a str,
    slot_name: Option<&'a str>,
    summary: &'a str,
    value: Option<i64>,
    threshold: Option<i64>,
    started_at: String,
    updated_at: String,
    resolved_at: Option<String>,
    acknowledged_at: Option<String>,
    last_notified_at: Option<String>,
}

impl<'a> From<&'a Alert> for AlertData<'a> {
    fn from(alert: &'a Alert) -> Self {
        Self {
            id: alert.id.get(),
            rule: alert.rule.as_str(),
            severity: alert.severity.as_str(),
            state: alert.state.as_str(),
            source_id: alert.source_id.map(|id| id.get()),
            source_name: &alert.source_name,
            slot_name: alert.slot_name.as_deref(),
            summary: &alert.summary,
            value: alert.value,
            threshold: alert.threshold,
            started_at: rfc3339(alert.started_at),
            updated_at: rfc3339(alert.updated_at),
            resolved_at: alert.resolved_at.map(rfc3339),
            acknowledged_at: alert.acknowledged_at.map(rfc3339),
            last_notified_at: alert.last_notified_at.map(rfc3339),
        }
    }
}

/// The webhook message id and body.
pub(crate) fn webhook(message: &Message, now: Timestamp) -> (String, String) {
    match message {
        Message::Alert { delivery, notification_type, alert } => {
            let body = json!({
                "type": notification_type.as_str(),
                "timestamp": rfc3339(now),
                "data": AlertData::from(alert.as_ref()),
            });
            (format!("delivery_{delivery}"), body.to_string())
        }
        Message::Test { message_id, channel_id } => {
            let body = json!({
                "type": "test",
                "timestamp": rfc3339(now),
                "data": {"channel_id": channel_id.get(), "message": "Test notification from Rosetta"},
            });
            (message_id.clone(), body.to_string())
        }
    }
}

/// A Slack incoming-webhook message.
pub(crate) fn slack(message: &Message) -> String {
    let text = match message {
        Message::Alert { notification_type, alert, .. } => {
            let what = match (notification_type, alert.state) {
                (_, AlertState::Resolved) => "resolved",
                (rosetta_domain::NotificationType::Escalated, _) => "escalated",
                (rosetta_domain::NotificationType::Renotify, _) => "still firing",
                _ => "firing",
            };
            format!(
                "*{}* {} — {} ({} on {})",
                alert.severity.as_str().to_uppercase(),
                what,
                alert.summary,
                alert.rule,
                alert.source_name
            )
        }
        Message::Test { .. } => "Test notification from Rosetta".to_owned(),
    };
    json!({ "text": text }).to_string()
}

/// One alert for Alertmanager's `POST /api/v2/alerts`.
/// A firing alert ends `hold` from now unless it is sent again (a re-notification or an
/// escalation); a resolved one at its resolution.
pub(crate) fn alertmanager(message: &Message, now: Timestamp, hold: std::time::Duration) -> String {
    let alerts = match message {
        Message::Alert { alert, .. } => {
            let mut labels = serde_json::Map::new();
            labels.insert("alertname".into(), alert.rule.as_str().into());
            labels.insert("severity".into(), alert.severity.as_str().into());
            labels.insert("source".into(), alert.source_name.clone().into());
            if let Some(id) = alert.source_id {
                labels.insert("source_id".into(), id.get().to_string().into());
            }
            if let Some(slot) = &alert.slot_name {
                labels.insert("slot_name".into(), slot.clone().into());
            }
            let mut entry = json!({
                "labels": labels,
                "annotations": {"summary": alert.summary},
                "startsAt": rfc3339(alert.started_at),
            });
            let ends_at = match alert.resolved_at {
                Some(resolved_at) => resolved_at,
                None => now + chrono::TimeDelta::from_std(hold).unwrap_or(chrono::TimeDelta::hours(8)),
            };
            entry["endsAt"] = rfc3339(ends_at).into();
            json!([entry])
        }
        Message::Test { channel_id, .. } => json!([{
            "labels": {"alertname": "rosetta_test", "severity": "warning", "channel_id": channel_id.get().to_string()},
            "annotations": {"summary": "Test notification from Rosetta"},
            "startsAt": rfc3339(now),
            // A test resolves at once, so it never lingers on a dashboard.
            "endsAt": rfc3339(now),
        }]),
    };
    alerts.to_string()
}
