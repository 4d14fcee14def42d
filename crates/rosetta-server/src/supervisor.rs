//! The background-task supervisor of one server process: every long-running task (the HTTP
//! server, each job runner, host sampling, metrics upkeep) is spawned here with one cancellation
//! token, and stopping is one step for all of them.

use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The tasks of the process and the token that stops them.
#[derive(Debug)]
pub struct Supervisor {
    cancel: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// No task yet.
    pub fn new() -> Self {
        Self { cancel: CancellationToken::new(), tasks: JoinSet::new() }
    }

    /// The token every task watches; cancelled when the process stops.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Spawns `task`, named `name` in the log. A task is expected to run until the token is
    /// cancelled; one that ends before, or fails, stops the process.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Runs until `stop` resolves (a signal) or a task ends on its own; then cancels every task
    /// and waits for them to end, each within `grace` (a task still running then is aborted).
    /// The first failure, or a task that ended early, is the error.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>, grace: Duration) -> anyhow::Result<()> {
        let mut failure = None;
        tokio::select! {
            () = stop => tracing::info!("shutdown requested: stopping every task"),
            Some(ended) = self.tasks.join_next() => {
                let (name, result) = flatten(ended);
                tracing::error!(task = name, "a task ended on its own; stopping the others");
                failure = Some(result.err().unwrap_or_else(|| anyhow!("the {name} task ended before shutdown")));
            }
        }
        self.cancel.cancel();
        let drain = async {
            while let Some(ended) = self.tasks.join_next().await {
                let (name, result) = flatten(ended);
                match result {
                    Ok(()) => tracing::debug!(task = name, "task stopped"),
                    Err(error) => {
                        tracing::error!(task = name, error = format!("{error:#}"), "task failed while stopping");
                        failure.get_or_insert(error);
                    }
                }
            }
        };
        // Each task bounds its own wind-down by the grace period; this bound only catches one
        // that does not.
        if tokio::time::timeout(grace + Duration::from_secs(5), drain).await.is_err() {
            tracing::warn!("tasks still running after the grace period; aborting them");
            self.tasks.abort_all();
        }
        failure.map_or(Ok(()), Err)
    }
}

fn flatten(
    ended: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> (&'static str, anyhow::Result<()>) {
    match ended {
        Ok((name, result)) => (name, result),
        Err(error) => ("unknown", Err(anyhow!("a task panicked or was aborted: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_stops_every_task_through_the_token() {
        let mut supervisor = Supervisor::new();
        for name in ["a", "b"] {
            let token = supervisor.token();
            supervisor.spawn(name, async move {
                token.cancelled().await;
                Ok(())
            });
        }
        let stopped = supervisor.run_until(async {}, Duration::from_secs(1)).await;
        assert!(stopped.is_ok(), "{stopped:?}");
    }

    #[tokio::test]
    async fn a_task_that_ends_early_stops_the_others_and_is_the_error() {
        let mut supervisor = Supervisor::new();
        let token = supervisor.token();
        supervisor.spawn("steady", async move {
            token.cancelled().await;
            Ok(())
        });
        supervisor.spawn("crashing", async { Err(anyhow!("boom")) });
        let outcome = supervisor.run_until(std::future::pending(), Duration::from_secs(1)).await;
        assert_eq!(outcome.map_err(|e| e.to_string()), Err("boom".to_owned()));
    }
}
