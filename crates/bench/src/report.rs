//! The report: every figure as JSON (`report.json`) and the same as Markdown (`report.md`).

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use crate::api::ApiReport;
use crate::wal::WalReport;

/// A target of an issue, and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is promised, e.g. "GET one source p99 ≤ 10 ms at c=32".
    pub name: String,
    /// What was measured.
    pub value: String,
    /// Whether the measurement meets the target.
    pub met: bool,
}

impl Target {
    /// A target `name`, measured `value`, met or not.
    pub fn new(name: impl Into<String>, value: impl Into<String>, met: bool) -> Self {
        Self { name: name.into(), value: value.into(), met }
    }
}

/// Where and when the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: u64,
    pub load_average_at_start: String,
    pub commit: String,
    pub started_at: String,
}

impl Machine {
    /// This machine, now.
    pub fn here(repo: &std::path::Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(args)
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let mut commit = git(&["rev-parse", "--short", "HEAD"]);
        if commit.is_empty() {
            commit = "unknown".to_owned();
        } else if !git(&["status", "--porcelain"]).is_empty() {
            commit.push_str(" (with uncommitted changes)");
        }
        Self {
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            cpu_model: cpuinfo
                .lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
                .unwrap_or_else(|| "unknown".to_owned()),
            memory_gib: meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kib| (kib + (1 << 19)) >> 20),
            load_average_at_start: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            commit,
            started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub seconds: f64,
    pub api: Option<ApiReport>,
    pub wal: Option<WalReport>,
    pub console: Option<crate::console::ConsoleReport>,
    /// Every target of the benchmarks that ran.
    pub targets: Vec<Target>,
}

impl Report {
    /// Whether every target was met.
    pub fn passed(&self) -> bool {
        self.targets.iter().all(|target| target.met)
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "# Rosetta benchmarks\n");
        let _ = writeln!(
            out,
            "- machine: {} CPUs, {}, {} GiB RAM; load average at start {}; everything on 127.0.0.1",
            m.cpus, m.cpu_model, m.memory_gib, m.load_average_at_start
        );
        let _ = writeln!(out, "- commit {}; started {}; took {:.0} s\n", m.commit, m.started_at, self.seconds);
        if let Some(api) = &self.api {
            api.markdown(&mut out);
        }
        if let Some(wal) = &self.wal {
            wal.markdown(&mut out);
        }
        if let Some(console) = &self.console {
            console.markdown(&mut out);
        }
        let _ = writeln!(out, "## Targets\n\n| target | value | result |\n|---|---:|---|");
        for target in &self.targets {
            let _ = writeln!(out, "| {} | {} | {} |", target.name, target.value, pass(target.met));
        }
        let missed: Vec<&str> =
            self.targets.iter().filter(|target| !target.met).map(|target| target.name.as_str()).collect();
        if missed.is_empty() {
            let _ = writeln!(out, "\nOverall: PASS");
        } else {
            let _ = writeln!(out, "\nOverall: FAIL (missed: {})", missed.join("; "));
        }
        out
    }
}

/// PASS or FAIL.
pub fn pass(met: bool) -> &'static str {
    if met { "PASS" } else { "FAIL" }
}

/// A percentage of one core, rounded.
pub fn pct(value: f64) -> String {
    format!("{value:.0}%")
}

/// Milliseconds with as many decimals as they deserve.
pub fn ms(value: f64) -> String {
    if value < 1.0 {
        format!("{value:.3} ms")
    } else if value < 100.0 {
        format!("{value:.2} ms")
    } else {
        format!("{value:.0} ms")
    }
}

/// A whole number with thin spaces between thousands (1 000 000).
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(thousands(1_234_567.4), "1 234 567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(0.0951), "0.095 ms");
        assert_eq!(ms(12.345), "12.35 ms");
        assert_eq!(ms(1234.5), "1234 ms");
    }
}
