//! The PostgreSQL major versions present for tests: the system's binaries and those
//! `scripts/test-tools.sh` installs into `.tools/pg/<major>` (npm's `@embedded-postgres`), so
//! suites that talk to sources can run against every supported major.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::find_postgres_bin_dir;

/// The majors Rosetta supports as sources.
pub const SUPPORTED_MAJORS: [u32; 6] = [13, 14, 15, 16, 17, 18];

/// One major version's server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgMajor {
    /// The major version (`17`).
    pub major: u32,
    /// The directory of `initdb`, `pg_ctl` and `postgres`.
    pub bin_dir: PathBuf,
}

/// The installed majors, ascending: each of `$ROSETTA_TOOLS_DIR/pg/<N>/bin` (default
/// `<repo>/.tools/pg`), and the system's binaries for their own major. With `CI` set, every
/// supported major must be present (a missing one panics, naming it): a suite that silently ran
/// against fewer would prove less than it says.
pub fn postgres_majors() -> Vec<PgMajor> {
    let tools = std::env::var_os("ROSETTA_TOOLS_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools"), PathBuf::from);
    let mut majors: Vec<PgMajor> = SUPPORTED_MAJORS
        .iter()
        .filter_map(|&major| {
            let bin_dir = tools.join("pg").join(major.to_string()).join("bin");
            let bin_dir = bin_dir.canonicalize().ok()?;
            (bin_dir.join("postgres").is_file() && version_of(&bin_dir) == Some(major))
                .then_some(PgMajor { major, bin_dir })
        })
        .collect();
    if let Ok(system) = find_postgres_bin_dir()
        && let Some(major) = version_of(&system)
        && !majors.iter().any(|m| m.major == major)
    {
        majors.push(PgMajor { major, bin_dir: system });
    }
    majors.sort_by_key(|m| m.major);
    if std::env::var_os("CI").is_some() {
        let missing: Vec<u32> =
            SUPPORTED_MAJORS.iter().copied().filter(|major| !majors.iter().any(|m| m.major == *major)).collect();
        assert!(missing.is_empty(), "PostgreSQL majors {missing:?} are missing: run scripts/test-tools.sh");
    }
    majors
}

/// The major version `postgres --version` reports.
fn version_of(bin_dir: &Path) -> Option<u32> {
    let output = Command::new(bin_dir.join("postgres")).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "postgres (PostgreSQL) 17.10"
    text.split_whitespace().last()?.split('.').next()?.parse().ok()
}
