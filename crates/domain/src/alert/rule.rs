//! The alert rules and their settings.

use std::fmt;
use std::str::FromStr;

use crate::{InvalidKind, InvalidValue, Patch};

/// How bad an alert is. Ordered: `Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Someone should look soon.
    Warning,
    /// Someone should act now.
    Critical,
}

impl Severity {
    /// Both severities, least severe first.
    pub const ALL: [Self; 2] = [Self::Warning, Self::Critical];

    /// `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str() == s)
            .ok_or_else(|| InvalidValue::new(InvalidKind::PatternMismatch, "must be 'warning' or 'critical'"))
    }
}

/// What a rule watches: one replication slot of a source, or the source as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSubject {
    /// One (permanent) slot; alerts are keyed by the slot's name.
    Slot,
    /// The source; alerts have no slot name.
    Source,
}

/// One of the fixed set of alert rules (SPEC, "Rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertRule {
    /// A slot retains at least `warning` / `critical` bytes of WAL.
    SlotRetainedBytes,
    /// A slot has had no consumer for at least `for_seconds`; critical when a pipeline of the
    /// source should be running.
    SlotInactive,
    /// A slot can no longer serve its consumer (`wal_status = lost`, or a recovery conflict).
    SlotLost,
    /// WAL a slot needs is about to be removed (`wal_status = unreserved`).
    SlotUnreserved,
    /// At the source's current WAL rate, a slot will be lost within `warning` / `critical`
    /// seconds.
    SlotTimeToLost,
    /// A logical slot's consumer is attached but has not confirmed for `for_seconds` while the
    /// source wrote WAL.
    SlotStalled,
    /// A permanent slot of the previous good sample is gone.
    SlotDropped,
    /// The source could not be sampled for at least `for_seconds`.
    SourceUnreachable,
    /// The source's `pg_wal` holds at least `warning` / `critical` bytes.
    WalDirBytes,
}

/// How a rule's thresholds are ordered, for those that have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thresholds {
    /// Fires above: `0 < warning ≤ critical`.
    Ascending,
    /// Fires below (time left): `warning ≥ critical > 0`.
    Descending,
}

/// Which settings a rule reads besides `enabled`.
#[derive(Debug, Clone, Copy)]
struct Uses {
    thresholds: Option<Thresholds>,
    for_seconds: bool,
    window_seconds: bool,
}

impl AlertRule {
    /// Every rule, in the order the API lists them.
    pub const ALL: [Self; 9] = [
        Self::SlotRetainedBytes,
        Self::SlotInactive,
        Self::SlotLost,
        Self::SlotUnreserved,
        Self::SlotTimeToLost,
        Self::SlotStalled,
        Self::SlotDropped,
        Self::SourceUnreachable,
        Self::WalDirBytes,
    ];

    /// The wire and storage name, e.g. `slot_retained_bytes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SlotRetainedBytes => "slot_retained_bytes",
            Self::SlotInactive => "slot_inactive",
            Self::SlotLost => "slot_lost",
            Self::SlotUnreserved => "slot_unreserved",
            Self::SlotTimeToLost => "slot_time_to_lost",
            Self::SlotStalled => "slot_stalled",
            Self::SlotDropped => "slot_dropped",
            Self::SourceUnreachable => "source_unreachable",
            Self::WalDirBytes => "wal_dir_bytes",
        }
    }

    /// Whether the rule watches slots or whole sources.
    pub fn subject(self) -> RuleSubject {
        match self {
            Self::SourceUnreachable | Self::WalDirBytes => RuleSubject::Source,
            _ => RuleSubject::Slot,
        }
    }

    /// Good samples in a row without the condition after which a firing alert resolves (a
    /// slot rule's condition must stay false twice, so one lucky sample does not flap it).
    pub fn samples_to_resolve(self) -> u8 {
        match self.subject() {
            RuleSubject::Slot => 2,
            RuleSubject::Source => 1,
        }
    }

    /// Whether acknowledging an alert of this rule resolves it (a dropped slot cannot clear by
    /// itself unless a slot of its name comes back; someone saying "we know" ends it). Other
    /// alerts only stop re-notifying until they escalate or resolve.
    pub fn resolves_when_acknowledged(self) -> bool {
        self == Self::SlotDropped
    }

    fn uses(self) -> Uses {
        let thresholds = match self {
            Self::SlotRetainedBytes | Self::WalDirBytes => Some(Thresholds::Ascending),
            Self::SlotTimeToLost => Some(Thresholds::Descending),
            _ => None,
        };
        Uses {
            thresholds,
            for_seconds: matches!(self, Self::SlotInactive | Self::SlotStalled | Self::SourceUnreachable),
            window_seconds: self == Self::SlotTimeToLost,
        }
    }

    /// The settings a rule has until someone changes them.
    pub fn defaults(self) -> RuleSettings {
        const GIB: u64 = 1 << 30;
        let settings = |enabled, warning, critical, for_seconds, window_seconds| RuleSettings {
            rule: self,
            enabled,
            warning,
            critical,
            for_seconds,
            window_seconds,
        };
        match self {
            Self::SlotRetainedBytes => settings(true, Some(GIB), Some(5 * GIB), None, None),
            Self::SlotInactive => settings(true, None, None, Some(600), None),
            Self::SlotLost | Self::SlotUnreserved | Self::SlotDropped => settings(true, None, None, None, None),
            Self::SlotTimeToLost => settings(true, Some(21_600), Some(3_600), None, Some(900)),
            Self::SlotStalled => settings(true, None, None, Some(900), None),
            Self::SourceUnreachable => settings(true, None, None, Some(900), None),
            Self::WalDirBytes => settings(false, Some(10 * GIB), Some(50 * GIB), None, None),
        }
    }
}

impl fmt::Display for AlertRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertRule {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|rule| rule.as_str()).collect();
            InvalidValue::new(InvalidKind::PatternMismatch, format!("must be one of {}", names.join(", ")))
        })
    }
}

/// The largest threshold or duration accepted: what a signed 64-bit column holds.
const MAX_SETTING: u64 = i64::MAX as u64;
/// The longest `for_seconds` / `window_seconds` accepted: 30 days (history is kept for less).
const MAX_SECONDS: u64 = 30 * 86_400;

/// Settings of one rule that break its rules, with the field that broke them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {error}")]
pub struct InvalidRuleSettings {
    /// The setting at fault: `warning`, `critical`, `for_seconds` or `window_seconds`.
    pub field: &'static str,
    /// What is wrong with it.
    pub error: InvalidValue,
}

impl InvalidRuleSettings {
    fn new(field: &'static str, kind: InvalidKind, message: impl Into<String>) -> Self {
        Self { field, error: InvalidValue::new(kind, message) }
    }
}

/// The settings of one rule — globally or for one source — valid for that rule: the thresholds
/// are ordered the rule's way and at least one is set, every duration it reads is set, and the
/// settings it does not read are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSettings {
    rule: AlertRule,
    enabled: bool,
    warning: Option<u64>,
    critical: Option<u64>,
    for_seconds: Option<u64>,
    window_seconds: Option<u64>,
}

impl RuleSettings {
    /// Checks a full set of settings for `rule`.
    pub fn new(
        rule: AlertRule,
        enabled: bool,
        warning: Option<u64>,
        critical: Option<u64>,
        for_seconds: Option<u64>,
        window_seconds: Option<u64>,
    ) -> Result<Self, InvalidRuleSettings> {
        let uses = rule.uses();
        let unused = |field: &'static str| {
            InvalidRuleSettings::new(field, InvalidKind::PatternMismatch, format!("{rule} has no {field} setting"))
        };
        match uses.thresholds {
            None => {
                if warning.is_some() {
                    return Err(unused("warning"));
                }
                if critical.is_some() {
                    return Err(unused("critical"));
                }
            }
            Some(order) => check_thresholds(order, warning, critical)?,
        }
        for (field, value, used) in
            [("for_seconds", for_seconds, uses.for_seconds), ("window_seconds", window_seconds, uses.window_seconds)]
        {
            match (value, used) {
                (Some(_), false) => return Err(unused(field)),
                (None, true) => {
                    return Err(InvalidRuleSettings::new(
                        field,
                        InvalidKind::TooSmall,
                        format!("{rule} needs {field}"),
                    ));
                }
                (Some(seconds), true) if seconds > MAX_SECONDS => {
                    return Err(InvalidRuleSettings::new(
                        field,
                        InvalidKind::TooLarge,
                        format!("must be at most {MAX_SECONDS} (30 days)"),
                    ));
                }
                (Some(0), true) if field == "window_seconds" => {
                    return Err(InvalidRuleSettings::new(field, InvalidKind::TooSmall, "must be greater than 0"));
                }
                _ => {}
            }
        }
        Ok(Self { rule, enabled, warning, critical, for_seconds, window_seconds })
    }

    /// These settings with `patch` applied, checked again as a whole.
    pub fn apply(self, patch: RuleSettingsPatch) -> Result<Self, InvalidRuleSettings> {
        Self::new(
            self.rule,
            patch.enabled.unwrap_or(self.enabled),
            patch.warning.apply(self.warning),
            patch.critical.apply(self.critical),
            patch.for_seconds.apply(self.for_seconds),
            patch.window_seconds.apply(self.window_seconds),
        )
    }

    /// The rule these settings are for.
    pub fn rule(&self) -> AlertRule {
        self.rule
    }

    /// Whether the rule is evaluated at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The warning threshold (in the rule's unit), if the rule has one and it is set.
    pub fn warning(&self) -> Option<u64> {
        self.warning
    }

    /// The critical threshold (in the rule's unit), if the rule has one and it is set.
    pub fn critical(&self) -> Option<u64> {
        self.critical
    }

    /// How long the condition must hold before the alert fires (rules that have a duration).
    pub fn for_seconds(&self) -> Option<u64> {
        self.for_seconds
    }

    /// The span of history the WAL rate is measured over (`slot_time_to_lost`).
    pub fn window_seconds(&self) -> Option<u64> {
        self.window_seconds
    }

    /// The severity a measured `value` deserves under these thresholds, with the threshold it
    /// crossed; `None` below both (above both, for a rule that fires below).
    pub fn severity_of(&self, value: u64) -> Option<(Severity, u64)> {
        let crossed = |threshold: Option<u64>| match self.rule.uses().thresholds {
            Some(Thresholds::Ascending) => threshold.filter(|t| value >= *t),
            Some(Thresholds::Descending) => threshold.filter(|t| value <= *t),
            None => None,
        };
        crossed(self.critical)
            .map(|t| (Severity::Critical, t))
            .or_else(|| crossed(self.warning).map(|t| (Severity::Warning, t)))
    }
}

fn check_thresholds(order: Thresholds, warning: Option<u64>, critical: Option<u64>) -> Result<(), InvalidRuleSettings> {
    for (field, value) in [("warning", warning), ("critical", critical)] {
        match value {
            Some(0) => return Err(InvalidRuleSettings::new(field, InvalidKind::TooSmall, "must be greater than 0")),
            Some(v) if v > MAX_SETTING => {
                return Err(InvalidRuleSettings::new(
                    field,
                    InvalidKind::TooLarge,
                    format!("must be at most {MAX_SETTING}"),
                ));
            }
            _ => {}
        }
    }
    match (warning, critical, order) {
        (None, None, _) => Err(InvalidRuleSettings::new(
            "warning",
            InvalidKind::PatternMismatch,
            "set warning, critical or both (to silence the rule, set enabled to false)",
        )),
        (Some(w), Some(c), Thresholds::Ascending) if w > c => {
            Err(InvalidRuleSettings::new("warning", InvalidKind::TooLarge, "must be at most the critical threshold"))
        }
        (Some(w), Some(c), Thresholds::Descending) if w < c => Err(InvalidRuleSettings::new(
            "warning",
            InvalidKind::TooSmall,
            "must be at least the critical threshold (time left: warning comes first)",
        )),
        _ => Ok(()),
    }
}

/// A partial change to a rule's settings. `Patch::Clear` of a threshold uses only the other one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSettingsPatch {
    /// Turn the rule on or off.
    pub enabled: Option<bool>,
    /// The warning threshold.
    pub warning: Patch<u64>,
    /// The critical threshold.
    pub critical: Patch<u64>,
    /// How long the condition must hold.
    pub for_seconds: Patch<u64>,
    /// The WAL-rate window.
    pub window_seconds: Patch<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch() -> RuleSettingsPatch {
        RuleSettingsPatch::default()
    }

    #[test]
    fn every_rule_has_valid_defaults_and_round_trips_its_name() {
        for rule in AlertRule::ALL {
            let d = rule.defaults();
            assert_eq!(
                RuleSettings::new(rule, d.enabled(), d.warning(), d.critical(), d.for_seconds(), d.window_seconds()),
                Ok(d),
                "{rule}"
            );
            assert_eq!(rule.as_str().parse::<AlertRule>(), Ok(rule));
        }
        assert!(!AlertRule::WalDirBytes.defaults().enabled(), "wal_dir_bytes is off by default");
        assert_eq!(AlertRule::SlotRetainedBytes.defaults().warning(), Some(1 << 30));
        assert_eq!(AlertRule::SlotTimeToLost.defaults().window_seconds(), Some(900));
        let unknown = "slot_size".parse::<AlertRule>().unwrap_err();
        assert!(unknown.message.contains("slot_retained_bytes"), "{unknown}");
    }

    #[test]
    fn byte_thresholds_are_positive_and_ascending() {
        let rule = AlertRule::SlotRetainedBytes.defaults();
        let set = |w: Patch<u64>, c: Patch<u64>| rule.apply(RuleSettingsPatch { warning: w, critical: c, ..patch() });
        assert_eq!(set(Patch::Set(10), Patch::Set(10)).map(|s| (s.warning(), s.critical())), Ok((Some(10), Some(10))));
        assert_eq!(set(Patch::Set(11), Patch::Set(10)).unwrap_err().field, "warning");
        assert_eq!(set(Patch::Set(0), Patch::Keep).unwrap_err().field, "warning");
        assert_eq!(set(Patch::Keep, Patch::Set(0)).unwrap_err().field, "critical");
        assert_eq!(set(Patch::Set(u64::MAX), Patch::Clear).unwrap_err().error.kind, InvalidKind::TooLarge);
        let only_critical = set(Patch::Clear, Patch::Keep).expect("one threshold is enough");
        assert_eq!((only_critical.warning(), only_critical.critical()), (None, Some(5 << 30)));
        let neither = set(Patch::Clear, Patch::Clear).unwrap_err();
        assert!(neither.error.message.contains("enabled"), "{neither}");
    }

    #[test]
    fn time_left_thresholds_descend() {
        let rule = AlertRule::SlotTimeToLost.defaults();
        let set = |w, c| rule.apply(RuleSettingsPatch { warning: w, critical: c, ..patch() });
        assert!(set(Patch::Set(3_600), Patch::Set(3_600)).is_ok());
        assert_eq!(set(Patch::Set(60), Patch::Set(3_600)).unwrap_err().error.kind, InvalidKind::TooSmall);
        assert_eq!(set(Patch::Keep, Patch::Set(0)).unwrap_err().field, "critical");
        let window = rule.apply(RuleSettingsPatch { window_seconds: Patch::Set(0), ..patch() }).unwrap_err();
        assert_eq!(window.field, "window_seconds");
        let cleared = rule.apply(RuleSettingsPatch { window_seconds: Patch::Clear, ..patch() }).unwrap_err();
        assert_eq!(cleared.field, "window_seconds");
    }

    #[test]
    fn settings_a_rule_does_not_read_are_refused_by_name() {
        let lost = AlertRule::SlotLost.defaults();
        let err = lost.apply(RuleSettingsPatch { warning: Patch::Set(1), ..patch() }).unwrap_err();
        assert_eq!((err.field, err.error.message.as_str()), ("warning", "slot_lost has no warning setting"));
        let err = lost.apply(RuleSettingsPatch { for_seconds: Patch::Set(1), ..patch() }).unwrap_err();
        assert_eq!(err.field, "for_seconds");
        assert!(
            lost.apply(RuleSettingsPatch { warning: Patch::Clear, ..patch() }).is_ok(),
            "null is what it reads back"
        );
        let inactive = AlertRule::SlotInactive.defaults();
        assert!(inactive.apply(RuleSettingsPatch { for_seconds: Patch::Set(0), ..patch() }).is_ok(), "0: at once");
        let err =
            inactive.apply(RuleSettingsPatch { for_seconds: Patch::Set(MAX_SECONDS + 1), ..patch() }).unwrap_err();
        assert_eq!(err.error.kind, InvalidKind::TooLarge);
        let off = inactive.apply(RuleSettingsPatch { enabled: Some(false), ..patch() }).expect("disable");
        assert!(!off.enabled());
    }

    #[test]
    fn severity_follows_the_thresholds_either_way() {
        let bytes = AlertRule::SlotRetainedBytes.defaults();
        assert_eq!(bytes.severity_of((1 << 30) - 1), None);
        assert_eq!(bytes.severity_of(1 << 30), Some((Severity::Warning, 1 << 30)));
        assert_eq!(bytes.severity_of(5 << 30), Some((Severity::Critical, 5 << 30)));
        let critical_only =
            bytes.apply(RuleSettingsPatch { warning: Patch::Clear, critical: Patch::Set(100), ..patch() }).unwrap();
        assert_eq!(critical_only.severity_of(99), None);
        assert_eq!(critical_only.severity_of(100), Some((Severity::Critical, 100)));
        let time = AlertRule::SlotTimeToLost.defaults();
        assert_eq!(time.severity_of(21_601), None);
        assert_eq!(time.severity_of(21_600), Some((Severity::Warning, 21_600)));
        assert_eq!(time.severity_of(0), Some((Severity::Critical, 3_600)));
        assert_eq!(AlertRule::SlotLost.defaults().severity_of(1), None, "no thresholds");
    }
}
