//! The control-plane API under load: GET one source, a page of 100 nested pipelines and
//! POST a source, each at every concurrency, against pgbench running GET one source's
//! statement (issue 2's targets: ≥ 0.4 × pgbench, p99 ≤ 10 ms at c=32, RSS ≤ 30 MiB).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::load::{self, LoadFigures, MakeRequest};
use crate::pgbench::{Pgbench, PgbenchFigures};
use crate::procfs::{CpuMeter, CpuShares, Memory, mib};
use crate::report::{Target, ms, pct, thousands};
use crate::server::{Launcher, Server};
use crate::settings::Settings;
use crate::{api_client, db};

const SOURCES: usize = 100;
const DESTINATIONS: usize = 20;
const PIPELINES: usize = 100;

const TARGET_RATIO: f64 = 0.4;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 30.0;

/// One measured load run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The route, e.g. `GET /api/v1/sources/{id}`.
    pub scenario: String,
    #[serde(flatten)]
    pub load: LoadFigures,
    /// The server's memory after the run.
    pub memory: Memory,
    pub cpu: CpuShares,
}

/// What the API benchmark measured.
#[derive(Debug, Serialize)]
pub struct ApiReport {
    pub postgres_version: String,
    pub list_bytes: usize,
    pub runs: Vec<Run>,
    pub pgbench: Vec<PgbenchFigures>,
    pub duration_seconds: u64,
    pub warmup_seconds: u64,
    #[serde(skip)]
    pub targets: Vec<Target>,
}

/// Runs the API benchmark.
pub async fn run(settings: &Settings) -> Result<ApiReport> {
    let (cluster, postgres_version, postmasters) = db::metadata_cluster().await?;

    let launcher = Launcher::new(settings, cluster.url("rosetta"));
    // Default settings: 2 HTTP workers, the WAL monitor on. Its sources point at a port nothing
    // listens on, so each sample fails at once, as an unreachable source does (a new source is
    // sampled as soon as it exists: pointed at a real server, every POST would cost a
    // connection attempt there).
    let mut server = launcher.start("api", &[])?;
    let client = reqwest::Client::new();
    let port = closed_port()?;

    eprintln!("bench api: seeding {SOURCES} sources, {DESTINATIONS} destinations, {PIPELINES} pipelines");
    let sources = api_client::create_all(
        &client,
        &server,
        "/api/v1/sources",
        (1..=SOURCES)
            .map(|i| {
                json!({"name": format!("src-{i}"), "pg_host": "127.0.0.1", "pg_port": port, "pg_database": "db",
                       "pg_username": "u", "pg_password": "pw", "publication_name": format!("pub_{i}"),
                       "replication_id": i})
            })
            .collect(),
        1,
    )
    .await?;
    let destinations = api_client::create_all(
        &client,
        &server,
        "/api/v1/destinations",
        (1..=DESTINATIONS).map(|i| json!({"name": format!("dst-{i}"), "snowflake_account": "acct-1"})).collect(),
        1,
    )
    .await?;
    api_client::create_all(
        &client,
        &server,
        "/api/v1/pipelines",
        (1..=PIPELINES)
            .map(|i| {
                json!({"name": format!("pipe-{i}"), "source_id": sources[(i - 1) % SOURCES],
                       "destination_id": destinations[(i - 1) % DESTINATIONS]})
            })
            .collect(),
        1,
    )
    .await?;

    let one = sources[SOURCES / 2];
    let (status, body) = api_client::get(&client, &server, &format!("/api/v1/sources/{one}")).await?;
    if status != 200 {
        bail!("GET /api/v1/sources/{one} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let (status, list) = api_client::get(&client, &server, "/api/v1/pipelines?limit=100").await?;
    if status != 200 {
        bail!("GET /api/v1/pipelines?limit=100 answered {status}");
    }
    let listed: serde_json::Value = serde_json::from_slice(&list)?;
    let with_metadata = listed
        .as_array()
        .map_or(0, |items| items.iter().filter(|item| item.get("pipeline_metadata").is_some()).count());
    if with_metadata != PIPELINES {
        bail!("GET /api/v1/pipelines?limit=100 listed {with_metadata} pipelines with metadata, not {PIPELINES}");
    }

    // The ceiling: the single-row SELECT GET one source runs.
    let (min, max) = (sources.iter().min().copied().unwrap_or(1), sources.iter().max().copied().unwrap_or(1));
    let pgbench_binary = cluster.bin_dir().join("pgbench");
    let pgbench =
        Pgbench { binary: &pgbench_binary, port: cluster.port(), database: "rosetta", postmasters: &postmasters };
    let script = format!("\\set id random({min}, {max})\nSELECT * FROM sources WHERE id = :id;\n");
    let mut ceilings = Vec::new();
    for &concurrency in &settings.concurrencies {
        eprintln!("bench api: pgbench -c {concurrency}");
        let run = pgbench.run(&script, concurrency, settings.duration, settings.warmup, false)?;
        ceilings.push(run);
    }

    let key = server.api_key.clone();
    let get_one: MakeRequest = {
        let (key, path) = (key.clone(), format!("/api/v1/sources/{one}"));
        Arc::new(move |_| load::request("GET", &path, &key, None))
    };
    let get_list: MakeRequest = {
        let key = key.clone();
        Arc::new(move |_| load::request("GET", "/api/v1/pipelines?limit=100", &key, None))
    };
    // Names are unique: every POST of every run (warm-ups included) gets the next number.
    let posted = Arc::new(AtomicU64::new(0));
    let post: MakeRequest = {
        let key = key.clone();
        Arc::new(move |_| {
            let n = posted.fetch_add(1, Ordering::Relaxed) + 1;
            let body = json!({"name": format!("bench-{n}"), "pg_host": "127.0.0.1", "pg_port": port,
                              "pg_database": "db", "pg_username": "u", "pg_password": "pw",
                              "publication_name": format!("pub_{n}"), "replication_id": n});
            load::request("POST", "/api/v1/sources", &key, Some(body.to_string()))
        })
    };

    let mut runs = Vec::new();
    for (scenario, make) in [
        ("GET /api/v1/sources/{id}", get_one),
        ("GET /api/v1/pipelines?limit=100", get_list),
        ("POST /api/v1/sources", post),
    ] {
        for &concurrency in &settings.concurrencies {
            let run = measure(&mut server, &postmasters, scenario, concurrency, settings, &make).await?;
            runs.push(run);
        }
    }
    server.stop()?;

    let mut report = ApiReport {
        postgres_version,
        list_bytes: list.len(),
        runs,
        pgbench: ceilings,
        duration_seconds: settings.duration.as_secs(),
        warmup_seconds: settings.warmup.as_secs(),
        targets: Vec::new(),
    };
    report.targets = report.judge(settings);
    Ok(report)
}

/// A warm-up, then the measured run, with the server's memory and the CPU shares.
async fn measure(
    server: &mut Server,
    postmasters: &[u32],
    scenario: &str,
    concurrency: usize,
    settings: &Settings,
    make: &MakeRequest,
) -> Result<Run> {
    if !settings.warmup.is_zero() {
        load::run(server.address, concurrency, settings.warmup, Arc::clone(make)).await?;
    }
    let meter = CpuMeter::start(Some(server.pid()), postmasters);
    let figures = load::run(server.address, concurrency, settings.duration, Arc::clone(make)).await?;
    let cpu = meter.shares();
    server.check_alive(scenario)?;
    let run = Run { scenario: scenario.to_owned(), load: figures, memory: server.memory(), cpu };
    eprintln!(
        "bench api: {scenario} c={concurrency}: {:.0} req/s, p50 {}, p99 {}, non-2xx {}, errors {}, RSS {} MiB (peak {}), \
         CPU load {} server {} postgres {} other {} idle {}",
        run.load.rps,
        ms(run.load.p50_ms),
        ms(run.load.p99_ms),
        run.load.non_2xx,
        run.load.errors,
        mib(run.memory.rss_kib),
        mib(run.memory.peak_kib),
        pct(cpu.load),
        pct(cpu.server),
        pct(cpu.postgres),
        pct(cpu.other),
        pct(cpu.idle)
    );
    Ok(run)
}

impl ApiReport {
    fn run(&self, scenario: &str, concurrency: usize) -> Option<&Run> {
        self.runs.iter().find(|run| run.scenario == scenario && run.load.concurrency == concurrency)
    }

    fn judge(&self, settings: &Settings) -> Vec<Target> {
        let mut targets = Vec::new();
        let get_one = "GET /api/v1/sources/{id}";
        for ceiling in &self.pgbench {
            let c = ceiling.concurrency;
            let rps = self.run(get_one, c).map_or(0.0, |run| run.load.rps);
            let ratio = rps / ceiling.tps.max(1.0);
            targets.push(Target::new(
                format!("GET one source req/s ≥ {TARGET_RATIO} × pgbench TPS at c={c}"),
                format!("{ratio:.2}"),
                ratio >= TARGET_RATIO,
            ));
        }
        let high = settings.concurrencies.iter().copied().max().unwrap_or(32);
        let p99 = self.run(get_one, high).map_or(f64::INFINITY, |run| run.load.p99_ms);
        targets.push(Target::new(
            format!("GET one source p99 ≤ {TARGET_P99_MS} ms at c={high}"),
            ms(p99),
            p99 <= TARGET_P99_MS,
        ));
        let peak = self.runs.iter().map(|run| run.memory.peak_kib).max().unwrap_or(0);
        targets.push(Target::new(
            format!("API server RSS peak ≤ {TARGET_RSS_MIB} MiB"),
            format!("{} MiB", mib(peak)),
            peak as f64 / 1024.0 <= TARGET_RSS_MIB,
        ));
        let failures: u64 = self
            .runs
            .iter()
            .filter(|run| run.scenario.starts_with("GET"))
            .map(|run| run.load.non_2xx + run.load.errors)
            .sum();
        targets.push(Target::new("no non-2xx answers or errors on GET", failures.to_string(), failures == 0));
        targets
    }

    /// The section of the Markdown report.
    pub fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "## Control-plane API\n");
        let _ = writeln!(
            out,
            "PostgreSQL {} (durable defaults, max_connections=200); {SOURCES} sources, {DESTINATIONS} destinations, \
             {PIPELINES} pipelines (a page of 100 pipelines is {} bytes); closed loop, {} s per run after a {} s \
             warm-up; server with default settings (2 HTTP workers, WAL monitor on) in a session of its own.\n",
            self.postgres_version,
            thousands(self.list_bytes as f64),
            self.duration_seconds,
            self.warmup_seconds
        );
        let _ = writeln!(
            out,
            "| scenario | concurrency | req/s | p50 | p99 | max | non-2xx | errors | RSS after | RSS peak |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} MiB | {} MiB |",
                run.scenario,
                run.load.concurrency,
                thousands(run.load.rps),
                ms(run.load.p50_ms),
                ms(run.load.p99_ms),
                ms(run.load.max_ms),
                run.load.non_2xx,
                run.load.errors,
                mib(run.memory.rss_kib),
                mib(run.memory.peak_kib)
            );
        }
        let _ = writeln!(
            out,
            "\n| pgbench `SELECT * FROM sources WHERE id = :id` (-M prepared, -j 2) | concurrency | TPS | GET one source ÷ pgbench |\n\
             |---|---:|---:|---:|"
        );
        for ceiling in &self.pgbench {
            let rps = self.run("GET /api/v1/sources/{id}", ceiling.concurrency).map_or(0.0, |run| run.load.rps);
            let _ = writeln!(
                out,
                "| pgbench | {} | {} | {:.2} |",
                ceiling.concurrency,
                thousands(ceiling.tps),
                rps / ceiling.tps.max(1.0)
            );
        }
        let _ = writeln!(
            out,
            "\nCPU during each measured run (100% = one core; \"load\" is the bench's load generator, \"other\" every \
             other process on the machine):\n\n| scenario | concurrency | load | server | postgres | other | idle |\n\
             |---|---:|---:|---:|---:|---:|---:|"
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                run.scenario,
                run.load.concurrency,
                pct(run.cpu.load),
                pct(run.cpu.server),
                pct(run.cpu.postgres),
                pct(run.cpu.other),
                pct(run.cpu.idle)
            );
        }
        let _ = writeln!(out);
    }
}

/// A local port nothing listens on (bound, then released).
fn closed_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `bytes` random bytes as hex (keys of a throwaway server).
pub fn random_hex(bytes: usize) -> String {
    let mut rng = fastrand::Rng::new();
    (0..bytes).map(|_| format!("{:02x}", rng.u8(..))).collect()
}
