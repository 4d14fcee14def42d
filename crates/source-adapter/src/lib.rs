//! Rosetta's adapter for source databases: the one place that talks to a source PostgreSQL
//! over tokio-postgres, so connection set-up, timeouts and secret scrubbing exist once.
//!
//! * [`probe`]: [`PostgresSourceProbe`], the `SourceProbe` that reads a source's WAL (the
//!   worker's WAL-sampling job schedules it).
//!
//! Source-database SQL lives here only; the metadata database's SQL is `rosetta-postgres-adapter`'s.

pub mod probe;

pub use probe::PostgresSourceProbe;
