//! `make bench` at toy sizes: every scenario runs end to end against the debug server and the
//! report holds every figure. Speed targets are not judged here (a debug build on a loaded
//! machine), only that the bench measures what it says.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The debug `rosetta-server` next to this package's binary (`make test` builds it first).
fn server_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_rosetta-bench"));
    let server = bench.with_file_name("rosetta-server");
    assert!(server.is_file(), "no {} (build it first: cargo build -p rosetta-server)", server.display());
    server
}

#[test]
fn every_scenario_runs_and_reports_its_figures() {
    let reports = tempfile::tempdir().expect("a report directory");
    let output = Command::new(env!("CARGO_BIN_EXE_rosetta-bench"))
        .env("BENCH_SERVER_BIN", server_binary())
        .env("BENCH_REPORT_DIR", reports.path())
        .env("BENCH_SOURCES", "20")
        .env("BENCH_LARGE_SOURCES", "40")
        .env("BENCH_STEADY_TICKS", "1")
        .env("BENCH_MONITOR_INTERVAL", "2")
        .env("BENCH_HISTORY_ROWS", "2000")
        .env("BENCH_QUEUED_DELIVERIES", "200")
        .env("BENCH_DURATION", "1")
        .env("BENCH_WARMUP", "0")
        .env_remove("BENCH_STRICT")
        .env_remove("BENCH_SCENARIOS")
        .output()
        .expect("running rosetta-bench");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "rosetta-bench failed ({}):\n{log}", output.status);

    let report: Value =
        serde_json::from_slice(&std::fs::read(reports.path().join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    let runs = report["api"]["runs"].as_array().expect("API runs");
    assert_eq!(runs.len(), 6, "3 routes at 2 concurrencies: {runs:?}");
    for run in runs {
        assert!(run["requests"].as_u64() > Some(0), "{run}");
        assert!(run["p99_ms"].as_f64() > Some(0.0), "{run}");
        assert_eq!((run["non_2xx"].as_u64(), run["errors"].as_u64()), (Some(0), Some(0)), "{run}");
        assert!(run["memory"]["peak_kib"].as_u64() > Some(1024), "{run}");
    }
    for ceiling in report["api"]["pgbench"].as_array().expect("pgbench runs") {
        assert!(ceiling["tps"].as_f64() > Some(0.0), "{ceiling}");
    }

    let sizes = report["wal"]["sizes"].as_array().expect("WAL sizes");
    assert_eq!(sizes.iter().map(|size| size["sources"].as_u64()).collect::<Vec<_>>(), [Some(20), Some(40)]);
    for size in sizes {
        assert_eq!(size["idle"], size["sources"], "every slot is inactive: {size}");
        let ticks = size["ticks"].as_array().expect("ticks");
        assert_eq!(ticks.len(), 2, "the first tick and one steady tick: {ticks:?}");
        for tick in ticks {
            assert!(tick["cycles"].as_u64() >= Some(1) && tick["duration_ms"].as_f64() > Some(0.0), "{tick}");
            assert_eq!(tick["failed"].as_u64(), Some(0), "{tick}");
        }
        assert_eq!(size["connections_gauge"].as_f64(), Some(10.0), "one connection per source database: {size}");
    }
    assert!(report["wal"]["kib_per_source"].is_number());
    let alerts = &report["wal"]["alerts"];
    assert_eq!((alerts["sources"].as_u64(), alerts["queued"].as_i64()), (Some(20), Some(200)), "{alerts}");
    assert!(alerts["evaluation_ms_per_tick"].as_f64() > Some(0.0), "evaluation's statements were seen: {alerts}");
    assert!(alerts["sample_to_delivery_ms"].as_f64() > Some(0.0), "{alerts}");
    assert!(alerts["deliveries_per_second"].as_f64() > Some(0.0), "{alerts}");
    let history = &report["wal"]["history"];
    assert_eq!(history["rows_per_source"].as_u64(), Some(100), "{history}");
    assert!(history["rows"].as_i64() >= Some(2000 + 40), "loaded rows plus those the ticks wrote: {history}");
    assert!(history["entries_per_answer"].as_u64() > Some(0), "{history}");
    assert!(
        history["plan"].as_str().is_some_and(|plan| plan.contains("wal_metrics_source_recorded_at_idx")),
        "{history}"
    );
    for (figures, _) in history["http"].as_array().expect("history runs").iter().map(|run| (&run[0], &run[1])) {
        assert!(figures["requests"].as_u64() > Some(0), "{figures}");
        assert_eq!((figures["non_2xx"].as_u64(), figures["errors"].as_u64()), (Some(0), Some(0)), "{figures}");
    }
    for sql in history["sql"].as_array().expect("history SQL runs") {
        assert!(sql["p99_ms"].as_f64() > Some(0.0), "{sql}");
    }

    let console = &report["console"];
    assert_eq!(
        (console["history_rows"].as_i64(), console["rows_per_source"].as_u64()),
        (Some(2000), Some(100)),
        "{console}"
    );
    assert!(console["slot_rows"].as_i64() > Some(1900), "a slot row per successful sample: {console}");
    assert!(console["chart_points"].as_u64().is_some_and(|points| points > 10 && points <= 800), "{console}");
    for (figures, _) in console["chart"].as_array().expect("chart runs").iter().map(|run| (&run[0], &run[1])) {
        assert!(figures["requests"].as_u64() > Some(0), "{figures}");
        assert_eq!((figures["non_2xx"].as_u64(), figures["errors"].as_u64()), (Some(0), Some(0)), "{figures}");
    }
    let overview = &console["overview"];
    assert_eq!((overview["sources"].as_u64(), overview["firing_alerts"].as_u64()), (Some(20), Some(2)), "{overview}");
    assert!(overview["sum_p99_ms"].as_f64() > Some(0.0), "{overview}");

    let targets = report["targets"].as_array().expect("targets");
    assert!(targets.len() >= 14, "{targets:?}");
    let markdown = std::fs::read_to_string(reports.path().join("report.md")).expect("report.md");
    for heading in [
        "## Control-plane API",
        "## WAL monitor",
        "### History query",
        "## Console and charts",
        "## Targets",
        "Overall: ",
    ] {
        assert!(markdown.contains(heading), "{heading} missing from report.md:\n{markdown}");
    }
}
