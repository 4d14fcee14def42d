//! What the kernel says about processes and the machine: CPU time and memory, from `/proc`.

use std::fs;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of the `/proc` CPU counters (`getconf CLK_TCK`, 100 almost everywhere).
fn ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` after the command name (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User + system CPU ticks of one process (0 once it is gone).
pub fn process_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .and_then(|fields| {
            // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0)
}

/// CPU ticks of a process and its direct children (a postmaster and its backends).
pub fn tree_ticks(pid: u32) -> u64 {
    let children: u64 = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| stat_fields(*child).and_then(|fields| fields.get(1)?.parse::<u32>().ok()) == Some(pid))
        .map(process_ticks)
        .sum();
    process_ticks(pid) + children
}

/// Busy and idle ticks of the whole machine (the `cpu` line of `/proc/stat`).
fn machine_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .map(|line| line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let at = |i: usize| values.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7), at(3) + at(4))
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A server's resident memory now and at its peak.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (the highest RSS since start), KiB.
    pub peak_kib: u64,
}

impl Memory {
    /// The memory of process `pid` now.
    pub fn of(pid: u32) -> Self {
        Self { rss_kib: status_kib(pid, "VmRSS"), peak_kib: status_kib(pid, "VmHWM") }
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Where the machine's CPU went during a run, in percent of one core (the machine has
/// `cores × 100 %`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShares {
    /// This process: the load generator (or the bench waiting).
    pub load: f64,
    /// The server.
    pub server: f64,
    /// Every PostgreSQL cluster of the bench.
    pub postgres: f64,
    /// Everything else on the machine (a neighbour's build skews the figures).
    pub other: f64,
    /// Idle.
    pub idle: f64,
}

/// CPU counters at one moment, to be compared with a later [`CpuMeter::shares`].
#[derive(Debug, Clone)]
pub struct CpuMeter {
    at: Instant,
    machine: (u64, u64),
    own: u64,
    server: u64,
    postgres: u64,
    server_pid: Option<u32>,
    postmasters: Vec<u32>,
}

impl CpuMeter {
    /// Starts measuring the server `server_pid` and the clusters run by `postmasters`.
    pub fn start(server_pid: Option<u32>, postmasters: &[u32]) -> Self {
        Self {
            at: Instant::now(),
            machine: machine_ticks(),
            own: process_ticks(std::process::id()),
            server: server_pid.map_or(0, process_ticks),
            postgres: postmasters.iter().copied().map(tree_ticks).sum(),
            server_pid,
            postmasters: postmasters.to_vec(),
        }
    }

    /// The same meter, counting the CPU of a server started after it (all of its ticks).
    pub fn with_server(mut self, pid: u32) -> Self {
        self.server_pid = Some(pid);
        self.server = 0;
        self
    }

    /// Time since the start.
    pub fn elapsed(&self) -> std::time::Duration {
        self.at.elapsed()
    }

    /// The server's CPU ticks since the start, in milliseconds.
    pub fn server_ms(&self) -> f64 {
        let now = self.server_pid.map_or(0, process_ticks);
        now.saturating_sub(self.server) as f64 * 1000.0 / ticks_per_second()
    }

    /// The shares since the start.
    pub fn shares(&self) -> CpuShares {
        let later = Self::start(self.server_pid, &self.postmasters);
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let hz = ticks_per_second();
        let pct = |ticks: u64| ticks as f64 / hz / seconds * 100.0;
        let own = later.own.saturating_sub(self.own);
        let server = later.server.saturating_sub(self.server);
        // Backends that exited meanwhile take their ticks with them: "other" absorbs the rest.
        let postgres = later.postgres.saturating_sub(self.postgres);
        let busy = later.machine.0.saturating_sub(self.machine.0);
        CpuShares {
            load: pct(own),
            server: pct(server),
            postgres: pct(postgres),
            other: pct(busy.saturating_sub(own + server + postgres)),
            idle: pct(later.machine.1.saturating_sub(self.machine.1)),
        }
    }
}
