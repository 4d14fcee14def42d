//! A source's WAL over a time range, downsampled for a chart: the window and its buckets, what
//! the store aggregates per bucket, and the lines (with their gaps) drawn from that.

use std::collections::BTreeMap;

use crate::{InvalidKind, InvalidValue, Timestamp};

/// A time range split into equal buckets, one chart point per line and bucket at most.
///
/// Invariants: `from < to`, the span is at most [`ChartWindow::MAX_SPAN_DAYS`] days, and there are
/// 1 to [`ChartWindow::MAX_BUCKETS`] buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartWindow {
    from: Timestamp,
    to: Timestamp,
    buckets: u32,
}

/// Which input of a [`ChartWindow`] is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {error}")]
pub struct InvalidChartWindow {
    /// `from`, `to` or `buckets`.
    pub field: &'static str,
    /// What is wrong with it.
    pub error: InvalidValue,
}

impl ChartWindow {
    /// The most buckets (points per line) a chart may ask for.
    pub const MAX_BUCKETS: u32 = 4_000;
    /// The longest range, in days (history is kept for less).
    pub const MAX_SPAN_DAYS: i64 = 400;

    /// The window `[from, to]` in `buckets` buckets.
    pub fn new(from: Timestamp, to: Timestamp, buckets: u32) -> Result<Self, InvalidChartWindow> {
        let invalid =
            |field, kind, message: String| InvalidChartWindow { field, error: InvalidValue::new(kind, message) };
        if from >= to {
            return Err(invalid("from", InvalidKind::TooLarge, "must be before `to` (default: now)".to_owned()));
        }
        if to - from > chrono::TimeDelta::days(Self::MAX_SPAN_DAYS) {
            return Err(invalid(
                "from",
                InvalidKind::TooSmall,
                format!("the range may span at most {} days", Self::MAX_SPAN_DAYS),
            ));
        }
        if !(1..=Self::MAX_BUCKETS).contains(&buckets) {
            return Err(invalid(
                "buckets",
                InvalidKind::TooLarge,
                format!("must be between 1 and {}", Self::MAX_BUCKETS),
            ));
        }
        Ok(Self { from, to, buckets })
    }

    /// Where the window starts (inclusive).
    pub fn from(&self) -> Timestamp {
        self.from
    }

    /// Where the window ends (inclusive).
    pub fn to(&self) -> Timestamp {
        self.to
    }

    /// How many buckets it has.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The span in seconds (fractional).
    pub fn span_seconds(&self) -> f64 {
        (self.to - self.from).num_microseconds().map_or(f64::MAX, |us| us as f64 / 1e6)
    }

    /// The bucket of instant `at`, `None` outside the window. `to` itself falls in the last
    /// bucket. Stores compute the same: `floor((at − from) · buckets / span)`, capped.
    pub fn bucket_of(&self, at: Timestamp) -> Option<u32> {
        if at < self.from || at > self.to {
            return None;
        }
        let offset = (at - self.from).num_microseconds().map_or(f64::MAX, |us| us as f64 / 1e6);
        let bucket = (offset * f64::from(self.buckets) / self.span_seconds()).floor();
        // In range by the checks above; the cap puts `to` in the last bucket.
        Some((bucket as u32).min(self.buckets - 1))
    }

    /// The middle of bucket `bucket`: where its point is drawn.
    pub fn bucket_middle(&self, bucket: u32) -> Timestamp {
        let span_us = (self.to - self.from).num_microseconds().unwrap_or(i64::MAX);
        let offset = (i128::from(span_us) * (2 * i128::from(bucket) + 1)) / (2 * i128::from(self.buckets));
        self.from + chrono::TimeDelta::microseconds(i64::try_from(offset).unwrap_or(span_us))
    }
}

/// What the samples of one bucket said (buckets without any attempt are left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledBucket {
    /// The bucket.
    pub bucket: u32,
    /// Attempts that read the source.
    pub succeeded: u32,
    /// Attempts that failed.
    pub failed: u32,
    /// The largest WAL on disk a successful attempt read (`None`: none could read it).
    pub wal_dir_bytes: Option<u64>,
}

/// The largest WAL one slot retained in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotBucket {
    /// The slot.
    pub slot_name: String,
    /// The bucket.
    pub bucket: u32,
    /// The most it retained; `None` when it was sampled but held nothing it could use (lost).
    pub retained_bytes: Option<u64>,
}

/// A source's history in a window, aggregated per bucket by the store: the maximum of each
/// bucket, so a spike is never averaged away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartHistory {
    /// The window.
    pub window: ChartWindow,
    /// Every bucket with at least one attempt, in any order.
    pub samples: Vec<SampledBucket>,
    /// Every (slot, bucket) sampled, in any order.
    pub slots: Vec<SlotBucket>,
}

/// One point of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartPoint {
    /// The middle of its bucket.
    pub at: Timestamp,
    /// Bytes.
    pub bytes: u64,
}

/// A line: runs of points, broken where the value is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartLine {
    /// What it shows: a slot's name, or [`ChartLine::WAL_ON_DISK`].
    pub name: String,
    /// Its runs, in time order; a gap lies between two runs.
    pub segments: Vec<Vec<ChartPoint>>,
}

impl ChartLine {
    /// The name of the WAL-on-disk line.
    pub const WAL_ON_DISK: &'static str = "WAL on disk";

    /// Every point, in time order.
    pub fn points(&self) -> impl Iterator<Item = &ChartPoint> {
        self.segments.iter().flatten()
    }

    /// The line of `values` (bucket → bytes, `None` for unknown) over the sampled buckets
    /// `sampled` (ascending): a sampled bucket without a value ends a run, a bucket nobody
    /// sampled (finer buckets than the sampling interval) does not.
    fn over(name: String, sampled: &[u32], values: &BTreeMap<u32, Option<u64>>, window: &ChartWindow) -> Self {
        let mut segments = Vec::new();
        let mut run = Vec::new();
        for bucket in sampled {
            match values.get(bucket).copied().flatten() {
                Some(bytes) => run.push(ChartPoint { at: window.bucket_middle(*bucket), bytes }),
                None if run.is_empty() => {}
                None => segments.push(std::mem::take(&mut run)),
            }
        }
        if !run.is_empty() {
            segments.push(run);
        }
        Self { name, segments }
    }
}

/// The thresholds drawn as horizontal lines: those of `slot_retained_bytes` for the source,
/// when the rule is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChartThresholds {
    /// The warning threshold, bytes.
    pub warning: Option<u64>,
    /// The critical threshold, bytes.
    pub critical: Option<u64>,
}

/// What a WAL chart of one source shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalChart {
    /// The window.
    pub window: ChartWindow,
    /// One line per slot, by name.
    pub slots: Vec<ChartLine>,
    /// WAL on disk; no points when no sample could read it.
    pub wal_on_disk: ChartLine,
    /// The thresholds.
    pub thresholds: ChartThresholds,
    /// Buckets in which every attempt failed.
    pub failed_buckets: Vec<u32>,
}

impl WalChart {
    /// The chart of `history`, with `thresholds`.
    pub fn new(history: ChartHistory, thresholds: ChartThresholds) -> Self {
        let window = history.window;
        let mut sampled: Vec<u32> = history.samples.iter().map(|bucket| bucket.bucket).collect();
        sampled.sort_unstable();
        sampled.dedup();
        let mut failed_buckets: Vec<u32> =
            history.samples.iter().filter(|b| b.succeeded == 0 && b.failed > 0).map(|b| b.bucket).collect();
        failed_buckets.sort_unstable();
        let wal_dir: BTreeMap<u32, Option<u64>> =
            history.samples.iter().map(|bucket| (bucket.bucket, bucket.wal_dir_bytes)).collect();
        let mut by_slot: BTreeMap<String, BTreeMap<u32, Option<u64>>> = BTreeMap::new();
        for slot in history.slots {
            by_slot.entry(slot.slot_name).or_default().insert(slot.bucket, slot.retained_bytes);
        }
        let slots =
            by_slot.into_iter().map(|(name, values)| ChartLine::over(name, &sampled, &values, &window)).collect();
        Self {
            window,
            slots,
            wal_on_disk: ChartLine::over(ChartLine::WAL_ON_DISK.to_owned(), &sampled, &wal_dir, &window),
            thresholds,
            failed_buckets,
        }
    }

    /// Whether there is nothing to draw: no point on any line.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().chain(std::iter::once(&self.wal_on_disk)).all(|line| line.segments.is_empty())
    }

    /// The largest value drawn (points and thresholds), for the scale; 0 when empty.
    pub fn max_bytes(&self) -> u64 {
        let points = self.slots.iter().chain(std::iter::once(&self.wal_on_disk)).flat_map(ChartLine::points);
        let thresholds = [self.thresholds.warning, self.thresholds.critical].into_iter().flatten();
        points.map(|point| point.bytes).chain(thresholds).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn window() -> ChartWindow {
        ChartWindow::new(at(0), at(100), 10).unwrap()
    }

    fn ok(bucket: u32, wal_dir: u64) -> SampledBucket {
        SampledBucket { bucket, succeeded: 1, failed: 0, wal_dir_bytes: Some(wal_dir) }
    }

    fn slot(name: &str, bucket: u32, bytes: Option<u64>) -> SlotBucket {
        SlotBucket { slot_name: name.to_owned(), bucket, retained_bytes: bytes }
    }

    #[test]
    fn a_window_checks_its_range_and_buckets() {
        assert_eq!(ChartWindow::new(at(5), at(5), 10).unwrap_err().field, "from");
        assert_eq!(ChartWindow::new(at(6), at(5), 10).unwrap_err().field, "from");
        assert_eq!(ChartWindow::new(at(0), at(401 * 86_400), 10).unwrap_err().field, "from");
        assert_eq!(ChartWindow::new(at(0), at(5), 0).unwrap_err().field, "buckets");
        assert_eq!(ChartWindow::new(at(0), at(5), 4_001).unwrap_err().field, "buckets");
        assert!(ChartWindow::new(at(0), at(400 * 86_400), 4_000).is_ok());
    }

    #[test]
    fn instants_fall_in_equal_buckets_and_points_sit_in_their_middle() {
        let window = window();
        assert_eq!(window.bucket_of(at(-1)), None);
        assert_eq!(window.bucket_of(at(0)), Some(0));
        assert_eq!(window.bucket_of(at(9)), Some(0));
        assert_eq!(window.bucket_of(at(10)), Some(1));
        assert_eq!(window.bucket_of(at(99)), Some(9));
        assert_eq!(window.bucket_of(at(100)), Some(9));
        assert_eq!(window.bucket_of(at(101)), None);
        assert_eq!(window.bucket_middle(0), at(5));
        assert_eq!(window.bucket_middle(9), at(95));
    }

    #[test]
    fn a_failed_bucket_or_a_missing_slot_breaks_a_line_an_unsampled_bucket_does_not() {
        let history = ChartHistory {
            window: window(),
            samples: vec![
                ok(0, 100),
                ok(2, 100),
                SampledBucket { bucket: 3, succeeded: 0, failed: 2, wal_dir_bytes: None },
                ok(4, 200),
                ok(5, 200),
                ok(6, 200),
            ],
            slots: vec![
                slot("b", 0, Some(10)),
                slot("b", 2, Some(20)),
                slot("b", 4, Some(40)),
                slot("b", 6, Some(60)),
                slot("a", 5, None),
                slot("a", 6, Some(7)),
            ],
        };
        let chart = WalChart::new(history, ChartThresholds { warning: Some(1_000), critical: None });
        let names: Vec<&str> = chart.slots.iter().map(|line| line.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let runs = |line: &ChartLine| -> Vec<Vec<u64>> {
            line.segments.iter().map(|run| run.iter().map(|p| p.bytes).collect()).collect()
        };
        // Bucket 1 was not sampled: 0 and 2 join. Bucket 3 failed; bucket 5 lacks slot b.
        assert_eq!(runs(&chart.slots[1]), [vec![10, 20], vec![40], vec![60]]);
        assert_eq!(runs(&chart.slots[0]), [vec![7]]);
        assert_eq!(runs(&chart.wal_on_disk), [vec![100, 100], vec![200, 200, 200]]);
        assert_eq!(chart.failed_buckets, [3]);
        assert_eq!(chart.max_bytes(), 1_000);
        assert!(!chart.is_empty());
    }

    #[test]
    fn no_samples_is_an_empty_chart() {
        let chart = WalChart::new(
            ChartHistory { window: window(), samples: Vec::new(), slots: Vec::new() },
            ChartThresholds::default(),
        );
        assert!(chart.is_empty());
        assert_eq!(chart.max_bytes(), 0);
    }
}
