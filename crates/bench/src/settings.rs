//! What to run, from the environment (`BENCH_*`), every value checked before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The two benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The control-plane API under load, against pgbench's ceiling.
    Api,
    /// The WAL monitor's tick at 1 000 and 9 000 sources, and the history query at 10 M rows.
    Wal,
    /// The console's server side: chart.svg over 30 days at 10 M rows, the overview of 1 000 sources.
    Console,
}

/// The bench's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BENCH_SCENARIOS`: `api`, `wal`, `console` (comma-separated; default all three).
    pub scenarios: Vec<Scenario>,
    /// `BENCH_DURATION`: each measured run (default 10 s).
    pub duration: Duration,
    /// `BENCH_WARMUP`: before each measured run (default 2 s; 0 for none).
    pub warmup: Duration,
    /// The client counts of every load run: 4 and 32.
    pub concurrencies: Vec<usize>,
    /// `BENCH_SOURCES`: sources of the WAL monitor's tick (default 1 000).
    pub sources: usize,
    /// `BENCH_LARGE_SOURCES`: sources of the large tick (default 9 000; 0 skips it).
    pub large_sources: usize,
    /// `BENCH_STEADY_TICKS`: steady ticks measured at each size (default 5).
    pub steady_ticks: usize,
    /// `BENCH_MONITOR_INTERVAL`: the monitor's interval in seconds (default 60).
    pub monitor_interval: u64,
    /// `BENCH_HISTORY_ROWS`: `wal_metrics` rows of the history query (default 10 000 000).
    pub history_rows: u64,
    /// `BENCH_HISTORY_DAYS`: days the history spans, ending now (default 7).
    pub history_days: u64,
    /// `BENCH_QUEUED_DELIVERIES`: deliveries queued at once for the delivery throughput (default
    /// 10 000).
    pub queued_deliveries: u64,
    /// `BENCH_STRICT=1`: exit 3 when a target is missed.
    pub strict: bool,
    /// `BENCH_SERVER_BIN`: the server to measure (default `<target>/release/rosetta-server`).
    pub server_binary: PathBuf,
    /// `BENCH_REPORT_DIR`: where `report.json` and `report.md` go (default `<target>/bench`).
    pub report_dir: PathBuf,
    /// The repository (the servers' working directory).
    pub repo: PathBuf,
}

impl Settings {
    /// Reads and checks the settings.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// [`Settings::from_env`] over any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let repo = lookup("BENCH_REPO")
            .map_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")), PathBuf::from);
        let repo = repo.canonicalize().with_context(|| format!("the repository {}", repo.display()))?;
        let target = lookup("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), PathBuf::from);
        let number = |key: &str, default: u64| -> Result<u64> {
            match lookup(key) {
                None => Ok(default),
                Some(text) => text.trim().parse().with_context(|| format!("{key}={text:?} is not a whole number")),
            }
        };
        let seconds = |key: &str, default: u64| -> Result<Duration> {
            match lookup(key) {
                None => Ok(Duration::from_secs(default)),
                Some(text) => parse_duration(&text).with_context(|| format!("{key}={text:?}")),
            }
        };
        let scenarios = match lookup("BENCH_SCENARIOS") {
            None => vec![Scenario::Api, Scenario::Wal, Scenario::Console],
            Some(text) => text
                .split(',')
                .map(|name| match name.trim() {
                    "api" => Ok(Scenario::Api),
                    "wal" => Ok(Scenario::Wal),
                    "console" => Ok(Scenario::Console),
                    other => bail!("BENCH_SCENARIOS: unknown scenario {other:?} (api, wal, console)"),
                })
                .collect::<Result<_>>()?,
        };
        let settings = Self {
            scenarios,
            duration: seconds("BENCH_DURATION", 10)?,
            warmup: seconds("BENCH_WARMUP", 2)?,
            concurrencies: vec![4, 32],
            sources: usize::try_from(number("BENCH_SOURCES", 1000)?)?,
            large_sources: usize::try_from(number("BENCH_LARGE_SOURCES", 9000)?)?,
            steady_ticks: usize::try_from(number("BENCH_STEADY_TICKS", 5)?)?,
            monitor_interval: number("BENCH_MONITOR_INTERVAL", 60)?,
            history_rows: number("BENCH_HISTORY_ROWS", 10_000_000)?,
            history_days: number("BENCH_HISTORY_DAYS", 7)?,
            queued_deliveries: number("BENCH_QUEUED_DELIVERIES", 10_000)?,
            strict: lookup("BENCH_STRICT").is_some_and(|value| value.trim() == "1"),
            server_binary: lookup("BENCH_SERVER_BIN")
                .map_or_else(|| target.join("release/rosetta-server"), PathBuf::from),
            report_dir: lookup("BENCH_REPORT_DIR").map_or_else(|| target.join("bench"), PathBuf::from),
            repo,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<()> {
        if self.duration.is_zero() {
            bail!("BENCH_DURATION must be at least 1 s");
        }
        if self.sources == 0 || self.steady_ticks == 0 {
            bail!("BENCH_SOURCES and BENCH_STEADY_TICKS must be at least 1");
        }
        if self.large_sources != 0 && self.large_sources <= self.sources {
            bail!("BENCH_LARGE_SOURCES ({}) must exceed BENCH_SOURCES ({}), or be 0", self.large_sources, self.sources);
        }
        if self.history_rows < self.sources as u64 {
            bail!("BENCH_HISTORY_ROWS must be at least BENCH_SOURCES (one row per source)");
        }
        if self.history_days == 0 || self.monitor_interval < 2 {
            bail!("BENCH_HISTORY_DAYS must be at least 1 and BENCH_MONITOR_INTERVAL at least 2");
        }
        if !self.server_binary.is_file() {
            bail!(
                "no server binary at {} (build it: cargo build --release -p rosetta-server; or set BENCH_SERVER_BIN)",
                self.server_binary.display()
            );
        }
        Ok(())
    }
}

/// `10`, `10s` or `2m`.
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    let value: u64 = digits.parse().context("not a duration (10, 10s or 2m)")?;
    Ok(Duration::from_secs(value * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_minutes() {
        assert_eq!(parse_duration("10").ok(), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("1h").is_err());
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let with = |key: &'static str, value: &'static str| {
            move |name: &str| match name {
                "BENCH_SERVER_BIN" => Some("/bin/sh".to_owned()),
                _ if name == key => Some(value.to_owned()),
                _ => None,
            }
        };
        for (key, value) in [
            ("BENCH_SOURCES", "many"),
            ("BENCH_SOURCES", "0"),
            ("BENCH_DURATION", "0"),
            ("BENCH_LARGE_SOURCES", "10"),
            ("BENCH_SCENARIOS", "api,disk"),
            ("BENCH_HISTORY_ROWS", "5"),
        ] {
            let error = Settings::from_lookup(with(key, value)).expect_err(key);
            let message = format!("{error:#}");
            assert!(message.contains(key) || message.contains("BENCH_"), "{key}: {message}");
        }
        let settings = Settings::from_lookup(with("BENCH_SCENARIOS", "wal")).expect("valid");
        assert_eq!(settings.scenarios, vec![Scenario::Wal]);
        assert_eq!((settings.sources, settings.large_sources), (1000, 9000));
    }
}
