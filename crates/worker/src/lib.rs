//! Rosetta's worker (the time-driven adapter): the leased-job runner and the background jobs on
//! it, and the host probe (the source probe is `rosetta-source-adapter`'s).
//!
//! * [`runner`]: one [`Runner`] per job keeps its queue's due items in flight, claiming them
//!   through the leases every server process shares (`rosetta_ports::jobs`).
//! * [`sampling`]: WAL sampling, one item per source.
//! * [`retention`]: deleting history past its retention, one standing item.
//! * [`delivery`]: sending alert notifications, one item per pending delivery.
//! * [`host`]: host CPU / memory / swap, sampled by each process of its own host.

pub mod cleanup;
pub mod delivery;
pub mod gauges;
pub mod host;
pub mod retention;
pub mod runner;
pub mod sampling;

pub use cleanup::Cleaning;
pub use delivery::Delivering;
pub use gauges::SourceGauges;
pub use host::{HostProbeUnavailable, HostSampling, SysinfoHostProbe};
pub use retention::Retention;
pub use runner::{CycleReport, Heartbeat, Job, Runner, RunnerSettings};
pub use sampling::{SamplingPorts, SamplingSettings, WalSampling};
