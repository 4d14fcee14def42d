//! Reading the server's figures from its `/metrics` (the Prometheus text format).

use anyhow::{Context, Result, bail};

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Scrape(String);

impl Scrape {
    /// Scrapes `base/metrics`.
    pub async fn of(client: &reqwest::Client, base: &str) -> Result<Self> {
        let response = client.get(format!("{base}/metrics")).send().await.context("GET /metrics")?;
        if !response.status().is_success() {
            bail!("GET /metrics answered {}", response.status());
        }
        Ok(Self(response.text().await.context("reading /metrics")?))
    }

    /// The sum of the samples of `name` whose labels include every `label="value"` of
    /// `labels`; `None` when there is none (a counter appears on its first increment).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: Vec<String> = labels.iter().map(|(key, value)| format!("{key}=\"{value}\"")).collect();
        let mut found = None;
        for line in self.0.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                continue;
            }
            let pairs: Vec<&str> = label_text.split(',').collect();
            if wanted.iter().all(|pair| pairs.contains(&pair.as_str()))
                && let Ok(value) = value.parse::<f64>()
            {
                *found.get_or_insert(0.0) += value;
            }
        }
        found
    }

    /// [`Scrape::sum`], 0 when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels).unwrap_or(0.0)
    }

    /// The number of series of every metric.
    pub fn series_total(&self) -> usize {
        self.0.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).count()
    }

    /// The size of the whole exposition, in bytes.
    pub fn bytes(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_matching_series() {
        let scrape = Scrape(
            "# HELP x\nrosetta_worker_cycle_duration_seconds_sum{queue=\"wal_sampling\"} 1.5\n\
             rosetta_worker_cycle_duration_seconds_sum{queue=\"retention\"} 0.25\n\
             samples_total{outcome=\"ok\",source_id=\"1\"} 3\nsamples_total{outcome=\"error\",source_id=\"2\"} 4\n\
             up 1\n"
                .to_owned(),
        );
        assert_eq!(scrape.sum("rosetta_worker_cycle_duration_seconds_sum", &[("queue", "wal_sampling")]), Some(1.5));
        assert_eq!(scrape.sum("rosetta_worker_cycle_duration_seconds_sum", &[]), Some(1.75));
        assert_eq!(scrape.sum("samples_total", &[("outcome", "ok")]), Some(3.0));
        assert_eq!(scrape.sum("up", &[]), Some(1.0));
        assert_eq!(scrape.sum("missing", &[]), None);
        assert_eq!(scrape.series_total(), 5);
    }
}
