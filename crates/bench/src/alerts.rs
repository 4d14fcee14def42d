//! Alerts at the WAL benchmark's size (issue 9's targets): what evaluation adds to the steady
//! ticks of `BENCH_SOURCES` sources with two slots each, how long an alert takes to reach a
//! local receiver, and how fast 10 000 queued deliveries drain into it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::api_client;
use crate::db;
use crate::report::Target;
use crate::server::Server;

/// Issue 9's targets.
const TARGET_SHARE_OF_TICK: f64 = 0.10;
const TARGET_MS_PER_SOURCE: f64 = 1.0;
const TARGET_DELIVERIES_PER_SECOND: f64 = 1_000.0;

/// What the alert measurements found.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsReport {
    pub sources: usize,
    pub steady_ticks: usize,
    /// Mean steady tick (ms), which includes evaluation.
    pub mean_tick_ms: f64,
    /// Mean steady tick of the same sources with evaluation off (`ALERTS_ENABLED=false`).
    pub mean_tick_without_ms: f64,
    /// Database time of evaluation's statements per tick (pg_stat_statements): reading the
    /// contexts, the rules, and writing what changed.
    pub evaluation_ms_per_tick: f64,
    pub evaluation_statements: Vec<(String, i64, f64)>,
    /// From making a source due with a rule it now breaks until the receiver had the delivery.
    pub sample_to_delivery_ms: f64,
    /// From the alert's `started_at` (the evaluating process's clock) until the receiver had it.
    pub alert_to_delivery_ms: f64,
    pub interval_seconds: u64,
    pub queued: i64,
    pub drain_seconds: f64,
    pub deliveries_per_second: f64,
}

/// A local receiver that answers every request 204 over keep-alive connections, counting them.
struct Receiver {
    url: String,
    count: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let count = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&counter)));
            }
        });
        Ok(Receiver { url, count })
    }

    fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Reads requests (head, then `content-length` bytes) and answers each 204, until the peer
/// closes.
async fn serve(mut stream: tokio::net::TcpStream, count: Arc<AtomicU64>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = [0_u8; 16 * 1024];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        buffer.drain(..end + 4 + length);
        count.fetch_add(1, Ordering::Relaxed);
        if stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.is_err() {
            return;
        }
    }
}

async fn patch(client: &reqwest::Client, server: &Server, path: &str, body: &serde_json::Value) -> Result<()> {
    let response = client
        .patch(format!("{}{path}", server.base))
        .bearer_auth(&server.api_key)
        .json(body)
        .send()
        .await
        .with_context(|| format!("PATCH {path}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("PATCH {path} answered {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Measures evaluation (from the statements of the steady ticks just run, with `mean_tick_ms`),
/// then the latency and throughput of deliveries.
pub async fn measure(
    client: &reqwest::Client,
    server: &Server,
    metadata: &tokio_postgres::Client,
    sources: usize,
    steady_ticks: usize,
    (mean_tick_ms, mean_tick_without_ms): (f64, f64),
    settings: &crate::settings::Settings,
) -> Result<AlertsReport> {
    let interval_seconds = settings.monitor_interval;
    let queued = i64::try_from(settings.queued_deliveries)?;
    // Evaluation's statements over the steady ticks (pg_stat_statements was reset before them).
    let rows = db::rows(
        metadata,
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls, total_exec_time FROM pg_stat_statements \
         WHERE query ~ 'alert_memory|alert_rules|source_alert_rules|INSERT INTO alerts|UPDATE alerts|INSERT INTO \
         deliveries|CROSS JOIN LATERAL' AND query !~ 'pg_stat_statements' ORDER BY total_exec_time DESC",
    )
    .await?;
    let mut statements = Vec::new();
    let mut total_ms = 0.0;
    for row in rows {
        let calls: i64 = row[1].parse().unwrap_or(0);
        let ms: f64 = row[2].parse().unwrap_or(0.0);
        total_ms += ms;
        statements.push((row[0].clone(), calls, ms));
    }
    let evaluation_ms_per_tick = total_ms / steady_ticks.max(1) as f64;
    eprintln!(
        "bench alerts: evaluation's statements {evaluation_ms_per_tick:.1} ms per tick of {mean_tick_ms:.1} ms \
         ({sources} sources)"
    );

    // Latency: one source warns at 1 MiB (its slots retain more), made due now.
    let receiver = Receiver::start().await?;
    let channel = api_client::create(
        client,
        server,
        "/api/v1/notification-channels",
        &json!({"name": "bench-receiver", "kind": "webhook", "url": receiver.url}),
    )
    .await?;
    let source = db::count(metadata, "SELECT min(id) FROM sources").await?;
    patch(
        client,
        server,
        &format!("/api/v1/sources/{source}/alert-rules/slot_retained_bytes"),
        &json!({"warning": 1_048_576, "critical": null}),
    )
    .await?;
    let started = Instant::now();
    metadata
        .execute("UPDATE leases SET due_at = now() WHERE queue = 'wal_sampling' AND item_id = $1", &[&source])
        .await?;
    let deadline = started + Duration::from_secs(interval_seconds + 30);
    while receiver.received() == 0 {
        if Instant::now() > deadline {
            bail!("no delivery reached the receiver within {:?}", deadline - started);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sample_to_delivery_ms = started.elapsed().as_secs_f64() * 1000.0;
    let received_at = db::scalar(metadata, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text").await?;
    let alert_started = db::scalar(
        metadata,
        &format!("SELECT (extract(epoch FROM min(started_at)) * 1000)::text FROM alerts WHERE source_id = {source}"),
    )
    .await?;
    // Upper bound: the receiver had it before this query ran.
    let alert_to_delivery_ms = received_at.parse::<f64>().unwrap_or(0.0) - alert_started.parse::<f64>().unwrap_or(0.0);
    eprintln!(
        "bench alerts: first delivery {sample_to_delivery_ms:.0} ms after the source was due, ≤ \
         {alert_to_delivery_ms:.0} ms after the alert started"
    );

    // Throughput: 10 000 deliveries of that alert queued at once.
    let delivered_before = receiver.received();
    metadata
        .batch_execute(&format!(
            "INSERT INTO deliveries (channel_id, alert_id, type, created_at, next_attempt_at) \
             SELECT {channel}, (SELECT min(id) FROM alerts WHERE source_id = {source}), 'alert.renotify', now(), now() \
             FROM generate_series(1, {queued})"
        ))
        .await?;
    let queued_at = Instant::now();
    let target = delivered_before + settings.queued_deliveries;
    let deadline = queued_at + Duration::from_secs(300);
    while receiver.received() < target {
        if Instant::now() > deadline {
            bail!("{} of {queued} deliveries arrived within 300 s", receiver.received() - delivered_before);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Delivered means recorded too.
    loop {
        let pending = db::count(metadata, "SELECT count(*) FROM deliveries WHERE state = 'PENDING'").await?;
        if pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{pending} deliveries still PENDING after they arrived");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_seconds = queued_at.elapsed().as_secs_f64();
    let deliveries_per_second = queued as f64 / drain_seconds;
    eprintln!(
        "bench alerts: {queued} queued deliveries delivered and recorded in {drain_seconds:.2} s ({deliveries_per_second:.0}/s)"
    );

    // Leave the monitor as it was for what follows.
    let response = client
        .delete(format!("{}/api/v1/notification-channels/{channel}", server.base))
        .bearer_auth(&server.api_key)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("deleting the bench channel answered {}", response.status());
    }
    Ok(AlertsReport {
        sources,
        steady_ticks,
        mean_tick_ms,
        mean_tick_without_ms,
        evaluation_ms_per_tick,
        evaluation_statements: statements,
        sample_to_delivery_ms,
        alert_to_delivery_ms,
        interval_seconds,
        queued,
        drain_seconds,
        deliveries_per_second,
    })
}

impl AlertsReport {
    /// Issue 9's targets.
    pub fn judge(&self) -> Vec<Target> {
        // Conservative: all of evaluation's database time counted as if it lengthened the tick
        // (it runs in the recorder, beside the sampling); the A/B of the ticks is shown with it.
        let share = self.evaluation_ms_per_tick / self.mean_tick_ms.max(f64::MIN_POSITIVE);
        let per_source = self.evaluation_ms_per_tick / self.sources.max(1) as f64;
        vec![
            Target::new(
                format!(
                    "alert evaluation ≤ {:.0} % of the steady tick ({} sources, 2 slots each)",
                    TARGET_SHARE_OF_TICK * 100.0,
                    self.sources
                ),
                format!(
                    "{:.1} % (its database time; mean tick {:.1} ms with evaluation, {:.1} ms without)",
                    share * 100.0,
                    self.mean_tick_ms,
                    self.mean_tick_without_ms
                ),
                share <= TARGET_SHARE_OF_TICK,
            ),
            Target::new(
                format!("alert evaluation ≤ {TARGET_MS_PER_SOURCE} ms per source"),
                format!("{per_source:.3} ms"),
                per_source <= TARGET_MS_PER_SOURCE,
            ),
            Target::new(
                "alert to delivery ≤ 1 interval + 1 s (local receiver)",
                format!("{:.0} ms from the due sample", self.sample_to_delivery_ms),
                self.sample_to_delivery_ms <= (self.interval_seconds as f64 + 1.0) * 1000.0,
            ),
            Target::new(
                format!("delivery throughput ≥ {TARGET_DELIVERIES_PER_SECOND} / s ({} queued)", self.queued),
                format!("{:.0} / s", self.deliveries_per_second),
                self.deliveries_per_second >= TARGET_DELIVERIES_PER_SECOND,
            ),
        ]
    }

    /// The section of the Markdown report.
    pub fn markdown(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "\n### Alerts\n");
        let _ = writeln!(
            out,
            "{} sources with two slots each (one logical, one physical), default rules; evaluation runs after every \
             recorded batch. Mean steady tick with evaluation {:.1} ms, without (`ALERTS_ENABLED=false`, the same \
             ticks before) {:.1} ms. Evaluation's statements took {:.1} ms of database time per steady tick \
             (running beside the sampling, in the recorder):\n",
            self.sources, self.mean_tick_ms, self.mean_tick_without_ms, self.evaluation_ms_per_tick
        );
        let _ = writeln!(out, "| statement | calls | total |\n|---|---:|---:|");
        for (query, calls, ms) in &self.evaluation_statements {
            let _ = writeln!(out, "| `{}…` | {calls} | {ms:.2} ms |", query.replace('|', "\\|"));
        }
        let _ = writeln!(
            out,
            "\nA source made due with a rule it breaks: its delivery reached a local receiver {:.0} ms later (≤ {:.0} \
             ms after the alert's `started_at`). {} deliveries queued at once were delivered and recorded in {:.2} s: \
             {:.0} per second.",
            self.sample_to_delivery_ms,
            self.alert_to_delivery_ms,
            self.queued,
            self.drain_seconds,
            self.deliveries_per_second
        );
    }
}
