//! Rosetta's WAL monitor (time-driven adapter): the sampler task and the source probe that reads
//! each source's WAL position, WAL on disk and replication slots.
//!
//! This crate is the monitor's place in the workspace; the sampler and probe are not built yet,
//! so it exports nothing and the server reports the monitor as `disabled` in readiness.
