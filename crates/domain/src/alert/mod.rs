//! Alerts: the rules that watch each source's WAL, their settings, and the lifecycle of an
//! alert from firing to resolved (SPEC, "Alerts and notifications"). Pure: the caller loads what
//! an evaluation reads and writes what it returns.

mod entity;
mod lifecycle;
mod rule;
mod units;

#[cfg(test)]
mod tests;

pub use entity::{Alert, AlertFilter};
pub use lifecycle::{
    AlertChange, AlertKey, AlertMemory, AlertState, AlertUpdate, EffectiveRules, Evaluation, EvaluationInput,
    FiringAlert, NewAlert, NotificationType, Observation, RateBaseline, Reading, ResolveReason, Watch, evaluate,
};
pub use rule::{AlertRule, InvalidRuleSettings, RuleSettings, RuleSettingsPatch, RuleSubject, Severity};
pub use units::{format_bytes, format_seconds};
