//! Throwaway clusters for the bench and plain SQL against them (the bench's own set-up and
//! readings; the server under test reaches them only through its own adapters).

use anyhow::{Context, Result};
use rosetta_test_support::{ClusterOptions, PgCluster};
use tokio_postgres::NoTls;

/// Starts a cluster with `settings` on top of the harness defaults, durability back on (the
/// harness turns fsync, synchronous_commit and full_page_writes off for tests; a benchmark
/// measures what a deployment would run).
pub async fn cluster(settings: &[(&str, &str)]) -> Result<PgCluster> {
    let mut options = ClusterOptions::default()
        .setting("fsync", "on")
        .setting("synchronous_commit", "on")
        .setting("full_page_writes", "on");
    for (key, value) in settings {
        options = options.setting(*key, *value);
    }
    tokio::task::spawn_blocking(move || PgCluster::start(options))
        .await
        .context("starting a cluster")?
        .context("starting a PostgreSQL cluster")
}

/// A metadata cluster with an empty `rosetta` database: the cluster, its server version and its
/// postmaster's pid (for the CPU split).
pub async fn metadata_cluster() -> Result<(PgCluster, String, Vec<u32>)> {
    let cluster = cluster(&[("max_connections", "200")]).await?;
    let admin = connect(&cluster, "postgres").await?;
    admin.batch_execute("CREATE DATABASE rosetta").await?;
    let version = scalar(&admin, "SHOW server_version").await?;
    let postmasters = cluster.postmaster_pid().and_then(|pid| u32::try_from(pid).ok()).into_iter().collect();
    Ok((cluster, version, postmasters))
}

/// A connection to `database` of `cluster`, its I/O on a task of its own.
pub async fn connect(cluster: &PgCluster, database: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&cluster.url(database), NoTls)
        .await
        .with_context(|| format!("connecting to {database} on port {}", cluster.port()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The one value of a query that returns one row and column, as text.
pub async fn scalar(client: &tokio_postgres::Client, sql: &str) -> Result<String> {
    let rows = client.simple_query(sql).await.with_context(|| format!("running {sql}"))?;
    rows.iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default().to_owned()),
            _ => None,
        })
        .with_context(|| format!("no row from {sql}"))
}

/// [`scalar`] as an integer.
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> Result<i64> {
    let text = scalar(client, sql).await?;
    text.parse().with_context(|| format!("{sql} returned {text:?}, not an integer"))
}

/// Every row of a query, each as its text columns.
pub async fn rows(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<Vec<String>>> {
    let messages = client.simple_query(sql).await.with_context(|| format!("running {sql}"))?;
    Ok(messages
        .iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|i| row.get(i).unwrap_or_default().to_owned()).collect())
            }
            _ => None,
        })
        .collect())
}
