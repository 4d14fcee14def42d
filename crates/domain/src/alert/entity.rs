//! An alert as stored and read.

use super::lifecycle::{AlertKey, AlertState, ResolveReason};
use super::rule::{AlertRule, Severity};
use crate::{AlertId, SourceId, Timestamp};

/// One firing of one rule for one subject, from its start to its resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Identifier.
    pub id: AlertId,
    /// The rule that fired.
    pub rule: AlertRule,
    /// Its severity now (the last while it fired, once resolved).
    pub severity: Severity,
    /// Firing or resolved.
    pub state: AlertState,
    /// The source; `None` once the source was deleted (the alert then resolved).
    pub source_id: Option<SourceId>,
    /// The source's name when the alert last changed.
    pub source_name: String,
    /// The slot, for slot rules.
    pub slot_name: Option<String>,
    /// One sentence for an operator.
    pub summary: String,
    /// The measured value in the rule's unit (bytes or seconds), for rules that have one.
    pub value: Option<i64>,
    /// The threshold it crossed, in the same unit.
    pub threshold: Option<i64>,
    /// When it started firing.
    pub started_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
    /// Why it resolved.
    pub resolve_reason: Option<ResolveReason>,
    /// When it was acknowledged (cleared again by an escalation).
    pub acknowledged_at: Option<Timestamp>,
    /// When a notification of it was last written.
    pub last_notified_at: Option<Timestamp>,
}

impl Alert {
    /// The alert's key within its source.
    pub fn key(&self) -> AlertKey {
        AlertKey { rule: self.rule, slot_name: self.slot_name.clone() }
    }
}

/// Which alerts a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only alerts in this state.
    pub state: Option<AlertState>,
    /// Only alerts of this source.
    pub source_id: Option<SourceId>,
    /// Only alerts of this severity.
    pub severity: Option<Severity>,
    /// Only alerts of this rule.
    pub rule: Option<AlertRule>,
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
