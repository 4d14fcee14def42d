//! Alerts, rule settings and evaluation memory: [`PostgresAlertStore`].
//!
//! An evaluation is written in one transaction with the deliveries its notifications call for
//! (an outbox: `deliveries` rows, each queued in `leases` by a trigger), so a transition is
//! notified exactly when it is stored. `alerts_one_firing_per_key` makes a second firing alert
//! per key impossible; a new alert that meets one is skipped with its deliveries.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::DateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rosetta_domain::{
    Alert, AlertChange, AlertFilter, AlertId, AlertKey, AlertMemory, AlertRule, EffectiveRules, FiringAlert, Lsn,
    NotificationType, Page, PageRequest, RateBaseline, ResolveReason, RuleSettings, Severity, SourceId, Timestamp,
    Watch,
};
use rosetta_ports::EntityKind;
use rosetta_ports::alerts::{AlertContext, AlertStore, AppliedAlerts, EvaluatedSource, SourceRule};
use rosetta_ports::outbound::RepositoryError;
use serde::{Deserialize, Serialize};

use crate::error::{CorruptRow, Failure, StoredRow, not_found, violated_constraint};
use crate::paging::{offset_limit, total_count};
use crate::schema::alerts;
use crate::schema::constraints::SOURCE_ALERT_RULES_SOURCE_ID_FKEY;
use crate::store::PostgresStore;

/// The global settings that differ from the defaults.
const GLOBAL_RULES: &str = "SELECT rule, enabled, warning, critical, for_seconds, window_seconds FROM alert_rules";

/// One source's own settings.
const SOURCE_RULES: &str = "\
SELECT rule, enabled, warning, critical, for_seconds, window_seconds FROM source_alert_rules WHERE source_id = $1";

/// The evaluation contexts of sources `$1`: one row each, with its overrides, firing alerts and
/// memory as JSON, each read through an index keyed by the source (`OFFSET 0` keeps the memory a
/// per-source lookup: flattened into a join, the planner hashed the whole table for every batch).
const CONTEXTS: &str = "\
SELECT s.id AS source_id, s.name AS source_name,
       EXISTS (SELECT 1 FROM pipelines p WHERE p.source_id = s.id AND p.status = 'START') AS pipeline_should_run,
       m.known_slots, m.watches,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'rule', r.rule, 'enabled', r.enabled, 'warning', r.warning, 'critical', r.critical,
                   'for_seconds', r.for_seconds, 'window_seconds', r.window_seconds)), '[]')
        FROM source_alert_rules r WHERE r.source_id = s.id) AS overrides,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', a.id, 'rule', a.rule, 'slot_name', a.slot_name, 'severity', a.severity,
                   'acknowledged', a.acknowledged_at IS NOT NULL, 'clear_streak', a.clear_streak,
                   'last_notified_us', (extract(epoch FROM coalesce(a.last_notified_at, a.started_at)) * 1000000)::int8)),
               '[]')
        FROM alerts a WHERE a.source_id = s.id AND a.state = 'FIRING') AS firing
FROM sources s
LEFT JOIN LATERAL (SELECT known_slots, watches FROM alert_memory WHERE source_id = s.id OFFSET 0) m ON true
WHERE s.id = ANY($1)";

/// For each source `$1[i]`, its oldest good sample recorded at or after `$2[i]`.
const RATE_BASELINES: &str = "\
SELECT i.source_id, h.sampled_at, h.current_lsn
FROM unnest($1::int8[], $2::timestamptz[]) AS i (source_id, since)
CROSS JOIN LATERAL (
    SELECT m.sampled_at, m.current_lsn FROM wal_metrics m
    WHERE m.source_id = i.source_id AND m.recorded_at >= i.since AND m.current_lsn IS NOT NULL
    ORDER BY m.recorded_at LIMIT 1
) h";

/// Locks sources `$1` against deletion for the transaction and returns those that exist.
const LOCK_SOURCES: &str = "SELECT id FROM sources WHERE id = ANY($1) ORDER BY id FOR KEY SHARE";

/// New alerts; one whose key already fires is skipped (the partial unique index's arbiter).
const INSERT_ALERTS: &str = "\
INSERT INTO alerts (rule, severity, state, source_id, source_name, slot_name, summary, value, threshold,
                    started_at, updated_at, last_notified_at)
SELECT i.rule, i.severity, 'FIRING', i.source_id, i.source_name, i.slot_name, i.summary, i.value, i.threshold,
       i.at, i.at, i.at
FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[],
            $9::timestamptz[])
     AS i (rule, severity, source_id, source_name, slot_name, summary, value, threshold, at)
ON CONFLICT (source_id, rule, (coalesce(slot_name, ''))) WHERE state = 'FIRING' DO NOTHING
RETURNING id, severity, source_id";

/// Firing alerts whose condition holds: the new reading; `$8` the notification, if any.
const HOLD_ALERTS: &str = "\
UPDATE alerts a
SET severity = i.severity, summary = i.summary, value = i.value, threshold = i.threshold, clear_streak = 0,
    source_name = i.source_name, updated_at = i.at,
    acknowledged_at = CASE WHEN i.notify = 'alert.escalated' THEN NULL ELSE a.acknowledged_at END,
    last_notified_at = CASE WHEN i.notify IS NULL THEN a.last_notified_at ELSE i.at END
FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::timestamptz[], $8::text[])
     AS i (id, severity, summary, value, threshold, source_name, at, notify)
WHERE a.id = i.id AND a.state = 'FIRING'
RETURNING a.id, a.severity, i.notify";

/// Firing alerts whose condition was false, not yet long enough.
const CLEAR_ALERTS: &str = "\
UPDATE alerts a SET clear_streak = i.clear_streak, updated_at = i.at
FROM unnest($1::int8[], $2::int2[], $3::timestamptz[]) AS i (id, clear_streak, at)
WHERE a.id = i.id AND a.state = 'FIRING'";

/// Alerts that are over.
const RESOLVE_ALERTS: &str = "\
UPDATE alerts a
SET state = 'RESOLVED', resolved_at = i.at, resolve_reason = i.reason, updated_at = i.at, last_notified_at = i.at
FROM unnest($1::int8[], $2::text[], $3::timestamptz[]) AS i (id, reason, at)
WHERE a.id = i.id AND a.state = 'FIRING'
RETURNING a.id, a.severity";

/// One delivery per notification `($1, $2, $3, $4)` = (alert, type, severity, at) and enabled
/// channel whose minimum severity it meets.
const INSERT_DELIVERIES: &str = "\
INSERT INTO deliveries (channel_id, alert_id, type, created_at, next_attempt_at)
SELECT c.id, n.alert_id, n.type, n.at, n.at
FROM unnest($1::int8[], $2::text[], $3::text[], $4::timestamptz[]) AS n (alert_id, type, severity, at)
JOIN notification_channels c ON c.enabled AND (c.min_severity = 'warning' OR n.severity = 'critical')";

/// The memory of sources `$1`.
const UPSERT_MEMORY: &str = "\
INSERT INTO alert_memory (source_id, known_slots, watches)
SELECT * FROM unnest($1::int8[], $2::jsonb[], $3::jsonb[])
ON CONFLICT (source_id) DO UPDATE SET known_slots = excluded.known_slots, watches = excluded.watches";

/// Acknowledges alert `$1` at `$2` (the first acknowledgement's time stays).
const ACKNOWLEDGE: &str = "\
UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, $2) WHERE id = $1";

const FIRING_COUNTS: &str =
    "SELECT rule, severity, count(*) AS alerts FROM alerts WHERE state = 'FIRING' GROUP BY 1, 2";

const UPSERT_GLOBAL_RULE: &str = "\
INSERT INTO alert_rules (rule, enabled, warning, critical, for_seconds, window_seconds, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (rule) DO UPDATE SET enabled = excluded.enabled, warning = excluded.warning,
    critical = excluded.critical, for_seconds = excluded.for_seconds, window_seconds = excluded.window_seconds,
    updated_at = excluded.updated_at";

const UPSERT_SOURCE_RULE: &str = "\
INSERT INTO source_alert_rules (source_id, rule, enabled, warning, critical, for_seconds, window_seconds, updated_at)
VALUES ($8, $1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (source_id, rule) DO UPDATE SET enabled = excluded.enabled, warning = excluded.warning,
    critical = excluded.critical, for_seconds = excluded.for_seconds, window_seconds = excluded.window_seconds,
    updated_at = excluded.updated_at";

const SOURCE_EXISTS: &str = "SELECT id FROM sources WHERE id = $1";

/// A stored rule setting.
#[derive(Debug, QueryableByName, Deserialize)]
struct RuleRow {
    #[diesel(sql_type = Text)]
    rule: String,
    #[diesel(sql_type = Bool)]
    enabled: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    warning: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    critical: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    for_seconds: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    window_seconds: Option<i64>,
}

impl RuleRow {
    /// The settings, checked as the API checks them; `None` for a rule this version does not
    /// know (a newer version wrote it): it is ignored rather than failing every evaluation.
    fn into_settings(self, table: &'static str) -> Result<Option<RuleSettings>, CorruptRow> {
        let Ok(rule) = self.rule.parse::<AlertRule>() else { return Ok(None) };
        let row = StoredRow::new(table, 0);
        let unsigned = |column: &'static str, value: Option<i64>| {
            value.map(|v| u64::try_from(v).map_err(|_| row.invalid(column, "is negative"))).transpose()
        };
        RuleSettings::new(
            rule,
            self.enabled,
            unsigned("warning", self.warning)?,
            unsigned("critical", self.critical)?,
            unsigned("for_seconds", self.for_seconds)?,
            unsigned("window_seconds", self.window_seconds)?,
        )
        .map(Some)
        .map_err(|invalid| row.invalid(invalid.field, invalid.error.message))
    }
}

/// `sql` (one of the two rule upserts) with a rule's settings bound as `$1`–`$6` and `now` as
/// `$7`; the source's upsert binds its id as `$8`.
fn upsert_rule(sql: &'static str, settings: &RuleSettings, now: Timestamp) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
    let signed = |value: Option<u64>| value.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Text, _>(settings.rule().as_str())
        .bind::<Bool, _>(settings.enabled())
        .bind::<Nullable<BigInt>, _>(signed(settings.warning()))
        .bind::<Nullable<BigInt>, _>(signed(settings.critical()))
        .bind::<Nullable<BigInt>, _>(signed(settings.for_seconds()))
        .bind::<Nullable<BigInt>, _>(signed(settings.window_seconds()))
        .bind::<Timestamptz, _>(now)
}

/// One row of [`CONTEXTS`].
#[derive(Debug, QueryableByName)]
struct ContextRow {
    #[diesel(sql_type = BigInt)]
    source_id: i64,
    #[diesel(sql_type = Text)]
    source_name: String,
    #[diesel(sql_type = Bool)]
    pipeline_should_run: bool,
    #[diesel(sql_type = Nullable<Jsonb>)]
    known_slots: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    watches: Option<serde_json::Value>,
    #[diesel(sql_type = Jsonb)]
    overrides: serde_json::Value,
    #[diesel(sql_type = Jsonb)]
    firing: serde_json::Value,
}

/// A firing alert in [`CONTEXTS`]' JSON.
#[derive(Debug, Deserialize)]
struct FiringJson {
    id: i64,
    rule: String,
    slot_name: Option<String>,
    severity: String,
    acknowledged: bool,
    clear_streak: i16,
    last_notified_us: i64,
}

/// A watch as stored in `alert_memory.watches`.
#[derive(Debug, Serialize, Deserialize)]
struct WatchJson {
    rule: String,
    slot_name: Option<String>,
    since_us: i64,
    confirmed_flush_lsn: Option<i64>,
    current_lsn: Option<i64>,
}

fn from_micros(row: StoredRow, column: &'static str, micros: i64) -> Result<Timestamp, CorruptRow> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| row.invalid(column, "is out of range"))
}

fn lsn_column(lsn: Option<Lsn>) -> Option<i64> {
    lsn.map(|lsn| i64::try_from(lsn.bytes()).unwrap_or(i64::MAX))
}

fn lsn_from(row: StoredRow, value: Option<i64>) -> Result<Option<Lsn>, CorruptRow> {
    value
        .map(|v| u64::try_from(v).map(Lsn::from_bytes).map_err(|_| row.invalid("watches", "holds a negative LSN")))
        .transpose()
}

impl ContextRow {
    fn into_context(self, global: &EffectiveRules) -> Result<AlertContext, CorruptRow> {
        let row = StoredRow::new("alert_memory", self.source_id);
        let json = |column: &'static str, e: serde_json::Error| row.invalid(column, e.to_string());
        let mut rules = global.clone();
        for rule in serde_json::from_value::<Vec<RuleRow>>(self.overrides).map_err(|e| json("overrides", e))? {
            if let Some(settings) = rule.into_settings("source_alert_rules")? {
                rules = rules.with(settings);
            }
        }
        let mut firing = Vec::new();
        for alert in serde_json::from_value::<Vec<FiringJson>>(self.firing).map_err(|e| json("firing", e))? {
            let alert_row = StoredRow::new("alerts", alert.id);
            firing.push(FiringAlert {
                id: AlertId::new(alert.id),
                key: AlertKey { rule: alert_row.field("rule", alert.rule.parse())?, slot_name: alert.slot_name },
                severity: alert_row.field("severity", alert.severity.parse())?,
                acknowledged: alert.acknowledged,
                last_notified_at: from_micros(alert_row, "last_notified_at", alert.last_notified_us)?,
                clear_streak: u8::try_from(alert.clear_streak.max(0)).unwrap_or(u8::MAX),
            });
        }
        let known_slots = match self.known_slots {
            Some(value) => serde_json::from_value(value).map_err(|e| json("known_slots", e))?,
            None => Default::default(),
        };
        let mut watches = Vec::new();
        if let Some(value) = self.watches {
            for watch in serde_json::from_value::<Vec<WatchJson>>(value).map_err(|e| json("watches", e))? {
                // A rule this version does not know: forget its clock.
                let Ok(rule) = watch.rule.parse::<AlertRule>() else { continue };
                watches.push(Watch {
                    key: AlertKey { rule, slot_name: watch.slot_name },
                    since: from_micros(row, "watches", watch.since_us)?,
                    confirmed_flush_lsn: lsn_from(row, watch.confirmed_flush_lsn)?,
                    current_lsn: lsn_from(row, watch.current_lsn)?,
                });
            }
        }
        Ok(AlertContext {
            source_id: SourceId::new(self.source_id),
            source_name: self.source_name,
            pipeline_should_run: self.pipeline_should_run,
            rules,
            firing,
            memory: AlertMemory { known_slots, watches },
        })
    }
}

fn memory_columns(memory: &AlertMemory) -> Result<(serde_json::Value, serde_json::Value), serde_json::Error> {
    let watches: Vec<WatchJson> = memory
        .watches
        .iter()
        .map(|watch| WatchJson {
            rule: watch.key.rule.as_str().to_owned(),
            slot_name: watch.key.slot_name.clone(),
            since_us: watch.since.timestamp_micros(),
            confirmed_flush_lsn: lsn_column(watch.confirmed_flush_lsn),
            current_lsn: lsn_column(watch.current_lsn),
        })
        .collect();
    Ok((serde_json::to_value(&memory.known_slots)?, serde_json::to_value(watches)?))
}

#[derive(Debug, QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(Debug, QueryableByName)]
struct WrittenAlert {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    severity: String,
}

#[derive(Debug, QueryableByName)]
struct InsertedAlert {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = BigInt)]
    source_id: i64,
}

#[derive(Debug, QueryableByName)]
struct HeldAlert {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = Nullable<Text>)]
    notify: Option<String>,
}

#[derive(Debug, QueryableByName)]
struct BaselineRow {
    #[diesel(sql_type = BigInt)]
    source_id: i64,
    #[diesel(sql_type = Timestamptz)]
    sampled_at: Timestamp,
    #[diesel(sql_type = BigInt)]
    current_lsn: i64,
}

#[derive(Debug, QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Text)]
    rule: String,
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = BigInt)]
    alerts: i64,
}

/// An alert as read back.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = alerts, check_for_backend(Pg))]
pub(crate) struct AlertRow {
    id: i64,
    rule: String,
    severity: String,
    state: String,
    source_id: Option<i64>,
    source_name: String,
    slot_name: Option<String>,
    summary: String,
    value: Option<i64>,
    threshold: Option<i64>,
    started_at: Timestamp,
    updated_at: Timestamp,
    resolved_at: Option<Timestamp>,
    resolve_reason: Option<String>,
    acknowledged_at: Option<Timestamp>,
    last_notified_at: Option<Timestamp>,
}

impl AlertRow {
    pub(crate) fn into_domain(self) -> Result<Alert, CorruptRow> {
        let row = StoredRow::new("alerts", self.id);
        Ok(Alert {
            id: AlertId::new(self.id),
            rule: row.field("rule", self.rule.parse())?,
            severity: row.field("severity", self.severity.parse())?,
            state: row.field("state", self.state.parse())?,
            source_id: self.source_id.map(SourceId::new),
            source_name: self.source_name,
            slot_name: self.slot_name,
            summary: self.summary,
            value: self.value,
            threshold: self.threshold,
            started_at: self.started_at,
            updated_at: self.updated_at,
            resolved_at: self.resolved_at,
            resolve_reason: self
                .resolve_reason
                .map(|reason| row.field("resolve_reason", reason.parse()))
                .transpose()?,
            acknowledged_at: self.acknowledged_at,
            last_notified_at: self.last_notified_at,
        })
    }
}

/// Reads one alert.
async fn find_alert(conn: &mut AsyncPgConnection, id: i64) -> Result<Alert, Failure> {
    let row = alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| not_found(EntityKind::Alert, id))?;
    Ok(row.into_domain()?)
}

/// Notifications to write: (alert, type, severity, at).
#[derive(Debug, Default)]
struct Notifications {
    alert_id: Vec<i64>,
    kind: Vec<&'static str>,
    severity: Vec<String>,
    at: Vec<Timestamp>,
}

impl Notifications {
    fn push(&mut self, alert_id: i64, kind: NotificationType, severity: String, at: Timestamp) {
        self.alert_id.push(alert_id);
        self.kind.push(kind.as_str());
        self.severity.push(severity);
        self.at.push(at);
    }

    /// Writes them as deliveries; returns how many.
    async fn write(self, conn: &mut AsyncPgConnection) -> Result<usize, Failure> {
        if self.alert_id.is_empty() {
            return Ok(0);
        }
        Ok(diesel::sql_query(INSERT_DELIVERIES)
            .bind::<Array<BigInt>, _>(&self.alert_id)
            .bind::<Array<Text>, _>(&self.kind)
            .bind::<Array<Text>, _>(&self.severity)
            .bind::<Array<Timestamptz>, _>(&self.at)
            .execute(conn)
            .await?)
    }
}

/// Resolves firing alerts `ids` for `reason` at `at` and queues their resolved notifications.
async fn resolve_in(
    conn: &mut AsyncPgConnection,
    resolutions: &[(i64, ResolveReason, Timestamp)],
    notifications: &mut Notifications,
) -> Result<usize, Failure> {
    if resolutions.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = resolutions.iter().map(|(id, ..)| *id).collect();
    let reasons: Vec<&str> = resolutions.iter().map(|(_, reason, _)| reason.as_str()).collect();
    let ats: Vec<Timestamp> = resolutions.iter().map(|(.., at)| *at).collect();
    let resolved = diesel::sql_query(RESOLVE_ALERTS)
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<Text>, _>(&reasons)
        .bind::<Array<Timestamptz>, _>(&ats)
        .load::<WrittenAlert>(conn)
        .await?;
    let at_of: BTreeMap<i64, Timestamp> = resolutions.iter().map(|(id, _, at)| (*id, *at)).collect();
    for alert in &resolved {
        let at = at_of.get(&alert.id).copied().unwrap_or_default();
        notifications.push(alert.id, NotificationType::Resolved, alert.severity.clone(), at);
    }
    Ok(resolved.len())
}

/// [`AlertStore`] over the metadata database.
#[derive(Debug, Clone)]
pub struct PostgresAlertStore {
    store: PostgresStore,
}

impl PostgresAlertStore {
    /// An alert store over `store`.
    pub fn new(store: PostgresStore) -> Self {
        Self { store }
    }
}

async fn global_rules_in(conn: &mut AsyncPgConnection) -> Result<EffectiveRules, Failure> {
    let mut rules = EffectiveRules::defaults();
    for row in diesel::sql_query(GLOBAL_RULES).load::<RuleRow>(conn).await? {
        if let Some(settings) = row.into_settings("alert_rules")? {
            rules = rules.with(settings);
        }
    }
    Ok(rules)
}

async fn require_source(conn: &mut AsyncPgConnection, source: SourceId) -> Result<(), Failure> {
    let found = diesel::sql_query(SOURCE_EXISTS).bind::<BigInt, _>(source.get()).load::<IdRow>(conn).await?;
    if found.is_empty() {
        return Err(not_found(EntityKind::Source, source.get()));
    }
    Ok(())
}

fn unexpected(e: impl std::error::Error + Send + Sync + 'static) -> Failure {
    Failure::Repository(RepositoryError::Unexpected(Box::new(e)))
}

#[async_trait]
impl AlertStore for PostgresAlertStore {
    async fn contexts(&self, sources: &[SourceId]) -> Result<Vec<AlertContext>, RepositoryError> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = sources.iter().map(|id| id.get()).collect();
        let mut conn = self.store.connection().await?;
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let global = global_rules_in(conn).await?;
                let rows = diesel::sql_query(CONTEXTS).bind::<Array<BigInt>, _>(&ids).load::<ContextRow>(conn).await?;
                Ok(rows.into_iter().map(|row| row.into_context(&global)).collect::<Result<Vec<_>, _>>()?)
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn rate_baselines(
        &self,
        sources: &[(SourceId, Timestamp)],
    ) -> Result<Vec<(SourceId, RateBaseline)>, RepositoryError> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = sources.iter().map(|(id, _)| id.get()).collect();
        let since: Vec<Timestamp> = sources.iter().map(|(_, since)| *since).collect();
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(RATE_BASELINES)
            .bind::<Array<BigInt>, _>(&ids)
            .bind::<Array<Timestamptz>, _>(&since)
            .load::<BaselineRow>(&mut conn)
            .await
            .map_err(Failure::from);
        let rows = self.store.settle(conn, result).await?;
        rows.into_iter()
            .map(|row| {
                let lsn = u64::try_from(row.current_lsn)
                    .map_err(|_| StoredRow::new("wal_metrics", row.source_id).invalid("current_lsn", "is negative"))?;
                Ok((
                    SourceId::new(row.source_id),
                    RateBaseline { sampled_at: row.sampled_at, current_lsn: Lsn::from_bytes(lsn) },
                ))
            })
            .collect::<Result<_, CorruptRow>>()
            .map_err(Into::into)
    }

    async fn apply(&self, evaluations: Vec<EvaluatedSource>) -> Result<AppliedAlerts, RepositoryError> {
        if evaluations.is_empty() {
            return Ok(AppliedAlerts::default());
        }
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let ids: Vec<i64> = evaluations.iter().map(|e| e.source_id.get()).collect();
                let existing: Vec<i64> = diesel::sql_query(LOCK_SOURCES)
                    .bind::<Array<BigInt>, _>(&ids)
                    .load::<IdRow>(conn)
                    .await?
                    .into_iter()
                    .map(|row| row.id)
                    .collect();
                // A source deleted since it was sampled: its alerts were resolved with it.
                let evaluations: Vec<&EvaluatedSource> =
                    evaluations.iter().filter(|e| existing.binary_search(&e.source_id.get()).is_ok()).collect();
                let mut applied = AppliedAlerts::default();
                let mut notifications = Notifications::default();

                let mut new = NewAlertColumns::default();
                let mut held = HeldColumns::default();
                let (mut clearing_ids, mut clearing_streaks, mut clearing_ats) = (Vec::new(), Vec::new(), Vec::new());
                let mut resolutions = Vec::new();
                let mut memory = (Vec::new(), Vec::new(), Vec::new());
                for e in &evaluations {
                    for fired in &e.evaluation.fired {
                        new.push(e, fired);
                    }
                    for update in &e.evaluation.updated {
                        match &update.change {
                            AlertChange::Holds { reading, notify } => held.push(e, update.id, reading, *notify),
                            AlertChange::Clearing { clear_streak } => {
                                clearing_ids.push(update.id.get());
                                clearing_streaks.push(i16::from(*clear_streak));
                                clearing_ats.push(e.at);
                            }
                            AlertChange::Resolved(reason) => resolutions.push((update.id.get(), *reason, e.at)),
                        }
                    }
                    if e.memory_changed {
                        let (known, watches) = memory_columns(&e.evaluation.memory).map_err(unexpected)?;
                        memory.0.push(e.source_id.get());
                        memory.1.push(known);
                        memory.2.push(watches);
                    }
                }
                if !new.rule.is_empty() {
                    let inserted = new.insert(conn).await?;
                    applied.fired = inserted.len();
                    for (alert, at) in inserted {
                        notifications.push(alert.id, NotificationType::Firing, alert.severity, at);
                    }
                }
                if !held.id.is_empty() {
                    let at_of: BTreeMap<i64, Timestamp> =
                        held.id.iter().copied().zip(held.at.iter().copied()).collect();
                    for alert in held.update(conn).await? {
                        let Some(kind) = alert.notify.as_deref().and_then(|kind| kind.parse().ok()) else { continue };
                        let at = at_of.get(&alert.id).copied().unwrap_or_default();
                        notifications.push(alert.id, kind, alert.severity, at);
                    }
                }
                if !clearing_ids.is_empty() {
                    diesel::sql_query(CLEAR_ALERTS)
                        .bind::<Array<BigInt>, _>(&clearing_ids)
                        .bind::<Array<SmallInt>, _>(&clearing_streaks)
                        .bind::<Array<Timestamptz>, _>(&clearing_ats)
                        .execute(conn)
                        .await?;
                }
                applied.resolved = resolve_in(conn, &resolutions, &mut notifications).await?;
                if !memory.0.is_empty() {
                    diesel::sql_query(UPSERT_MEMORY)
                        .bind::<Array<BigInt>, _>(&memory.0)
                        .bind::<Array<Jsonb>, _>(&memory.1)
                        .bind::<Array<Jsonb>, _>(&memory.2)
                        .execute(conn)
                        .await?;
                }
                applied.deliveries = notifications.write(conn).await?;
                Ok(applied)
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn list(&self, filter: AlertFilter, page: PageRequest) -> Result<Page<Alert>, RepositoryError> {
        let (offset, limit) = offset_limit(page);
        let filtered = move || {
            let mut query = alerts::table.into_boxed::<Pg>();
            if let Some(state) = filter.state {
                query = query.filter(alerts::state.eq(state.as_str()));
            }
            if let Some(source) = filter.source_id {
                query = query.filter(alerts::source_id.eq(source.get()));
            }
            if let Some(severity) = filter.severity {
                query = query.filter(alerts::severity.eq(severity.as_str()));
            }
            if let Some(rule) = filter.rule {
                query = query.filter(alerts::rule.eq(rule.as_str()));
            }
            query
        };
        let mut conn = self.store.connection().await?;
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let total = filtered().count().get_result::<i64>(conn).await?;
                let rows = filtered()
                    .select(AlertRow::as_select())
                    .order((alerts::started_at.desc(), alerts::id.desc()))
                    .offset(offset)
                    .limit(limit)
                    .load(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(AlertRow::into_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }

    async fn get(&self, id: AlertId) -> Result<Alert, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = find_alert(&mut conn, id.get()).await;
        self.store.settle(conn, result).await
    }

    async fn acknowledge(&self, id: AlertId, now: Timestamp, resolve: bool) -> Result<Alert, RepositoryError> {
        let id = id.get();
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let acknowledged = diesel::sql_query(ACKNOWLEDGE)
                    .bind::<BigInt, _>(id)
                    .bind::<Timestamptz, _>(now)
                    .execute(conn)
                    .await?;
                if acknowledged == 0 {
                    return Err(not_found(EntityKind::Alert, id));
                }
                if resolve {
                    // Only a firing alert resolves (the statement's guard); its deliveries with it.
                    let mut notifications = Notifications::default();
                    resolve_in(conn, &[(id, ResolveReason::Acknowledged, now)], &mut notifications).await?;
                    notifications.write(conn).await?;
                }
                find_alert(conn, id).await
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn firing_counts(&self) -> Result<Vec<(AlertRule, Severity, u64)>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = diesel::sql_query(FIRING_COUNTS).load::<CountRow>(&mut conn).await.map_err(Failure::from);
        let rows = self.store.settle(conn, result).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some((row.rule.parse().ok()?, row.severity.parse().ok()?, u64::try_from(row.alerts).unwrap_or(0)))
            })
            .collect())
    }

    async fn global_rules(&self) -> Result<Vec<RuleSettings>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = global_rules_in(&mut conn).await;
        let rules = self.store.settle(conn, result).await?;
        Ok(AlertRule::ALL.into_iter().map(|rule| rules.get(rule)).collect())
    }

    async fn set_global_rule(&self, settings: RuleSettings, now: Timestamp) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result =
            upsert_rule(UPSERT_GLOBAL_RULE, &settings, now).execute(&mut conn).await.map(drop).map_err(Failure::from);
        self.store.settle(conn, result).await
    }

    async fn source_rules(&self, source: SourceId) -> Result<Vec<SourceRule>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                require_source(conn, source).await?;
                let global = global_rules_in(conn).await?;
                let mut own = BTreeMap::new();
                for row in diesel::sql_query(SOURCE_RULES).bind::<BigInt, _>(source.get()).load::<RuleRow>(conn).await?
                {
                    if let Some(settings) = row.into_settings("source_alert_rules")? {
                        own.insert(settings.rule(), settings);
                    }
                }
                Ok(AlertRule::ALL
                    .into_iter()
                    .map(|rule| match own.get(&rule) {
                        Some(settings) => SourceRule { settings: *settings, overridden: true },
                        None => SourceRule { settings: global.get(rule), overridden: false },
                    })
                    .collect())
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn set_source_rule(
        &self,
        source: SourceId,
        settings: RuleSettings,
        now: Timestamp,
    ) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = upsert_rule(UPSERT_SOURCE_RULE, &settings, now)
            .bind::<BigInt, _>(source.get())
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(|e| {
                if violated_constraint(&e) == Some(SOURCE_ALERT_RULES_SOURCE_ID_FKEY) {
                    not_found(EntityKind::Source, source.get())
                } else {
                    e.into()
                }
            });
        self.store.settle(conn, result).await
    }

    async fn remove_source_rule(&self, source: SourceId, rule: AlertRule) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                require_source(conn, source).await?;
                diesel::sql_query("DELETE FROM source_alert_rules WHERE source_id = $1 AND rule = $2")
                    .bind::<BigInt, _>(source.get())
                    .bind::<Text, _>(rule.as_str())
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await;
        self.store.settle(conn, result).await
    }
}

/// The columns of new alerts, for [`INSERT_ALERTS`].
#[derive(Default)]
struct NewAlertColumns {
    rule: Vec<&'static str>,
    severity: Vec<&'static str>,
    source_id: Vec<i64>,
    source_name: Vec<String>,
    slot_name: Vec<Option<String>>,
    summary: Vec<String>,
    value: Vec<Option<i64>>,
    threshold: Vec<Option<i64>>,
    at: Vec<Timestamp>,
}

impl NewAlertColumns {
    fn push(&mut self, e: &EvaluatedSource, fired: &rosetta_domain::NewAlert) {
        self.rule.push(fired.key.rule.as_str());
        self.severity.push(fired.reading.severity.as_str());
        self.source_id.push(e.source_id.get());
        self.source_name.push(e.source_name.clone());
        self.slot_name.push(fired.key.slot_name.clone());
        self.summary.push(fired.reading.summary.clone());
        self.value.push(fired.reading.value);
        self.threshold.push(fired.reading.threshold);
        self.at.push(e.at);
    }

    /// Inserts them; returns those inserted (a key already firing is skipped) with their time.
    async fn insert(self, conn: &mut AsyncPgConnection) -> Result<Vec<(WrittenAlert, Timestamp)>, Failure> {
        let rows: Vec<InsertedAlert> = diesel::sql_query(INSERT_ALERTS)
            .bind::<Array<Text>, _>(&self.rule)
            .bind::<Array<Text>, _>(&self.severity)
            .bind::<Array<BigInt>, _>(&self.source_id)
            .bind::<Array<Text>, _>(&self.source_name)
            .bind::<Array<Nullable<Text>>, _>(&self.slot_name)
            .bind::<Array<Text>, _>(&self.summary)
            .bind::<Array<Nullable<BigInt>>, _>(&self.value)
            .bind::<Array<Nullable<BigInt>>, _>(&self.threshold)
            .bind::<Array<Timestamptz>, _>(&self.at)
            .load::<InsertedAlert>(conn)
            .await?;
        // Every new alert of a source has that source's evaluation time.
        let at_of: BTreeMap<i64, Timestamp> = self.source_id.iter().copied().zip(self.at.iter().copied()).collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let at = at_of.get(&row.source_id).copied().unwrap_or_default();
                (WrittenAlert { id: row.id, severity: row.severity }, at)
            })
            .collect())
    }
}

/// The columns of firing alerts whose condition holds, for [`HOLD_ALERTS`].
#[derive(Default)]
struct HeldColumns {
    id: Vec<i64>,
    severity: Vec<&'static str>,
    summary: Vec<String>,
    value: Vec<Option<i64>>,
    threshold: Vec<Option<i64>>,
    source_name: Vec<String>,
    at: Vec<Timestamp>,
    notify: Vec<Option<&'static str>>,
}

impl HeldColumns {
    fn push(
        &mut self,
        e: &EvaluatedSource,
        id: AlertId,
        reading: &rosetta_domain::Reading,
        notify: Option<NotificationType>,
    ) {
        self.id.push(id.get());
        self.severity.push(reading.severity.as_str());
        self.summary.push(reading.summary.clone());
        self.value.push(reading.value);
        self.threshold.push(reading.threshold);
        self.source_name.push(e.source_name.clone());
        self.at.push(e.at);
        self.notify.push(notify.map(NotificationType::as_str));
    }

    async fn update(self, conn: &mut AsyncPgConnection) -> Result<Vec<HeldAlert>, Failure> {
        Ok(diesel::sql_query(HOLD_ALERTS)
            .bind::<Array<BigInt>, _>(&self.id)
            .bind::<Array<Text>, _>(&self.severity)
            .bind::<Array<Text>, _>(&self.summary)
            .bind::<Array<Nullable<BigInt>>, _>(&self.value)
            .bind::<Array<Nullable<BigInt>>, _>(&self.threshold)
            .bind::<Array<Text>, _>(&self.source_name)
            .bind::<Array<Timestamptz>, _>(&self.at)
            .bind::<Array<Nullable<Text>>, _>(&self.notify)
            .load::<HeldAlert>(conn)
            .await?)
    }
}

/// The plan of the contexts read at 5 000 sources with memory: per-source lookups only, so a
/// batch costs the same whatever the number of sources.
#[cfg(test)]
mod tests {
    use diesel_async::AsyncConnection;

    use super::*;
    use crate::explain::plan;

    #[tokio::test(flavor = "multi_thread")]
    #[allow(clippy::unwrap_used)] // a failed set-up statement fails the test
    async fn the_contexts_of_a_batch_are_read_by_key_at_5000_sources() {
        let server = rosetta_test_support::test_server();
        let template = server
            .template("postgres_adapter_unit", |url| async move { crate::run_migrations(&url).await.unwrap() })
            .await;
        let database = server.create_database(Some(&template)).await;
        let mut conn = AsyncPgConnection::establish(database.url()).await.unwrap();
        diesel::sql_query(
            "INSERT INTO sources (name, pg_host, pg_port, pg_database, pg_username, publication_name, replication_id,
                                  created_at, updated_at)
             SELECT 'src-' || g, 'h', 5432, 'd', 'u', 'p', 1, now(), now() FROM generate_series(1, 5000) g",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query("INSERT INTO alert_memory SELECT id, '[\"a\", \"b\"]', '[]' FROM sources")
            .execute(&mut conn)
            .await
            .unwrap();
        diesel::sql_query("ANALYZE sources, alert_memory").execute(&mut conn).await.unwrap();
        // A batch as the recorder writes them at that size (tens of sources).
        let ids: Vec<i64> = (100..160).collect();
        let explained = plan(&mut conn, diesel::sql_query(CONTEXTS).bind::<Array<BigInt>, _>(&ids)).await;
        println!("contexts:\n{explained}");
        assert!(!explained.contains("Seq Scan on alert_memory"), "{explained}");
        assert!(explained.contains("alert_memory_pkey"), "{explained}");
    }
}
