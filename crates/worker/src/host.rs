//! [`SysinfoHostProbe`]: the [`HostProbe`] that reads this host's CPU, memory and swap.

use std::sync::{Mutex, PoisonError};

use rosetta_domain::{SystemSample, Timestamp};
use rosetta_ports::wal::HostProbe;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Reads CPU, memory and swap with `sysinfo`.
///
/// CPU use is a difference between two readings, so one [`System`] is kept between calls:
/// each sample reports the CPU use since the previous one (the first, since the probe was
/// created). Readings closer together than `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` (~200 ms)
/// are imprecise; the monitor samples far less often.
///
/// `sample` reads `/proc` synchronously (well under a millisecond), so it may be called from
/// async code directly.
pub struct SysinfoHostProbe {
    system: Mutex<System>,
}

impl SysinfoHostProbe {
    /// Creates the probe and takes the CPU baseline. Fails where sysinfo cannot read the
    /// system (an unsupported platform, or `/proc` unreadable).
    pub fn new() -> Result<Self, HostProbeUnavailable> {
        let refreshes = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::everything());
        let system = System::new_with_specifics(refreshes).map_err(|e| HostProbeUnavailable(e.to_string()))?;
        Ok(Self { system: Mutex::new(system) })
    }
}

impl std::fmt::Debug for SysinfoHostProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysinfoHostProbe").finish_non_exhaustive()
    }
}

impl HostProbe for SysinfoHostProbe {
    fn sample(&self, now: Timestamp) -> SystemSample {
        // Poisoning cannot leave a `System` half-updated in a way that matters: the next
        // refresh overwrites it.
        let mut system = self.system.lock().unwrap_or_else(PoisonError::into_inner);
        system.refresh_cpu_usage();
        system.refresh_memory();
        let cpu = f64::from(system.global_cpu_usage());
        SystemSample {
            sampled_at: now,
            // sysinfo may report NaN before it has two readings, or drift a hair past 100.
            cpu_percent: if cpu.is_finite() { cpu.clamp(0.0, 100.0) } else { 0.0 },
            memory_used_bytes: system.used_memory(),
            memory_total_bytes: system.total_memory(),
            swap_used_bytes: system.used_swap(),
            swap_total_bytes: system.total_swap(),
        }
    }
}

/// sysinfo could not read this host's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProbeUnavailable(pub String);

impl std::fmt::Display for HostProbeUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read host CPU/memory statistics: {}", self.0)
    }
}

impl std::error::Error for HostProbeUnavailable {}

/// Host sampling: this process samples the host it runs on every `every` (not leased: each
/// process has its own host) and stores the sample.
pub struct HostSampling {
    probe: std::sync::Arc<dyn HostProbe>,
    system: std::sync::Arc<dyn rosetta_ports::wal::SystemMetricsRepository>,
    clock: std::sync::Arc<dyn rosetta_ports::outbound::Clock>,
    every: std::time::Duration,
}

impl std::fmt::Debug for HostSampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSampling").field("every", &self.every).finish_non_exhaustive()
    }
}

impl HostSampling {
    /// Samples with `probe` into `system` every `every`.
    pub fn new(
        probe: std::sync::Arc<dyn HostProbe>,
        system: std::sync::Arc<dyn rosetta_ports::wal::SystemMetricsRepository>,
        clock: std::sync::Arc<dyn rosetta_ports::outbound::Clock>,
        every: std::time::Duration,
    ) -> Self {
        Self { probe, system, clock, every }
    }

    /// Samples until `cancel`; the first sample at once.
    pub async fn run(self, cancel: tokio_util::sync::CancellationToken) {
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let probe = std::sync::Arc::clone(&self.probe);
            let now = self.clock.now();
            // sysinfo reads /proc synchronously.
            let sample = match tokio::task::spawn_blocking(move || probe.sample(now)).await {
                Ok(sample) => sample,
                Err(error) => {
                    tracing::warn!(error = %error, "host sampling failed");
                    continue;
                }
            };
            if let Err(error) = self.system.record(sample).await {
                crate::runner::log_repository_error(
                    rosetta_ports::jobs::Queue::named("host"),
                    "recording host metrics",
                    &error,
                );
            }
        }
    }
}
