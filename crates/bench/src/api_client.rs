//! The few API calls the bench makes itself (seeding, checks), with the API key.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::server::Server;

/// `POST path` with `body`; the id of what was created. Anything but 201 is an error.
pub async fn create(client: &reqwest::Client, server: &Server, path: &str, body: &Value) -> Result<i64> {
    let response = client
        .post(format!("{}{path}", server.base))
        .bearer_auth(&server.api_key)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status();
    let answer: Value = response.json().await.with_context(|| format!("reading the answer to POST {path}"))?;
    if status != reqwest::StatusCode::CREATED {
        bail!("POST {path} {body} answered {status}: {answer}");
    }
    answer["id"].as_i64().with_context(|| format!("POST {path}: no id in {answer}"))
}

/// `GET path`: the status and the body's bytes.
pub async fn get(client: &reqwest::Client, server: &Server, path: &str) -> Result<(u16, bytes::Bytes)> {
    let response = client
        .get(format!("{}{path}", server.base))
        .bearer_auth(&server.api_key)
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await.with_context(|| format!("reading the answer to GET {path}"))?))
}

/// Creates every body at `path`, `parallel` at a time; the ids in the bodies' order.
pub async fn create_all(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    bodies: Vec<Value>,
    parallel: usize,
) -> Result<Vec<i64>> {
    use futures::StreamExt;
    let results: Vec<Result<i64>> = futures::stream::iter(bodies)
        .map(|body| async move { create(client, server, path, &body).await })
        .buffered(parallel.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
