//! An alert as stored and read.

use super::lifecycle::{AlertState, ResolveReason};
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
