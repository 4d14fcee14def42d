//! Rosetta's adapter for source databases: the one place that talks to a source PostgreSQL
//! over tokio-postgres, so connection set-up, timeouts and secret scrubbing exist once.
//!
//! * [`probe`]: [`PostgresSourceProbe`], the `SourceProbe` that reads a source's WAL (the
//!   worker's WAL-sampling job schedules it).
//! * [`operations`]: [`PostgresSourceOperations`], the `SourceOperations` of preflight, catalog
//!   reads, publications and replication slots.
//!
//! Both connect through one module (settings, timeouts, scrubbing of secrets).
//!
//! Source-database SQL lives here only; the metadata database's SQL is `rosetta-postgres-adapter`'s.

mod connect;
pub mod operations;
pub mod probe;

pub use operations::PostgresSourceOperations;
pub use probe::PostgresSourceProbe;
