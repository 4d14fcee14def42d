//! `PostgresSourceOperations` against real PostgreSQL: preflight facts on clusters set up to pass
//! and to fail each check, catalog reads, publications with awkward table names, and slots with
//! a real consumer (`pg_recvlogical`) attached.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rosetta_domain::{
    CheckName, CheckStatus, PgDatabase, PgHost, PgPort, PgSslMode, PgUsername, Preflight, PreflightSubject,
    PublicationName, PublicationTables, ReplicaIdentity, Secret, SlotName, SourceConnection, SourceId, TableName,
    WalStatus,
};
use rosetta_ports::sources::{PublicationError, SlotCreation, SlotDrop, SlotError, SourceError, SourceOperations};
use rosetta_source_adapter::PostgresSourceOperations;
use rosetta_test_support::{ClusterOptions, PgCluster, SlotConsumer};
use tokio_postgres::{Client, NoTls};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn start_cluster(options: ClusterOptions) -> PgCluster {
    tokio::task::spawn_blocking(move || PgCluster::start(options)).await.unwrap().unwrap()
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn source(host: &str, port: u16, user: &str, password: Option<&str>) -> SourceConnection {
    SourceConnection {
        source_id: SourceId::new(1),
        pg_host: PgHost::parse(host).unwrap(),
        pg_port: PgPort::new(i64::from(port)).unwrap(),
        pg_database: PgDatabase::parse("postgres").unwrap(),
        pg_username: PgUsername::parse(user).unwrap(),
        pg_password: password.map(|p| Secret::parse(p).unwrap()),
        pg_sslmode: PgSslMode::default(),
        pg_sslrootcert: None,
    }
}

fn superuser(cluster: &PgCluster) -> SourceConnection {
    source(cluster.host(), cluster.port(), "postgres", None)
}

fn publication() -> PublicationName {
    PublicationName::parse("rosetta_pub").unwrap()
}

fn table(name: &str) -> TableName {
    TableName::parse(name).unwrap()
}

fn slot(name: &str) -> SlotName {
    SlotName::parse(name).unwrap()
}

/// Preflight as the application assesses it.
async fn preflight(operations: &PostgresSourceOperations, source: &SourceConnection) -> Preflight {
    let publication = publication();
    let facts = operations.facts(source, &publication).await;
    let reason = facts.as_ref().err().map(ToString::to_string);
    let subject = PreflightSubject { username: &source.pg_username, publication: &publication };
    Preflight::assess(facts.as_ref().map_err(|_| reason.as_deref().unwrap_or_default()), subject)
}

fn check(preflight: &Preflight, name: CheckName) -> (CheckStatus, String, Option<String>) {
    let found = preflight.checks.iter().find(|c| c.name == name).unwrap();
    (found.status, found.message.clone(), found.fix.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_passes_a_ready_source_and_names_what_a_plain_role_lacks() {
    let cluster = start_cluster(ClusterOptions::default().setting("max_slot_wal_keep_size", "1GB")).await;
    let admin = connect(&cluster.url("postgres")).await;
    admin
        .batch_execute(
            "CREATE ROLE plain LOGIN; CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE audit (at timestamptz); \
             CREATE PUBLICATION rosetta_pub FOR TABLE orders, audit",
        )
        .await
        .unwrap();
    let operations = PostgresSourceOperations::new(TIMEOUT);

    let ready = preflight(&operations, &superuser(&cluster)).await;
    eprintln!("{ready:#?}");
    for name in [
        CheckName::Connect,
        CheckName::ServerVersion,
        CheckName::WalLevel,
        CheckName::ReplicationRole,
        CheckName::SlotCapacity,
        CheckName::WalSenderCapacity,
        CheckName::MaxSlotWalKeepSize,
        CheckName::Publication,
        CheckName::MonitoringPrivilege,
    ] {
        assert_eq!(check(&ready, name).0, CheckStatus::Pass, "{name:?}");
    }
    assert!(ready.ok());
    // The clusters speak plain text; the table without a key cannot replicate its updates.
    assert_eq!(check(&ready, CheckName::Tls).0, CheckStatus::Warn);
    let (status, message, fix) = check(&ready, CheckName::ReplicaIdentity);
    assert_eq!(status, CheckStatus::Warn);
    assert!(message.contains("public.audit") && !message.contains("public.orders"), "{message}");
    assert!(fix.unwrap().contains("REPLICA IDENTITY FULL"));

    let plain = preflight(&operations, &source(cluster.host(), cluster.port(), "plain", None)).await;
    let (status, _, fix) = check(&plain, CheckName::ReplicationRole);
    assert_eq!(status, CheckStatus::Fail);
    assert!(fix.unwrap().contains("ALTER ROLE \"plain\" WITH REPLICATION"));
    assert_eq!(check(&plain, CheckName::MonitoringPrivilege).0, CheckStatus::Warn);
    assert!(!plain.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_fails_wal_level_and_a_full_slot_table_and_warns_on_unbounded_retention() {
    let cluster = start_cluster(
        ClusterOptions::default()
            .setting("wal_level", "replica")
            .setting("max_replication_slots", "1")
            .setting("max_slot_wal_keep_size", "-1"),
    )
    .await;
    let admin = connect(&cluster.url("postgres")).await;
    admin.batch_execute("SELECT pg_create_physical_replication_slot('taken')").await.unwrap();
    let operations = PostgresSourceOperations::new(TIMEOUT);
    let preflight = preflight(&operations, &superuser(&cluster)).await;
    let (status, message, fix) = check(&preflight, CheckName::WalLevel);
    assert_eq!(status, CheckStatus::Fail);
    assert!(message.contains("'replica'"), "{message}");
    assert!(fix.unwrap().contains("wal_level = logical"));
    let (status, message, _) = check(&preflight, CheckName::SlotCapacity);
    assert_eq!(status, CheckStatus::Fail, "{message}");
    assert_eq!(check(&preflight, CheckName::MaxSlotWalKeepSize).0, CheckStatus::Warn);
    assert_eq!(check(&preflight, CheckName::Publication).0, CheckStatus::Warn, "no publication yet");
    assert_eq!(check(&preflight, CheckName::ReplicaIdentity).0, CheckStatus::Skip);
    assert!(!preflight.ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_sources_are_bounded_and_wrong_passwords_never_echoed() {
    let operations = PostgresSourceOperations::new(Duration::from_secs(1));
    // Closed: a port bound and released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let refused = preflight(&operations, &source("127.0.0.1", closed, "u", Some("pw"))).await;
    let (status, message, _) = check(&refused, CheckName::Connect);
    assert_eq!(status, CheckStatus::Fail);
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(refused.checks[1..].iter().all(|c| c.status == CheckStatus::Skip));
    eprintln!("closed port answered in {:?}", started.elapsed());

    // Accepts (the kernel does, into the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let outcome = operations.facts(&source("127.0.0.1", port, "u", None), &publication()).await;
    let elapsed = started.elapsed();
    eprintln!("silent port: {outcome:?} after {elapsed:?}");
    assert_eq!(outcome, Err(SourceError::Timeout(Duration::from_secs(1))));
    assert!(elapsed < Duration::from_millis(2_500), "bounded by the timeout: {elapsed:?}");
    let silent_preflight = preflight(&operations, &source("127.0.0.1", port, "u", None)).await;
    let (status, message, _) = check(&silent_preflight, CheckName::Connect);
    assert_eq!(status, CheckStatus::Fail);
    assert!(message.contains("did not answer"), "{message}");
    assert!(silent_preflight.checks[1..].iter().all(|c| c.status == CheckStatus::Skip));
    let slot_outcome = operations.create_slot(&source("127.0.0.1", port, "u", None), &slot("s")).await;
    assert_eq!(slot_outcome, Err(SlotError::Source(SourceError::Timeout(Duration::from_secs(1)))));

    // A scram-sha-256 role with a wrong password.
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = connect(&cluster.url("postgres")).await;
    admin.batch_execute("CREATE ROLE scram_user LOGIN PASSWORD 'right-pw-1f2e'").await.unwrap();
    let hba = cluster.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all scram_user 127.0.0.1/32 scram-sha-256\n{rules}")).unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wrong = "wrong-pw-77aa";
    let outcome =
        operations.facts(&source(cluster.host(), cluster.port(), "scram_user", Some(wrong)), &publication()).await;
    let Err(SourceError::Connect { message, sqlstate }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(sqlstate.as_deref(), Some("28P01"));
    assert!(!message.contains(wrong), "{message}");
    let right = operations
        .facts(&source(cluster.host(), cluster.port(), "scram_user", Some("right-pw-1f2e")), &publication())
        .await;
    assert!(right.is_ok(), "{right:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_and_publications_with_awkward_names() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = connect(&cluster.url("postgres")).await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE \"MixedCase\" (id int PRIMARY KEY); \
             CREATE TABLE no_pk (x int); CREATE TABLE \"odd.name\" (x int); ALTER TABLE \"odd.name\" REPLICA IDENTITY FULL; \
             CREATE SCHEMA \"Sales\"; CREATE TABLE \"Sales\".\"Q1 \"\"Report\"\"\" (id int PRIMARY KEY); \
             CREATE TABLE measurements (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
             CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
             INSERT INTO orders SELECT generate_series(1, 500); ANALYZE orders",
        )
        .await
        .unwrap();
    let operations = PostgresSourceOperations::new(TIMEOUT);
    let source = superuser(&cluster);

    let tables = operations.tables(&source, &publication()).await.unwrap();
    let names: Vec<String> = tables.iter().map(|t| t.table.to_string()).collect();
    // Sorted by bytes; a partitioned table is listed as itself, its partitions are not.
    assert_eq!(
        names,
        [
            "Sales.Q1 \"Report\"",
            "public.MixedCase",
            "public.measurements",
            "public.no_pk",
            "public.odd.name",
            "public.orders"
        ]
    );
    let by_name = |name: &str| tables.iter().find(|t| t.table.to_string() == name).unwrap();
    assert!(by_name("public.orders").has_primary_key && !by_name("public.no_pk").has_primary_key);
    assert_eq!(by_name("public.odd.name").replica_identity, ReplicaIdentity::Full);
    assert_eq!(by_name("public.orders").estimated_rows, Some(500));
    assert!(tables.iter().all(|t| !t.in_publication));

    let missing = operations.publication(&source, &publication()).await.unwrap();
    assert!(!missing.exists && missing.tables.is_empty());

    let first = PublicationTables::exactly(vec![table("public.MixedCase"), table("public.orders")]).unwrap();
    let created = operations.set_publication(&source, &publication(), &first).await.unwrap();
    assert!(created.exists && !created.all_tables);
    assert_eq!(created.tables, vec![table("public.MixedCase"), table("public.orders")]);

    let second = PublicationTables::exactly(vec![
        table("public.orders"),
        table("public.no_pk"),
        table("public.odd.name"),
        table("Sales.Q1 \"Report\""),
        table("public.measurements"),
    ])
    .unwrap();
    let altered = operations.set_publication(&source, &publication(), &second).await.unwrap();
    let PublicationTables::Tables(expected) = &second else { unreachable!() };
    assert_eq!(&altered.tables, expected);
    let repeated = operations.set_publication(&source, &publication(), &second).await.unwrap();
    assert_eq!(repeated, altered, "repeating changes nothing");
    let flags = operations.tables(&source, &publication()).await.unwrap();
    assert!(!flags.iter().find(|t| t.table == table("public.MixedCase")).unwrap().in_publication);
    assert!(flags.iter().find(|t| t.table == table("public.no_pk")).unwrap().in_publication);
    assert!(flags.iter().find(|t| t.table == table("public.measurements")).unwrap().in_publication, "the root");
    let facts = operations.facts(&source, &publication()).await.unwrap();
    let published = facts.publication.unwrap().tables;
    assert_eq!(published.len(), 5, "the root, not its partition: {published:?}");

    // A table that does not exist: refused by name, nothing changed.
    let with_missing = PublicationTables::exactly(vec![table("public.orders"), table("public.nope")]).unwrap();
    let refused = operations.set_publication(&source, &publication(), &with_missing).await;
    assert_eq!(refused, Err(PublicationError::MissingTables(vec![table("public.nope")])));
    assert_eq!(operations.publication(&source, &publication()).await.unwrap(), altered);

    // To every table and back: ALTER cannot switch, so the publication is replaced.
    let all = operations.set_publication(&source, &publication(), &PublicationTables::AllTables).await.unwrap();
    assert!(all.all_tables && all.tables.len() == 6, "{all:?}");
    let back = operations.set_publication(&source, &publication(), &first).await.unwrap();
    assert!(!back.all_tables && back.tables.len() == 2);

    assert!(operations.drop_publication(&source, &publication()).await.unwrap());
    assert!(!operations.drop_publication(&source, &publication()).await.unwrap(), "already gone");
    assert!(!operations.publication(&source, &publication()).await.unwrap().exists);
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_are_created_once_read_live_and_dropped_only_with_force_while_consumed() {
    let cluster = start_cluster(ClusterOptions::default()).await;
    let admin = connect(&cluster.url("postgres")).await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION rosetta_pub FOR TABLE t")
        .await
        .unwrap();
    admin.batch_execute("SELECT pg_create_physical_replication_slot('physical_one')").await.unwrap();
    let operations = PostgresSourceOperations::new(TIMEOUT);
    let source = superuser(&cluster);
    let name = slot("rosetta_7");

    let Ok(SlotCreation::Created(live)) = operations.create_slot(&source, &name).await else { panic!("created") };
    assert_eq!(live.plugin.as_deref(), Some("pgoutput"));
    assert!(!live.active && live.restart_lsn.is_some() && live.confirmed_flush_lsn.is_some());
    assert_eq!(live.wal_status, Some(WalStatus::Reserved));
    let again = operations.create_slot(&source, &name).await.unwrap();
    assert!(matches!(again, SlotCreation::Existed(_)), "{again:?}");
    let physical = operations.create_slot(&source, &slot("physical_one")).await;
    assert_eq!(physical, Err(SlotError::Incompatible(slot("physical_one"))));

    admin.batch_execute("INSERT INTO t SELECT generate_series(1, 10000)").await.unwrap();
    let grown = operations.slot(&source, &name).await.unwrap().unwrap();
    assert!(grown.retained_bytes.unwrap() > 100_000, "{grown:?}");

    let consumer = SlotConsumer::attach(&cluster, name.as_str(), "rosetta_pub").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !operations.slot(&source, &name).await.unwrap().unwrap().active {
        assert!(Instant::now() < deadline, "pg_recvlogical did not attach");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(operations.drop_slot(&source, &name, false).await, Err(SlotError::Active(name.clone())));
    assert!(operations.slot(&source, &name).await.unwrap().is_some(), "kept");
    assert_eq!(operations.drop_slot(&source, &name, true).await, Ok(SlotDrop::Dropped));
    assert_eq!(operations.slot(&source, &name).await.unwrap(), None);
    assert_eq!(operations.drop_slot(&source, &name, false).await, Ok(SlotDrop::Absent));
    drop(consumer);
}
