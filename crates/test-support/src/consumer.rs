//! A real logical-replication consumer for tests: `pg_recvlogical` streaming a `pgoutput` slot.

use std::process::{Child, Stdio};

use crate::cluster::{PgCluster, find_postgres_bin_dir, postgres_command};
use crate::error::HarnessError;

/// A `pg_recvlogical` process attached to a slot of a [`PgCluster`] (as `postgres`, database
/// `postgres`), discarding what it receives; killed when dropped.
#[derive(Debug)]
pub struct SlotConsumer(Child);

impl SlotConsumer {
    /// Starts streaming `slot` with `pgoutput` for `publication`. It attaches asynchronously:
    /// wait for the slot to turn `active`.
    pub fn attach(cluster: &PgCluster, slot: &str, publication: &str) -> Result<SlotConsumer, HarnessError> {
        // The binaries of other majors (npm's) carry no client tools; the system's
        // pg_recvlogical speaks to every supported server.
        let own = cluster.bin_dir().join("pg_recvlogical");
        let program = if own.is_file() { own } else { find_postgres_bin_dir()?.join("pg_recvlogical") };
        let child = postgres_command(&program)
            .args(["-h", cluster.host(), "-p", &cluster.port().to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["--slot", slot, "--start", "-o", "proto_version=1"])
            .arg("-o")
            .arg(format!("publication_names={publication}"))
            .args(["-f", "/dev/null", "-s", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::io("starting pg_recvlogical", e))?;
        Ok(SlotConsumer(child))
    }
}

impl Drop for SlotConsumer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
