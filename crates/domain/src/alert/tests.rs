//! The alert lifecycle, sample by sample: a small simulator applies each evaluation the way a
//! store would, so the tests read as a history of one source.

use chrono::TimeDelta;

use super::*;
use crate::{AlertId, Lsn, Patch, SlotSample, SlotType, Timestamp, WalSample, WalStatus};

const GIB: u64 = 1 << 30;

fn t(seconds: i64) -> Timestamp {
    Timestamp::default() + TimeDelta::seconds(seconds)
}

fn slot(name: &str) -> SlotSample {
    SlotSample {
        slot_name: name.into(),
        slot_type: SlotType::Logical,
        active: true,
        temporary: false,
        restart_lsn: Some(Lsn::from_bytes(0)),
        confirmed_flush_lsn: Some(Lsn::from_bytes(0)),
        wal_status: Some(WalStatus::Reserved),
        safe_wal_size_bytes: None,
        conflicting: None,
        inactive_since: None,
        synced: None,
        invalidation_reason: None,
    }
}

/// A sample at position `current` whose slots pin WAL from `restart` (and, for the test's
/// purpose, have confirmed up to there).
fn sample(at: i64, current: u64, slots: Vec<SlotSample>) -> WalSample {
    WalSample {
        sampled_at: t(at),
        in_recovery: false,
        current_lsn: Lsn::from_bytes(current),
        wal_dir_bytes: None,
        slots,
    }
}

fn retaining(name: &str, bytes: u64, current: u64) -> SlotSample {
    SlotSample { restart_lsn: Some(Lsn::from_bytes(current - bytes)), ..slot(name) }
}

/// A notification the simulator saw written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    alert: i64,
    kind: NotificationType,
    severity: Severity,
}

#[derive(Debug, Clone)]
struct Stored {
    id: AlertId,
    key: AlertKey,
    reading: Reading,
    state: AlertState,
    acknowledged: bool,
    last_notified_at: Timestamp,
    clear_streak: u8,
    resolved: Option<ResolveReason>,
}

/// One source's alerts as a store keeps them.
struct Source {
    rules: EffectiveRules,
    memory: AlertMemory,
    alerts: Vec<Stored>,
    sent: Vec<Sent>,
    pipeline_should_run: bool,
    renotify_seconds: u64,
    baseline: Option<RateBaseline>,
}

impl Source {
    fn new() -> Self {
        Self {
            rules: EffectiveRules::defaults(),
            memory: AlertMemory::default(),
            alerts: Vec::new(),
            sent: Vec::new(),
            pipeline_should_run: false,
            renotify_seconds: 14_400,
            baseline: None,
        }
    }

    fn set(mut self, rule: AlertRule, patch: RuleSettingsPatch) -> Self {
        self.rules = self.rules.clone().with(self.rules.get(rule).apply(patch).expect("valid settings"));
        self
    }

    fn only(mut self, keep: &[AlertRule]) -> Self {
        for rule in AlertRule::ALL {
            let enabled = keep.contains(&rule);
            self = self.set(rule, RuleSettingsPatch { enabled: Some(enabled), ..RuleSettingsPatch::default() });
        }
        self
    }

    fn observe(&mut self, at: i64, observation: Observation<'_>) -> Evaluation {
        let firing: Vec<FiringAlert> = self
            .alerts
            .iter()
            .filter(|alert| alert.state == AlertState::Firing)
            .map(|alert| FiringAlert {
                id: alert.id,
                key: alert.key.clone(),
                severity: alert.reading.severity,
                acknowledged: alert.acknowledged,
                last_notified_at: alert.last_notified_at,
                clear_streak: alert.clear_streak,
            })
            .collect();
        let evaluation = evaluate(&EvaluationInput {
            source_name: "orders",
            at: t(at),
            observation,
            rate_baseline: self.baseline,
            pipeline_should_run: self.pipeline_should_run,
            rules: &self.rules,
            renotify_seconds: self.renotify_seconds,
            firing: &firing,
            memory: &self.memory,
        });
        self.apply(t(at), &evaluation);
        evaluation
    }

    fn sample(&mut self, sample: &WalSample) -> Evaluation {
        let at = (sample.sampled_at - t(0)).num_seconds();
        self.observe(at, Observation::Sampled(sample))
    }

    fn fail(&mut self, at: i64) -> Evaluation {
        self.observe(at, Observation::Failed)
    }

    fn apply(&mut self, at: Timestamp, evaluation: &Evaluation) {
        self.memory = evaluation.memory.clone();
        for update in &evaluation.updated {
            let alert = self.alerts.iter_mut().find(|alert| alert.id == update.id).expect("a firing alert");
            assert_eq!(alert.state, AlertState::Firing, "only firing alerts change");
            match &update.change {
                AlertChange::Holds { reading, notify } => {
                    alert.reading = reading.clone();
                    alert.clear_streak = 0;
                    if let Some(kind) = notify {
                        if *kind == NotificationType::Escalated {
                            alert.acknowledged = false;
                        }
                        alert.last_notified_at = at;
                        self.sent.push(Sent { alert: alert.id.get(), kind: *kind, severity: reading.severity });
                    }
                }
                AlertChange::Clearing { clear_streak } => alert.clear_streak = *clear_streak,
                AlertChange::Resolved(reason) => {
                    alert.state = AlertState::Resolved;
                    alert.resolved = Some(*reason);
                    self.sent.push(Sent {
                        alert: alert.id.get(),
                        kind: NotificationType::Resolved,
                        severity: alert.reading.severity,
                    });
                }
            }
        }
        for new in &evaluation.fired {
            assert!(
                !self.alerts.iter().any(|a| a.key == new.key && a.state == AlertState::Firing),
                "a second firing alert for {:?}",
                new.key
            );
            let id = AlertId::new(i64::try_from(self.alerts.len()).expect("few alerts") + 1);
            self.sent.push(Sent { alert: id.get(), kind: NotificationType::Firing, severity: new.reading.severity });
            self.alerts.push(Stored {
                id,
                key: new.key.clone(),
                reading: new.reading.clone(),
                state: AlertState::Firing,
                acknowledged: false,
                last_notified_at: at,
                clear_streak: 0,
                resolved: None,
            });
        }
    }

    fn acknowledge(&mut self, id: i64) {
        let alert = self.alerts.iter_mut().find(|alert| alert.id.get() == id).expect("alert");
        alert.acknowledged = true;
    }

    fn firing(&self) -> Vec<(AlertRule, Option<&str>, Severity)> {
        self.alerts
            .iter()
            .filter(|alert| alert.state == AlertState::Firing)
            .map(|alert| (alert.key.rule, alert.key.slot_name.as_deref(), alert.reading.severity))
            .collect()
    }

    fn take_sent(&mut self) -> Vec<(i64, NotificationType, Severity)> {
        self.sent.drain(..).map(|sent| (sent.alert, sent.kind, sent.severity)).collect()
    }
}

use NotificationType::{Escalated, Firing, Renotify, Resolved};
use Severity::{Critical, Warning};

#[test]
fn retained_bytes_fire_escalate_de_escalate_and_resolve_after_two_good_samples() {
    let mut source = Source::new().only(&[AlertRule::SlotRetainedBytes]);
    let at = |i: i64| i * 60;
    source.sample(&sample(at(0), 10 * GIB, vec![retaining("cdc", GIB / 2, 10 * GIB)]));
    assert!(source.firing().is_empty());
    source.sample(&sample(at(1), 10 * GIB, vec![retaining("cdc", GIB, 10 * GIB)]));
    assert_eq!(source.firing(), [(AlertRule::SlotRetainedBytes, Some("cdc"), Warning)]);
    assert_eq!(source.take_sent(), [(1, Firing, Warning)]);
    let alert = &source.alerts[0];
    assert_eq!(alert.reading.value, Some(1 << 30));
    assert_eq!(alert.reading.threshold, Some(1 << 30));
    assert_eq!(alert.reading.summary, "slot cdc on orders retains 1.0 GiB of WAL (warning at 1.0 GiB)");

    source.sample(&sample(at(2), 10 * GIB, vec![retaining("cdc", 6 * GIB, 10 * GIB)]));
    assert_eq!(source.take_sent(), [(1, Escalated, Critical)], "warning -> critical is an escalation");
    source.sample(&sample(at(3), 10 * GIB, vec![retaining("cdc", 2 * GIB, 10 * GIB)]));
    assert_eq!(source.firing(), [(AlertRule::SlotRetainedBytes, Some("cdc"), Warning)]);
    assert!(source.take_sent().is_empty(), "de-escalation is not notified");

    source.sample(&sample(at(4), 10 * GIB, vec![retaining("cdc", 10, 10 * GIB)]));
    assert_eq!(source.firing().len(), 1, "one good sample is not enough");
    source.sample(&sample(at(5), 10 * GIB, vec![retaining("cdc", 2 * GIB, 10 * GIB)]));
    assert_eq!(source.alerts[0].clear_streak, 0, "the condition is back: the streak starts over");
    source.sample(&sample(at(6), 10 * GIB, vec![retaining("cdc", 10, 10 * GIB)]));
    source.sample(&sample(at(7), 10 * GIB, vec![retaining("cdc", 10, 10 * GIB)]));
    assert!(source.firing().is_empty());
    assert_eq!(source.alerts[0].resolved, Some(ResolveReason::Cleared));
    assert_eq!(source.take_sent(), [(1, Resolved, Warning)]);

    source.sample(&sample(at(8), 10 * GIB, vec![retaining("cdc", 3 * GIB, 10 * GIB)]));
    assert_eq!(source.take_sent(), [(2, Firing, Warning)], "a later firing is a new alert");
}

#[test]
fn a_first_sample_above_critical_fires_critical_at_once() {
    let mut source = Source::new().only(&[AlertRule::SlotRetainedBytes]);
    source.sample(&sample(0, 10 * GIB, vec![retaining("a", 6 * GIB, 10 * GIB), retaining("b", GIB, 10 * GIB)]));
    assert_eq!(
        source.firing(),
        [(AlertRule::SlotRetainedBytes, Some("a"), Critical), (AlertRule::SlotRetainedBytes, Some("b"), Warning)],
        "one alert per slot"
    );
}

#[test]
fn temporary_slots_are_skipped_by_every_slot_rule() {
    let mut source = Source::new();
    let temporary = SlotSample { temporary: true, active: false, wal_status: Some(WalStatus::Lost), ..slot("tmp") };
    source.sample(&sample(
        0,
        10 * GIB,
        vec![SlotSample { restart_lsn: Some(Lsn::from_bytes(0)), ..temporary.clone() }],
    ));
    source.sample(&sample(10_000, 10 * GIB, vec![]));
    assert!(source.firing().is_empty(), "{:?}", source.firing());
    assert!(source.memory.known_slots.is_empty(), "a temporary slot that goes is not dropped");
}

#[test]
fn synced_slots_of_a_standby_are_skipped() {
    let mut source = Source::new();
    let synced = SlotSample { synced: Some(true), active: false, wal_status: Some(WalStatus::Lost), ..slot("synced") };
    source.sample(&sample(0, 10 * GIB, vec![synced]));
    source.sample(&sample(10_000, 10 * GIB, vec![]));
    assert!(source.firing().is_empty(), "{:?}", source.firing());
}

#[test]
fn an_error_between_good_samples_changes_no_slot_alert() {
    let mut source = Source::new().only(&[AlertRule::SlotRetainedBytes, AlertRule::SourceUnreachable]);
    source.sample(&sample(0, 10 * GIB, vec![retaining("cdc", 2 * GIB, 10 * GIB)]));
    source.sample(&sample(60, 10 * GIB, vec![retaining("cdc", 1, 10 * GIB)]));
    assert_eq!(source.alerts[0].clear_streak, 1);
    let failed = source.fail(120);
    assert!(failed.updated.is_empty() && failed.fired.is_empty(), "{failed:?}");
    assert_eq!(source.memory.known_slots.len(), 1, "the last good sample's slots are kept");
    source.sample(&sample(180, 10 * GIB, vec![retaining("cdc", 1, 10 * GIB)]));
    assert!(source.firing().is_empty(), "the error neither counted as good nor reset the streak");
}

#[test]
fn a_source_failing_for_long_enough_is_unreachable_and_one_good_sample_resolves_it() {
    let mut source = Source::new().only(&[AlertRule::SourceUnreachable]);
    source.sample(&sample(0, 1, vec![]));
    source.fail(60);
    source.fail(900);
    assert!(source.firing().is_empty(), "840 s of errors, 900 needed");
    source.fail(960);
    assert_eq!(source.firing(), [(AlertRule::SourceUnreachable, None, Warning)]);
    assert_eq!(source.alerts[0].reading.summary, "orders could not be sampled for 15 min");
    assert_eq!(source.alerts[0].reading.value, Some(900));
    source.fail(1_020);
    assert_eq!(source.alerts[0].reading.value, Some(960), "the value follows the outage");
    source.sample(&sample(1_080, 1, vec![]));
    assert!(source.firing().is_empty(), "a source rule resolves after one good sample");
    source.fail(1_140);
    source.fail(1_500);
    assert!(source.firing().is_empty(), "a new outage starts its clock again");
}

#[test]
fn an_inactive_slot_is_critical_when_its_pipeline_should_run_and_follows_the_pipeline() {
    let mut source = Source::new().only(&[AlertRule::SlotInactive]);
    let idle = SlotSample { active: false, ..slot("cdc") };
    source.sample(&sample(0, 1, vec![idle.clone()]));
    source.sample(&sample(599, 1, vec![idle.clone()]));
    assert!(source.firing().is_empty());
    source.sample(&sample(600, 1, vec![idle.clone()]));
    assert_eq!(source.firing(), [(AlertRule::SlotInactive, Some("cdc"), Warning)], "paused pipeline: warning");
    source.pipeline_should_run = true;
    source.sample(&sample(660, 1, vec![idle.clone()]));
    assert_eq!(source.take_sent(), [(1, Firing, Warning), (1, Escalated, Critical)]);
    assert!(source.alerts[0].reading.summary.contains("should be running"), "{}", source.alerts[0].reading.summary);
    source.sample(&sample(720, 1, vec![slot("cdc")]));
    assert_eq!(source.firing().len(), 1, "one sample with a consumer is not enough");
    source.sample(&sample(780, 1, vec![idle.clone()]));
    assert!(source.firing().is_empty(), "inactive for 0 s is not inactive for 600 s: resolved");
    source.sample(&sample(1_379, 1, vec![idle.clone()]));
    assert!(source.firing().is_empty(), "the consumer's visit restarted the clock");
    source.sample(&sample(1_380, 1, vec![idle]));
    assert_eq!(source.firing(), [(AlertRule::SlotInactive, Some("cdc"), Critical)]);
}

#[test]
fn postgres_17_says_since_when_a_slot_is_inactive() {
    let mut source = Source::new().only(&[AlertRule::SlotInactive]);
    let idle = SlotSample { active: false, inactive_since: Some(t(-3_600)), ..slot("cdc") };
    source.sample(&sample(0, 1, vec![idle]));
    assert_eq!(source.firing(), [(AlertRule::SlotInactive, Some("cdc"), Warning)], "an hour already");
    assert_eq!(source.alerts[0].reading.value, Some(3_600));
}

#[test]
fn lost_conflicting_and_unreserved_slots_are_critical_at_once() {
    let mut source = Source::new().only(&[AlertRule::SlotLost, AlertRule::SlotUnreserved]);
    let lost = SlotSample { wal_status: Some(WalStatus::Lost), restart_lsn: None, ..slot("lost") };
    let conflicted = SlotSample { conflicting: Some(true), ..slot("conflict") };
    let unreserved = SlotSample { wal_status: Some(WalStatus::Unreserved), safe_wal_size_bytes: Some(-5), ..slot("u") };
    source.sample(&sample(0, 1, vec![lost, conflicted, unreserved]));
    assert_eq!(
        source.firing(),
        [
            (AlertRule::SlotLost, Some("conflict"), Critical),
            (AlertRule::SlotLost, Some("lost"), Critical),
            (AlertRule::SlotUnreserved, Some("u"), Critical),
        ]
    );
    assert!(source.alerts.iter().all(|alert| alert.reading.value.is_none() && alert.reading.threshold.is_none()));
}

#[test]
fn time_to_lost_comes_from_the_wal_rate_and_safe_wal_size() {
    let mut source = Source::new().only(&[AlertRule::SlotTimeToLost]);
    let current = 100 * GIB;
    // 1 MiB/s over the last 900 s.
    source.baseline = Some(RateBaseline { sampled_at: t(0), current_lsn: Lsn::from_bytes(current - 900 * (1 << 20)) });
    let safe = |bytes: i64| SlotSample { safe_wal_size_bytes: Some(bytes), ..slot("cdc") };
    source.sample(&sample(900, current, vec![safe(21_601 * (1 << 20))]));
    assert!(source.firing().is_empty(), "21 601 s left");
    source.sample(&sample(900, current, vec![safe(7_200 * (1 << 20))]));
    assert_eq!(source.firing(), [(AlertRule::SlotTimeToLost, Some("cdc"), Warning)]);
    let alert = &source.alerts[0];
    assert_eq!((alert.reading.value, alert.reading.threshold), (Some(7_200), Some(21_600)));
    assert_eq!(
        alert.reading.summary,
        "slot cdc on orders will be lost in about 2 h at the current WAL rate of 1.0 MiB/s (warning at 6 h)"
    );
    source.sample(&sample(900, current, vec![safe(-1)]));
    assert_eq!(source.firing(), [(AlertRule::SlotTimeToLost, Some("cdc"), Critical)], "negative: no time left");
    assert_eq!(source.alerts[0].reading.value, Some(0));
}

#[test]
fn time_to_lost_without_a_rate_or_a_limit() {
    let mut source = Source::new().only(&[AlertRule::SlotTimeToLost]);
    let safe = SlotSample { safe_wal_size_bytes: Some(1), ..slot("cdc") };
    source.sample(&sample(900, GIB, vec![safe.clone()]));
    assert!(source.firing().is_empty(), "no history yet: unknown, not firing");
    source.baseline = Some(RateBaseline { sampled_at: t(0), current_lsn: Lsn::from_bytes(GIB) });
    source.sample(&sample(900, GIB, vec![safe.clone()]));
    assert!(source.firing().is_empty(), "no WAL written: never lost");
    source.sample(&sample(900, GIB, vec![SlotSample { safe_wal_size_bytes: None, ..slot("cdc") }]));
    assert!(source.firing().is_empty(), "no max_slot_wal_keep_size: nothing to count down");
    source.baseline = Some(RateBaseline { sampled_at: t(900), current_lsn: Lsn::from_bytes(0) });
    source.sample(&sample(900, GIB, vec![safe.clone()]));
    assert!(source.firing().is_empty(), "a baseline of the same instant gives no rate");

    // Firing, then the history runs dry: the alert stays as it is.
    source.baseline = Some(RateBaseline { sampled_at: t(0), current_lsn: Lsn::from_bytes(0) });
    source.sample(&sample(900, GIB, vec![safe.clone()]));
    assert_eq!(source.firing().len(), 1);
    source.baseline = None;
    let evaluation = source.sample(&sample(960, GIB, vec![safe]));
    assert!(evaluation.updated.is_empty(), "{evaluation:?}");
}

#[test]
fn an_attached_consumer_that_stops_confirming_while_wal_moves_is_stalled() {
    let mut source = Source::new().only(&[AlertRule::SlotStalled]);
    let at_confirmed =
        |confirmed: u64| SlotSample { confirmed_flush_lsn: Some(Lsn::from_bytes(confirmed)), ..slot("cdc") };
    source.sample(&sample(0, 100, vec![at_confirmed(50)]));
    source.sample(&sample(900, 100, vec![at_confirmed(50)]));
    assert!(source.firing().is_empty(), "no WAL written: nothing to confirm");
    source.sample(&sample(1_000, 5_000, vec![at_confirmed(50)]));
    assert_eq!(source.firing(), [(AlertRule::SlotStalled, Some("cdc"), Warning)]);
    assert_eq!(source.alerts[0].reading.value, Some(1_000));
    source.sample(&sample(1_060, 6_000, vec![at_confirmed(5_000)]));
    source.sample(&sample(1_120, 7_000, vec![at_confirmed(6_000)]));
    assert!(source.firing().is_empty(), "confirming again");
    source.sample(&sample(1_180, 8_000, vec![SlotSample { active: false, ..at_confirmed(6_000) }]));
    source.sample(&sample(5_000, 9_000, vec![SlotSample { active: false, ..at_confirmed(6_000) }]));
    assert!(source.firing().is_empty(), "detached consumers are slot_inactive's business");
}

#[test]
fn a_slot_present_then_gone_then_back() {
    let mut source = Source::new().only(&[AlertRule::SlotDropped, AlertRule::SlotRetainedBytes]);
    source.sample(&sample(0, 10 * GIB, vec![retaining("cdc", 2 * GIB, 10 * GIB), retaining("other", 1, 10 * GIB)]));
    assert_eq!(source.take_sent(), [(1, Firing, Warning)]);
    source.sample(&sample(60, 10 * GIB, vec![retaining("other", 1, 10 * GIB)]));
    assert_eq!(
        source.firing(),
        [(AlertRule::SlotRetainedBytes, Some("cdc"), Warning), (AlertRule::SlotDropped, Some("cdc"), Warning)]
    );
    let dropped = &source.alerts[1];
    assert!(dropped.reading.summary.starts_with("slot cdc on orders is gone"), "{}", dropped.reading.summary);
    source.sample(&sample(120, 10 * GIB, vec![retaining("other", 1, 10 * GIB)]));
    assert_eq!(
        source.firing(),
        [(AlertRule::SlotDropped, Some("cdc"), Warning)],
        "a slot that is gone clears its other alerts (after two samples), the drop stays"
    );
    source.sample(&sample(180, 10 * GIB, vec![retaining("other", 1, 10 * GIB)]));
    assert_eq!(source.firing().len(), 1, "no second drop alert for a slot that stays gone");
    source.sample(&sample(240, 10 * GIB, vec![retaining("cdc", 1, 10 * GIB), retaining("other", 1, 10 * GIB)]));
    assert!(source.firing().is_empty());
    assert_eq!(source.alerts[1].resolved, Some(ResolveReason::SlotBack));
    source.fail(300);
    source.sample(&sample(360, 10 * GIB, vec![retaining("other", 1, 10 * GIB)]));
    assert_eq!(source.firing(), [(AlertRule::SlotDropped, Some("cdc"), Warning)], "gone again across an error");
}

#[test]
fn acknowledging_stops_renotifications_until_it_escalates() {
    let mut source = Source::new().only(&[AlertRule::SlotRetainedBytes]);
    source.renotify_seconds = 3_600;
    let warn = |at| sample(at, 10 * GIB, vec![retaining("cdc", 2 * GIB, 10 * GIB)]);
    source.sample(&warn(0));
    source.sample(&warn(3_599));
    source.sample(&warn(3_600));
    source.sample(&warn(3_660));
    assert_eq!(source.take_sent(), [(1, Firing, Warning), (1, Renotify, Warning)], "once per interval");
    source.sample(&warn(7_200));
    assert_eq!(source.take_sent(), [(1, Renotify, Warning)]);
    source.acknowledge(1);
    source.sample(&warn(20_000));
    assert!(source.take_sent().is_empty(), "acknowledged");
    source.sample(&sample(20_060, 10 * GIB, vec![retaining("cdc", 6 * GIB, 10 * GIB)]));
    assert_eq!(source.take_sent(), [(1, Escalated, Critical)]);
    assert!(!source.alerts[0].acknowledged, "an escalation needs a new acknowledgement");
    source.sample(&sample(23_660, 10 * GIB, vec![retaining("cdc", 6 * GIB, 10 * GIB)]));
    assert_eq!(source.take_sent(), [(1, Renotify, Critical)]);
}

#[test]
fn disabling_a_rule_resolves_its_alerts_even_while_the_source_fails() {
    let mut source = Source::new().only(&[AlertRule::SlotRetainedBytes, AlertRule::SlotInactive]);
    let idle = SlotSample { active: false, ..retaining("cdc", 2 * GIB, 10 * GIB) };
    source.sample(&sample(0, 10 * GIB, vec![idle.clone()]));
    source.sample(&sample(600, 10 * GIB, vec![idle.clone()]));
    assert_eq!(source.firing().len(), 2);
    source = source.set(AlertRule::SlotRetainedBytes, RuleSettingsPatch { enabled: Some(false), ..Default::default() });
    source.fail(660);
    assert_eq!(source.firing(), [(AlertRule::SlotInactive, Some("cdc"), Warning)]);
    assert_eq!(source.alerts[0].resolved, Some(ResolveReason::RuleDisabled));
    source = source.set(AlertRule::SlotInactive, RuleSettingsPatch { enabled: Some(false), ..Default::default() });
    source.sample(&sample(720, 10 * GIB, vec![idle.clone()]));
    assert!(source.firing().is_empty());
    assert!(source.memory.watches.is_empty(), "a disabled rule keeps no clock");
}

#[test]
fn the_inactive_clock_keeps_running_through_errors() {
    let mut source = Source::new().only(&[AlertRule::SlotInactive]);
    let idle = SlotSample { active: false, ..slot("cdc") };
    source.sample(&sample(0, 1, vec![idle.clone()]));
    source.fail(300);
    source.sample(&sample(600, 1, vec![idle]));
    assert_eq!(source.firing().len(), 1, "inactive since 0 s, through the error");
}

#[test]
fn thresholds_come_from_the_effective_rules() {
    let mut source = Source::new().only(&[AlertRule::SlotRetainedBytes, AlertRule::WalDirBytes]).set(
        AlertRule::SlotRetainedBytes,
        RuleSettingsPatch { warning: Patch::Set(1 << 20), critical: Patch::Clear, ..Default::default() },
    );
    let mut with_wal_dir = sample(0, GIB, vec![retaining("cdc", 2 << 20, GIB)]);
    with_wal_dir.wal_dir_bytes = Some(60 * GIB);
    source.sample(&with_wal_dir);
    assert_eq!(
        source.firing(),
        [(AlertRule::SlotRetainedBytes, Some("cdc"), Warning), (AlertRule::WalDirBytes, None, Critical)]
    );
    assert_eq!(source.alerts[1].reading.summary, "pg_wal of orders holds 60.0 GiB (critical at 50.0 GiB)");
    with_wal_dir.wal_dir_bytes = None;
    with_wal_dir.sampled_at = t(60);
    let evaluation = source.sample(&with_wal_dir);
    assert!(
        !evaluation.updated.iter().any(|update| update.id == source.alerts[1].id),
        "pg_wal unreadable: unknown, not cleared"
    );
}

#[test]
fn acknowledgement_resolves_only_a_dropped_slot() {
    for rule in AlertRule::ALL {
        assert_eq!(rule.resolves_when_acknowledged(), rule == AlertRule::SlotDropped, "{rule}");
    }
}
