//! The WAL monitor: the tick of `BENCH_SOURCES` sources (cold at start-up, then steady over the
//! connections it keeps), the steady tick and memory at `BENCH_LARGE_SOURCES`, and the history
//! query at `BENCH_HISTORY_ROWS` rows (issue 3's targets: tick ≤ 2 s, history p99 ≤ 5 ms;
//! issue 8's: at 9 000 sources a steady tick ≤ 1 s and at most 7 KiB of RSS per source).
//!
//! Ticks are read from the server's own figures, not its logs: the runner's
//! `rosetta_worker_cycle_duration_seconds{queue="wal_sampling"}` (a cycle runs from the first
//! claim after the queue was idle until nothing is due) and `rosetta_worker_cycle_items_total`
//! (the items those cycles covered).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use rosetta_test_support::PgCluster;
use serde::Serialize;
use serde_json::{Value, json};

use crate::load::{self, LoadFigures, MakeRequest};
use crate::pgbench::{Pgbench, PgbenchFigures};
use crate::procfs::{CpuMeter, CpuShares, Memory, mib};
use crate::report::{Target, ms, pct, thousands};
use crate::scrape::Scrape;
use crate::server::{Launcher, Server};
use crate::settings::Settings;
use crate::{api_client, db};

const SOURCE_CLUSTERS: usize = 2;
const DATABASES_PER_CLUSTER: usize = 5;
const SLOT_TABLE_ROWS: u64 = 50_000;
const CHUNK_ROWS: u64 = 1_000_000;
const HISTORY_WINDOW_SECONDS: i64 = 3600;
const HISTORY_LIMIT: u32 = 100;
const MONITOR_TIMEOUT_SECONDS: &str = "5";
const MONITOR_CONCURRENCY: &str = "64";
/// How long a first full tick may take before the bench calls it stuck.
const FIRST_TICK_WAIT: Duration = Duration::from_secs(180);
/// The application name of the monitor's connections to sources (rosetta_source_adapter::probe).
const PROBE_APPLICATION_NAME: &str = "rosetta-wal-monitor";

const TARGET_TICK_S: f64 = 2.0;
const TARGET_LARGE_TICK_S: f64 = 1.0;
const TARGET_KIB_PER_SOURCE: f64 = 7.0;
const TARGET_HISTORY_P99_MS: f64 = 5.0;
/// The concurrency the history target is judged at; 32 clients on 2 cores measure queueing.
const TARGET_HISTORY_CONCURRENCY: usize = 4;

/// One tick: the cycles that covered a given number of sources.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub label: String,
    /// Samples taken (ok + error) meanwhile.
    pub sampled: u64,
    pub failed: u64,
    /// The runner's cycles that covered them, and their summed duration.
    pub cycles: u64,
    pub duration_ms: f64,
    /// From making the sources due (or starting the server) until the figures showed the tick.
    pub wall_ms: f64,
    /// The server's CPU time meanwhile.
    pub server_cpu_ms: f64,
    /// Everything else's CPU meanwhile.
    pub cpu: CpuShares,
}

/// The monitor at one number of sources.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub sources: usize,
    pub ticks: Vec<Tick>,
    /// Connections to sources: the monitor's gauge and the source clusters' `pg_stat_activity`.
    pub connections_gauge: f64,
    pub probe_backends: i64,
    /// Whether the steady ticks kept the same backends (connections reused).
    pub connections_reused: bool,
    pub metadata_connections: i64,
    /// States recorded, by status.
    pub statuses: String,
    pub idle: i64,
    /// The server's memory after the steady ticks.
    pub memory: Memory,
    /// Series of `/metrics` and the exposition's size.
    pub metric_series: usize,
    pub metrics_bytes: usize,
    /// How long one `GET /metrics` took.
    pub scrape_ms: f64,
    /// Where the steady ticks' database time went (pg_stat_statements).
    pub statements: Vec<Statement>,
}

/// A statement's share of the steady ticks.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    pub database: String,
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
}

/// The history query at scale.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub rows: i64,
    pub rows_per_source: u64,
    pub insert_seconds: f64,
    pub vacuum_seconds: f64,
    pub sizes: String,
    pub entries_per_answer: usize,
    pub bytes_per_answer: usize,
    /// The statement the server sent, with its server-side time.
    pub statement: String,
    pub statement_calls: i64,
    pub statement_mean_ms: f64,
    pub statement_max_ms: f64,
    pub plan: String,
    pub http: Vec<(LoadFigures, CpuShares)>,
    pub sql: Vec<PgbenchFigures>,
    pub memory: Memory,
}

/// What the WAL benchmark measured.
#[derive(Debug, Serialize)]
pub struct WalReport {
    pub postgres_version: String,
    pub interval_seconds: u64,
    pub seed_seconds: f64,
    pub slot_retention: String,
    pub sizes: Vec<Size>,
    /// KiB of server RSS per source added between the two sizes.
    pub kib_per_source: Option<f64>,
    pub history: History,
    pub alerts: crate::alerts::AlertsReport,
    #[serde(skip)]
    pub targets: Vec<Target>,
}

/// The clusters of the benchmark and connections to them.
struct Clusters {
    meta: PgCluster,
    metadata: tokio_postgres::Client,
    sources: Vec<(PgCluster, tokio_postgres::Client)>,
    /// (port, database) of every source database.
    targets: Vec<(u16, String)>,
}

impl Clusters {
    fn postmasters(&self) -> Vec<u32> {
        std::iter::once(&self.meta)
            .chain(self.sources.iter().map(|(cluster, _)| cluster))
            .filter_map(|cluster| cluster.postmaster_pid().and_then(|pid| u32::try_from(pid).ok()))
            .collect()
    }

    async fn probe_backends(&self) -> Result<i64> {
        let mut total = 0;
        for (_, client) in &self.sources {
            total += db::count(
                client,
                &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{PROBE_APPLICATION_NAME}'"),
            )
            .await?;
        }
        Ok(total)
    }

    async fn probe_backend_starts(&self) -> Result<Vec<Vec<String>>> {
        let mut starts = Vec::new();
        for (_, client) in &self.sources {
            starts.extend(
                db::rows(
                    client,
                    &format!(
                        "SELECT pid::text, backend_start::text FROM pg_stat_activity \
                         WHERE application_name = '{PROBE_APPLICATION_NAME}' ORDER BY pid"
                    ),
                )
                .await?,
            );
        }
        Ok(starts)
    }

    async fn reset_statements(&self) -> Result<()> {
        self.metadata.batch_execute("SELECT pg_stat_statements_reset()").await?;
        for (_, client) in &self.sources {
            client.batch_execute("SELECT pg_stat_statements_reset()").await?;
        }
        Ok(())
    }
}

async fn start_clusters() -> Result<Clusters> {
    // shared_buffers/max_wal_size: room for the 10 M-row history (about 4 GB of heap and 1 GB of
    // indexes) and its bulk load without checkpoint storms.
    let meta = db::cluster(&[
        ("shared_buffers", "1GB"),
        ("max_wal_size", "8GB"),
        ("shared_preload_libraries", "pg_stat_statements"),
        ("pg_stat_statements.track", "all"),
    ])
    .await?;
    db::connect(&meta, "postgres").await?.batch_execute("CREATE DATABASE rosetta").await?;
    let metadata = db::connect(&meta, "rosetta").await?;
    metadata.batch_execute("CREATE EXTENSION pg_stat_statements").await?;
    let mut sources = Vec::new();
    let mut targets = Vec::new();
    for c in 1..=SOURCE_CLUSTERS {
        let cluster = db::cluster(&[("shared_preload_libraries", "pg_stat_statements")]).await?;
        let admin = db::connect(&cluster, "postgres").await?;
        admin.batch_execute("CREATE EXTENSION pg_stat_statements").await?;
        for d in 1..=DATABASES_PER_CLUSTER {
            let database = format!("bench_{d}");
            admin.batch_execute(&format!("CREATE DATABASE {database}")).await?;
            let client = db::connect(&cluster, &database).await?;
            // WAL written after the slot: the slot retains it.
            client
                .batch_execute(&format!(
                    "SELECT pg_create_logical_replication_slot('rosetta_bench_c{c}_d{d}', 'test_decoding'); \
                     CREATE TABLE bench_wal AS SELECT g AS id, md5(g::text) AS payload \
                     FROM generate_series(1, {SLOT_TABLE_ROWS}) g"
                ))
                .await?;
            targets.push((cluster.port(), database));
        }
        // A physical slot too: every source then sees two slots (its database's logical one and
        // the cluster's physical one), the shape the alert benchmark asks for.
        admin
            .batch_execute(&format!("SELECT pg_create_physical_replication_slot('rosetta_bench_c{c}_phys', true)"))
            .await?;
        eprintln!(
            "bench wal: source cluster {c} on port {}: {DATABASES_PER_CLUSTER} databases, one inactive logical slot \
             each, one physical slot",
            cluster.port()
        );
        sources.push((cluster, admin));
    }
    Ok(Clusters { meta, metadata, sources, targets })
}

/// Source bodies `first..=last`, round-robin over the source databases (user postgres, trust
/// authentication: no password). Upper-case names, which the API lower-cases.
fn source_bodies(clusters: &Clusters, first: usize, last: usize) -> Vec<Value> {
    (first..=last)
        .map(|i| {
            let (port, database) = &clusters.targets[(i - 1) % clusters.targets.len()];
            json!({"name": format!("SRC-{i:04}"), "pg_host": "127.0.0.1", "pg_port": port, "pg_database": database,
                   "pg_username": "postgres", "publication_name": format!("pub_{i}"), "replication_id": i})
        })
        .collect()
}

/// The counters a tick is read from.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    ok: f64,
    error: f64,
    cycles: f64,
    cycle_seconds: f64,
    cycle_items: f64,
}

impl Counters {
    fn of(scrape: &Scrape) -> Self {
        let queue = [("queue", "wal_sampling")];
        Self {
            ok: scrape.value("rosetta_wal_monitor_samples_total", &[("outcome", "ok")]),
            error: scrape.value("rosetta_wal_monitor_samples_total", &[("outcome", "error")]),
            cycles: scrape.value("rosetta_worker_cycle_duration_seconds_count", &queue),
            cycle_seconds: scrape.value("rosetta_worker_cycle_duration_seconds_sum", &queue),
            cycle_items: scrape.value("rosetta_worker_cycle_items_total", &queue),
        }
    }
}

/// A tick being waited for.
struct Watch<'a> {
    label: String,
    /// The counters before it.
    before: Counters,
    /// The sources it must cover.
    items: usize,
    /// Every source due at or before this (a timestamptz, as the database wrote it) must have
    /// been sampled.
    due_by: String,
    limit: Duration,
    meter: &'a CpuMeter,
}

/// Waits for a tick: first in the database (no source of the queue due by `due_by`; cheap to
/// ask often), then in the server's figures (the cycles that covered the
/// sources, read once they have ended) — polling `/metrics` meanwhile would cost the server
/// more than the tick itself at 9 000 sources.
async fn wait_for_tick(
    client: &reqwest::Client,
    server: &mut Server,
    metadata: &tokio_postgres::Client,
    watch: Watch<'_>,
) -> Result<Tick> {
    let deadline = Instant::now() + watch.limit;
    // Claimed items keep their due time until completed, so "due by" covers those in flight;
    // one probe of the due index's head, not a count of the queue.
    let pending = format!(
        "SELECT count(*) FROM (SELECT 1 FROM leases WHERE queue = 'wal_sampling' \
         AND due_at <= '{}'::timestamptz LIMIT 1) pending",
        watch.due_by
    );
    loop {
        server.check_alive(&watch.label)?;
        let left = db::count(metadata, &pending).await?;
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{}: sources still due after {:?}", watch.label, watch.limit);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall_ms = watch.meter.elapsed().as_secs_f64() * 1000.0;
    let server_cpu_ms = watch.meter.server_ms();
    let cpu = watch.meter.shares();
    let before = watch.before;
    loop {
        let now = Counters::of(&Scrape::of(client, &server.base).await?);
        if now.cycle_items - before.cycle_items >= watch.items as f64 {
            let tick = Tick {
                label: watch.label,
                sampled: (now.ok + now.error - before.ok - before.error) as u64,
                failed: (now.error - before.error) as u64,
                cycles: (now.cycles - before.cycles) as u64,
                duration_ms: (now.cycle_seconds - before.cycle_seconds) * 1000.0,
                wall_ms,
                server_cpu_ms,
                cpu,
            };
            eprintln!(
                "bench wal: {}: {} sampled ({} failed) in {} cycle(s) of {} in all; server CPU {:.0} ms",
                tick.label,
                tick.sampled,
                tick.failed,
                tick.cycles,
                ms(tick.duration_ms),
                tick.server_cpu_ms
            );
            return Ok(tick);
        }
        if Instant::now() > deadline {
            bail!(
                "{}: the monitor's finished cycles covered {} of {} sources within {:?}",
                watch.label,
                now.cycle_items - before.cycle_items,
                watch.items,
                watch.limit
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The metadata database's clock, as text a later query can compare with.
async fn database_now(metadata: &tokio_postgres::Client) -> Result<String> {
    db::scalar(metadata, "SELECT now()::text").await
}

/// Steady ticks: every source made due again at once, sampled over the open connections.
async fn steady_ticks(
    client: &reqwest::Client,
    server: &mut Server,
    clusters: &Clusters,
    sources: usize,
    settings: &Settings,
) -> Result<Vec<Tick>> {
    let mut ticks = Vec::new();
    let postmasters = clusters.postmasters();
    for k in 1..=settings.steady_ticks {
        let before = Counters::of(&Scrape::of(client, &server.base).await?);
        let meter = CpuMeter::start(Some(server.pid()), &postmasters);
        let due = clusters
            .metadata
            .execute("UPDATE leases SET due_at = now() WHERE queue = 'wal_sampling' AND owner IS NULL", &[])
            .await?;
        if due != sources as u64 {
            eprintln!("bench wal: warning: {due} of {sources} sources were free to make due");
        }
        let watch = Watch {
            label: format!("steady {k} at {sources}"),
            before,
            items: usize::try_from(due)?,
            // A later transaction's now(): every source the UPDATE made due is due by it.
            due_by: database_now(&clusters.metadata).await?,
            limit: Duration::from_secs(settings.monitor_interval + 60),
            meter: &meter,
        };
        ticks.push(wait_for_tick(client, server, &clusters.metadata, watch).await?);
    }
    Ok(ticks)
}

/// What the monitor holds and recorded at `sources` sources, after its ticks.
async fn size(
    client: &reqwest::Client,
    server: &Server,
    clusters: &Clusters,
    sources: usize,
    ticks: Vec<Tick>,
    connections_reused: bool,
) -> Result<Size> {
    let scraping = Instant::now();
    let scrape = Scrape::of(client, &server.base).await?;
    let scrape_ms = scraping.elapsed().as_secs_f64() * 1000.0;
    let metadata = &clusters.metadata;
    let statuses = db::scalar(
        metadata,
        "SELECT coalesce(string_agg(status || ' ' || n, ', ' ORDER BY status), 'none') FROM \
         (SELECT coalesce(status, 'none yet') AS status, count(*) AS n FROM wal_monitor GROUP BY 1) s",
    )
    .await?;
    let mut statements = Vec::new();
    for row in db::rows(
        metadata,
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls::text, round(total_exec_time::numeric, 1)::text, \
         round(mean_exec_time::numeric, 3)::text FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'rosetta') \
           AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'UPDATE leases SET due_at = now()%' \
         ORDER BY total_exec_time DESC LIMIT 6",
    )
    .await?
    {
        statements.push(statement("metadata", &row)?);
    }
    for (cluster, source) in &clusters.sources {
        for row in db::rows(
            source,
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), sum(calls)::text, \
             round(sum(total_exec_time)::numeric, 1)::text, round((sum(total_exec_time) / sum(calls))::numeric, 3)::text \
             FROM pg_stat_statements WHERE query LIKE 'WITH recovery AS%' GROUP BY query",
        )
        .await?
        {
            statements.push(statement(&format!("source :{}", cluster.port()), &row)?);
        }
    }
    Ok(Size {
        sources,
        ticks,
        connections_gauge: scrape.value("rosetta_wal_monitor_open_connections", &[]),
        probe_backends: clusters.probe_backends().await?,
        connections_reused,
        metadata_connections: db::count(
            metadata,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'rosetta' AND pid <> pg_backend_pid()",
        )
        .await?,
        statuses,
        idle: db::count(metadata, "SELECT count(*) FROM wal_monitor WHERE status = 'IDLE'").await?,
        memory: server.memory(),
        metric_series: scrape.series_total(),
        metrics_bytes: scrape.bytes(),
        scrape_ms,
        statements,
    })
}

fn statement(database: &str, row: &[String]) -> Result<Statement> {
    let field = |i: usize| row.get(i).map(String::as_str).unwrap_or_default();
    Ok(Statement {
        database: database.to_owned(),
        query: field(0).to_owned(),
        calls: field(1).parse().context("calls")?,
        total_ms: field(2).parse().context("total time")?,
        mean_ms: field(3).parse().context("mean time")?,
    })
}

/// Runs the WAL benchmark.
pub async fn run(settings: &Settings) -> Result<WalReport> {
    let clusters = start_clusters().await?;
    let postgres_version = db::scalar(&clusters.metadata, "SHOW server_version").await?;
    let mut retention = Vec::new();
    for (_, client) in &clusters.sources {
        retention.push(
            db::scalar(
                client,
                "SELECT string_agg(slot_name || '=' || pg_size_pretty(pg_current_wal_lsn() - restart_lsn), ' ' \
                 ORDER BY slot_name) FROM pg_replication_slots",
            )
            .await?,
        );
    }
    let launcher = Launcher::new(settings, clusters.meta.url("rosetta"));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let n = settings.sources;

    // Seeding, with the monitor off.
    let server = launcher.start("seed", &[("WAL_MONITOR_ENABLED", "false")])?;
    eprintln!("bench wal: seeding {n} sources over {} databases", clusters.targets.len());
    let seeding = Instant::now();
    api_client::create_all(&client, &server, "/api/v1/sources", source_bodies(&clusters, 1, n), 8).await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let lowered = db::count(&clusters.metadata, "SELECT count(*) FROM sources WHERE name ~ '^src-[0-9]{4,}$'").await?;
    if lowered != n as i64 {
        bail!("{lowered} of {n} sources are named src-0001… (the API lower-cases names)");
    }
    server.stop()?;

    // The monitor: the first tick (cold: every source due at start-up, connections to open).
    let interval = settings.monitor_interval.to_string();
    let monitor = [
        ("WAL_MONITOR_ENABLED", "true"),
        ("WAL_MONITOR_INTERVAL_SECONDS", interval.as_str()),
        ("WAL_MONITOR_TIMEOUT_SECONDS", MONITOR_TIMEOUT_SECONDS),
        ("WAL_MONITOR_CONCURRENCY", MONITOR_CONCURRENCY),
    ];
    // The same steady ticks with alert evaluation off first, to measure what evaluation adds.
    let without = {
        let mut quiet: Vec<(&str, &str)> = monitor.to_vec();
        quiet.push(("ALERTS_ENABLED", "false"));
        let postmasters = clusters.postmasters();
        let meter = CpuMeter::start(None, &postmasters);
        let due_by = database_now(&clusters.metadata).await?;
        let mut server = launcher.start("monitor without alerts", &quiet)?;
        let meter = meter.with_server(server.pid());
        let watch = Watch {
            label: "first tick without alerts (cold)".to_owned(),
            before: Counters::default(),
            items: n,
            due_by,
            limit: FIRST_TICK_WAIT,
            meter: &meter,
        };
        wait_for_tick(&client, &mut server, &clusters.metadata, watch).await?;
        let ticks = steady_ticks(&client, &mut server, &clusters, n, settings).await?;
        server.stop()?;
        ticks.iter().map(|tick| tick.duration_ms).sum::<f64>() / ticks.len().max(1) as f64
    };
    // The monitor's first samples were recorded without evaluation: the next server starts from
    // the same state as a fresh install (every source due at once).
    clusters.metadata.batch_execute("UPDATE leases SET due_at = '-infinity' WHERE queue = 'wal_sampling'").await?;

    let postmasters = clusters.postmasters();
    let meter = CpuMeter::start(None, &postmasters);
    let due_by = database_now(&clusters.metadata).await?;
    let mut server = launcher.start("monitor", &monitor)?;
    let meter = meter.with_server(server.pid());
    let watch = Watch {
        label: "first tick (cold)".to_owned(),
        before: Counters::default(),
        items: n,
        due_by,
        limit: FIRST_TICK_WAIT,
        meter: &meter,
    };
    let first = wait_for_tick(&client, &mut server, &clusters.metadata, watch).await?;
    let template = db::scalar(
        &clusters.metadata,
        "SELECT coalesce((SELECT slots->0 FROM wal_metrics WHERE status = 'IDLE' AND jsonb_array_length(slots) = 2 \
         ORDER BY id LIMIT 1)::text, '')",
    )
    .await?;
    if template.is_empty() {
        bail!("no IDLE history row with two slots to copy a slot's shape from (every source should be IDLE)");
    }

    clusters.reset_statements().await?;
    let backends_before = clusters.probe_backend_starts().await?;
    let mut ticks = vec![first];
    ticks.extend(steady_ticks(&client, &mut server, &clusters, n, settings).await?);
    let reused = clusters.probe_backend_starts().await? == backends_before;
    let steady: Vec<f64> = ticks.iter().skip(1).map(|tick| tick.duration_ms).collect();
    let mean_tick_ms = steady.iter().sum::<f64>() / steady.len().max(1) as f64;
    let mut sizes = vec![size(&client, &server, &clusters, n, ticks, reused).await?];
    let alerts = crate::alerts::measure(
        &client,
        &server,
        &clusters.metadata,
        n,
        steady.len(),
        (mean_tick_ms, without),
        settings,
    )
    .await?;

    // The large size: more sources through the API while the monitor runs.
    if settings.large_sources > n {
        let large = settings.large_sources;
        let added = large - n;
        let before = Counters::of(&Scrape::of(&client, &server.base).await?);
        let meter = CpuMeter::start(Some(server.pid()), &postmasters);
        eprintln!("bench wal: adding {added} sources while the monitor runs");
        api_client::create_all(&client, &server, "/api/v1/sources", source_bodies(&clusters, n + 1, large), 8).await?;
        let watch = Watch {
            label: format!("the {added} new sources' first samples"),
            before,
            items: added,
            due_by: database_now(&clusters.metadata).await?,
            limit: FIRST_TICK_WAIT,
            meter: &meter,
        };
        let first = wait_for_tick(&client, &mut server, &clusters.metadata, watch).await?;
        // Statistics as autovacuum leaves them within a minute of the growth: the steady ticks
        // measure the steady state, not the planner's view of a table nine times smaller.
        clusters.metadata.batch_execute("ANALYZE leases, sources, wal_monitor").await?;
        clusters.reset_statements().await?;
        let backends_before = clusters.probe_backend_starts().await?;
        let mut ticks = vec![first];
        ticks.extend(steady_ticks(&client, &mut server, &clusters, large, settings).await?);
        let reused = clusters.probe_backend_starts().await? == backends_before;
        sizes.push(size(&client, &server, &clusters, large, ticks, reused).await?);
    }
    server.stop()?;
    let kib_per_source = match sizes.as_slice() {
        [small, large] => {
            Some((large.memory.rss_kib as f64 - small.memory.rss_kib as f64) / (large.sources - small.sources) as f64)
        }
        _ => None,
    };

    let history = history(settings, &clusters, &launcher, &client, &template).await?;
    let mut report = WalReport {
        postgres_version,
        interval_seconds: settings.monitor_interval,
        seed_seconds,
        slot_retention: retention.join(" "),
        sizes,
        kib_per_source,
        history,
        alerts,
        targets: Vec::new(),
    };
    report.targets = report.judge();
    Ok(report)
}

/// Loads the history, then measures the route and its statement.
async fn history(
    settings: &Settings,
    clusters: &Clusters,
    launcher: &Launcher,
    client: &reqwest::Client,
    template: &str,
) -> Result<History> {
    let n = settings.sources as u64;
    let metadata = &clusters.metadata;
    // The history belongs to the first `BENCH_SOURCES` sources, as many rows per source as at
    // that size whether or not the large size ran.
    let ids: Vec<i64> = db::rows(metadata, &format!("SELECT id::text FROM sources ORDER BY id LIMIT {n}"))
        .await?
        .iter()
        .filter_map(|row| row.first()?.parse().ok())
        .collect();
    let per_source = settings.history_rows / n;
    let rows = per_source * n;
    let end = Utc::now().timestamp();
    let start = end - i64::try_from(settings.history_days * 86_400)?;
    let step_us = settings.history_days * 86_400 * 1_000_000 / per_source;
    eprintln!(
        "bench wal: inserting {rows} wal_metrics rows ({per_source} per source over {} days)",
        settings.history_days
    );
    let inserting = Instant::now();
    let template = template.replace('\'', "''");
    let mut done = 0;
    while done < rows {
        let count = CHUNK_ROWS.min(rows - done);
        // Row g is tick g / n of source g % n (time order, sources interleaved, as the monitor
        // writes them), shaped like the row the server wrote. The sources exist, so the
        // foreign-key triggers are skipped for the load; CHECK constraints still apply.
        let sql = format!(
            "SET session_replication_role = replica;
             WITH ids AS (
                 SELECT id, (row_number() OVER (ORDER BY id) - 1)::int8 AS k FROM sources ORDER BY id LIMIT {n}
             ), rows AS (
                 SELECT ids.id AS source_id,
                        to_timestamp({start}) + make_interval(secs => ((g / {n} + 1) * {step_us} + (g % {n}) * 1000) / 1e6) AS at,
                        -- 16 MiB of WAL per 10 minutes per source database, a slot 1–64 MiB behind.
                        4294967296::int8 + (g / {n}) * 279620 + (g % {n}) * 4096 AS lsn,
                        (1 << 20) * (1 + (g * 7919) % 64) AS retained
                 FROM generate_series({done}::int8, {last}::int8) g JOIN ids ON ids.k = g % {n}
             )
             INSERT INTO wal_metrics (source_id, recorded_at, status, sampled_at, in_recovery, current_lsn,
                                      wal_dir_bytes, size_bytes, slots, error)
             SELECT source_id, at, 'IDLE', at, false, lsn, NULL, retained,
                    jsonb_build_array('{template}'::jsonb || jsonb_build_object(
                        'restart_lsn', lsn - retained, 'confirmed_flush_lsn', lsn - retained + 4096,
                        'retained_bytes', retained, 'confirmed_lag_bytes', retained - 4096)),
                    NULL
             FROM rows;
             SET session_replication_role = origin;",
            last = done + count - 1,
        );
        metadata.batch_execute(&sql).await.context("inserting history rows")?;
        done += count;
        eprintln!("bench wal:   {done} / {rows} rows, {:.0} s so far", inserting.elapsed().as_secs_f64());
    }
    let insert_seconds = inserting.elapsed().as_secs_f64();
    let vacuuming = Instant::now();
    metadata.batch_execute("VACUUM ANALYZE wal_metrics").await?;
    // The load's dirty pages are written now rather than by a checkpoint during the runs.
    metadata.batch_execute("CHECKPOINT").await?;
    let vacuum_seconds = vacuuming.elapsed().as_secs_f64();
    let written = db::scalar(
        metadata,
        &format!("SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys('{template}'::jsonb) k"),
    )
    .await?;
    let generated = db::scalar(
        metadata,
        "SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys((SELECT slots->0 FROM wal_metrics ORDER BY id DESC LIMIT 1)) k",
    )
    .await?;
    if written != generated {
        bail!("the generated slot objects have keys {generated}, the server's {written}");
    }
    let total = db::count(metadata, "SELECT count(*) FROM wal_metrics").await?;
    let sizes = db::scalar(
        metadata,
        "SELECT 'heap ' || pg_size_pretty(pg_relation_size('wal_metrics')) \
         || ', TOAST ' || pg_size_pretty(pg_total_relation_size('wal_metrics') - pg_relation_size('wal_metrics') - pg_indexes_size('wal_metrics')) \
         || ', indexes ' || pg_size_pretty(pg_indexes_size('wal_metrics')) \
         || ', total ' || pg_size_pretty(pg_total_relation_size('wal_metrics'))",
    )
    .await?;

    // HTTP, the monitor off (it would add rows and apply retention).
    clusters.reset_statements().await?;
    let mut server = launcher.start("history", &[("WAL_MONITOR_ENABLED", "false")])?;
    let window = |from: i64| {
        let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ");
        format!("from={}&to={}", at(from), at(from + HISTORY_WINDOW_SECONDS))
    };
    let first = ids.first().copied().context("no sources")?;
    // A window around one of the first source's rows (half an hour before it and after).
    let middle = db::count(
        metadata,
        &format!(
            "SELECT extract(epoch FROM recorded_at)::int8 - {} FROM wal_metrics WHERE source_id = {first} \
             ORDER BY recorded_at LIMIT 1 OFFSET {}",
            HISTORY_WINDOW_SECONDS / 2,
            per_source / 2
        ),
    )
    .await?;
    let probe = format!("/api/v1/metrics/wal?source_id={first}&{}&limit={HISTORY_LIMIT}", window(middle));
    let (status, body) = api_client::get(client, &server, &probe).await?;
    if status != 200 {
        bail!("GET {probe} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let entries = serde_json::from_slice::<Value>(&body)?.as_array().map_or(0, Vec::len);
    if entries == 0 {
        bail!("the history of source {first} in a one-hour window is empty");
    }
    let make: MakeRequest = {
        let (ids, key) = (Arc::new(ids.clone()), server.api_key.clone());
        Arc::new(move |rng| {
            let id = ids[rng.usize(..ids.len())];
            let from = rng.i64(start..end - HISTORY_WINDOW_SECONDS);
            let path = format!("/api/v1/metrics/wal?source_id={id}&{}&limit={HISTORY_LIMIT}", window(from));
            load::request("GET", &path, &key, None)
        })
    };
    let postmasters: Vec<u32> =
        clusters.meta.postmaster_pid().and_then(|pid| u32::try_from(pid).ok()).into_iter().collect();
    let http = load::runs(settings, &mut server, &postmasters, &make, "history").await?;
    let memory = server.memory();
    server.stop()?;

    // The statement the server sent: run alone through pgbench, and its plan.
    let sent = db::rows(
        metadata,
        "SELECT query, calls::text, round(mean_exec_time::numeric, 3)::text, round(max_exec_time::numeric, 3)::text \
         FROM pg_stat_statements WHERE query LIKE 'SELECT%FROM \"wal_metrics\"%' ORDER BY calls DESC LIMIT 1",
    )
    .await?;
    let [statement, calls, mean, max] = sent
        .first()
        .cloned()
        .unwrap_or_default()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the server's history statement is not in pg_stat_statements"))?;
    let statement = regex_free_whitespace(&statement);
    // diesel binds the filters in the order they are added: source, from, to, then the limit.
    if !(1..=4).all(|i| statement.contains(&format!("${i}"))) || statement.contains("$5") {
        bail!("the history statement does not have the four expected parameters: {statement}");
    }
    let with = |sid: &str, from: &str, to: &str, limit: &str| {
        statement.replace("$4", limit).replace("$3", to).replace("$2", from).replace("$1", sid)
    };
    let (min_id, max_id) = (ids.iter().min().copied().unwrap_or(1), ids.iter().max().copied().unwrap_or(1));
    let script = format!(
        "\\set sid random({min_id}, {max_id})\n\\set t0 random({start}, {})\n\\set t1 :t0 + {HISTORY_WINDOW_SECONDS}\n{};\n",
        end - HISTORY_WINDOW_SECONDS,
        with(":sid", "to_timestamp(:t0)", "to_timestamp(:t1)", &HISTORY_LIMIT.to_string())
    );
    let pgbench_binary = clusters.meta.bin_dir().join("pgbench");
    let pgbench =
        Pgbench { binary: &pgbench_binary, port: clusters.meta.port(), database: "rosetta", postmasters: &postmasters };
    let mut sql = Vec::new();
    for &concurrency in &settings.concurrencies {
        let figures = pgbench.run(&script, concurrency, settings.duration, settings.warmup, true)?;
        eprintln!(
            "bench wal: history SQL c={concurrency}: {:.0} TPS, p99 {}",
            figures.tps,
            figures.p99_ms.map_or_else(|| "?".to_owned(), ms)
        );
        sql.push(figures);
    }
    let explain = format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}",
        with(
            &first.to_string(),
            &format!("to_timestamp({middle})"),
            &format!("to_timestamp({})", middle + HISTORY_WINDOW_SECONDS),
            &HISTORY_LIMIT.to_string()
        )
    );
    let plan = db::rows(metadata, &explain)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect::<Vec<_>>()
        .join("\n");

    Ok(History {
        rows: total,
        rows_per_source: per_source,
        insert_seconds,
        vacuum_seconds,
        sizes,
        entries_per_answer: entries,
        bytes_per_answer: body.len(),
        statement,
        statement_calls: calls.parse().unwrap_or(0),
        statement_mean_ms: mean.parse().unwrap_or(0.0),
        statement_max_ms: max.parse().unwrap_or(0.0),
        plan,
        http,
        sql,
        memory,
    })
}

/// `text` with every run of whitespace as one space.
fn regex_free_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl WalReport {
    fn judge(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some(small) = self.sizes.first() {
            let n = small.sources;
            if let Some(first) = small.ticks.first() {
                targets.push(Target::new(
                    format!("first full tick ({n} sources, cold) ≤ {TARGET_TICK_S} s"),
                    ms(first.duration_ms),
                    first.duration_ms <= TARGET_TICK_S * 1000.0,
                ));
            }
            let slowest = small.ticks.iter().skip(1).map(|tick| tick.duration_ms).fold(0.0, f64::max);
            targets.push(Target::new(
                format!("steady full tick ({n} sources, slowest of {}) ≤ {TARGET_TICK_S} s", small.ticks.len() - 1),
                ms(slowest),
                slowest <= TARGET_TICK_S * 1000.0,
            ));
            let failed: u64 = small.ticks.iter().map(|tick| tick.failed).sum();
            targets.push(Target::new(
                "every source sampled, all IDLE, no failures",
                small.statuses.clone(),
                small.idle == n as i64 && failed == 0,
            ));
        }
        if let Some(large) = self.sizes.get(1) {
            let slowest = large.ticks.iter().skip(1).map(|tick| tick.duration_ms).fold(0.0, f64::max);
            targets.push(Target::new(
                format!(
                    "steady full tick ({} sources, slowest of {}) ≤ {TARGET_LARGE_TICK_S} s",
                    large.sources,
                    large.ticks.len() - 1
                ),
                ms(slowest),
                slowest <= TARGET_LARGE_TICK_S * 1000.0,
            ));
            let failed: u64 = large.ticks.iter().map(|tick| tick.failed).sum();
            targets.push(Target::new(
                format!("{} sources sampled, all IDLE, no failures", large.sources),
                large.statuses.clone(),
                large.idle == large.sources as i64 && failed == 0,
            ));
        }
        if let Some(kib) = self.kib_per_source {
            targets.push(Target::new(
                format!("server RSS growth per source ≤ {TARGET_KIB_PER_SOURCE} KiB"),
                format!("{kib:.1} KiB"),
                kib <= TARGET_KIB_PER_SOURCE,
            ));
        }
        for (figures, _) in &self.history.http {
            if figures.concurrency == TARGET_HISTORY_CONCURRENCY {
                targets.push(Target::new(
                    format!("history p99 ≤ {TARGET_HISTORY_P99_MS} ms, HTTP c={} (no errors)", figures.concurrency),
                    ms(figures.p99_ms),
                    figures.p99_ms <= TARGET_HISTORY_P99_MS && figures.non_2xx == 0 && figures.errors == 0,
                ));
            }
        }
        targets.extend(self.alerts.judge());
        for figures in &self.history.sql {
            if figures.concurrency == TARGET_HISTORY_CONCURRENCY {
                let p99 = figures.p99_ms.unwrap_or(f64::INFINITY);
                targets.push(Target::new(
                    format!("history p99 ≤ {TARGET_HISTORY_P99_MS} ms, SQL c={}", figures.concurrency),
                    ms(p99),
                    p99 <= TARGET_HISTORY_P99_MS,
                ));
            }
        }
        targets
    }

    /// The section of the Markdown report.
    pub fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "## WAL monitor\n");
        let _ = writeln!(
            out,
            "PostgreSQL {}: a metadata cluster (shared_buffers=1GB, max_wal_size=8GB) and {SOURCE_CLUSTERS} source \
             clusters ({DATABASES_PER_CLUSTER} databases each, one inactive `test_decoding` slot per database: {}; one physical slot per cluster); \
             sources round-robin over the databases, seeded through the API ({} in {:.1} s); monitor interval {} s, \
             timeout {MONITOR_TIMEOUT_SECONDS} s, concurrency {MONITOR_CONCURRENCY}. A tick is the runner's cycles \
             (`rosetta_worker_cycle_duration_seconds`) that covered every source; steady ticks make every source due \
             at once (`UPDATE leases SET due_at = now()`).\n",
            self.postgres_version,
            self.slot_retention,
            self.sizes.first().map_or(0, |size| size.sources),
            self.seed_seconds,
            self.interval_seconds
        );
        let _ = writeln!(
            out,
            "| tick | sampled | failed | cycles | duration | sources/s | wall (incl. the wait for the next poll) | server CPU | other processes' CPU |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for size in &self.sizes {
            for tick in &size.ticks {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.0} ms | {} |",
                    tick.label,
                    tick.sampled,
                    tick.failed,
                    tick.cycles,
                    ms(tick.duration_ms),
                    thousands(tick.sampled as f64 * 1000.0 / tick.duration_ms.max(1.0)),
                    ms(tick.wall_ms),
                    tick.server_cpu_ms,
                    pct(tick.cpu.other)
                );
            }
        }
        let _ = writeln!(
            out,
            "\n| sources | connections held (gauge) | probe backends | same backends in steady ticks | metadata connections | \
             statuses | /metrics series (bytes, one scrape) | server RSS | RSS peak |\n|---:|---:|---:|---|---:|---|---:|---:|---:|"
        );
        for size in &self.sizes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} ({}, {}) | {} MiB | {} MiB |",
                thousands(size.sources as f64),
                size.connections_gauge,
                size.probe_backends,
                if size.connections_reused { "yes" } else { "no" },
                size.metadata_connections,
                size.statuses,
                thousands(size.metric_series as f64),
                thousands(size.metrics_bytes as f64),
                ms(size.scrape_ms),
                mib(size.memory.rss_kib),
                mib(size.memory.peak_kib)
            );
        }
        if let Some(kib) = self.kib_per_source {
            let _ = writeln!(out, "\nServer RSS per source added: {kib:.1} KiB.");
        }
        for size in &self.sizes {
            let _ = writeln!(
                out,
                "\nDatabase time of the steady ticks at {} sources (pg_stat_statements):\n\n\
                 | database | statement | calls | total | mean |\n|---|---|---:|---:|---:|",
                thousands(size.sources as f64)
            );
            for statement in &size.statements {
                let _ = writeln!(
                    out,
                    "| {} | `{}…` | {} | {} | {} |",
                    statement.database,
                    statement.query.replace('|', "\\|"),
                    statement.calls,
                    ms(statement.total_ms),
                    ms(statement.mean_ms)
                );
            }
        }
        self.alerts.markdown(out);
        let h = &self.history;
        let _ = writeln!(
            out,
            "\n### History query at {} `wal_metrics` rows\n\n\
             - {} rows per source (time order, sources interleaved, shaped like the server's rows), inserted in {:.0} s; \
             VACUUM ANALYZE and CHECKPOINT {:.0} s; {}\n\
             - `GET /api/v1/metrics/wal?source_id=<random>&from=<random>&to=<from + 1 h>&limit={HISTORY_LIMIT}`: \
             {} entries, {} bytes per answer\n\
             - the server's statement: {} calls, mean {}, max {}: `{}`\n\n\
             | path | concurrency | req/s or TPS | mean | p50 | p99 | non-2xx + errors | machine idle |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|",
            thousands(h.rows as f64),
            h.rows_per_source,
            h.insert_seconds,
            h.vacuum_seconds,
            h.sizes,
            h.entries_per_answer,
            thousands(h.bytes_per_answer as f64),
            h.statement_calls,
            ms(h.statement_mean_ms),
            ms(h.statement_max_ms),
            h.statement
        );
        for (figures, cpu) in &h.http {
            let _ = writeln!(
                out,
                "| HTTP | {} | {} | {} | {} | {} | {} | {} |",
                figures.concurrency,
                thousands(figures.rps),
                ms(figures.mean_ms),
                ms(figures.p50_ms),
                ms(figures.p99_ms),
                figures.non_2xx + figures.errors,
                pct(cpu.idle)
            );
        }
        for figures in &h.sql {
            let _ = writeln!(
                out,
                "| SQL (pgbench -M prepared, -j 2) | {} | {} | {} | {} | {} | | {} |",
                figures.concurrency,
                thousands(figures.tps),
                ms(figures.mean_ms),
                figures.p50_ms.map_or_else(|| "?".to_owned(), ms),
                figures.p99_ms.map_or_else(|| "?".to_owned(), ms),
                pct(figures.cpu.idle)
            );
        }
        let _ = writeln!(
            out,
            "\nBoth are closed loops on this machine; at 32 clients on 2 cores latency is queueing behind saturated \
             cores (≈ concurrency ÷ throughput), so the target is judged at {TARGET_HISTORY_CONCURRENCY} clients. \
             Server RSS during the history runs: {} MiB (peak {} MiB).\n\n```\n{}\n```\n",
            mib(h.memory.rss_kib),
            mib(h.memory.peak_kib),
            h.plan
        );
    }
}
