//! WAL arithmetic and the model of one WAL sample: what a source's WAL costs its disk.

use std::fmt;
use std::str::FromStr;

use crate::{InvalidKind, InvalidValue, SourceId, Timestamp};

/// A PostgreSQL log sequence number: a byte position in the WAL stream, written `X/Y` (two
/// hexadecimal 32-bit halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

impl Lsn {
    /// The LSN at byte position `bytes`.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The byte position.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Bytes from `earlier` to `self`; `None` when `earlier` is ahead (a slot ahead of the
    /// position it is measured against, e.g. a standby's replay position behind its receive).
    pub fn bytes_since(self, earlier: Lsn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidValue::new(InvalidKind::PatternMismatch, "must be an LSN such as 0/16B3748");
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |part: &str| {
            if part.is_empty() || part.len() > 8 {
                return Err(bad());
            }
            u32::from_str_radix(part, 16).map_err(|_| bad())
        };
        Ok(Self((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

/// Physical or logical replication slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotType {
    /// A physical slot (streaming replication, backups); cluster-wide.
    Physical,
    /// A logical slot (CDC); belongs to one database.
    Logical,
}

impl SlotType {
    /// `physical` or `logical`, as PostgreSQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Physical => "physical",
            Self::Logical => "logical",
        }
    }
}

impl FromStr for SlotType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "physical" => Ok(Self::Physical),
            "logical" => Ok(Self::Logical),
            _ => Err(InvalidValue::new(InvalidKind::PatternMismatch, "must be 'physical' or 'logical'")),
        }
    }
}

/// PostgreSQL's judgement (13+) of whether a slot's WAL is still kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalStatus {
    /// Within `max_wal_size`.
    Reserved,
    /// Beyond `max_wal_size` but still kept (by the slot or `wal_keep_size`).
    Extended,
    /// No longer guaranteed: removed at the next checkpoint unless the slot catches up.
    Unreserved,
    /// WAL the slot needs is gone: the slot is unusable.
    Lost,
}

impl WalStatus {
    /// The PostgreSQL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Extended => "extended",
            Self::Unreserved => "unreserved",
            Self::Lost => "lost",
        }
    }
}

impl FromStr for WalStatus {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Reserved, Self::Extended, Self::Unreserved, Self::Lost]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new(InvalidKind::PatternMismatch, "must be reserved, extended, unreserved or lost")
            })
    }
}

/// One replication slot as sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSample {
    /// Slot name.
    pub slot_name: String,
    /// Physical or logical.
    pub slot_type: SlotType,
    /// Whether a consumer is attached.
    pub active: bool,
    /// Temporary slots die with their session; they never make a source `IDLE`.
    pub temporary: bool,
    /// Oldest WAL the slot pins; `None` if never reserved or (15+) after invalidation.
    pub restart_lsn: Option<Lsn>,
    /// The consumer's acknowledged position (logical slots).
    pub confirmed_flush_lsn: Option<Lsn>,
    /// PostgreSQL's WAL status (13+).
    pub wal_status: Option<WalStatus>,
    /// Bytes that can still be written before the slot is lost (13+); negative while
    /// `unreserved`; `None` without `max_slot_wal_keep_size` or once lost.
    pub safe_wal_size_bytes: Option<i64>,
    /// Logical slot invalidated by a recovery conflict (16+).
    pub conflicting: Option<bool>,
    /// Since when the slot is inactive (17+).
    pub inactive_since: Option<Timestamp>,
    /// A logical slot synchronised from the primary onto this standby (17+): its consumer is
    /// the primary's, so alert rules skip it.
    pub synced: Option<bool>,
    /// Why PostgreSQL invalidated the slot (17+: `wal_removed`, `rows_removed`,
    /// `wal_level_insufficient`; 18 adds `idle_timeout`); `None` while it is valid or before 17.
    pub invalidation_reason: Option<String>,
}

impl SlotSample {
    /// WAL pinned by the slot: `current − restart_lsn`. `None` when the slot pins nothing it can
    /// still use (no `restart_lsn`: never reserved; or lost, even where PostgreSQL still shows
    /// the old `restart_lsn` of a slot invalidated by a conflict) — never 0 for a lost slot.
    pub fn retained_bytes(&self, current: Lsn) -> Option<u64> {
        if self.is_lost() {
            return None;
        }
        self.restart_lsn.and_then(|restart| current.bytes_since(restart))
    }

    /// Consumer lag: `current − confirmed_flush_lsn` (logical slots only; `None` once lost).
    pub fn confirmed_lag_bytes(&self, current: Lsn) -> Option<u64> {
        if self.is_lost() {
            return None;
        }
        match self.slot_type {
            SlotType::Logical => self.confirmed_flush_lsn.and_then(|confirmed| current.bytes_since(confirmed)),
            SlotType::Physical => None,
        }
    }

    /// Whether the slot can no longer be used: PostgreSQL says `lost`, (16+) it was
    /// invalidated by a conflict, or (17+) it reports an invalidation reason.
    pub fn is_lost(&self) -> bool {
        self.wal_status == Some(WalStatus::Lost) || self.conflicting == Some(true) || self.invalidation_reason.is_some()
    }
}

/// What the monitor read from one source at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSample {
    /// When the source answered (the source's clock is not trusted; this is the monitor's).
    pub sampled_at: Timestamp,
    /// Whether the source is a standby.
    pub in_recovery: bool,
    /// The current WAL position: the write position on a primary, the receive (else replay)
    /// position on a standby.
    pub current_lsn: Lsn,
    /// Total size of `pg_wal`, where the role may read it (`pg_monitor`); never guessed.
    pub wal_dir_bytes: Option<u64>,
    /// Every logical slot of the source's database and every physical slot of its cluster.
    pub slots: Vec<SlotSample>,
}

/// How a source looks to the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalMonitorStatus {
    /// Reachable, and every (non-temporary) slot has a consumer.
    Active,
    /// Reachable, but a slot has no consumer: its WAL piles up.
    Idle,
    /// The last sample failed.
    Error,
}

impl WalMonitorStatus {
    /// `ACTIVE`, `IDLE` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Idle => "IDLE",
            Self::Error => "ERROR",
        }
    }
}

impl FromStr for WalMonitorStatus {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Active, Self::Idle, Self::Error]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| InvalidValue::new(InvalidKind::PatternMismatch, "must be ACTIVE, IDLE or ERROR"))
    }
}

impl WalSample {
    /// `IDLE` when any non-temporary slot is inactive, else `ACTIVE`.
    pub fn status(&self) -> WalMonitorStatus {
        if self.slots.iter().any(|slot| !slot.active && !slot.temporary) {
            WalMonitorStatus::Idle
        } else {
            WalMonitorStatus::Active
        }
    }

    /// The WAL this source makes its disk keep: the largest retained WAL of its slots, else the
    /// WAL on disk (when readable).
    pub fn size_bytes(&self) -> Option<u64> {
        self.slots.iter().filter_map(|slot| slot.retained_bytes(self.current_lsn)).max().or(self.wal_dir_bytes)
    }
}

/// The latest state of one source as the monitor knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWalState {
    /// The source.
    pub source_id: SourceId,
    /// Status after the last attempt.
    pub status: WalMonitorStatus,
    /// The last good sample (kept when later attempts fail).
    pub last_sample: Option<WalSample>,
    /// The error of the last attempt, if it failed (secrets removed).
    pub error: Option<String>,
    /// When the last attempt finished.
    pub last_attempt_at: Option<Timestamp>,
}

/// CPU, memory and swap of the host Rosetta runs on, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemSample {
    /// When it was taken.
    pub sampled_at: Timestamp,
    /// CPU use over the last interval, 0–100 %.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Swap in use, bytes.
    pub swap_used_bytes: u64,
    /// Total swap, bytes.
    pub swap_total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(active: bool, restart: Option<u64>) -> SlotSample {
        SlotSample {
            slot_name: "s".into(),
            slot_type: SlotType::Logical,
            active,
            temporary: false,
            restart_lsn: restart.map(Lsn::from_bytes),
            confirmed_flush_lsn: restart.map(|r| Lsn::from_bytes(r + 10)),
            wal_status: Some(WalStatus::Reserved),
            safe_wal_size_bytes: None,
            conflicting: None,
            inactive_since: None,
            synced: None,
            invalidation_reason: None,
        }
    }

    fn sample(slots: Vec<SlotSample>, wal_dir: Option<u64>) -> WalSample {
        WalSample {
            sampled_at: Timestamp::default(),
            in_recovery: false,
            current_lsn: Lsn::from_bytes(1_000),
            wal_dir_bytes: wal_dir,
            slots,
        }
    }

    #[test]
    fn lsn_text_round_trips() {
        for (text, bytes) in [("0/16B3748", 0x16B_3748_u64), ("1/0", 1 << 32), ("FFFFFFFF/FFFFFFFF", u64::MAX)] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.bytes(), bytes);
            assert_eq!(lsn.to_string(), text);
        }
        for bad in ["", "0", "0/", "/1", "G/1", "0/123456789", "0/1/2", "-1/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
        assert_eq!("0/a".parse::<Lsn>().unwrap().to_string(), "0/A");
    }

    #[test]
    fn a_lost_slot_retains_nothing_it_can_use_not_zero() {
        let lost = SlotSample { wal_status: Some(WalStatus::Lost), ..slot(false, None) };
        assert_eq!(lost.retained_bytes(Lsn::from_bytes(1_000)), None);
        assert!(lost.is_lost());
        assert_eq!(slot(true, Some(400)).retained_bytes(Lsn::from_bytes(1_000)), Some(600));
        assert_eq!(slot(true, Some(400)).confirmed_lag_bytes(Lsn::from_bytes(1_000)), Some(590));
        let conflicted = SlotSample { conflicting: Some(true), ..slot(false, Some(400)) };
        assert_eq!(conflicted.retained_bytes(Lsn::from_bytes(1_000)), None, "invalidated by a conflict");
        assert_eq!(conflicted.confirmed_lag_bytes(Lsn::from_bytes(1_000)), None);
        let physical = SlotSample { slot_type: SlotType::Physical, ..slot(true, Some(400)) };
        assert_eq!(physical.confirmed_lag_bytes(Lsn::from_bytes(1_000)), None);
        // 18 invalidates a slot idle past idle_replication_slot_timeout and says so.
        let idle = SlotSample { invalidation_reason: Some("idle_timeout".to_owned()), ..slot(false, Some(400)) };
        assert!(idle.is_lost());
        assert_eq!(idle.retained_bytes(Lsn::from_bytes(1_000)), None, "invalidated: pins nothing usable");
    }

    #[test]
    fn status_is_idle_when_a_permanent_slot_has_no_consumer() {
        assert_eq!(sample(vec![], None).status(), WalMonitorStatus::Active);
        assert_eq!(sample(vec![slot(true, Some(1))], None).status(), WalMonitorStatus::Active);
        assert_eq!(sample(vec![slot(true, Some(1)), slot(false, Some(1))], None).status(), WalMonitorStatus::Idle);
        let temporary = SlotSample { temporary: true, ..slot(false, Some(1)) };
        assert_eq!(sample(vec![temporary], None).status(), WalMonitorStatus::Active);
    }

    #[test]
    fn size_is_the_largest_retention_else_wal_on_disk() {
        let both = sample(vec![slot(true, Some(900)), slot(true, Some(100)), slot(false, None)], Some(5));
        assert_eq!(both.size_bytes(), Some(900));
        assert_eq!(sample(vec![slot(false, None)], Some(4_096)).size_bytes(), Some(4_096));
        assert_eq!(sample(vec![], None).size_bytes(), None);
    }

    #[test]
    fn enums_parse_postgres_spellings() {
        assert_eq!("logical".parse::<SlotType>().unwrap(), SlotType::Logical);
        assert_eq!("unreserved".parse::<WalStatus>().unwrap(), WalStatus::Unreserved);
        assert_eq!("IDLE".parse::<WalMonitorStatus>().unwrap(), WalMonitorStatus::Idle);
        assert!("weird".parse::<WalStatus>().is_err());
    }
}
