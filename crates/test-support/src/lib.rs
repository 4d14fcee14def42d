//! Test harness: a real PostgreSQL for tests, and one database per test.
//!
//! Tests that need PostgreSQL get it from [`test_server`]: the server named by
//! `TEST_DATABASE_URL`/`DATABASE_URL`, or else one throwaway [`PgCluster`] per test process
//! built from the local PostgreSQL binaries. Each test then creates its own database,
//! usually cloned from a migrated template, so tests run in parallel without sharing state:
//!
//! ```no_run
//! # async fn example() {
//! use rosetta_test_support::test_server;
//!
//! let server = test_server();
//! let template = server
//!     .template("schema", |url| async move {
//!         // run migrations against `url`, then close every connection
//!         let _ = url;
//!     })
//!     .await;
//! let db = server.create_database(Some(&template)).await;
//! // connect to db.url(); the database is dropped with `db`
//! # }
//! ```
//!
//! Tests that need cluster-level isolation (replication slots, restarts, signals) start
//! their own [`PgCluster`]. Without any PostgreSQL these helpers panic: a database test
//! never passes silently.

mod cluster;
mod consumer;
mod error;
mod majors;
mod server;
mod tls;

pub use cluster::{ClusterOptions, ClusterTls, PgCluster, find_postgres_bin_dir, postgres_command};
pub use consumer::SlotConsumer;
pub use error::HarnessError;
pub use majors::{PgMajor, SUPPORTED_MAJORS, postgres_majors};
pub use server::{TemplateDatabase, TestDatabase, TestServer, test_server};
pub use tls::{ServerCertificate, TestCa};
