//! Replication slots as Rosetta manages them: a pipeline's slot name, a slot read live from its
//! source, and the cleanup task that drops a slot whose pipeline is gone.

use crate::invalid::{InvalidKind, InvalidValue};
use crate::text::string_value;
use crate::{CleanupTaskId, Lsn, PipelineId, SourceId, Timestamp, WalStatus};

string_value!(
    /// A replication slot's name as PostgreSQL allows it: 1–63 of `[a-z0-9_]`, so it never
    /// needs quoting.
    SlotName,
    |value| {
        if value.is_empty() {
            Err(InvalidValue::new(InvalidKind::TooShort, "must not be empty"))
        } else if value.len() > 63 {
            Err(InvalidValue::new(InvalidKind::TooLong, "must be at most 63 characters"))
        } else if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            Err(InvalidValue::new(
                InvalidKind::PatternMismatch,
                "may contain only lower-case letters, digits and '_'",
            ))
        } else {
            Ok(value)
        }
    }
);

impl SlotName {
    /// The default slot of a pipeline: `rosetta_<pipeline id>`.
    pub fn for_pipeline(pipeline: PipelineId) -> Self {
        Self(format!("rosetta_{}", pipeline.get()))
    }
}

/// A pipeline's replication slot as the source reports it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSlot {
    /// Whether a consumer is attached.
    pub active: bool,
    /// Its output plugin (`pgoutput`); `None` for a physical slot.
    pub plugin: Option<String>,
    /// Oldest WAL it pins.
    pub restart_lsn: Option<Lsn>,
    /// The consumer's acknowledged position.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// WAL it makes the disk keep, in bytes (`None` when it pins nothing).
    pub retained_bytes: Option<u64>,
    /// PostgreSQL's judgement of its WAL.
    pub wal_status: Option<WalStatus>,
}

/// A pipeline's slot: its name, whether Rosetta created it, and what the source says now
/// (`None`: no such slot on the source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSlot {
    /// The pipeline's slot name.
    pub slot_name: SlotName,
    /// Whether Rosetta created it (and so may drop it).
    pub managed: bool,
    /// The slot on the source, if it exists.
    pub live: Option<LiveSlot>,
}

/// What a cleanup task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupKind {
    /// Drop a replication slot Rosetta created, whose pipeline was deleted.
    DropSlot,
}

impl CleanupKind {
    /// The wire and storage name (`drop_slot`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DropSlot => "drop_slot",
        }
    }
}

impl std::str::FromStr for CleanupKind {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "drop_slot" => Ok(Self::DropSlot),
            _ => Err(InvalidValue::new(InvalidKind::PatternMismatch, "must be drop_slot")),
        }
    }
}

/// Work on a source that must happen although what asked for it is gone: a managed slot whose
/// pipeline was deleted while the slot could not be dropped. Retried until it succeeds or an
/// operator abandons it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupTask {
    /// Identifier.
    pub id: CleanupTaskId,
    /// What to do.
    pub kind: CleanupKind,
    /// The source it acts on (kept after the source is deleted: the task holds its own
    /// connection settings).
    pub source_id: SourceId,
    /// The slot to drop.
    pub slot_name: SlotName,
    /// Attempts made so far.
    pub attempts: u32,
    /// Why the last attempt failed (secrets removed).
    pub last_error: Option<String>,
    /// When the next attempt is due.
    pub next_attempt_at: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// When a cleanup task that failed `attempts` times in a row is tried again: 1 s after the
/// first failure, doubling, at most 5 min apart.
pub fn cleanup_retry_at(attempts: u32, now: Timestamp) -> Timestamp {
    const MAX_SECONDS: i64 = 300;
    let exponent = attempts.saturating_sub(1).min(16);
    let seconds = (1_i64 << exponent).min(MAX_SECONDS);
    now + chrono::Duration::seconds(seconds)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn slot_names_are_lower_case_identifiers() {
        assert!(SlotName::parse("rosetta_1").is_ok());
        assert_eq!(SlotName::parse("").unwrap_err().kind, InvalidKind::TooShort);
        assert!(SlotName::parse("a".repeat(63)).is_ok());
        assert_eq!(SlotName::parse("a".repeat(64)).unwrap_err().kind, InvalidKind::TooLong);
        assert_eq!(SlotName::parse("Upper").unwrap_err().kind, InvalidKind::PatternMismatch);
        assert_eq!(SlotName::parse("has-dash").unwrap_err().kind, InvalidKind::PatternMismatch);
        assert_eq!(SlotName::for_pipeline(PipelineId::new(42)).as_str(), "rosetta_42");
    }

    #[test]
    fn retries_double_up_to_five_minutes() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
        let after = |attempts| (cleanup_retry_at(attempts, now) - now).num_seconds();
        assert_eq!([after(1), after(2), after(3), after(9), after(10), after(500)], [1, 2, 4, 256, 300, 300]);
    }

    #[test]
    fn kinds_round_trip() {
        assert_eq!("drop_slot".parse::<CleanupKind>().unwrap(), CleanupKind::DropSlot);
        assert!("other".parse::<CleanupKind>().is_err());
    }
}
