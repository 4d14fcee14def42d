//! The console's server side (issue 12's targets): `chart.svg` of a 30-day range at
//! `BENCH_HISTORY_ROWS` history rows, p99 ≤ 50 ms at 4 clients; and the overview of
//! `BENCH_SOURCES` sources — the three API calls the console's overview makes (sources, the
//! WAL monitor's states, firing alerts) — in ≤ 100 ms of server time.
//!
//! The metadata database is loaded directly (the monitor is off): every source with a latest
//! state of two slots, one in ten with a firing alert, and the history spread over 30 days,
//! one slot row per history row and one failed sample in 500, as the recorder writes them.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::load::{self, LoadFigures, MakeRequest};
use crate::procfs::CpuShares;
use crate::report::{Target, ms, pct, thousands};
use crate::server::Launcher;
use crate::settings::Settings;
use crate::{api_client, db};

const CHART_DAYS: i64 = 30;
const CHART_WIDTH: u32 = 800;
const CHUNK_ROWS: u64 = 1_000_000;
const OVERVIEW_ROUNDS: usize = 50;
const TARGET_CHART_P99_MS: f64 = 50.0;
const TARGET_CHART_CONCURRENCY: usize = 4;
const TARGET_OVERVIEW_MS: f64 = 100.0;

/// The overview's three calls, timed together.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub sources: usize,
    pub firing_alerts: usize,
    pub rounds: usize,
    /// The three responses' times added up (the server's time for one overview), per round.
    pub sum_p50_ms: f64,
    pub sum_p99_ms: f64,
    pub sum_max_ms: f64,
    /// The three sent at once, as the console does: until the last answer.
    pub concurrent_p50_ms: f64,
    pub concurrent_p99_ms: f64,
    /// Bytes of the three answers.
    pub bytes: usize,
}

/// What the console benchmark measured.
#[derive(Debug, Serialize)]
pub struct ConsoleReport {
    pub postgres_version: String,
    pub history_rows: i64,
    pub slot_rows: i64,
    pub rows_per_source: u64,
    pub insert_seconds: f64,
    pub sizes: String,
    pub chart_bytes: usize,
    pub chart_points: usize,
    pub chart: Vec<(LoadFigures, CpuShares)>,
    pub overview: Overview,
    #[serde(skip)]
    pub targets: Vec<Target>,
}

pub async fn run(settings: &Settings) -> Result<ConsoleReport> {
    let (cluster, postgres_version, postmasters) = db::metadata_cluster().await?;
    let launcher = Launcher::new(settings, cluster.url("rosetta"));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let n = settings.sources;

    let server = launcher.start("console seed", &[("WAL_MONITOR_ENABLED", "false")])?;
    eprintln!("bench console: seeding {n} sources");
    let bodies = (1..=n)
        .map(|i| {
            json!({"name": format!("console-{i:05}"), "pg_host": "db.internal", "pg_port": 5432,
                   "pg_database": format!("db_{}", i % 10), "pg_username": "replicator",
                   "publication_name": "cdc_pub", "replication_id": i})
        })
        .collect();
    let ids = api_client::create_all(&client, &server, "/api/v1/sources", bodies, 8).await?;
    server.stop()?;

    let metadata = db::connect(&cluster, "rosetta").await?;
    let ids_sql = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    metadata
        .batch_execute(&format!(
            "INSERT INTO wal_monitor (source_id, status, sampled_at, in_recovery, current_lsn, wal_dir_bytes, size_bytes,
                                      slots, last_attempt_at)
             SELECT id, 'IDLE', now(), false, 4294967296 + id * 4096, 1 << 30, (id % 64 + 1) << 20,
                    jsonb_build_array(
                        jsonb_build_object('slot_name', 'rosetta_' || id, 'slot_type', 'logical', 'active', false,
                            'temporary', false, 'restart_lsn', 4294967296 + id * 4096 - ((id % 64 + 1) << 20),
                            'confirmed_flush_lsn', 4294967296 + id * 4096 - ((id % 64 + 1) << 20) + 4096,
                            'wal_status', 'reserved', 'safe_wal_size_bytes', NULL, 'conflicting', false,
                            'inactive_since', NULL),
                        jsonb_build_object('slot_name', 'standby', 'slot_type', 'physical', 'active', true,
                            'temporary', false, 'restart_lsn', 4294967296 + id * 4096 - 65536,
                            'confirmed_flush_lsn', NULL, 'wal_status', 'reserved', 'safe_wal_size_bytes', NULL,
                            'conflicting', NULL, 'inactive_since', NULL)),
                    now()
             FROM unnest(ARRAY[{ids_sql}]::int8[]) id
             ON CONFLICT (source_id) DO UPDATE SET status = EXCLUDED.status, sampled_at = EXCLUDED.sampled_at,
                 in_recovery = EXCLUDED.in_recovery, current_lsn = EXCLUDED.current_lsn,
                 wal_dir_bytes = EXCLUDED.wal_dir_bytes, size_bytes = EXCLUDED.size_bytes,
                 slots = EXCLUDED.slots, last_attempt_at = EXCLUDED.last_attempt_at;
             INSERT INTO alerts (rule, severity, state, source_id, source_name, slot_name, summary, value, threshold,
                                 started_at, updated_at)
             SELECT 'slot_retained_bytes', 'warning', 'FIRING', s.id, s.name, 'rosetta_' || s.id,
                    'slot rosetta_' || s.id || ' on ' || s.name || ' retains WAL', 64 << 20, 1 << 20, now(), now()
             FROM sources s WHERE s.id % 10 = 0;"
        ))
        .await
        .context("seeding the latest states and alerts")?;

    // History: row g is tick g / n of source g % n, over the last 30 days.
    let per_source = (settings.history_rows / n as u64).max(1);
    let rows = per_source * n as u64;
    let end = Utc::now().timestamp();
    let start = end - CHART_DAYS * 86_400;
    let step_us = CHART_DAYS as u64 * 86_400 * 1_000_000 / per_source;
    eprintln!(
        "bench console: inserting {rows} history rows and their slot rows ({per_source} per source over {CHART_DAYS} days)"
    );
    let inserting = Instant::now();
    let mut done = 0;
    while done < rows {
        let count = CHUNK_ROWS.min(rows - done);
        let sql = format!(
            "SET session_replication_role = replica;
             WITH ids AS (
                 SELECT id, (row_number() OVER (ORDER BY id) - 1)::int8 AS k FROM sources ORDER BY id LIMIT {n}
             ), rows AS (
                 SELECT ids.id AS source_id, g % 500 = 499 AS failed,
                        to_timestamp({start}) + make_interval(secs => ((g / {n} + 1) * {step_us} + (g % {n}) * 1000) / 1e6) AS at,
                        4294967296::int8 + (g / {n}) * 279620 AS lsn,
                        (1 << 20) * (1 + (g * 7919) % 64) AS retained
                 FROM generate_series({done}::int8, {last}::int8) g JOIN ids ON ids.k = g % {n}
             ), history AS (
                 INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn,
                                          wal_dir_bytes, size_bytes, slots, error)
                 SELECT source_id, at, CASE WHEN failed THEN 'ERROR' ELSE 'IDLE' END,
                        CASE WHEN failed THEN NULL ELSE at END, CASE WHEN failed THEN NULL ELSE false END,
                        CASE WHEN failed THEN NULL ELSE lsn END, CASE WHEN failed THEN NULL ELSE 1 << 30 END,
                        CASE WHEN failed THEN NULL ELSE retained END,
                        CASE WHEN failed THEN NULL ELSE '[]'::jsonb END,
                        CASE WHEN failed THEN 'no answer within 5s' END
                 FROM rows
             )
             INSERT INTO wal_slot_metrics (source_id, recorded_at, slot_name, retained_bytes)
             SELECT source_id, at, 'rosetta_' || source_id, retained FROM rows WHERE NOT failed;
             SET session_replication_role = origin;",
            last = done + count - 1,
        );
        metadata.batch_execute(&sql).await.context("inserting history rows")?;
        done += count;
        eprintln!("bench console:   {done} / {rows} rows, {:.0} s so far", inserting.elapsed().as_secs_f64());
    }
    // One statement each: VACUUM cannot run in the implicit transaction of a multi-statement batch.
    for statement in ["VACUUM ANALYZE wal_metrics", "VACUUM ANALYZE wal_slot_metrics", "CHECKPOINT"] {
        metadata.batch_execute(statement).await.with_context(|| statement.to_owned())?;
    }
    let insert_seconds = inserting.elapsed().as_secs_f64();
    let history_rows = db::count(&metadata, "SELECT count(*) FROM wal_metrics").await?;
    let slot_rows = db::count(&metadata, "SELECT count(*) FROM wal_slot_metrics").await?;
    let sizes = db::scalar(
        &metadata,
        "SELECT 'wal_metrics ' || pg_size_pretty(pg_total_relation_size('wal_metrics')) \
         || ', wal_slot_metrics ' || pg_size_pretty(pg_total_relation_size('wal_slot_metrics')) \
         || ' (chart index ' || pg_size_pretty(pg_relation_size('wal_slot_metrics_chart_idx')) || ')'",
    )
    .await?;

    let mut server = launcher.start("console", &[("WAL_MONITOR_ENABLED", "false")])?;
    let at =
        |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let chart_path = |id: i64| {
        format!("/api/v1/wal-monitor/sources/{id}/chart.svg?from={}&to={}&width={CHART_WIDTH}", at(start), at(end))
    };
    let probe = chart_path(ids[ids.len() / 2]);
    let (status, body) = api_client::get(&client, &server, &probe).await?;
    if status != 200 {
        bail!("GET {probe} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let svg = String::from_utf8_lossy(&body);
    let chart_points = svg
        .split("<polyline")
        .skip(1)
        .map(|line| {
            line.split("points=\"").nth(1).and_then(|p| p.split('"').next()).map_or(0, |p| p.split_whitespace().count())
        })
        .filter(|points| *points > 2)
        .sum();
    if chart_points == 0 {
        bail!("the chart of a source with {per_source} samples drew no line");
    }
    let make: MakeRequest = {
        let (ids, key) = (Arc::new(ids.clone()), server.api_key.clone());
        let paths: Arc<Vec<String>> = Arc::new(ids.iter().map(|id| chart_path(*id)).collect());
        Arc::new(move |rng| load::request("GET", &paths[rng.usize(..paths.len())], &key, None))
    };
    let chart = load::runs(settings, &mut server, &postmasters, &make, "chart").await?;

    let overview = overview(&client, &server, n).await?;
    server.stop()?;
    let mut report = ConsoleReport {
        postgres_version,
        history_rows,
        slot_rows,
        rows_per_source: per_source,
        insert_seconds,
        sizes,
        chart_bytes: body.len(),
        chart_points,
        chart,
        overview,
        targets: Vec::new(),
    };
    report.targets = report.judge();
    Ok(report)
}

/// The overview's calls, `OVERVIEW_ROUNDS` times one after the other and as many times at once.
async fn overview(client: &reqwest::Client, server: &crate::server::Server, sources: usize) -> Result<Overview> {
    let paths =
        ["/api/v1/sources?skip=0&limit=1000", "/api/v1/wal-monitor", "/api/v1/alerts?state=FIRING&skip=0&limit=1000"];
    let timed = |path: &'static str| async move {
        let started = Instant::now();
        let (status, body) = api_client::get(client, server, path).await?;
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
        Ok::<_, anyhow::Error>((started.elapsed().as_secs_f64() * 1000.0, body))
    };
    let mut sums = Vec::new();
    let mut concurrent = Vec::new();
    let mut bytes = 0;
    let mut firing = 0;
    for _ in 0..OVERVIEW_ROUNDS {
        let mut sum = 0.0;
        bytes = 0;
        for path in paths {
            let (elapsed, body) = timed(path).await?;
            sum += elapsed;
            bytes += body.len();
            if path.contains("alerts") {
                firing = serde_json::from_slice::<serde_json::Value>(&body)?.as_array().map_or(0, Vec::len);
            }
        }
        sums.push(sum);
        let started = Instant::now();
        let (a, b, c) = tokio::join!(timed(paths[0]), timed(paths[1]), timed(paths[2]));
        let (_, listed) = a?;
        b?;
        c?;
        concurrent.push(started.elapsed().as_secs_f64() * 1000.0);
        let count = serde_json::from_slice::<serde_json::Value>(&listed)?.as_array().map_or(0, Vec::len);
        if count != sources.min(1000) {
            bail!("the overview listed {count} sources, not {sources}");
        }
    }
    let quantile = |values: &mut Vec<f64>, q: f64| {
        values.sort_by(f64::total_cmp);
        values[((values.len() as f64 - 1.0) * q).round() as usize]
    };
    Ok(Overview {
        sources,
        firing_alerts: firing,
        rounds: OVERVIEW_ROUNDS,
        sum_p50_ms: quantile(&mut sums, 0.5),
        sum_p99_ms: quantile(&mut sums, 0.99),
        sum_max_ms: quantile(&mut sums, 1.0),
        concurrent_p50_ms: quantile(&mut concurrent, 0.5),
        concurrent_p99_ms: quantile(&mut concurrent, 0.99),
        bytes,
    })
}

impl ConsoleReport {
    fn judge(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some((figures, _)) = self.chart.iter().find(|(f, _)| f.concurrency == TARGET_CHART_CONCURRENCY) {
            targets.push(Target::new(
                format!(
                    "chart.svg, {CHART_DAYS}-day range at {} history rows, p99 at c={TARGET_CHART_CONCURRENCY} ≤ {TARGET_CHART_P99_MS} ms",
                    thousands(self.history_rows as f64)
                ),
                ms(figures.p99_ms),
                figures.p99_ms <= TARGET_CHART_P99_MS && figures.non_2xx == 0 && figures.errors == 0,
            ));
        }
        targets.push(Target::new(
            format!(
                "console overview of {} sources: server time (its 3 API calls added up), p99 ≤ {TARGET_OVERVIEW_MS} ms",
                self.overview.sources
            ),
            ms(self.overview.sum_p99_ms),
            self.overview.sum_p99_ms <= TARGET_OVERVIEW_MS,
        ));
        targets
    }

    pub fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "## Console and charts (PostgreSQL {})\n", self.postgres_version);
        let _ = writeln!(
            out,
            "- history: {} rows ({} per source over {CHART_DAYS} days, one failed sample in 500), {} slot rows; loaded in {:.0} s; {}",
            thousands(self.history_rows as f64),
            thousands(self.rows_per_source as f64),
            thousands(self.slot_rows as f64),
            self.insert_seconds,
            self.sizes
        );
        let _ = writeln!(
            out,
            "- one chart: {} bytes of SVG, {} points drawn for {} samples at width {CHART_WIDTH}\n",
            thousands(self.chart_bytes as f64),
            self.chart_points,
            thousands(self.rows_per_source as f64)
        );
        let _ = writeln!(
            out,
            "| chart.svg (30 days, random source) | req/s | p50 | p99 | max | non-2xx | CPU idle |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (figures, cpu) in &self.chart {
            let _ = writeln!(
                out,
                "| c={} | {:.0} | {} | {} | {} | {} | {} |",
                figures.concurrency,
                figures.rps,
                ms(figures.p50_ms),
                ms(figures.p99_ms),
                ms(figures.max_ms),
                figures.non_2xx,
                pct(cpu.idle)
            );
        }
        let o = &self.overview;
        let _ = writeln!(
            out,
            "\n- overview ({} sources, {} firing alerts, {} KiB in 3 answers), {} rounds: the 3 calls added up p50 {}, p99 {}, max {}; sent at once (as the console does) p50 {}, p99 {}\n",
            o.sources,
            o.firing_alerts,
            o.bytes / 1024,
            o.rounds,
            ms(o.sum_p50_ms),
            ms(o.sum_p99_ms),
            ms(o.sum_max_ms),
            ms(o.concurrent_p50_ms),
            ms(o.concurrent_p99_ms)
        );
    }
}
