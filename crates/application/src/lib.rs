//! Rosetta's use cases: the inbound ports implemented over outbound ports.
//!
//! The services are deliberately thin — the rules live in `rosetta-domain` (invariants,
//! lifecycle) and in the repository contracts (atomicity, uniqueness, references). A service
//! takes the time from the [`Clock`](rosetta_ports::outbound::Clock), calls one repository
//! method and translates its error.

mod alerts;
mod clock;
mod destinations;
mod health;
mod pipelines;
mod recording;
mod source_operations;
mod sources;
mod wal_monitor;

pub use alerts::{AlertEvaluator, AlertManager, ChannelManager};
pub use clock::SystemClock;
pub use destinations::DestinationManager;
pub use health::ReadinessChecker;
pub use pipelines::PipelineManager;
pub use recording::SampleRecorder;
pub use source_operations::{SlotCleaner, SlotLocks, SourceOperator};
pub use sources::SourceManager;
pub use wal_monitor::WalMonitorReader;
