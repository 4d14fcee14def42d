//! Rosetta's ports: the traits that separate the use cases from the outside world.
//!
//! * [`outbound`]: what the application needs from adapters (repositories, clock, secret cipher,
//!   database health). Implemented by `rosetta-postgres-adapter` and, for tests, by
//!   [`testing::memory`] (feature `testing`).
//! * [`inbound`]: the use cases the application offers to driving adapters (HTTP).
//! * [`jobs`]: the leases through which server processes share background work.
//! * [`wal`]: the WAL monitor's ports: probes, stores, recording and reading.
//! * [`alerts`]: alerts, rules, notification channels, deliveries and the sender.
//! * [`sources`]: operations on source databases (preflight, publication, slots) and cleanup tasks.
//!
//! Signatures use domain types and the error enums of this crate only, never framework types.
//!
//! Features: `mocks` generates mockall mocks of every trait (`MockSourceRepository`, …);
//! `testing` adds a contract suite per outbound port ([`testing`]) that any implementation —
//! including one outside this workspace — can run against itself.

pub mod alerts;
pub mod inbound;
pub mod jobs;
pub mod outbound;
pub mod sources;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wal;

use std::fmt;

/// A boxed error that can cross threads: the cause carried by `Unavailable` / `Unexpected`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The kinds of entity the API manages; used in error details (`entity_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// A source.
    Source,
    /// A destination.
    Destination,
    /// A pipeline.
    Pipeline,
    /// An alert.
    Alert,
    /// A notification channel.
    NotificationChannel,
    /// A cleanup task.
    CleanupTask,
}

impl EntityKind {
    /// The name clients see: `Source`, `Destination`, `Pipeline`, `Alert`, `NotificationChannel`, `CleanupTask`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "Source",
            Self::Destination => "Destination",
            Self::Pipeline => "Pipeline",
            Self::Alert => "Alert",
            Self::NotificationChannel => "NotificationChannel",
            Self::CleanupTask => "CleanupTask",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
