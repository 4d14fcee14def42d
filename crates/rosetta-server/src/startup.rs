//! Wiring: concrete adapters into the ports, the HTTP server, and its lifecycle.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use rosetta_application::{
    AlertEvaluator, AlertManager, ChannelManager, DestinationManager, PipelineManager, ReadinessChecker,
    SampleRecorder, SlotCleaner, SlotLocks, SourceManager, SourceOperator, SystemClock, WalMonitorReader,
};
use rosetta_domain::{AlertRule, PageLimit, PageRequest, RetryPolicy, Severity};
use rosetta_http_adapter::{Api, ApiServices, HttpSettings, RateLimit, ServicesFactory};
use rosetta_notify_adapter::HttpNotifier;
use rosetta_ports::alerts::{AlertStore, DeliveryStore, Notifier};
use rosetta_ports::jobs::{LeaseOwner, LeaseStore};
use rosetta_ports::outbound::{Clock, SecretCipher};
use rosetta_ports::sources::{CleanupTaskStore, SourceOperations};
use rosetta_ports::wal::{MonitorHeartbeat, SystemMetricsRepository, WalMetricsRepository};
use rosetta_postgres_adapter::{
    PostgresAlertStore, PostgresChannelRepository, PostgresCleanupTaskStore, PostgresDeliveryStore,
    PostgresDestinationRepository, PostgresLeaseStore, PostgresPipelineRepository, PostgresSourceRepository,
    PostgresStore, PostgresSystemMetricsRepository, PostgresWalMetricsRepository, StoreError, StoreSettings,
};
use rosetta_source_adapter::{PostgresSourceOperations, PostgresSourceProbe};
use rosetta_worker::{
    Cleaning, Delivering, Heartbeat, HostSampling, Retention, Runner, RunnerSettings, SamplingPorts, SamplingSettings,
    SysinfoHostProbe, WalSampling,
};
use tokio_util::sync::CancellationToken;

use crate::config::{AlertsConfig, Config, MonitorConfig};
use crate::supervisor::Supervisor;

/// Applies pending migrations to the metadata database.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    rosetta_postgres_adapter::run_migrations(database_url).await.context("migrating the metadata database")?;
    tracing::info!("metadata database migrated");
    Ok(())
}

/// The process-wide Prometheus recorder (the `metrics` facade allows one per process).
/// Gauges not updated for `stale_after` disappear, so a dropped slot or a source another process
/// now samples stops being reported instead of showing its last value forever.
fn metrics_handle(stale_after: Duration) -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        .context("configuring histogram buckets")?
        .idle_timeout(MetricKindMask::GAUGE, Some(stale_after))
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// How often histogram samples are folded into their buckets (see [`metrics_upkeep`]).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The exporter keeps each histogram sample until it is folded into the buckets, which its
/// upkeep does; with a recorder installed by hand (as here, to own the `/metrics` route) nobody
/// runs it but a scrape, and between scrapes (or with no scraper at all) memory grows with every
/// request.
async fn metrics_upkeep(handle: PrometheusHandle, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => handle.run_upkeep(),
        }
    }
}

/// A built server, bound and ready to run.
pub struct Application {
    server: actix_web::dev::Server,
    address: SocketAddr,
    pools: MetadataPools,
    worker: Option<Worker>,
    deliveries: Runner<Delivering>,
    cleanup: Runner<Cleaning>,
    cleanup_tasks: Arc<dyn CleanupTaskStore>,
    alert_store: Arc<dyn AlertStore>,
    metrics: PrometheusHandle,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("address", &self.address).finish_non_exhaustive()
    }
}

/// The background jobs of this process (when the WAL monitor is enabled), with their runners.
struct Worker {
    sampling: Runner<WalSampling>,
    retention: Runner<Retention>,
    host: HostSampling,
}

impl Application {
    /// Migrates (unless disabled), wires the adapters and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.auto_migrate {
            migrate(&config.database.url).await?;
        }
        let pools = MetadataPools::new(&config);
        // The worker's pool, also the fallback of an HTTP worker whose own pool cannot be built.
        let store = pools.open().context("building the metadata database pool")?;
        let keys = crate::secrets::cipher(&config)?;
        crate::secrets::report_at_start(store.clone(), Arc::clone(&keys));
        let cipher: Arc<dyn SecretCipher> = keys;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let owner = LeaseOwner::new(lease_owner());
        let worker = match &config.monitor {
            Some(monitor) => Some(worker(monitor, &config.alerts, &store, &cipher, &clock, &owner)?),
            None => None,
        };
        let deliveries = delivery_runner(&config.alerts, &store, &cipher, &clock, owner.clone())?;
        let operations: Arc<dyn SourceOperations> = Arc::new(PostgresSourceOperations::new(config.source_timeout));
        let cleanup = cleanup_runner(config.source_timeout, &store, &cipher, &clock, &operations, owner);
        let alert_store: Arc<dyn AlertStore> = Arc::new(PostgresAlertStore::new(store.clone()));

        let cleanup_tasks: Arc<dyn CleanupTaskStore> =
            Arc::new(PostgresCleanupTaskStore::new(store.clone(), Arc::clone(&cipher)));
        let wiring = ServiceWiring {
            pools: pools.clone(),
            fallback: store.clone(),
            cipher,
            clock,
            heartbeat: worker.as_ref().map(|worker| worker.sampling_health()),
            readiness_timeout: config.readiness_timeout,
            notify_timeout: config.alerts.notify_timeout,
            operations,
            slot_locks: SlotLocks::default(),
        };
        let services: ServicesFactory = Arc::new(move || wiring.worker_services());
        let http = &config.http;
        let settings = HttpSettings {
            api_prefix: http.api_prefix.clone(),
            api_keys: http.api_keys.clone(),
            body_limit_bytes: http.body_limit_bytes,
            body_timeout: http.body_timeout,
            head_timeout: http.head_timeout,
            max_connections: http.max_connections,
            rate_limit: http.rate_limit.map(|(per_second, burst)| RateLimit { per_second, burst }),
            workers: http.workers,
            shutdown_timeout: http.shutdown_timeout,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let listener = TcpListener::bind((http.host.as_str(), http.port))
            .with_context(|| format!("binding {}:{}", http.host, http.port))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let stale_after = config.monitor.as_ref().map_or(Duration::from_secs(900), |m| m.interval * 3);
        let metrics = metrics_handle(stale_after)?;
        let render = {
            let handle = metrics.clone();
            let gauges = worker.as_ref().map(|worker| worker.sampling.job().gauges());
            Arc::new(move || {
                let mut text = handle.render();
                if let Some(gauges) = &gauges {
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    gauges.render(&mut text);
                }
                text
            })
        };
        let api = Api::new(services, &settings, render).context("building the HTTP API")?;
        let console = rosetta_console::Console::new(&http.api_prefix).context("building the console")?;
        let mounts: Vec<rosetta_http_adapter::Mount> = vec![Arc::new(move |cfg| console.configure(cfg))];
        let server =
            rosetta_http_adapter::serve(listener, api, mounts, &settings).context("starting the HTTP server")?;
        tracing::info!(
            address = %address,
            profile = ?config.profile,
            auth = if http.api_keys.is_empty() { "off" } else { "api-keys" },
            "listening"
        );
        Ok(Self {
            server,
            address,
            pools,
            worker,
            deliveries,
            cleanup,
            cleanup_tasks,
            alert_store,
            metrics,
            shutdown_grace: http.shutdown_timeout,
        })
    }

    /// The bound address (useful with `PORT=0`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves (and runs the background jobs) until SIGTERM or Ctrl-C, or until a task fails; then
    /// stops accepting, lets in-flight requests and the jobs' items in flight finish (within the
    /// shutdown timeout), releases this process's leases and closes the pools.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut supervisor = Supervisor::new();
        let grace = self.shutdown_grace;
        let handle = self.server.handle();
        let server = self.server;
        let token = supervisor.token();
        supervisor.spawn("http", async move {
            let mut server = std::pin::pin!(server);
            tokio::select! {
                served = &mut server => served.context("HTTP server failed")?,
                () = token.cancelled() => {
                    // The server future must keep being polled to carry out the stop.
                    let ((), served) = tokio::join!(handle.stop(true), &mut server);
                    served.context("HTTP server failed")?;
                }
            }
            Ok(())
        });
        if let Some(worker) = self.worker {
            let token = supervisor.token();
            supervisor.spawn("wal-sampling", async move {
                worker.sampling.run(token, grace).await;
                Ok(())
            });
            let token = supervisor.token();
            supervisor.spawn("retention", async move {
                worker.retention.run(token, grace).await;
                Ok(())
            });
            let token = supervisor.token();
            supervisor.spawn("host-sampling", async move {
                worker.host.run(token).await;
                Ok(())
            });
        }
        let token = supervisor.token();
        let deliveries = self.deliveries;
        supervisor.spawn("notification-delivery", async move {
            deliveries.run(token, grace).await;
            Ok(())
        });
        let token = supervisor.token();
        let cleanup = self.cleanup;
        supervisor.spawn("source-cleanup", async move {
            cleanup.run(token, grace).await;
            Ok(())
        });
        let token = supervisor.token();
        let (alert_store, cleanup_tasks) = (self.alert_store, self.cleanup_tasks);
        supervisor.spawn("store-gauges", async move {
            store_gauges(alert_store, cleanup_tasks, token).await;
            Ok(())
        });
        let token = supervisor.token();
        let metrics = self.metrics;
        supervisor.spawn("metrics-upkeep", async move {
            metrics_upkeep(metrics, token).await;
            Ok(())
        });
        let outcome = supervisor.run_until(shutdown_signal(), grace).await;
        self.pools.close_all();
        outcome?;
        tracing::info!("stopped");
        Ok(())
    }
}

impl Worker {
    fn sampling_health(&self) -> Arc<dyn MonitorHeartbeat> {
        self.sampling.job().health()
    }
}

/// The background jobs over `store`: WAL sampling and retention on the leased-job runner, host
/// sampling on its own interval.
fn worker(
    monitor: &MonitorConfig,
    alerts: &AlertsConfig,
    store: &PostgresStore,
    cipher: &Arc<dyn SecretCipher>,
    clock: &Arc<dyn Clock>,
    owner: &LeaseOwner,
) -> anyhow::Result<Worker> {
    let owner = owner.clone();
    let leases: Arc<dyn LeaseStore> = Arc::new(PostgresLeaseStore::new(store.clone()));
    let wal: Arc<dyn WalMetricsRepository> = Arc::new(PostgresWalMetricsRepository::new(store.clone()));
    let system: Arc<dyn SystemMetricsRepository> = Arc::new(PostgresSystemMetricsRepository::new(store.clone()));
    let sampling = SamplingSettings { interval: monitor.interval, timeout: monitor.timeout };
    let heartbeat = Arc::new(Heartbeat::default());
    let job = Arc::new(WalSampling::new(
        SamplingPorts {
            sources: Arc::new(PostgresSourceRepository::new(store.clone(), Arc::clone(cipher))),
            probe: Arc::new(PostgresSourceProbe::new()),
            recording: Arc::new(recorder(&wal, alerts, store)),
            clock: Arc::clone(clock),
        },
        sampling,
        Arc::clone(&heartbeat),
    ));
    let sampling = Runner::with_heartbeat(
        job,
        Arc::clone(&leases),
        Arc::clone(clock),
        RunnerSettings {
            concurrency: monitor.concurrency,
            lease: sampling.lease(),
            poll: sampling.poll(),
            record_batch: RECORD_BATCH,
            owner: owner.clone(),
        },
        heartbeat,
    );
    let retention = Runner::new(
        Arc::new(Retention::new(
            Arc::clone(&wal),
            Arc::clone(&system),
            Arc::clone(&leases),
            Arc::clone(clock),
            monitor.retention,
            RETENTION_EVERY,
        )),
        leases,
        Arc::clone(clock),
        RunnerSettings { concurrency: 1, lease: RETENTION_LEASE, poll: RETENTION_EVERY, record_batch: 1, owner },
    );
    let host = HostSampling::new(
        Arc::new(SysinfoHostProbe::new().context("reading host metrics")?),
        system,
        Arc::clone(clock),
        monitor.system_interval,
    );
    tracing::info!(
        interval_s = monitor.interval.as_secs_f64(),
        timeout_s = monitor.timeout.as_secs_f64(),
        concurrency = monitor.concurrency,
        "WAL monitor configured"
    );
    Ok(Worker { sampling, retention, host })
}

/// The recording hook: samples, then (unless `ALERTS_ENABLED=false`) their alert evaluation.
fn recorder(wal: &Arc<dyn WalMetricsRepository>, alerts: &AlertsConfig, store: &PostgresStore) -> SampleRecorder {
    let recorder = SampleRecorder::new(Arc::clone(wal));
    if !alerts.evaluate {
        tracing::warn!("alert evaluation is off in this process (ALERTS_ENABLED=false)");
        return recorder;
    }
    recorder
        .with_alerts(AlertEvaluator::new(Arc::new(PostgresAlertStore::new(store.clone())), alerts.renotify.as_secs()))
}

/// The delivery of alert notifications, in every process (with or without the WAL monitor: a
/// source deleted or an alert acknowledged through the API also writes deliveries).
fn delivery_runner(
    alerts: &AlertsConfig,
    store: &PostgresStore,
    cipher: &Arc<dyn SecretCipher>,
    clock: &Arc<dyn Clock>,
    owner: LeaseOwner,
) -> anyhow::Result<Runner<Delivering>> {
    let deliveries: Arc<dyn DeliveryStore> = Arc::new(PostgresDeliveryStore::new(store.clone(), Arc::clone(cipher)));
    let notifier: Arc<dyn Notifier> = Arc::new(
        HttpNotifier::new(alerts.notify_timeout)
            .context("building the notification client")?
            .with_alertmanager_hold(alerts.renotify * 2),
    );
    let policy = RetryPolicy { max_age_seconds: alerts.notify_max_age.as_secs() };
    Ok(Runner::new(
        Arc::new(Delivering::new(deliveries, notifier, Arc::clone(clock), policy)),
        Arc::new(PostgresLeaseStore::new(store.clone())),
        Arc::clone(clock),
        RunnerSettings {
            concurrency: alerts.notify_concurrency,
            // An attempt takes at most the timeout; the lease outlives it with room to record.
            lease: alerts.notify_timeout * 2 + Duration::from_secs(5),
            poll: DELIVERY_POLL,
            record_batch: RECORD_BATCH,
            owner,
        },
    ))
}

/// The job that finishes slot drops deletes could not do: in every process, like deliveries.
fn cleanup_runner(
    source_timeout: Duration,
    store: &PostgresStore,
    cipher: &Arc<dyn SecretCipher>,
    clock: &Arc<dyn Clock>,
    operations: &Arc<dyn SourceOperations>,
    owner: LeaseOwner,
) -> Runner<Cleaning> {
    let leases: Arc<dyn LeaseStore> = Arc::new(PostgresLeaseStore::new(store.clone()));
    Runner::new(
        Arc::new(Cleaning::new(
            Arc::new(PostgresCleanupTaskStore::new(store.clone(), Arc::clone(cipher))),
            Arc::clone(operations),
            Arc::clone(&leases),
            Arc::clone(clock),
        )),
        leases,
        Arc::clone(clock),
        RunnerSettings {
            concurrency: CLEANUP_CONCURRENCY,
            // An attempt takes at most the source timeout; the lease outlives it with room to record.
            lease: source_timeout * 2 + Duration::from_secs(5),
            poll: CLEANUP_POLL,
            record_batch: RECORD_BATCH,
            owner,
        },
    )
}

/// Cleanup attempts in flight per process: slots are dropped rarely, and each attempt holds a
/// connection to a source.
const CLEANUP_CONCURRENCY: usize = 4;
/// How often every process looks for due cleanup tasks (a retry due in 1 s waits at most this
/// much more).
const CLEANUP_POLL: Duration = Duration::from_secs(1);

/// How often every process looks for due deliveries (a new one waits at most this long, and a
/// retry due in 1 s at most this much more).
const DELIVERY_POLL: Duration = Duration::from_millis(500);
/// How often the store-wide gauges (`rosetta_alerts_firing`, `rosetta_cleanup_tasks_*`) are
/// refreshed.
const ALERT_GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Keeps the gauges counted over the whole metadata database (the same in every process)
/// current, every [`ALERT_GAUGES_EVERY`]: alerts firing, and cleanup tasks still to do.
async fn store_gauges(alerts: Arc<dyn AlertStore>, tasks: Arc<dyn CleanupTaskStore>, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(ALERT_GAUGES_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        alert_gauges(alerts.as_ref()).await;
        cleanup_gauges(tasks.as_ref()).await;
    }
}

/// `rosetta_cleanup_tasks_pending` and `rosetta_cleanup_task_oldest_seconds` (0 without tasks):
/// a task that stays means a slot of a deleted pipeline is still on its source.
async fn cleanup_gauges(tasks: &dyn CleanupTaskStore) {
    // Listed oldest first: one page of one gives the count and the oldest.
    match tasks.list(PageRequest { skip: 0, limit: PageLimit::new(1).unwrap_or_default() }).await {
        Ok(page) => {
            let oldest = page
                .items
                .first()
                .map_or(0.0, |task| (chrono::Utc::now() - task.created_at).num_milliseconds().max(0) as f64 / 1_000.0);
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("rosetta_cleanup_tasks_pending").set(page.total as f64);
            metrics::gauge!("rosetta_cleanup_task_oldest_seconds").set(oldest);
        }
        Err(error) => tracing::warn!(error = %error, "counting cleanup tasks failed"),
    }
}

/// `rosetta_alerts_firing{rule,severity}`: every rule and severity, 0 when none fire.
async fn alert_gauges(store: &dyn AlertStore) {
    match store.firing_counts().await {
        Ok(counts) => {
            for rule in AlertRule::ALL {
                for severity in Severity::ALL {
                    let firing =
                        counts.iter().find(|(r, s, _)| *r == rule && *s == severity).map_or(0, |(_, _, count)| *count);
                    #[allow(clippy::cast_precision_loss)]
                    metrics::gauge!("rosetta_alerts_firing", "rule" => rule.as_str(), "severity" => severity.as_str())
                        .set(firing as f64);
                }
            }
        }
        Err(error) => tracing::warn!(error = %error, "counting firing alerts failed"),
    }
}

/// WAL samples recorded per transaction, at most.
const RECORD_BATCH: usize = 500;
/// How often retention runs (in one process at a time), and how long it may hold its lease.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
const RETENTION_LEASE: Duration = Duration::from_secs(300);

/// The metadata database pools of the process: one per HTTP worker, plus one for the background
/// jobs (when they run; the same pool stands in for an HTTP worker whose own pool cannot be
/// built).
///
/// A pool's connections run their I/O on the thread that opened them; a worker with its own pool
/// talks to the database without waking another thread, which on a busy machine costs more than
/// the query. `DB_POOL_SIZE + DB_MAX_OVERFLOW` is shared evenly between the pools (each has at
/// least one connection).
#[derive(Clone)]
struct MetadataPools {
    settings: StoreSettings,
    opened: Arc<Mutex<Vec<PostgresStore>>>,
}

impl MetadataPools {
    fn new(config: &Config) -> Self {
        // Every task that talks to the database is counted: each HTTP worker, and the jobs.
        let pools = config.http.workers.max(1) + usize::from(config.monitor.is_some());
        Self {
            settings: StoreSettings {
                url: config.database.url.clone(),
                max_size: (config.database.max_connections / pools).max(1),
                connection_timeout: config.database.pool_timeout,
            },
            opened: Arc::default(),
        }
    }

    /// A new pool (connections open on demand), remembered to be closed at shutdown.
    fn open(&self) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::new(self.settings.clone())?;
        self.opened.lock().unwrap_or_else(PoisonError::into_inner).push(store.clone());
        Ok(store)
    }

    /// Closes every pool opened so far: idle connections now, busy ones when returned.
    fn close_all(&self) {
        for store in self.opened.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            store.close();
        }
    }
}

/// What the services of an HTTP worker are built from.
struct ServiceWiring {
    pools: MetadataPools,
    /// Used by a worker when its own pool cannot be built (the same settings already built one,
    /// so this is not expected).
    fallback: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
    clock: Arc<dyn Clock>,
    heartbeat: Option<Arc<dyn MonitorHeartbeat>>,
    readiness_timeout: Duration,
    notify_timeout: Duration,
    operations: Arc<dyn SourceOperations>,
    /// One set for every HTTP worker of the process.
    slot_locks: SlotLocks,
}

impl ServiceWiring {
    /// This worker's sender of test notifications (its connections live on the worker's runtime).
    fn notifier(&self) -> Arc<dyn Notifier> {
        match HttpNotifier::new(self.notify_timeout) {
            Ok(notifier) => Arc::new(notifier),
            Err(error) => {
                tracing::error!(error = %error, "cannot build a worker's notification client");
                Arc::new(Unavailable)
            }
        }
    }

    /// The services of one worker, over a pool of its own.
    fn worker_services(&self) -> ApiServices {
        let store = self.pools.open().unwrap_or_else(|error| {
            tracing::error!(error = %error, "cannot build a worker's database pool; sharing the monitor's");
            self.fallback.clone()
        });
        let cipher = &self.cipher;
        let clock = &self.clock;
        let sources = Arc::new(PostgresSourceRepository::new(store.clone(), Arc::clone(cipher)));
        let pipelines = Arc::new(PostgresPipelineRepository::new(store.clone(), Arc::clone(cipher)));
        let tasks = Arc::new(PostgresCleanupTaskStore::new(store.clone(), Arc::clone(cipher)));
        let leases: Arc<dyn LeaseStore> = Arc::new(PostgresLeaseStore::new(store.clone()));
        let cleaner =
            SlotCleaner::new(Arc::clone(&self.operations), tasks.clone(), Arc::clone(&leases), Arc::clone(clock));
        let operator = SourceOperator::new(
            sources.clone(),
            pipelines.clone(),
            Arc::clone(&self.operations),
            tasks,
            leases,
            self.slot_locks.clone(),
            Arc::clone(clock),
        );
        ApiServices {
            sources: Arc::new(SourceManager::new(sources, cleaner.clone(), Arc::clone(clock))),
            destinations: Arc::new(DestinationManager::new(
                Arc::new(PostgresDestinationRepository::new(store.clone(), Arc::clone(cipher))),
                cleaner.clone(),
                Arc::clone(clock),
            )),
            pipelines: Arc::new(PipelineManager::new(pipelines.clone(), operator.clone(), cleaner, Arc::clone(clock))),
            wal_monitor: Arc::new(WalMonitorReader::new(
                Arc::new(PostgresWalMetricsRepository::new(store.clone())),
                Arc::new(PostgresSystemMetricsRepository::new(store.clone())),
                pipelines,
                Arc::new(PostgresAlertStore::new(store.clone())),
                Arc::clone(clock),
            )),
            source_operations: Arc::new(operator.clone()),
            slots: Arc::new(operator.clone()),
            cleanup_tasks: Arc::new(operator),
            alerts: Arc::new(AlertManager::new(Arc::new(PostgresAlertStore::new(store.clone())), Arc::clone(clock))),
            channels: Arc::new(ChannelManager::new(
                Arc::new(PostgresChannelRepository::new(store.clone(), Arc::clone(cipher))),
                Arc::new(PostgresDeliveryStore::new(store.clone(), Arc::clone(cipher))),
                self.notifier(),
                Arc::clone(clock),
            )),
            health: Arc::new(ReadinessChecker::new(
                Arc::new(store),
                self.readiness_timeout,
                self.heartbeat.clone(),
                Arc::clone(clock),
            )),
        }
    }
}

/// A notifier that cannot send (its HTTP client could not be built); every send says so.
#[derive(Debug)]
struct Unavailable;

#[async_trait::async_trait]
impl Notifier for Unavailable {
    async fn send(
        &self,
        _: &rosetta_domain::ChannelTarget,
        _: &rosetta_ports::alerts::Message,
        _: rosetta_domain::Timestamp,
    ) -> rosetta_domain::SendResult {
        rosetta_domain::SendResult {
            status_code: None,
            error: Some("this process cannot send notifications (see its log)".into()),
            duration_ms: 0,
        }
    }
}

/// A lease owner unique to this process, readable in the database: `host:pid:random`.
fn lease_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rosetta".into());
    format!("{host}:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
