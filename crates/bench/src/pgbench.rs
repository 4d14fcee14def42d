//! pgbench, the ceiling: the statement a route runs, straight against PostgreSQL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::procfs::{CpuMeter, CpuShares};

/// One pgbench run.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchFigures {
    /// Clients (`-c`).
    pub concurrency: usize,
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    /// pgbench's latency average, ms.
    pub mean_ms: f64,
    /// From the per-transaction log, when it was asked for.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU meanwhile ("load" is pgbench itself, counted in "other" as it is a child process).
    pub cpu: CpuShares,
}

/// Where pgbench runs: its binary and the database it loads.
#[derive(Debug, Clone)]
pub struct Pgbench<'a> {
    pub binary: &'a Path,
    pub port: u16,
    pub database: &'a str,
    /// The clusters whose CPU counts as PostgreSQL's.
    pub postmasters: &'a [u32],
}

impl Pgbench<'_> {
    /// Runs `script` with `concurrency` clients on 2 threads, prepared statements, for
    /// `duration` after `warmup`; with `latencies`, per-transaction percentiles too.
    pub fn run(
        &self,
        script: &str,
        concurrency: usize,
        duration: Duration,
        warmup: Duration,
        latencies: bool,
    ) -> Result<PgbenchFigures> {
        let dir = tempfile::tempdir().context("a directory for pgbench")?;
        let script_file = dir.path().join("script.sql");
        std::fs::write(&script_file, script).context("writing the pgbench script")?;
        let command = |seconds: u64| {
            let mut command = Command::new(self.binary);
            command
                .current_dir(dir.path())
                .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-M", "prepared", "-j", "2"])
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-c")
                .arg(concurrency.to_string())
                .arg("-T")
                .arg(seconds.to_string())
                .arg("-f")
                .arg(&script_file);
            command
        };
        if !warmup.is_zero() {
            let _ = command(warmup.as_secs().max(1)).arg(self.database).output();
        }
        let meter = CpuMeter::start(None, self.postmasters);
        let mut measured = command(duration.as_secs().max(1));
        if latencies {
            measured.args(["-l", "--log-prefix=txn"]);
        }
        let output = measured.arg(self.database).output().context("running pgbench")?;
        let cpu = meter.shares();
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("pgbench failed ({}):\n{text}", output.status);
        }
        let failed = figure(&text, "number of failed transactions:").unwrap_or(0.0);
        if failed > 0.0 {
            bail!("pgbench: {failed} failed transactions:\n{text}");
        }
        let tps = text
            .lines()
            .find(|line| line.starts_with("tps = ") && line.contains("without initial connection time"))
            .and_then(|line| line.split_whitespace().nth(2)?.parse().ok())
            .with_context(|| format!("no TPS in pgbench's output:\n{text}"))?;
        let mean_ms = figure(&text, "latency average =").with_context(|| format!("no latency in:\n{text}"))?;
        let (p50_ms, p99_ms) = if latencies { percentiles(dir.path())? } else { (None, None) };
        Ok(PgbenchFigures { concurrency, tps, mean_ms, p50_ms, p99_ms, cpu })
    }
}

/// The number after `label` on the line that starts with it.
fn figure(text: &str, label: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(label)?.split_whitespace().next()?.parse().ok())
}

/// p50 and p99 of the per-transaction logs (`txn.<pid>[.<thread>]`: "client_id transaction_no
/// time_us script_no epoch epoch_us").
fn percentiles(dir: &Path) -> Result<(Option<f64>, Option<f64>)> {
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("a histogram")?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("txn.") {
            continue;
        }
        let log = std::fs::read_to_string(entry.path())?;
        for micros in log.lines().filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok()) {
            latencies.saturating_record(micros.max(1));
        }
    }
    if latencies.is_empty() {
        return Ok((None, None));
    }
    let ms = |q: f64| Some(latencies.value_at_quantile(q) as f64 / 1000.0);
    Ok((ms(0.50), ms(0.99)))
}
