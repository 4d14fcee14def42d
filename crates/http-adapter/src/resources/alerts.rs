//! `{prefix}/alerts` and the alert rules: what fired, and the settings it fires by.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use rosetta_domain::{
    Alert, AlertFilter, AlertId, AlertRule, AlertState, PageRequest, RuleSettings, RuleSettingsPatch, Severity,
    SourceId,
};
use rosetta_ports::alerts::{AlertService, SourceRule};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ListQuery, id_path, page, timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::input::body::{Body, Fields, WriteBody, described_body};
use crate::input::path::{Path, PathFields, PathInput, described_path};
use crate::input::query::{Query, QueryFields, QueryInput, described_query};
use crate::input::values::{RuleSeconds, Threshold};
use crate::input::{Problem, TextInput};

/// An alert: one firing of one rule for one subject.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Alert)]
pub(crate) struct AlertBody {
    /// Identifier.
    pub id: i64,
    /// The rule that fired.
    #[schema(example = "slot_retained_bytes")]
    pub rule: &'static str,
    /// `warning` or `critical` (the last while it fired, once resolved).
    #[schema(example = "warning")]
    pub severity: &'static str,
    /// `FIRING` or `RESOLVED`.
    #[schema(example = "FIRING")]
    pub state: &'static str,
    /// The source; `null` once the source was deleted.
    pub source_id: Option<i64>,
    /// The source's name when the alert last changed.
    pub source_name: String,
    /// The slot, for slot rules.
    pub slot_name: Option<String>,
    /// One sentence for an operator.
    pub summary: String,
    /// The measured value in the rule's unit (bytes or seconds); `null` for rules without one.
    pub value: Option<i64>,
    /// The threshold it crossed, in the same unit.
    pub threshold: Option<i64>,
    /// When it started firing (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// When it resolved.
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    /// When it was acknowledged (cleared by an escalation).
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
    /// When a notification of it was last written.
    #[schema(format = DateTime)]
    pub last_notified_at: Option<String>,
}

impl From<Alert> for AlertBody {
    fn from(alert: Alert) -> Self {
        Self {
            id: alert.id.get(),
            rule: alert.rule.as_str(),
            severity: alert.severity.as_str(),
            state: alert.state.as_str(),
            source_id: alert.source_id.map(SourceId::get),
            source_name: alert.source_name,
            slot_name: alert.slot_name,
            summary: alert.summary,
            value: alert.value,
            threshold: alert.threshold,
            started_at: timestamp(alert.started_at),
            updated_at: timestamp(alert.updated_at),
            resolved_at: alert.resolved_at.map(timestamp),
            acknowledged_at: alert.acknowledged_at.map(timestamp),
            last_notified_at: alert.last_notified_at.map(timestamp),
        }
    }
}

/// A rule's settings; fields the rule does not use are `null`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AlertRuleSettings)]
pub(crate) struct RuleBody {
    /// The rule.
    #[schema(example = "slot_retained_bytes")]
    pub rule: &'static str,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Warning threshold, in the rule's unit.
    pub warning: Option<u64>,
    /// Critical threshold, in the rule's unit.
    pub critical: Option<u64>,
    /// How long the condition must hold, in seconds.
    pub for_seconds: Option<u64>,
    /// The WAL-rate window of `slot_time_to_lost`, in seconds.
    pub window_seconds: Option<u64>,
}

impl From<RuleSettings> for RuleBody {
    fn from(settings: RuleSettings) -> Self {
        Self {
            rule: settings.rule().as_str(),
            enabled: settings.enabled(),
            warning: settings.warning(),
            critical: settings.critical(),
            for_seconds: settings.for_seconds(),
            window_seconds: settings.window_seconds(),
        }
    }
}

/// A rule's effective settings for one source.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SourceAlertRule)]
pub(crate) struct SourceRuleBody {
    /// The rule.
    pub rule: &'static str,
    /// Whether it is evaluated for this source.
    pub enabled: bool,
    /// Warning threshold.
    pub warning: Option<u64>,
    /// Critical threshold.
    pub critical: Option<u64>,
    /// How long the condition must hold, in seconds.
    pub for_seconds: Option<u64>,
    /// The WAL-rate window, in seconds.
    pub window_seconds: Option<u64>,
    /// Whether these are the source's own settings (else the global ones).
    pub overridden: bool,
}

impl From<SourceRule> for SourceRuleBody {
    fn from(own: SourceRule) -> Self {
        let RuleBody { rule, enabled, warning, critical, for_seconds, window_seconds } = own.settings.into();
        Self { rule, enabled, warning, critical, for_seconds, window_seconds, overridden: own.overridden }
    }
}

impl WriteBody for RuleSettingsPatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            enabled: f.optional::<bool>("enabled", "Evaluate the rule or not."),
            warning: f
                .nullable::<Threshold>(
                    "warning",
                    "Warning threshold in the rule's unit (bytes; seconds left for `slot_time_to_lost`); `null` uses \
                     only the critical one. Byte rules need warning ≤ critical, `slot_time_to_lost` warning ≥ \
                     critical.",
                )
                .map(|t| t.0),
            critical: f
                .nullable::<Threshold>(
                    "critical",
                    "Critical threshold in the rule's unit; `null` uses only the warning one.",
                )
                .map(|t| t.0),
            for_seconds: f
                .nullable::<RuleSeconds>(
                    "for_seconds",
                    "How long the condition must hold before the alert fires (rules with a duration).",
                )
                .map(|s| s.0),
            window_seconds: f
                .nullable::<RuleSeconds>("window_seconds", "The WAL-rate window of `slot_time_to_lost` (≥ 1 s).")
                .map(|s| s.0),
        })
    }
}

described_body!(
    AlertRuleUpdate for RuleSettingsPatch,
    "The body of `PATCH /alert-rules/{rule}` and `PATCH /sources/{id}/alert-rules/{rule}`: omitted fields are \
     kept; a setting the rule does not use must be omitted or `null`."
);

/// The filters and page of `GET /alerts`.
#[derive(Debug, Clone)]
pub(crate) struct AlertsQuery {
    filter: AlertFilter,
    page: PageRequest,
}

impl QueryInput for AlertsQuery {
    fn read(q: &mut QueryFields) -> Option<Self> {
        let state = q.optional::<AlertState>("state", "Only alerts in this state.");
        let source_id = q.optional::<SourceId>("source_id", "Only alerts of this source.");
        let severity = q.optional::<Severity>("severity", "Only alerts of this severity.");
        let rule = q.optional::<AlertRule>("rule", "Only alerts of this rule.");
        let page = ListQuery::read(q);
        Some(Self { filter: AlertFilter { state, source_id, severity, rule }, page: page?.0 })
    }
}

described_query!(AlertsQuery);
id_path!(
    /// `/alerts/{id}`.
    AlertPath(AlertId),
    "id",
    "Alert id"
);

/// A rule named in a path: any text (an unknown rule is a 404, not an input error), documented
/// as the rule names.
#[derive(Debug, Clone)]
pub(crate) struct RuleName(String);

impl TextInput for RuleName {
    fn schema() -> utoipa::openapi::schema::Object {
        <AlertRule as TextInput>::schema()
    }
    fn parse(raw: &str) -> Result<Self, Problem> {
        Ok(Self(raw.to_owned()))
    }
}

impl RuleName {
    fn rule(&self) -> Result<AlertRule, ApiError> {
        self.0.parse().map_err(|_| ApiError::rule_not_found(&self.0))
    }
}

/// `/alert-rules/{rule}`.
#[derive(Debug, Clone)]
pub(crate) struct RulePath(RuleName);

impl PathInput for RulePath {
    fn read(p: &mut PathFields<'_>) -> Option<Self> {
        p.segment::<RuleName>("rule", "Rule name").map(Self)
    }
}

described_path!(RulePath);

/// `/sources/{id}/alert-rules/{rule}`.
#[derive(Debug, Clone)]
pub(crate) struct SourceRulePath {
    source: SourceId,
    rule: RuleName,
}

impl PathInput for SourceRulePath {
    fn read(p: &mut PathFields<'_>) -> Option<Self> {
        let source = p.segment::<SourceId>("id", "Source id");
        let rule = p.segment::<RuleName>("rule", "Rule name");
        Some(Self { source: source?, rule: rule? })
    }
}

described_path!(SourceRulePath);
id_path!(
    /// `/sources/{id}/alert-rules`.
    SourceRulesPath(SourceId),
    "id",
    "Source id"
);

/// Lists alerts, newest `started_at` first.
#[utoipa::path(
    tag = "alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "One page, newest first", body = [AlertBody], headers(
            ("X-Total-Count" = u64, description = "Number of matching alerts"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 422, description = "Invalid filter, `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/alerts")]
pub(crate) async fn list_alerts(
    req: HttpRequest,
    alerts: web::Data<dyn AlertService>,
    query: Query<AlertsQuery>,
) -> Result<HttpResponse, ApiError> {
    let AlertsQuery { filter, page: paging } = query.0;
    let list = alerts.list_alerts(filter, paging).await?;
    Ok(page(&req, paging, list, AlertBody::from))
}

/// Reads an alert.
#[utoipa::path(
    tag = "alerts",
    params(AlertPath),
    responses(
        (status = 200, description = "The alert", body = AlertBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/alerts/{id}")]
pub(crate) async fn get_alert(
    alerts: web::Data<dyn AlertService>,
    path: Path<AlertPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(AlertBody::from(alerts.get_alert(path.0.0).await?)))
}

/// Acknowledges an alert: no more re-notifications until it escalates or resolves (a dropped
/// slot's alert resolves). Idempotent.
#[utoipa::path(
    tag = "alerts",
    params(AlertPath),
    responses(
        (status = 200, description = "The acknowledged alert", body = AlertBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/alerts/{id}/ack")]
pub(crate) async fn acknowledge_alert(
    alerts: web::Data<dyn AlertService>,
    path: Path<AlertPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(AlertBody::from(alerts.acknowledge_alert(path.0.0).await?)))
}

/// The global settings of every rule.
#[utoipa::path(
    tag = "alerts",
    responses((status = 200, description = "Every rule, in a fixed order", body = [RuleBody]))
)]
#[get("/alert-rules")]
pub(crate) async fn list_alert_rules(alerts: web::Data<dyn AlertService>) -> Result<HttpResponse, ApiError> {
    let rules: Vec<RuleBody> = alerts.global_rules().await?.into_iter().map(RuleBody::from).collect();
    Ok(HttpResponse::Ok().json(rules))
}

/// Changes a rule's global settings.
#[utoipa::path(
    tag = "alerts",
    params(RulePath),
    request_body = AlertRuleUpdate,
    responses(
        (status = 200, description = "The rule's settings", body = RuleBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 422, description = "Settings that break the rule's rules", body = ErrorBody),
    )
)]
#[patch("/alert-rules/{rule}")]
pub(crate) async fn patch_alert_rule(
    alerts: web::Data<dyn AlertService>,
    path: Path<RulePath>,
    body: Body<AlertRuleUpdate>,
) -> Result<HttpResponse, ApiError> {
    let rule = path.0.0.rule()?;
    Ok(HttpResponse::Ok().json(RuleBody::from(alerts.update_global_rule(rule, body.0).await?)))
}

/// The effective rules of a source.
#[utoipa::path(
    tag = "alerts",
    params(SourceRulesPath),
    responses(
        (status = 200, description = "Every rule as the source sees it", body = [SourceRuleBody]),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/sources/{id}/alert-rules")]
pub(crate) async fn list_source_alert_rules(
    alerts: web::Data<dyn AlertService>,
    path: Path<SourceRulesPath>,
) -> Result<HttpResponse, ApiError> {
    let rules: Vec<SourceRuleBody> =
        alerts.source_rules(path.0.0).await?.into_iter().map(SourceRuleBody::from).collect();
    Ok(HttpResponse::Ok().json(rules))
}

/// Sets a source's own settings of a rule, starting from its effective ones.
#[utoipa::path(
    tag = "alerts",
    params(SourceRulePath),
    request_body = AlertRuleUpdate,
    responses(
        (status = 200, description = "The rule as the source now sees it", body = SourceRuleBody),
        (status = 404, description = "No such source or rule", body = ErrorBody),
        (status = 422, description = "Invalid id, or settings that break the rule's rules", body = ErrorBody),
    )
)]
#[patch("/sources/{id}/alert-rules/{rule}")]
pub(crate) async fn patch_source_alert_rule(
    alerts: web::Data<dyn AlertService>,
    path: Path<SourceRulePath>,
    body: Body<AlertRuleUpdate>,
) -> Result<HttpResponse, ApiError> {
    let rule = path.0.rule.rule()?;
    Ok(HttpResponse::Ok().json(SourceRuleBody::from(alerts.update_source_rule(path.0.source, rule, body.0).await?)))
}

/// Removes a source's own settings of a rule (the global ones apply again). Idempotent.
#[utoipa::path(
    tag = "alerts",
    params(SourceRulePath),
    responses(
        (status = 204, description = "Removed (or there were none)"),
        (status = 404, description = "No such source or rule", body = ErrorBody),
        (status = 422, description = "Invalid id", body = ErrorBody),
    )
)]
#[delete("/sources/{id}/alert-rules/{rule}")]
pub(crate) async fn delete_source_alert_rule(
    alerts: web::Data<dyn AlertService>,
    path: Path<SourceRulePath>,
) -> Result<HttpResponse, ApiError> {
    let rule = path.0.rule.rule()?;
    alerts.remove_source_rule(path.0.source, rule).await?;
    Ok(HttpResponse::NoContent().finish())
}
