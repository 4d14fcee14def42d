//! `make bench`: benchmarks of a release `rosetta-server` on this machine, loopback only, against
//! throwaway PostgreSQL clusters (the test harness's), with pgbench as the ceiling.
//!
//! - **api**: 100 sources, 20 destinations, 100 pipelines seeded through the API; GET one source,
//!   GET a page of 100 nested pipelines, POST a source, at 4 and 32 clients, against pgbench
//!   running GET one source's statement.
//! - **wal**: 1 000 sources over 10 databases with inactive slots on 2 source clusters; the
//!   monitor's first (cold) tick and steady ticks; 8 000 more sources and the steady tick and
//!   memory at 9 000; then 10 M history rows and the history route and statement at 4 and 32
//!   clients.
//! - **console**: `chart.svg` of a 30-day range at 10 M history rows at 4 and 32 clients, and
//!   the overview's three API calls with 1 000 sources.
//!
//! Writes `report.json` (every figure) and `report.md` to `BENCH_REPORT_DIR` (default
//! `target/bench`). Settings: see [`settings::Settings`]. Exit status: 0 done (targets missed
//! are reported FAIL), 1 a step failed, 3 a target missed with `BENCH_STRICT=1`.

mod alerts;
mod api;
mod api_client;
mod console;
mod db;
mod load;
mod pgbench;
mod procfs;
mod report;
mod scrape;
mod server;
mod settings;
mod wal;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::report::{Machine, Report};
use crate::settings::{Scenario, Settings};

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("bench: error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(&settings) {
        Ok(report) if !report.passed() && settings.strict => ExitCode::from(3),
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: &Settings) -> Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the runtime")?;
    let started = Instant::now();
    let machine = Machine::here(&settings.repo);
    let mut report = Report { machine, seconds: 0.0, api: None, wal: None, console: None, targets: Vec::new() };
    runtime.block_on(async {
        for scenario in &settings.scenarios {
            match scenario {
                Scenario::Api => {
                    eprintln!("bench: the control-plane API");
                    let api = api::run(settings).await.context("the API benchmark")?;
                    report.targets.extend(api.targets.iter().cloned());
                    report.api = Some(api);
                }
                Scenario::Wal => {
                    eprintln!("bench: the WAL monitor");
                    let wal = wal::run(settings).await.context("the WAL monitor benchmark")?;
                    report.targets.extend(wal.targets.iter().cloned());
                    report.wal = Some(wal);
                }
                Scenario::Console => {
                    eprintln!("bench: the console and charts");
                    let console = console::run(settings).await.context("the console benchmark")?;
                    report.targets.extend(console.targets.iter().cloned());
                    report.console = Some(console);
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    report.seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&settings.report_dir)
        .with_context(|| format!("creating {}", settings.report_dir.display()))?;
    let json = settings.report_dir.join("report.json");
    let markdown = settings.report_dir.join("report.md");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let text = report.markdown();
    std::fs::write(&markdown, &text).with_context(|| format!("writing {}", markdown.display()))?;
    println!("{text}");
    eprintln!("bench: reports in {} and {}; took {:.0} s", json.display(), markdown.display(), report.seconds);
    Ok(report)
}
