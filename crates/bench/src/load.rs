//! A closed-loop HTTP load generator: `concurrency` clients, each on its own keep-alive
//! HTTP/1.1 connection, each sending its next request as soon as the previous answer is read,
//! for a fixed time (what wrk does). Latencies go into an HDR histogram (µs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// Builds each request, with the client's own random numbers.
pub type MakeRequest = Arc<dyn Fn(&mut fastrand::Rng) -> Request<Full<Bytes>> + Send + Sync>;

/// How long an answer may take before it counts as an error and the connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    /// Clients.
    pub concurrency: usize,
    /// Measured time, seconds.
    pub seconds: f64,
    /// Answers read (any status).
    pub requests: u64,
    /// Answers per second.
    pub rps: f64,
    /// Answers that were not 2xx.
    pub non_2xx: u64,
    /// Connection errors and timeouts.
    pub errors: u64,
    /// Latency percentiles and mean, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

struct Client {
    requests: u64,
    non_2xx: u64,
    errors: u64,
    latencies: Histogram<u64>,
}

fn histogram() -> Result<Histogram<u64>> {
    // 1 µs to 60 s at three significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).context("building a latency histogram")
}

/// Threads the clients run on, like wrk's `-t 2`: each a single-threaded runtime, so a client's
/// connection and its requests never wait for another thread to be woken.
const THREADS: usize = 2;

/// Runs `concurrency` clients against `address` for `duration`.
pub async fn run(
    address: SocketAddr,
    concurrency: usize,
    duration: Duration,
    make: MakeRequest,
) -> Result<LoadFigures> {
    let started = Instant::now();
    let deadline = started + duration;
    let threads: Vec<_> = (0..THREADS.min(concurrency.max(1)))
        .map(|thread| {
            let make = Arc::clone(&make);
            // Clients thread, thread + THREADS, … run on this thread.
            let numbers: Vec<u64> = (thread..concurrency).step_by(THREADS).map(|n| n as u64).collect();
            std::thread::spawn(move || -> Result<Vec<Client>> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async move {
                    let clients: Vec<_> = numbers
                        .into_iter()
                        .map(|number| tokio::spawn(client(address, number, deadline, Arc::clone(&make))))
                        .collect();
                    let mut done = Vec::new();
                    for finished in clients {
                        done.push(finished.await.context("a load client panicked")??);
                    }
                    Ok(done)
                })
            })
        })
        .collect();
    let finished = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|thread| thread.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))?)
            .collect::<Result<Vec<_>>>()
    })
    .await
    .context("waiting for the load threads")??;

    let mut total = histogram()?;
    let (mut requests, mut non_2xx, mut errors) = (0, 0, 0);
    for client in finished.into_iter().flatten() {
        requests += client.requests;
        non_2xx += client.non_2xx;
        errors += client.errors;
        total.add(&client.latencies).context("merging latencies")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |micros: u64| micros as f64 / 1000.0;
    Ok(LoadFigures {
        concurrency,
        seconds,
        requests,
        rps: requests as f64 / seconds,
        non_2xx,
        errors,
        p50_ms: ms(total.value_at_quantile(0.50)),
        p99_ms: ms(total.value_at_quantile(0.99)),
        max_ms: ms(total.max()),
        mean_ms: total.mean() / 1000.0,
    })
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(address: SocketAddr) -> Result<Sender> {
    let stream = TcpStream::connect(address).await.with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the client drops its sender or the server closes.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn client(address: SocketAddr, number: u64, deadline: Instant, make: MakeRequest) -> Result<Client> {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + number * 7919 + u64::from(std::process::id()));
    let mut state = Client { requests: 0, non_2xx: 0, errors: 0, latencies: histogram()? };
    let mut sender: Option<Sender> = None;
    while Instant::now() < deadline {
        let mut current = match sender.take() {
            Some(current) => current,
            None => match connect(address).await {
                Ok(fresh) => fresh,
                Err(_) => {
                    state.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = make(&mut rng);
        let at = Instant::now();
        let exchange = async {
            current.ready().await?;
            let response = current.send_request(request).await?;
            let status = response.status();
            // The whole body is read, as a client must before it reuses the connection.
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(status)) => {
                let micros = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                state.latencies.saturating_record(micros);
                state.requests += 1;
                if !status.is_success() {
                    state.non_2xx += 1;
                }
                sender = Some(current);
            }
            // A broken or timed-out exchange: count it and reconnect.
            Ok(Err(_)) | Err(_) => state.errors += 1,
        }
    }
    Ok(state)
}

/// A request with the API key and an optional JSON body.
pub fn request(method: &str, path: &str, api_key: &str, json: Option<String>) -> Request<Full<Bytes>> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "127.0.0.1")
        .header("Authorization", format!("Bearer {api_key}"));
    let result = match json {
        Some(body) => builder.header("Content-Type", "application/json").body(Full::new(Bytes::from(body))),
        None => builder.body(Full::new(Bytes::new())),
    };
    // Only the bench builds these, from a method and a path it wrote itself.
    result.unwrap_or_else(|error| panic!("a malformed bench request {method} {path}: {error}"))
}

/// One measured run per concurrency of `settings` (each after its warm-up), with the CPU split
/// of each, checking that `server` survived; `label` names them in the progress lines.
pub async fn runs(
    settings: &crate::settings::Settings,
    server: &mut crate::server::Server,
    postmasters: &[u32],
    make: &MakeRequest,
    label: &str,
) -> anyhow::Result<Vec<(LoadFigures, crate::procfs::CpuShares)>> {
    let mut measured = Vec::new();
    for &concurrency in &settings.concurrencies {
        if !settings.warmup.is_zero() {
            run(server.address, concurrency, settings.warmup, Arc::clone(make)).await?;
        }
        let meter = crate::procfs::CpuMeter::start(Some(server.pid()), postmasters);
        let figures = run(server.address, concurrency, settings.duration, Arc::clone(make)).await?;
        let cpu = meter.shares();
        server.check_alive(&format!("the {label} runs"))?;
        eprintln!(
            "bench: {label} c={concurrency}: {:.0} req/s, p50 {}, p99 {}, non-2xx {}, errors {}; idle {}",
            figures.rps,
            crate::report::ms(figures.p50_ms),
            crate::report::ms(figures.p99_ms),
            figures.non_2xx,
            figures.errors,
            crate::report::pct(cpu.idle)
        );
        measured.push((figures, cpu));
    }
    Ok(measured)
}
