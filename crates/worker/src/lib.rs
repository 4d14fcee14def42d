//! Rosetta's WAL monitor (time-driven adapter): the sampler task and the source probe that reads
//! each source's WAL position, WAL on disk and replication slots.
//!
//! * [`sampler`]: the tokio task that samples every due source each interval, coordinated with
//!   other server processes through leases in the metadata database.

pub mod sampler;

pub use sampler::{SamplerPorts, SamplerSettings, TickReport, WalSampler};

pub mod host;
pub mod probe;

pub use host::{HostProbeUnavailable, SysinfoHostProbe};
pub use probe::PostgresSourceProbe;
