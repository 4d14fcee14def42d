//! The probe and the source operations against every installed PostgreSQL major (13–18, see
//! `rosetta_test_support::postgres_majors`; in CI all six must be there): the version-gated
//! slot fields, preflight, publications with a partitioned table, and a slot with a real
//! consumer. Each major is named in the output.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rosetta_domain::{
    CheckName, CheckStatus, PgDatabase, PgHost, PgPort, PgSslMode, PgUsername, Preflight, PreflightSubject,
    PublicationName, PublicationTables, SlotName, SourceConnection, SourceId, TableName, WalStatus,
};
use rosetta_ports::sources::{SlotCreation, SlotDrop, SlotError, SourceOperations};
use rosetta_ports::wal::SourceProbe;
use rosetta_source_adapter::{PostgresSourceOperations, PostgresSourceProbe};
use rosetta_test_support::{ClusterOptions, PgCluster, PgMajor, SlotConsumer, postgres_majors};
use tokio_postgres::NoTls;

const TIMEOUT: Duration = Duration::from_secs(10);

fn superuser(cluster: &PgCluster) -> SourceConnection {
    SourceConnection {
        source_id: SourceId::new(1),
        pg_host: PgHost::parse(cluster.host()).unwrap(),
        pg_port: PgPort::new(i64::from(cluster.port())).unwrap(),
        pg_database: PgDatabase::parse("postgres").unwrap(),
        pg_username: PgUsername::parse("postgres").unwrap(),
        pg_password: None,
        pg_sslmode: PgSslMode::default(),
        pg_sslrootcert: None,
    }
}

async fn exercise(version: &PgMajor) {
    let major = version.major;
    let options = ClusterOptions::default().binaries(&version.bin_dir).setting("max_slot_wal_keep_size", "1GB");
    let cluster = tokio::task::spawn_blocking(move || PgCluster::start(options)).await.unwrap().unwrap();
    let (admin, connection) = tokio_postgres::connect(&cluster.url("postgres"), NoTls).await.unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE \"Audit\" (at timestamptz); \
             CREATE TABLE readings (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
             CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        )
        .await
        .unwrap();
    let source = superuser(&cluster);
    let operations = PostgresSourceOperations::new(TIMEOUT);
    let publication = PublicationName::parse("rosetta_pub").unwrap();

    // Publication: a list with a partitioned table and a mixed-case name, then all tables.
    let tables = PublicationTables::exactly(vec![
        TableName::parse("public.orders").unwrap(),
        TableName::parse("public.Audit").unwrap(),
        TableName::parse("public.readings").unwrap(),
    ])
    .unwrap();
    let set = operations.set_publication(&source, &publication, &tables).await.unwrap();
    let PublicationTables::Tables(expected) = &tables else { unreachable!() };
    assert_eq!(&set.tables, expected, "PostgreSQL {major}");
    assert_eq!(operations.set_publication(&source, &publication, &tables).await.unwrap(), set, "PostgreSQL {major}");
    let listed = operations.tables(&source, &publication).await.unwrap();
    assert_eq!(listed.len(), 3, "PostgreSQL {major}: partitions are not listed: {listed:?}");
    assert!(listed.iter().all(|t| t.in_publication), "PostgreSQL {major}: {listed:?}");

    // Preflight: everything but TLS and the table without a key.
    let facts = operations.facts(&source, &publication).await.unwrap();
    assert_eq!(facts.server_version_num / 10_000, i32::try_from(major).unwrap(), "{facts:?}");
    let subject = PreflightSubject { username: &source.pg_username, publication: &publication };
    let preflight = Preflight::assess(Ok(&facts), subject);
    let status = |name| preflight.checks.iter().find(|c| c.name == name).unwrap().status;
    assert!(preflight.ok(), "PostgreSQL {major}: {preflight:#?}");
    assert_eq!(status(CheckName::MaxSlotWalKeepSize), CheckStatus::Pass, "PostgreSQL {major}");
    assert_eq!(status(CheckName::ReplicaIdentity), CheckStatus::Warn, "PostgreSQL {major}");
    assert_eq!(status(CheckName::WalSenderCapacity), CheckStatus::Pass, "PostgreSQL {major}");

    // A slot, as the operations and the probe see it.
    let slot = SlotName::parse("rosetta_1").unwrap();
    let created = operations.create_slot(&source, &slot).await.unwrap();
    let SlotCreation::Created(live) = created else { panic!("PostgreSQL {major}: {created:?}") };
    assert_eq!((live.plugin.as_deref(), live.wal_status), (Some("pgoutput"), Some(WalStatus::Reserved)), "{major}");
    let sample = PostgresSourceProbe::new().sample(&source, TIMEOUT).await.unwrap();
    let sampled = sample.slots.iter().find(|s| s.slot_name == slot.as_str()).unwrap();
    assert_eq!(sampled.wal_status, Some(WalStatus::Reserved), "PostgreSQL {major}");
    assert!(sampled.safe_wal_size_bytes.is_some(), "PostgreSQL {major}: max_slot_wal_keep_size is set");
    assert_eq!(sampled.conflicting.is_some(), major >= 16, "PostgreSQL {major}: conflicting is 16+");
    assert_eq!(sampled.inactive_since.is_some(), major >= 17, "PostgreSQL {major}: inactive_since is 17+");
    assert_eq!(sampled.synced.is_some(), major >= 17, "PostgreSQL {major}: synced is 17+");
    assert!(sampled.retained_bytes(sample.current_lsn).is_some(), "PostgreSQL {major}");

    // A consumer: refused without force, disconnected with it.
    let consumer = SlotConsumer::attach(&cluster, slot.as_str(), "rosetta_pub").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !operations.slot(&source, &slot).await.unwrap().unwrap().active {
        assert!(Instant::now() < deadline, "PostgreSQL {major}: pg_recvlogical did not attach");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(operations.drop_slot(&source, &slot, false).await, Err(SlotError::Active(slot.clone())), "{major}");
    assert_eq!(operations.drop_slot(&source, &slot, true).await, Ok(SlotDrop::Dropped), "PostgreSQL {major}");
    drop(consumer);
    assert!(operations.drop_publication(&source, &publication).await.unwrap(), "PostgreSQL {major}");

    // A slot the server invalidates (its WAL removed past max_slot_wal_keep_size): lost on
    // every major, with the reason on 17+. A cluster of its own: a command-line setting
    // outranks ALTER SYSTEM.
    let options = ClusterOptions::default().binaries(&version.bin_dir).setting("max_slot_wal_keep_size", "1MB");
    let small = tokio::task::spawn_blocking(move || PgCluster::start(options)).await.unwrap().unwrap();
    let (admin, connection) = tokio_postgres::connect(&small.url("postgres"), NoTls).await.unwrap();
    tokio::spawn(connection);
    let source = superuser(&small);
    let doomed = SlotName::parse("rosetta_doomed").unwrap();
    assert!(matches!(operations.create_slot(&source, &doomed).await.unwrap(), SlotCreation::Created(_)), "{major}");
    admin.batch_execute("CREATE TABLE filler (x int)").await.unwrap();
    for _ in 0..4 {
        admin
            .batch_execute("INSERT INTO filler SELECT generate_series(1, 1000); SELECT pg_switch_wal()")
            .await
            .unwrap();
    }
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let sample = PostgresSourceProbe::new().sample(&source, TIMEOUT).await.unwrap();
    let lost = sample.slots.iter().find(|s| s.slot_name == doomed.as_str()).unwrap();
    assert_eq!(lost.wal_status, Some(WalStatus::Lost), "PostgreSQL {major}: {lost:?}");
    let expected_reason = (major >= 17).then(|| "wal_removed".to_owned());
    assert_eq!(lost.invalidation_reason, expected_reason, "PostgreSQL {major}: invalidation_reason is 17+");
    assert!(lost.is_lost() && lost.retained_bytes(sample.current_lsn).is_none(), "PostgreSQL {major}: {lost:?}");
    assert_eq!(operations.drop_slot(&source, &doomed, false).await, Ok(SlotDrop::Dropped), "PostgreSQL {major}");
    println!(
        "PostgreSQL {major} ({}): probe (slot fields, an invalidated slot), preflight, publication and slot operations ok",
        version.bin_dir.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_installed_major_version() {
    let majors = postgres_majors();
    println!("PostgreSQL majors under test: {:?}", majors.iter().map(|m| m.major).collect::<Vec<_>>());
    assert!(!majors.is_empty(), "no PostgreSQL binaries found");
    for version in &majors {
        exercise(version).await;
    }
}
