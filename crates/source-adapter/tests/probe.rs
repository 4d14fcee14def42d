//! `PostgresSourceProbe` against real PostgreSQL: throwaway clusters started by each test.
//!
//! The harness works as the superuser (slots, WAL generation, roles); the probe logs in as a
//! plain role (`walmon`) or a `pg_monitor` member (`walmon_monitor`), as in production. Every
//! slot a test creates is dropped: explicitly on the success path, by [`SlotGuard`] otherwise.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rosetta_domain::{
    Lsn, PgDatabase, PgHost, PgPort, PgSslMode, PgUsername, Secret, SlotSample, SlotType, SourceConnection, SourceId,
    WalMonitorStatus, WalSample, WalStatus,
};
use rosetta_ports::wal::{ProbeError, SourceProbe};
use rosetta_source_adapter::PostgresSourceProbe;
use rosetta_test_support::{ClusterOptions, PgCluster, postgres_command};
use tokio_postgres::{Client, NoTls};

const TIMEOUT: Duration = Duration::from_secs(5);
const PLAIN_ROLE: &str = "walmon";
const PLAIN_PASSWORD: &str = "walmon-pw-5f1c";
const MONITOR_ROLE: &str = "walmon_monitor";
const MONITOR_PASSWORD: &str = "walmon-monitor-pw-8a2e";
/// About 17 MB of WAL per 100 000 rows (WAL-NOTES §2: 169.8 B/row).
const ROWS: i64 = 100_000;
const MIN_GROWTH: u64 = 15_000_000;

// ---------------------------------------------------------------------------------------------
// Harness helpers

async fn start_cluster(options: ClusterOptions) -> PgCluster {
    tokio::task::spawn_blocking(move || PgCluster::start(options)).await.unwrap().unwrap()
}

async fn connect(url: &str) -> Client {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A superuser connection to `postgres`, with the two monitor roles created.
///
/// Its commits are synchronous: the clusters commit asynchronously, and the WAL of an
/// unflushed commit is neither behind `pg_current_wal_lsn()` (the write position) nor
/// reachable by slot advancing yet, which would make WAL arithmetic in tests racy.
async fn admin(cluster: &PgCluster) -> Client {
    let client = connect(&cluster.url("postgres")).await;
    client
        .batch_execute(&format!(
            "SET synchronous_commit = on; \
             CREATE ROLE {PLAIN_ROLE} LOGIN PASSWORD '{PLAIN_PASSWORD}'; \
             CREATE ROLE {MONITOR_ROLE} LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor; \
             CREATE TABLE filler (id bigint, pad text)"
        ))
        .await
        .unwrap();
    client
}

fn source_at(host: &str, port: u16, id: i64, user: &str, password: Option<&str>) -> SourceConnection {
    SourceConnection {
        source_id: SourceId::new(id),
        pg_host: PgHost::parse(host).unwrap(),
        pg_port: PgPort::new(i64::from(port)).unwrap(),
        pg_database: PgDatabase::parse("postgres").unwrap(),
        pg_username: PgUsername::parse(user).unwrap(),
        pg_password: password.map(|p| Secret::parse(p).unwrap()),
        pg_sslmode: PgSslMode::default(),
        pg_sslrootcert: None,
    }
}

/// The source as the plain (no `pg_monitor`) role.
fn plain_source(cluster: &PgCluster, id: i64) -> SourceConnection {
    source_at(cluster.host(), cluster.port(), id, PLAIN_ROLE, Some(PLAIN_PASSWORD))
}

/// The source as the `pg_monitor` role.
fn monitor_source(cluster: &PgCluster, id: i64) -> SourceConnection {
    source_at(cluster.host(), cluster.port(), id, MONITOR_ROLE, Some(MONITOR_PASSWORD))
}

async fn generate_wal(admin: &Client, rows: i64) {
    admin
        .execute("INSERT INTO filler SELECT g, repeat('x', 100) FROM generate_series(1, $1::int8) g", &[&rows])
        .await
        .unwrap();
}

fn slot<'a>(sample: &'a WalSample, name: &str) -> &'a SlotSample {
    sample.slots.iter().find(|s| s.slot_name == name).unwrap_or_else(|| panic!("slot {name} in {sample:#?}"))
}

fn retained(sample: &WalSample, name: &str) -> u64 {
    slot(sample, name).retained_bytes(sample.current_lsn).unwrap()
}

async fn current_lsn(admin: &Client) -> Lsn {
    let bytes: i64 = admin.query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[]).await.unwrap().get(0);
    Lsn::from_bytes(u64::try_from(bytes).unwrap())
}

/// Pids of the probe's backends, as the superuser sees them.
async fn probe_backends(admin: &Client) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&rosetta_source_adapter::probe::APPLICATION_NAME],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Waits (up to 5 s) until the probe has exactly `count` backends; returns their pids.
async fn wait_for_backends(admin: &Client, count: usize) -> Vec<i32> {
    let mut backends = Vec::new();
    for _ in 0..50 {
        backends = probe_backends(admin).await;
        if backends.len() == count {
            return backends;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {count} probe backends, found {backends:?}");
}

/// Drops the slots it knows about when dropped (a failing test included), bounded in time.
/// Declare it after the cluster so it runs before the cluster is stopped.
struct SlotGuard {
    url: String,
    names: Vec<String>,
}

impl SlotGuard {
    fn new(cluster: &PgCluster) -> Self {
        Self { url: cluster.url("postgres"), names: Vec::new() }
    }

    async fn create(&mut self, admin: &Client, name: &str, sql: &str) {
        self.names.push(name.to_owned());
        admin.batch_execute(sql).await.unwrap_or_else(|e| panic!("creating slot {name}: {e}"));
    }

    async fn drop_slot(&mut self, admin: &Client, name: &str) {
        admin.execute("SELECT pg_drop_replication_slot($1)", &[&name]).await.unwrap();
        self.names.retain(|n| n != name);
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        if names.is_empty() {
            return;
        }
        let url = self.url.clone();
        // A fresh thread and runtime: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let work = async {
                    let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await else { return };
                    tokio::spawn(connection);
                    for name in names {
                        let _ = client
                            .execute(
                                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                                 WHERE slot_name = $1",
                                &[&name],
                            )
                            .await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
            });
        })
        .join();
    }
}

/// Sends a signal to processes with `kill(1)`.
fn signal(pids: &[i32], name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(i32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pids:?}");
}

/// The postmaster and its children (backends, checkpointer, ...).
fn cluster_processes(postmaster: i32) -> Vec<i32> {
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the parenthesised command name: state, ppid, ...
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// Processes stopped with SIGSTOP; resumed with SIGCONT when dropped, so a failing test never
/// leaves a frozen server behind.
struct Frozen(Vec<i32>);

impl Frozen {
    fn freeze(pids: Vec<i32>) -> Self {
        signal(&pids, "STOP");
        Self(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").args(self.0.iter().map(i32::to_string)).status();
    }
}

// ---------------------------------------------------------------------------------------------
// Retained WAL

#[tokio::test(flavor = "multi_thread")]
async fn retained_wal_grows_behind_a_physical_slot_and_drops_when_it_advances() {
    let started = Instant::now();
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let mut slots = SlotGuard::new(&cluster);
    let probe = PostgresSourceProbe::new();
    let source = plain_source(&cluster, 1);

    slots.create(&admin, "t_phys", "SELECT pg_create_physical_replication_slot('t_phys', true)").await;
    let before = probe.sample(&source, TIMEOUT).await.unwrap();
    assert!(!before.in_recovery);
    let phys = slot(&before, "t_phys");
    assert_eq!(phys.slot_type, SlotType::Physical);
    assert!(!phys.active && !phys.temporary);
    assert!(phys.restart_lsn.is_some(), "immediately_reserve reserves at once");
    assert_eq!(phys.wal_status, Some(WalStatus::Reserved));
    assert!(phys.safe_wal_size_bytes.is_none(), "no max_slot_wal_keep_size: no limit");
    assert_eq!(phys.confirmed_flush_lsn, None);
    assert_eq!(phys.confirmed_lag_bytes(before.current_lsn), None, "lag is for logical slots");
    assert_eq!(before.wal_dir_bytes, None, "the plain role may not read pg_wal");

    generate_wal(&admin, ROWS).await;
    let after = probe.sample(&source, TIMEOUT).await.unwrap();
    assert!(after.current_lsn > before.current_lsn);
    let growth = retained(&after, "t_phys") - retained(&before, "t_phys");
    assert!(growth >= MIN_GROWTH, "retained grew by {growth} bytes");
    assert_eq!(after.current_lsn.bytes_since(before.current_lsn), Some(growth), "nothing else moved the slot");
    assert_eq!(after.size_bytes(), Some(retained(&after, "t_phys")));
    assert_eq!(after.status(), WalMonitorStatus::Idle, "an unconsumed permanent slot");

    admin.execute("SELECT pg_replication_slot_advance('t_phys', pg_current_wal_lsn())", &[]).await.unwrap();
    let advanced = probe.sample(&source, TIMEOUT).await.unwrap();
    let left = retained(&advanced, "t_phys");
    assert!(left < 1_000_000, "retained after advancing: {left}");

    slots.drop_slot(&admin, "t_phys").await;
    let dropped = probe.sample(&source, TIMEOUT).await.unwrap();
    assert!(dropped.slots.is_empty(), "{dropped:#?}");
    assert_eq!(dropped.status(), WalMonitorStatus::Active);
    assert_eq!(probe.open_connections(), 1);
    eprintln!("physical slot test: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn retained_wal_grows_behind_logical_slots_and_drops_after_they_are_consumed() {
    let started = Instant::now();
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let mut slots = SlotGuard::new(&cluster);
    let probe = PostgresSourceProbe::new();
    let source = monitor_source(&cluster, 1);

    slots.create(&admin, "t_td", "SELECT pg_create_logical_replication_slot('t_td', 'test_decoding')").await;
    slots.create(&admin, "t_pgout", "SELECT pg_create_logical_replication_slot('t_pgout', 'pgoutput')").await;
    // A logical slot of another database belongs to another source: not reported here.
    admin.batch_execute("CREATE DATABASE other").await.unwrap();
    {
        let other = connect(&cluster.url("other")).await;
        slots.create(&other, "t_other_db", "SELECT pg_create_logical_replication_slot('t_other_db', 'pgoutput')").await;
    }

    let before = probe.sample(&source, TIMEOUT).await.unwrap();
    let names: Vec<&str> = before.slots.iter().map(|s| s.slot_name.as_str()).collect();
    assert_eq!(names, ["t_pgout", "t_td"], "sorted, and only this database's logical slots");
    for name in ["t_td", "t_pgout"] {
        let s = slot(&before, name);
        assert_eq!(s.slot_type, SlotType::Logical);
        assert!(s.confirmed_flush_lsn.is_some());
        assert_eq!(s.conflicting, None, "PostgreSQL 15 has no `conflicting` column");
        assert_eq!(s.inactive_since, None, "PostgreSQL 15 has no `inactive_since` column");
    }

    generate_wal(&admin, ROWS).await;
    let after = probe.sample(&source, TIMEOUT).await.unwrap();
    assert_eq!(after.status(), WalMonitorStatus::Idle);
    for name in ["t_td", "t_pgout"] {
        let growth = retained(&after, name) - retained(&before, name);
        assert!(growth >= MIN_GROWTH, "{name}: retained grew by {growth}");
        let lag = slot(&after, name).confirmed_lag_bytes(after.current_lsn).unwrap();
        assert!(lag >= MIN_GROWTH, "{name}: confirmed lag {lag}");
    }
    let peak = retained(&after, "t_td").max(retained(&after, "t_pgout"));
    assert_eq!(after.size_bytes(), Some(peak));

    // Consume / advance. `restart_lsn` only follows on a later decoding pass, after a
    // running-xacts record (WAL-NOTES §1d.1), and decoding stops at the flushed WAL (the
    // clusters commit asynchronously), so checkpoint and repeat until both have caught up.
    let mut consumed = None;
    for attempt in 1..=10 {
        admin.query("SELECT count(*) FROM pg_logical_slot_get_changes('t_td', NULL, NULL)", &[]).await.unwrap();
        admin.execute("SELECT pg_replication_slot_advance('t_pgout', pg_current_wal_lsn())", &[]).await.unwrap();
        let sample = probe.sample(&source, TIMEOUT).await.unwrap();
        let caught_up = ["t_td", "t_pgout"].iter().all(|name| {
            retained(&sample, name) < 2_000_000
                && slot(&sample, name).confirmed_lag_bytes(sample.current_lsn).unwrap() < 1_000_000
        });
        if caught_up {
            eprintln!("restart_lsn and confirmed_flush_lsn caught up after {attempt} pass(es)");
            consumed = Some(sample);
            break;
        }
        admin.batch_execute("CHECKPOINT").await.unwrap();
    }
    let consumed = consumed.expect("retained WAL drops once the slots are consumed");
    assert!(consumed.size_bytes().unwrap() < peak);

    slots.drop_slot(&admin, "t_td").await;
    let one_left = probe.sample(&source, TIMEOUT).await.unwrap();
    let names: Vec<&str> = one_left.slots.iter().map(|s| s.slot_name.as_str()).collect();
    assert_eq!(names, ["t_pgout"]);
    slots.drop_slot(&admin, "t_pgout").await;
    slots.drop_slot(&admin, "t_other_db").await;
    assert!(probe.sample(&source, TIMEOUT).await.unwrap().slots.is_empty());
    eprintln!("logical slots test: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_slot_makes_the_source_idle_and_a_temporary_one_does_not() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let mut slots = SlotGuard::new(&cluster);
    let probe = PostgresSourceProbe::new();
    let source = plain_source(&cluster, 1);

    let empty = probe.sample(&source, TIMEOUT).await.unwrap();
    assert!(empty.slots.is_empty());
    assert_eq!(empty.status(), WalMonitorStatus::Active);

    // A temporary slot belongs to (and is active in) the session that created it.
    let holder = connect(&cluster.url("postgres")).await;
    holder.batch_execute("SELECT pg_create_logical_replication_slot('t_temp', 'test_decoding', true)").await.unwrap();
    let with_temporary = probe.sample(&source, TIMEOUT).await.unwrap();
    let temporary = slot(&with_temporary, "t_temp");
    assert!(temporary.temporary && temporary.active);
    assert_eq!(with_temporary.status(), WalMonitorStatus::Active);

    slots.create(&admin, "t_idle", "SELECT pg_create_logical_replication_slot('t_idle', 'pgoutput')").await;
    let idle = probe.sample(&source, TIMEOUT).await.unwrap();
    assert!(!slot(&idle, "t_idle").active);
    assert_eq!(idle.status(), WalMonitorStatus::Idle);

    drop(holder); // ends the session: the temporary slot goes with it
    slots.drop_slot(&admin, "t_idle").await;
    let mut gone = false;
    for _ in 0..50 {
        if probe.sample(&source, TIMEOUT).await.unwrap().slots.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the temporary slot disappears with its session");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_slot_is_reported_lost_never_as_zero_retained() {
    let cluster = start_cluster(ClusterOptions::default().setting("max_slot_wal_keep_size", "32MB")).await;
    let admin = admin(&cluster).await;
    let mut slots = SlotGuard::new(&cluster);
    let probe = PostgresSourceProbe::new();
    let source = plain_source(&cluster, 1);

    slots.create(&admin, "t_lost", "SELECT pg_create_physical_replication_slot('t_lost', true)").await;
    slots.create(&admin, "t_noreserve", "SELECT pg_create_physical_replication_slot('t_noreserve')").await;

    let fresh = probe.sample(&source, TIMEOUT).await.unwrap();
    let lost = slot(&fresh, "t_lost");
    assert_eq!(lost.wal_status, Some(WalStatus::Reserved));
    assert!(lost.safe_wal_size_bytes.unwrap() > 0, "{lost:?}");
    // Never reserved: no restart_lsn, no status, and PostgreSQL's bogus negative
    // safe_wal_size is masked (WAL-NOTES §1d.3).
    let never = slot(&fresh, "t_noreserve");
    assert_eq!((never.restart_lsn, never.wal_status, never.safe_wal_size_bytes), (None, None, None));
    assert_eq!(never.retained_bytes(fresh.current_lsn), None);

    // Push the slot past max_slot_wal_keep_size: each switch after a little WAL moves the
    // position to the next 16 MB segment.
    for _ in 0..6 {
        generate_wal(&admin, 100).await;
        admin.batch_execute("SELECT pg_switch_wal()").await.unwrap();
    }
    let unreserved = probe.sample(&source, TIMEOUT).await.unwrap();
    let at_risk = slot(&unreserved, "t_lost");
    assert_eq!(at_risk.wal_status, Some(WalStatus::Unreserved), "{at_risk:?}");
    assert!(at_risk.safe_wal_size_bytes.unwrap() < 0, "negative while unreserved: {at_risk:?}");
    assert!(at_risk.retained_bytes(unreserved.current_lsn).unwrap() > 64 * 1024 * 1024);

    // The checkpoint removes the WAL and invalidates the slot.
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let after = probe.sample(&source, TIMEOUT).await.unwrap();
    let gone = slot(&after, "t_lost");
    assert_eq!(gone.wal_status, Some(WalStatus::Lost), "{gone:?}");
    assert!(gone.is_lost());
    assert_eq!(gone.restart_lsn, None);
    assert_eq!(gone.retained_bytes(after.current_lsn), None, "lost is never 0 bytes retained");
    assert_eq!(gone.safe_wal_size_bytes, None);

    slots.drop_slot(&admin, "t_lost").await;
    slots.drop_slot(&admin, "t_noreserve").await;
}

// ---------------------------------------------------------------------------------------------
// Privileges

#[tokio::test(flavor = "multi_thread")]
async fn wal_on_disk_needs_pg_monitor_and_its_absence_is_not_an_error() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let probe = PostgresSourceProbe::new();

    let plain = probe.sample(&plain_source(&cluster, 1), TIMEOUT).await.unwrap();
    assert_eq!(plain.wal_dir_bytes, None);
    let monitor = probe.sample(&monitor_source(&cluster, 2), TIMEOUT).await.unwrap();
    let bytes = monitor.wal_dir_bytes.unwrap();
    assert!(bytes >= 16 * 1024 * 1024, "at least one segment: {bytes}");
    assert_eq!(monitor.size_bytes(), Some(bytes), "no slot: the size is the WAL on disk");
    let superuser = source_at(cluster.host(), cluster.port(), 3, "postgres", None);
    assert!(probe.sample(&superuser, TIMEOUT).await.unwrap().wal_dir_bytes.is_some());
    assert_eq!(probe.open_connections(), 3, "one connection per login");

    // A privilege revoked while connected: the statement prepared for it now fails; the probe
    // reconnects and answers without WAL on disk instead of failing the source.
    admin.batch_execute(&format!("REVOKE pg_monitor FROM {MONITOR_ROLE}")).await.unwrap();
    let revoked = probe.sample(&monitor_source(&cluster, 2), TIMEOUT).await.unwrap();
    assert_eq!(revoked.wal_dir_bytes, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_never_contain_the_password() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let probe = PostgresSourceProbe::new();

    // A closed port: a port we bound and released.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let password = "hunter2-very-secret";
    let error = probe.sample(&source_at("127.0.0.1", closed_port, 1, PLAIN_ROLE, Some(password)), TIMEOUT).await;
    let Err(ProbeError::Connect(text)) = error else { panic!("{error:?}") };
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains(password));
    // The scrubbing safety net: a password that happens to occur in the message is removed.
    let error = probe.sample(&source_at("127.0.0.1", closed_port, 1, PLAIN_ROLE, Some("refused")), TIMEOUT).await;
    let Err(ProbeError::Connect(text)) = error else { panic!("{error:?}") };
    assert!(!text.contains("refused"), "{text}");

    // Password authentication for one role (the clusters trust everyone else).
    admin.batch_execute("CREATE ROLE walmon_scram LOGIN PASSWORD 'right-password-7c3d'").await.unwrap();
    let hba = cluster.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all walmon_scram 127.0.0.1/32 scram-sha-256\n{rules}")).unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let right = source_at(cluster.host(), cluster.port(), 2, "walmon_scram", Some("right-password-7c3d"));
    probe.sample(&right, TIMEOUT).await.unwrap();
    // A wrong password must not ride on the connection the right one opened.
    let wrong_password = "wrong-password-0b9e";
    let wrong = source_at(cluster.host(), cluster.port(), 3, "walmon_scram", Some(wrong_password));
    let error = probe.sample(&wrong, TIMEOUT).await;
    let Err(ProbeError::Connect(text)) = error else { panic!("{error:?}") };
    assert!(text.contains("28P01") && text.contains("password authentication failed"), "{text}");
    assert!(!text.contains(wrong_password), "{text}");
    assert!(!text.contains("right-password"), "{text}");
    eprintln!("authentication error text: {text}");
}

// ---------------------------------------------------------------------------------------------
// Standby

/// A streaming standby of a [`PgCluster`], made with `pg_basebackup`. Its directory follows
/// the harness layout (`rosetta-pg-*` with an owner pid and `data/`), so the harness reaps it
/// if this process dies before `Drop`.
struct Standby {
    root: PathBuf,
    data: PathBuf,
    bin_dir: PathBuf,
    port: u16,
}

impl Standby {
    fn create(primary: &PgCluster, slot: &str) -> Standby {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let root = PathBuf::from(format!("/tmp/rosetta-pg-standby-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("owner.pid"), std::process::id().to_string()).unwrap();
        // Owned like the primary's files (the postgres user when we are root).
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(primary.data_dir()).unwrap());
        let group = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(primary.data_dir()).unwrap());
        std::os::unix::fs::chown(&root, Some(owner), Some(group)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let standby = Standby { data: root.join("data"), root, bin_dir: primary.bin_dir().to_path_buf(), port };

        let port_text = primary.port().to_string();
        run(postgres_command(&standby.bin_dir.join("pg_basebackup"))
            .args(["-h", primary.host(), "-p", &port_text, "-U", "postgres", "-D"])
            .arg(&standby.data)
            .args(["-R", "-X", "stream", "-S", slot, "-c", "fast", "--no-sync"]));
        // Hot standby needs these at least as high as on the primary.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c max_wal_senders=20 \
             -c max_replication_slots=20 -c fsync=off",
            standby.port,
            standby.root.display()
        );
        run(postgres_command(&standby.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&standby.data)
            .arg("-l")
            .arg(standby.root.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
        standby
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = postgres_command(&self.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "15", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_is_sampled_without_error() {
    let started = Instant::now();
    let primary = Arc::new(start_cluster(ClusterOptions::default()).await);
    let admin = admin(&primary).await;
    let mut slots = SlotGuard::new(&primary);
    slots.create(&admin, "t_standby", "SELECT pg_create_physical_replication_slot('t_standby', true)").await;
    // Declared after the slot guard: on a failure the standby stops first, releasing its slot.
    let standby = {
        let primary = Arc::clone(&primary);
        tokio::task::spawn_blocking(move || Standby::create(&primary, "t_standby")).await.unwrap()
    };
    eprintln!("standby ready after {:?}", started.elapsed());
    let probe = PostgresSourceProbe::new();

    // The roles were replicated by the base backup.
    let on_standby = source_at("127.0.0.1", standby.port, 1, MONITOR_ROLE, Some(MONITOR_PASSWORD));
    let sample = probe.sample(&on_standby, TIMEOUT).await.unwrap();
    assert!(sample.in_recovery);
    assert!(sample.current_lsn > Lsn::from_bytes(0));
    assert!(sample.wal_dir_bytes.unwrap() > 0, "pg_ls_waldir works on a standby");
    let plain_on_standby = source_at("127.0.0.1", standby.port, 2, PLAIN_ROLE, Some(PLAIN_PASSWORD));
    assert!(probe.sample(&plain_on_standby, TIMEOUT).await.unwrap().in_recovery);

    // The standby's position follows the primary's WAL.
    generate_wal(&admin, 10_000).await;
    let target = current_lsn(&admin).await;
    let mut caught_up = false;
    for _ in 0..100 {
        if probe.sample(&on_standby, TIMEOUT).await.unwrap().current_lsn >= target {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "standby received up to {target}");

    // On the primary, the standby's slot is active.
    let primary_sample = probe.sample(&plain_source(&primary, 3), TIMEOUT).await.unwrap();
    assert!(!primary_sample.in_recovery);
    assert!(slot(&primary_sample, "t_standby").active, "{primary_sample:#?}");
    assert_eq!(primary_sample.status(), WalMonitorStatus::Active);

    // Stop the standby before dropping its slot (an active slot cannot be dropped).
    tokio::task::spawn_blocking(move || drop(standby)).await.unwrap();
    let mut dropped = false;
    for _ in 0..50 {
        if admin.execute("SELECT pg_drop_replication_slot('t_standby')", &[]).await.is_ok() {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the standby's slot is released once it stops");
    slots.names.clear();
    drop(slots);
    eprintln!("standby test: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Failures and recovery

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_source_fails_fast_and_the_connection_comes_back_after_a_restart() {
    let cluster = Arc::new(start_cluster(ClusterOptions::default()).await);
    let admin = admin(&cluster).await;
    drop(admin);
    let probe = PostgresSourceProbe::new();
    let source = plain_source(&cluster, 1);
    probe.sample(&source, TIMEOUT).await.unwrap();
    assert_eq!(probe.open_connections(), 1);

    let stopping = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop()).await.unwrap().unwrap();
    let started = Instant::now();
    let error = probe.sample(&source, TIMEOUT).await;
    let elapsed = started.elapsed();
    eprintln!("stopped source: {error:?} after {elapsed:?}");
    assert!(matches!(error, Err(ProbeError::Connect(_))), "{error:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(probe.open_connections(), 0);

    let starting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || starting.start_again()).await.unwrap().unwrap();
    let sample = probe.sample(&source, TIMEOUT).await.unwrap();
    assert!(!sample.in_recovery);
    assert_eq!(probe.open_connections(), 1, "re-established by the same probe");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_between_ticks_is_not_reported_as_an_error() {
    // The cached connection dies with the server; the next tick notices and reconnects
    // within the same call.
    let cluster = Arc::new(start_cluster(ClusterOptions::default()).await);
    let admin = admin(&cluster).await;
    drop(admin);
    let probe = PostgresSourceProbe::new();
    let source = plain_source(&cluster, 1);
    probe.sample(&source, TIMEOUT).await.unwrap();
    let restarting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || {
        restarting.stop()?;
        restarting.start_again()
    })
    .await
    .unwrap()
    .unwrap();
    probe.sample(&source, TIMEOUT).await.unwrap();
    assert_eq!(probe.open_connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_source_is_bounded_by_the_timeout() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let timeout = Duration::from_secs(1);
    let postmaster = cluster.postmaster_pid().unwrap();

    // Cold: the server accepts the TCP connection (the kernel does) but never answers the
    // startup packet; connect_timeout alone would not fire.
    {
        let probe = PostgresSourceProbe::new();
        let _frozen = Frozen::freeze(vec![postmaster]);
        let started = Instant::now();
        let error = probe.sample(&plain_source(&cluster, 1), timeout).await;
        let elapsed = started.elapsed();
        eprintln!("frozen postmaster, cold probe: {error:?} after {elapsed:?}");
        assert_eq!(error, Err(ProbeError::Timeout(timeout)));
        assert!(elapsed < timeout + Duration::from_secs(1), "{elapsed:?}");
        assert_eq!(probe.open_connections(), 0);
    }

    // Warm: the cached connection's backend freezes too (the whole server hangs).
    let probe = PostgresSourceProbe::new();
    let source = plain_source(&cluster, 1);
    probe.sample(&source, timeout).await.unwrap();
    let first_backends = probe_backends(&admin).await;
    assert_eq!(first_backends.len(), 1);
    {
        let _frozen = Frozen::freeze(cluster_processes(postmaster));
        let started = Instant::now();
        let error = probe.sample(&source, timeout).await;
        let elapsed = started.elapsed();
        eprintln!("frozen server, warm probe: {error:?} after {elapsed:?}");
        assert_eq!(error, Err(ProbeError::Timeout(timeout)));
        assert!(elapsed < timeout + Duration::from_secs(1), "{elapsed:?}");
        assert_eq!(probe.open_connections(), 0, "the wedged connection is dropped");
    }

    // Resumed: the next sample reconnects.
    probe.sample(&source, timeout).await.unwrap();
    assert_eq!(probe.open_connections(), 1);
    let backends = probe_backends(&admin).await;
    assert!(!backends.iter().any(|pid| first_backends.contains(pid)), "a new backend: {backends:?}");
}

// ---------------------------------------------------------------------------------------------
// Connection reuse

#[tokio::test(flavor = "multi_thread")]
async fn sources_with_identical_settings_share_one_connection() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let probe = PostgresSourceProbe::new();

    probe.sample(&plain_source(&cluster, 1), TIMEOUT).await.unwrap();
    let first = probe_backends(&admin).await;
    assert_eq!(first.len(), 1);
    probe.sample(&plain_source(&cluster, 1), TIMEOUT).await.unwrap();
    probe.sample(&plain_source(&cluster, 2), TIMEOUT).await.unwrap();
    assert_eq!(probe.open_connections(), 1);
    assert_eq!(probe_backends(&admin).await, first, "the same backend served all three samples");

    // A different login is a different connection.
    probe.sample(&monitor_source(&cluster, 3), TIMEOUT).await.unwrap();
    assert_eq!(probe.open_connections(), 2);
    assert_eq!(probe_backends(&admin).await.len(), 2);

    // Idle connections are closed on request.
    let cutoff = Instant::now();
    probe.sample(&monitor_source(&cluster, 3), TIMEOUT).await.unwrap();
    probe.close_idle(cutoff);
    assert_eq!(probe.open_connections(), 1, "only the one used after the cutoff is kept");
    probe.close_idle(Instant::now());
    assert_eq!(probe.open_connections(), 0);
    wait_for_backends(&admin, 0).await; // the server sees the sessions end

    // Past its lifetime a connection is replaced.
    let rotating = PostgresSourceProbe::new().with_max_connection_lifetime(Duration::ZERO);
    rotating.sample(&plain_source(&cluster, 1), TIMEOUT).await.unwrap();
    let before = probe_backends(&admin).await;
    assert_eq!(before.len(), 1, "{before:?}");
    rotating.sample(&plain_source(&cluster, 1), TIMEOUT).await.unwrap();
    assert_eq!(rotating.open_connections(), 1);
    // The replaced session ends asynchronously.
    let after = wait_for_backends(&admin, 1).await;
    assert_ne!(before, after, "a new backend");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_samples_share_one_connection() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = admin(&cluster).await;
    let mut slots = SlotGuard::new(&cluster);
    slots.create(&admin, "t_conc", "SELECT pg_create_logical_replication_slot('t_conc', 'pgoutput')").await;
    let probe = Arc::new(PostgresSourceProbe::new());

    // Cold: all 50 start before any connection exists; one connect serves them all.
    let started = Instant::now();
    let samples = futures::future::join_all((0..50).map(|id| {
        let probe = Arc::clone(&probe);
        let source = plain_source(&cluster, id);
        async move { probe.sample(&source, TIMEOUT).await }
    }))
    .await;
    eprintln!("50 concurrent cold samples: {:?}", started.elapsed());
    for sample in &samples {
        let sample = sample.as_ref().unwrap();
        assert_eq!(sample.slots.len(), 1);
    }
    assert_eq!(probe.open_connections(), 1);
    assert_eq!(probe_backends(&admin).await.len(), 1);

    // Warm: pipelined on the one connection.
    let started = Instant::now();
    let samples = futures::future::join_all((0..50).map(|id| {
        let probe = Arc::clone(&probe);
        let source = plain_source(&cluster, id);
        async move { probe.sample(&source, TIMEOUT).await }
    }))
    .await;
    eprintln!("50 concurrent warm samples: {:?}", started.elapsed());
    assert!(samples.iter().all(Result::is_ok));
    assert_eq!(probe_backends(&admin).await.len(), 1);
    slots.drop_slot(&admin, "t_conc").await;
}
