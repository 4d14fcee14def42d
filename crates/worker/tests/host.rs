//! `SysinfoHostProbe` against this machine.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rosetta_ports::wal::HostProbe;
use rosetta_worker::SysinfoHostProbe;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[test]
fn values_are_plausible() {
    let probe = SysinfoHostProbe::new().unwrap();
    std::thread::sleep(Duration::from_millis(250)); // sysinfo's minimum CPU update interval
    let at = now();
    let sample = probe.sample(at);
    eprintln!("{sample:?}");
    assert_eq!(sample.sampled_at, at, "the caller's clock");
    assert!(sample.memory_total_bytes > 0);
    assert!(sample.memory_used_bytes > 0 && sample.memory_used_bytes <= sample.memory_total_bytes);
    assert!(sample.swap_used_bytes <= sample.swap_total_bytes);
    assert!((0.0..=100.0).contains(&sample.cpu_percent), "{}", sample.cpu_percent);
}

#[test]
fn cpu_is_measured_between_calls() {
    let probe = SysinfoHostProbe::new().unwrap();
    let _ = probe.sample(now());
    // Keep one core busy until the next sample.
    let busy_until = Instant::now() + Duration::from_millis(500);
    let burner = std::thread::spawn(move || {
        let mut x: u64 = 0;
        while Instant::now() < busy_until {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        x
    });
    let _ = burner.join().unwrap();
    let busy = probe.sample(now());
    eprintln!("cpu while busy: {:.1} %", busy.cpu_percent);
    assert!(busy.cpu_percent > 1.0 && busy.cpu_percent <= 100.0, "{}", busy.cpu_percent);
}
