//! The alert lifecycle: from what was known of a source before a sample, and the sample, to the
//! alerts that fire, change and resolve.
//!
//! [`evaluate`] is pure. Its caller (the recording hook of the application layer) loads the
//! source's firing alerts and [`AlertMemory`], evaluates, and writes the result with the
//! notifications it calls for in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use super::rule::{AlertRule, RuleSettings, RuleSubject, Severity};
use super::units::{format_bytes, format_seconds};
use crate::{AlertId, Lsn, SlotSample, SlotType, Timestamp, WalSample, WalStatus};

/// What one alert is about: a rule, and the slot for slot rules. At most one alert per key is
/// firing at a time (the key of a source's alert carries no source: it is always one source's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertKey {
    /// The rule.
    pub rule: AlertRule,
    /// The slot (slot rules); `None` for source rules.
    pub slot_name: Option<String>,
}

impl AlertKey {
    fn slot(rule: AlertRule, slot_name: &str) -> Self {
        Self { rule, slot_name: Some(slot_name.to_owned()) }
    }

    fn source(rule: AlertRule) -> Self {
        Self { rule, slot_name: None }
    }
}

/// Whether an alert is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// The condition holds (or has not yet been false long enough).
    Firing,
    /// Over; a later firing of the same key is a new alert.
    Resolved,
}

impl AlertState {
    /// `FIRING` or `RESOLVED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "FIRING",
            Self::Resolved => "RESOLVED",
        }
    }
}

impl std::str::FromStr for AlertState {
    type Err = crate::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "FIRING" => Ok(Self::Firing),
            "RESOLVED" => Ok(Self::Resolved),
            _ => Err(crate::InvalidValue::new(crate::InvalidKind::PatternMismatch, "must be 'FIRING' or 'RESOLVED'")),
        }
    }
}

/// Why a notification is sent: the `type` of a webhook payload without its `alert.` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationType {
    /// A new alert.
    Firing,
    /// A firing alert became critical.
    Escalated,
    /// An alert is over.
    Resolved,
    /// A firing, unacknowledged alert, again after the re-notify interval.
    Renotify,
}

impl NotificationType {
    /// Every type.
    pub const ALL: [Self; 4] = [Self::Firing, Self::Escalated, Self::Resolved, Self::Renotify];

    /// `alert.firing`, `alert.escalated`, `alert.resolved` or `alert.renotify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "alert.firing",
            Self::Escalated => "alert.escalated",
            Self::Resolved => "alert.resolved",
            Self::Renotify => "alert.renotify",
        }
    }
}

/// Why an alert resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolveReason {
    /// Its condition was false in enough good samples in a row.
    Cleared,
    /// Its rule was disabled for the source.
    RuleDisabled,
    /// A slot of the dropped slot's name is back.
    SlotBack,
    /// It was acknowledged, and its rule resolves on acknowledgement (`slot_dropped`).
    Acknowledged,
    /// Its source was deleted.
    SourceDeleted,
}

impl ResolveReason {
    /// The storage and wire form: `cleared`, `rule_disabled`, `slot_back`, `acknowledged`,
    /// `source_deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cleared => "cleared",
            Self::RuleDisabled => "rule_disabled",
            Self::SlotBack => "slot_back",
            Self::Acknowledged => "acknowledged",
            Self::SourceDeleted => "source_deleted",
        }
    }

    /// Every reason.
    pub const ALL: [Self; 5] =
        [Self::Cleared, Self::RuleDisabled, Self::SlotBack, Self::Acknowledged, Self::SourceDeleted];
}

impl std::str::FromStr for ResolveReason {
    type Err = crate::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == s).ok_or_else(|| {
            crate::InvalidValue::new(
                crate::InvalidKind::PatternMismatch,
                "must be cleared, rule_disabled, slot_back, acknowledged or source_deleted",
            )
        })
    }
}

impl std::str::FromStr for NotificationType {
    type Err = crate::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| {
            crate::InvalidValue::new(
                crate::InvalidKind::PatternMismatch,
                "must be alert.firing, alert.escalated, alert.resolved or alert.renotify",
            )
        })
    }
}

/// A firing alert, as the evaluation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringAlert {
    /// The alert.
    pub id: AlertId,
    /// What it is about.
    pub key: AlertKey,
    /// Its severity now.
    pub severity: Severity,
    /// Whether someone acknowledged it (since it last escalated).
    pub acknowledged: bool,
    /// When a notification of it was last written.
    pub last_notified_at: Timestamp,
    /// Good samples in a row in which its condition was false.
    pub clear_streak: u8,
}

/// A condition that must hold for a while before it fires, and since when it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The rule and slot.
    pub key: AlertKey,
    /// Since when the condition holds (the first sample that showed it).
    pub since: Timestamp,
    /// `slot_stalled`: the confirmed position that has not moved since `since`.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `slot_stalled`: the source's position at `since` (the source must have written since).
    pub current_lsn: Option<Lsn>,
}

/// What evaluation remembers of one source between samples, beside its firing alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertMemory {
    /// The permanent slots of the last good sample (for `slot_dropped`).
    pub known_slots: BTreeSet<String>,
    /// Conditions on their way to firing, or firing, that need a start time.
    pub watches: Vec<Watch>,
}

/// The effective settings of every rule for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRules(BTreeMap<AlertRule, RuleSettings>);

impl EffectiveRules {
    /// The rules' defaults.
    pub fn defaults() -> Self {
        Self(AlertRule::ALL.into_iter().map(|rule| (rule, rule.defaults())).collect())
    }

    /// These rules with `settings` in place of its rule's.
    pub fn with(mut self, settings: RuleSettings) -> Self {
        self.0.insert(settings.rule(), settings);
        self
    }

    /// The settings of `rule`.
    pub fn get(&self, rule: AlertRule) -> RuleSettings {
        self.0.get(&rule).copied().unwrap_or_else(|| rule.defaults())
    }

    fn enabled(&self, rule: AlertRule) -> Option<RuleSettings> {
        Some(self.get(rule)).filter(RuleSettings::enabled)
    }
}

/// The oldest good sample within a rule's WAL-rate window: where the rate is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBaseline {
    /// When it was taken.
    pub sampled_at: Timestamp,
    /// The source's position then.
    pub current_lsn: Lsn,
}

/// What the last attempt to sample the source gave.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// A good sample.
    Sampled(&'a WalSample),
    /// The attempt failed (its error is the source's, not the alert's business).
    Failed,
}

/// Everything one evaluation reads.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInput<'a> {
    /// The source's name, for summaries.
    pub source_name: &'a str,
    /// When the attempt finished.
    pub at: Timestamp,
    /// Its result.
    pub observation: Observation<'a>,
    /// For `slot_time_to_lost`: the oldest good sample within its window, if any.
    pub rate_baseline: Option<RateBaseline>,
    /// Whether a pipeline of the source has desired status `START` (something should consume).
    pub pipeline_should_run: bool,
    /// The source's effective rules.
    pub rules: &'a EffectiveRules,
    /// Re-notify a firing, unacknowledged alert after this many seconds.
    pub renotify_seconds: u64,
    /// The source's firing alerts.
    pub firing: &'a [FiringAlert],
    /// What the previous evaluation remembered.
    pub memory: &'a AlertMemory,
}

/// An alert's condition as measured now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// How bad.
    pub severity: Severity,
    /// The measured value in the rule's unit, for rules that have one.
    pub value: Option<i64>,
    /// The threshold it crossed, in the same unit.
    pub threshold: Option<i64>,
    /// One sentence for an operator.
    pub summary: String,
}

/// An alert that starts firing now (notified as [`NotificationType::Firing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// What it is about.
    pub key: AlertKey,
    /// Its condition.
    pub reading: Reading,
}

/// How a firing alert changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertChange {
    /// Its condition holds: the new reading, the streak back to 0, and maybe a notification.
    Holds {
        /// The condition now.
        reading: Reading,
        /// `Escalated` (warning → critical; clears the acknowledgement) or `Renotify`.
        notify: Option<NotificationType>,
    },
    /// Its condition was false, but not yet in enough samples in a row.
    Clearing {
        /// Good samples in a row without the condition.
        clear_streak: u8,
    },
    /// It is over (notified as [`NotificationType::Resolved`]).
    Resolved(ResolveReason),
}

/// One change of one firing alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertUpdate {
    /// The alert.
    pub id: AlertId,
    /// The change.
    pub change: AlertChange,
}

/// The result of one evaluation: what to write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evaluation {
    /// Alerts to create.
    pub fired: Vec<NewAlert>,
    /// Changes of firing alerts (alerts left as they are are not listed).
    pub updated: Vec<AlertUpdate>,
    /// What to remember for the next evaluation.
    pub memory: AlertMemory,
}

/// A condition as the evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Holds(Reading),
    Clear,
    /// Nothing can be said (the source failed, a value is unreadable): a firing alert stays as it
    /// is, its streak untouched.
    Unknown,
}

/// Evaluates every enabled rule of one source for one attempt.
pub fn evaluate(input: &EvaluationInput<'_>) -> Evaluation {
    let mut conditions: BTreeMap<AlertKey, Condition> = BTreeMap::new();
    let mut watches = Vec::new();
    let previous_watch = |key: &AlertKey| input.memory.watches.iter().find(|watch| watch.key == *key);
    let known_slots = match input.observation {
        Observation::Sampled(sample) => {
            // Temporary slots die with their session; synced ones (17+) belong to the primary's
            // consumer. Neither is a slot the rules watch.
            let permanent: Vec<&SlotSample> =
                sample.slots.iter().filter(|slot| !slot.temporary && slot.synced != Some(true)).collect();
            for slot in &permanent {
                for rule in AlertRule::ALL {
                    if rule.subject() != RuleSubject::Slot || rule == AlertRule::SlotDropped {
                        continue;
                    }
                    let Some(settings) = input.rules.enabled(rule) else { continue };
                    let key = AlertKey::slot(rule, &slot.slot_name);
                    let slot_input = SlotInput { input, sample, slot, settings, previous: previous_watch(&key) };
                    let (condition, watch) = slot_condition(&slot_input);
                    watches.extend(watch.map(|(since, confirmed, current)| Watch {
                        key: key.clone(),
                        since,
                        confirmed_flush_lsn: confirmed,
                        current_lsn: current,
                    }));
                    conditions.insert(key, condition);
                }
            }
            let names: BTreeSet<String> = permanent.iter().map(|slot| slot.slot_name.clone()).collect();
            if input.rules.enabled(AlertRule::SlotDropped).is_some() {
                let open_drops = input.firing.iter().filter(|alert| alert.key.rule == AlertRule::SlotDropped);
                let gone = input.memory.known_slots.iter().filter(|name| !names.contains(*name));
                for name in gone.chain(open_drops.filter_map(|alert| alert.key.slot_name.as_ref())) {
                    let key = AlertKey::slot(AlertRule::SlotDropped, name);
                    conditions.insert(key, if names.contains(name) { Condition::Clear } else { dropped(input, name) });
                }
            }
            conditions.insert(AlertKey::source(AlertRule::SourceUnreachable), Condition::Clear);
            if let Some(settings) = input.rules.enabled(AlertRule::WalDirBytes) {
                conditions.insert(AlertKey::source(AlertRule::WalDirBytes), wal_dir(input, sample, settings));
            }
            names
        }
        Observation::Failed => {
            if let Some(settings) = input.rules.enabled(AlertRule::SourceUnreachable) {
                let key = AlertKey::source(AlertRule::SourceUnreachable);
                let since = previous_watch(&key).map_or(input.at, |watch| watch.since);
                let elapsed = seconds_between(since, input.at);
                let for_seconds = settings.for_seconds().unwrap_or(0);
                let condition = if elapsed >= for_seconds {
                    Condition::Holds(Reading {
                        severity: Severity::Warning,
                        value: Some(to_i64(elapsed)),
                        threshold: Some(to_i64(for_seconds)),
                        summary: format!("{} could not be sampled for {}", input.source_name, format_seconds(elapsed)),
                    })
                } else {
                    Condition::Clear
                };
                watches.push(Watch { key: key.clone(), since, confirmed_flush_lsn: None, current_lsn: None });
                conditions.insert(key, condition);
            }
            // A failed attempt says nothing about slots: keep what the last good sample showed,
            // and the watches of conditions that need time (their clock keeps running).
            watches.extend(
                input
                    .memory
                    .watches
                    .iter()
                    .filter(|watch| watch.key.rule.subject() == RuleSubject::Slot)
                    .filter(|watch| input.rules.enabled(watch.key.rule).is_some())
                    .cloned(),
            );
            input.memory.known_slots.clone()
        }
    };

    let mut evaluation = Evaluation { memory: AlertMemory { known_slots, watches }, ..Evaluation::default() };
    for alert in input.firing {
        let condition = if input.rules.enabled(alert.key.rule).is_none() {
            evaluation
                .updated
                .push(AlertUpdate { id: alert.id, change: AlertChange::Resolved(ResolveReason::RuleDisabled) });
            continue;
        } else {
            match (conditions.remove(&alert.key), input.observation) {
                (Some(condition), _) => condition,
                // A slot that is gone no longer meets any slot condition (slot_dropped says it).
                (None, Observation::Sampled(_)) => Condition::Clear,
                (None, Observation::Failed) => Condition::Unknown,
            }
        };
        let change = match condition {
            Condition::Unknown => continue,
            Condition::Clear if alert.key.rule == AlertRule::SlotDropped => {
                AlertChange::Resolved(ResolveReason::SlotBack)
            }
            Condition::Clear => {
                let clear_streak = alert.clear_streak.saturating_add(1);
                if clear_streak >= alert.key.rule.samples_to_resolve() {
                    AlertChange::Resolved(ResolveReason::Cleared)
                } else {
                    AlertChange::Clearing { clear_streak }
                }
            }
            Condition::Holds(reading) => {
                let notify = if reading.severity > alert.severity {
                    Some(NotificationType::Escalated)
                } else if !alert.acknowledged
                    && seconds_between(alert.last_notified_at, input.at) >= input.renotify_seconds
                {
                    Some(NotificationType::Renotify)
                } else {
                    None
                };
                AlertChange::Holds { reading, notify }
            }
        };
        evaluation.updated.push(AlertUpdate { id: alert.id, change });
    }
    evaluation.fired = conditions
        .into_iter()
        .filter_map(|(key, condition)| match condition {
            Condition::Holds(reading) => Some(NewAlert { key, reading }),
            Condition::Clear | Condition::Unknown => None,
        })
        .collect();
    evaluation
}

/// What a slot condition needs.
struct SlotInput<'a> {
    input: &'a EvaluationInput<'a>,
    sample: &'a WalSample,
    slot: &'a SlotSample,
    settings: RuleSettings,
    previous: Option<&'a Watch>,
}

/// A watch to keep: since when, and for `slot_stalled` the positions it compares against.
type WatchParts = (Timestamp, Option<Lsn>, Option<Lsn>);

fn slot_condition(s: &SlotInput<'_>) -> (Condition, Option<WatchParts>) {
    let (slot, name, source) = (s.slot, &s.slot.slot_name, s.input.source_name);
    let holds = |severity, value: Option<u64>, threshold: Option<u64>, summary| {
        Condition::Holds(Reading { severity, value: value.map(to_i64), threshold: threshold.map(to_i64), summary })
    };
    match s.settings.rule() {
        AlertRule::SlotRetainedBytes => {
            let Some(retained) = slot.retained_bytes(s.sample.current_lsn) else { return (Condition::Clear, None) };
            let condition = match s.settings.severity_of(retained) {
                Some((severity, threshold)) => holds(
                    severity,
                    Some(retained),
                    Some(threshold),
                    format!(
                        "slot {name} on {source} retains {} of WAL ({severity} at {})",
                        format_bytes(retained),
                        format_bytes(threshold)
                    ),
                ),
                None => Condition::Clear,
            };
            (condition, None)
        }
        AlertRule::SlotInactive => {
            if slot.active {
                return (Condition::Clear, None);
            }
            // PostgreSQL 17+ says since when; before, the first sample that saw it inactive.
            let since = slot.inactive_since.or(s.previous.map(|watch| watch.since)).unwrap_or(s.input.at);
            let elapsed = seconds_between(since, s.input.at);
            let for_seconds = s.settings.for_seconds().unwrap_or(0);
            let condition = if elapsed < for_seconds {
                Condition::Clear
            } else if s.input.pipeline_should_run {
                holds(
                    Severity::Critical,
                    Some(elapsed),
                    Some(for_seconds),
                    format!(
                        "slot {name} on {source} has had no consumer for {} while a pipeline of the source should be running",
                        format_seconds(elapsed)
                    ),
                )
            } else {
                holds(
                    Severity::Warning,
                    Some(elapsed),
                    Some(for_seconds),
                    format!("slot {name} on {source} has had no consumer for {}", format_seconds(elapsed)),
                )
            };
            (condition, Some((since, None, None)))
        }
        AlertRule::SlotLost => {
            let condition = if slot.wal_status == Some(WalStatus::Lost) {
                holds(
                    Severity::Critical,
                    None,
                    None,
                    format!(
                        "slot {name} on {source} is lost: WAL it needs was removed; its consumer needs a full resync"
                    ),
                )
            } else if slot.conflicting == Some(true) {
                holds(
                    Severity::Critical,
                    None,
                    None,
                    format!(
                        "slot {name} on {source} was invalidated by a recovery conflict; its consumer needs a full resync"
                    ),
                )
            } else {
                Condition::Clear
            };
            (condition, None)
        }
        AlertRule::SlotUnreserved => {
            let condition = if slot.wal_status == Some(WalStatus::Unreserved) {
                holds(
                    Severity::Critical,
                    None,
                    None,
                    format!(
                        "slot {name} on {source} is about to lose WAL it needs (wal_status unreserved): the next checkpoint may remove it"
                    ),
                )
            } else {
                Condition::Clear
            };
            (condition, None)
        }
        AlertRule::SlotTimeToLost => (time_to_lost(s), None),
        AlertRule::SlotStalled => stalled(s),
        AlertRule::SlotDropped | AlertRule::SourceUnreachable | AlertRule::WalDirBytes => (Condition::Clear, None),
    }
}

/// `safe_wal_size` ÷ the WAL rate since the baseline.
fn time_to_lost(s: &SlotInput<'_>) -> Condition {
    // Unlimited (no max_slot_wal_keep_size) or already lost (slot_lost says so): nothing to
    // count down.
    let Some(safe) = s.slot.safe_wal_size_bytes else { return Condition::Clear };
    if s.slot.is_lost() {
        return Condition::Clear;
    }
    let Some(baseline) = s.input.rate_baseline else { return Condition::Unknown };
    let span = seconds_between(baseline.sampled_at, s.input.at);
    let written = s.sample.current_lsn.bytes_since(baseline.current_lsn);
    let (span, written) = match (span, written) {
        (0, _) | (_, None) => return Condition::Unknown,
        // No WAL written: at this rate the slot is never lost.
        (_, Some(0)) => return Condition::Clear,
        (span, Some(written)) => (span, written),
    };
    // Seconds left = safe ÷ (written ÷ span), in integers; negative safe sizes (unreserved)
    // leave no time at all.
    let safe = u64::try_from(safe).unwrap_or(0);
    let left = u64::try_from(u128::from(safe) * u128::from(span) / u128::from(written)).unwrap_or(u64::MAX);
    match s.settings.severity_of(left) {
        Some((severity, threshold)) => Condition::Holds(Reading {
            severity,
            value: Some(to_i64(left)),
            threshold: Some(to_i64(threshold)),
            summary: format!(
                "slot {} on {} will be lost in about {} at the current WAL rate of {}/s ({severity} at {})",
                s.slot.slot_name,
                s.input.source_name,
                format_seconds(left),
                format_bytes(written / span),
                format_seconds(threshold)
            ),
        }),
        None => Condition::Clear,
    }
}

/// An attached logical consumer whose confirmed position stands still while the source writes.
fn stalled(s: &SlotInput<'_>) -> (Condition, Option<WatchParts>) {
    let (true, SlotType::Logical, Some(confirmed)) = (s.slot.active, s.slot.slot_type, s.slot.confirmed_flush_lsn)
    else {
        return (Condition::Clear, None);
    };
    let current = s.sample.current_lsn;
    let Some((since, mark)) = s
        .previous
        .filter(|watch| watch.confirmed_flush_lsn == Some(confirmed))
        .and_then(|watch| Some((watch.since, watch.current_lsn?)))
    else {
        // First sight of this confirmed position: its clock starts now.
        return (Condition::Clear, Some((s.input.at, Some(confirmed), Some(current))));
    };
    let elapsed = seconds_between(since, s.input.at);
    let for_seconds = s.settings.for_seconds().unwrap_or(0);
    let condition = if elapsed >= for_seconds && current > mark {
        Condition::Holds(Reading {
            severity: Severity::Warning,
            value: Some(to_i64(elapsed)),
            threshold: Some(to_i64(for_seconds)),
            summary: format!(
                "the consumer of slot {} on {} has not confirmed for {} while the source wrote {} of WAL",
                s.slot.slot_name,
                s.input.source_name,
                format_seconds(elapsed),
                format_bytes(current.bytes_since(mark).unwrap_or(0))
            ),
        })
    } else {
        Condition::Clear
    };
    (condition, Some((since, Some(confirmed), Some(mark))))
}

fn dropped(input: &EvaluationInput<'_>, name: &str) -> Condition {
    Condition::Holds(Reading {
        severity: Severity::Warning,
        value: None,
        threshold: None,
        summary: format!(
            "slot {name} on {} is gone: a consumer that reconnects to a new slot of that name misses every change in between",
            input.source_name
        ),
    })
}

fn wal_dir(input: &EvaluationInput<'_>, sample: &WalSample, settings: RuleSettings) -> Condition {
    // Unreadable without pg_monitor: unknown, not fine.
    let Some(bytes) = sample.wal_dir_bytes else { return Condition::Unknown };
    match settings.severity_of(bytes) {
        Some((severity, threshold)) => Condition::Holds(Reading {
            severity,
            value: Some(to_i64(bytes)),
            threshold: Some(to_i64(threshold)),
            summary: format!(
                "pg_wal of {} holds {} ({severity} at {})",
                input.source_name,
                format_bytes(bytes),
                format_bytes(threshold)
            ),
        }),
        None => Condition::Clear,
    }
}

/// Whole seconds from `earlier` to `later`; 0 if `later` is not later (clocks of other
/// processes, or of PostgreSQL for `inactive_since`, may be a little ahead).
fn seconds_between(earlier: Timestamp, later: Timestamp) -> u64 {
    u64::try_from((later - earlier).num_seconds()).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
