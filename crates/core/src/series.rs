//! Bounded in-memory time series: every point for a recent window (1 h by default),
//! then 1-minute summaries (mean, min, max) for a longer one (24 h by default).
//!
//! Pure: points carry the time they were taken (from the caller's clock), pruning
//! and queries take `now`. Memory per series is bounded by
//! [`Retention::max_bytes_per_series`]: 16 bytes per full-resolution point and 24
//! per summary, so the defaults (5 s interval, 1 h, 24 h) cost at most
//! 720 × 16 + 1,440 × 24 = 46,080 bytes per series (plus the containers' headers).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// The summaries' width: the autoscaler's and the dashboard's long views are per minute.
pub const SUMMARY_STEP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Between two points (the collection interval).
    pub interval: Duration,
    /// How long every point is kept.
    pub full: Duration,
    /// How long 1-minute summaries are kept.
    pub summarised: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            full: Duration::from_secs(3600),
            summarised: Duration::from_secs(24 * 3600),
        }
    }
}

impl Retention {
    fn full_points(&self) -> usize {
        (self.full.as_millis() / self.interval.as_millis().max(1)) as usize + 1
    }

    fn summaries(&self) -> usize {
        (self.summarised.as_millis() / SUMMARY_STEP.as_millis()) as usize + 1
    }

    /// The most one series can hold, in bytes of points and summaries.
    pub fn max_bytes_per_series(&self) -> usize {
        self.full_points() * std::mem::size_of::<Point>()
            + self.summaries() * std::mem::size_of::<Summary>()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub at: Timestamp,
    pub value: f64,
}

/// One minute of a series. `f32` keeps a summary at 24 bytes; its 7 significant
/// digits are more than a chart or a scaling decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub start: Timestamp,
    pub mean: f32,
    pub min: f32,
    pub max: f32,
}

/// The minute being summarised.
#[derive(Debug, Clone, Copy)]
struct OpenMinute {
    start: Timestamp,
    sum: f64,
    count: u32,
    min: f64,
    max: f64,
}

impl OpenMinute {
    fn close(&self) -> Summary {
        Summary {
            start: self.start,
            mean: (self.sum / self.count.max(1) as f64) as f32,
            min: self.min as f32,
            max: self.max as f32,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Series {
    full: VecDeque<Point>,
    summaries: VecDeque<Summary>,
    open: Option<OpenMinute>,
}

fn minute_of(at: Timestamp) -> Timestamp {
    let step = SUMMARY_STEP.as_millis() as u64;
    Timestamp(at.0 / step * step)
}

impl Series {
    /// When the series last received a point.
    pub fn last_at(&self) -> Option<Timestamp> {
        self.full
            .back()
            .map(|p| p.at)
            .or_else(|| self.open.map(|o| o.start))
            .or_else(|| self.summaries.back().map(|s| s.start))
    }

    /// Adds a point. Points must come in time order; an older or equal time, or a
    /// value that is not a number, is dropped (a clock step back must not corrupt
    /// the history).
    pub fn push(&mut self, at: Timestamp, value: f64, retention: &Retention) {
        if !value.is_finite() || self.full.back().is_some_and(|last| last.at >= at) {
            return;
        }
        self.full.push_back(Point { at, value });
        let minute = minute_of(at);
        match &mut self.open {
            Some(open) if open.start == minute => {
                open.sum += value;
                open.count += 1;
                open.min = open.min.min(value);
                open.max = open.max.max(value);
            }
            open => {
                if let Some(done) = open.take() {
                    self.summaries.push_back(done.close());
                }
                *open = Some(OpenMinute {
                    start: minute,
                    sum: value,
                    count: 1,
                    min: value,
                    max: value,
                });
            }
        }
        self.prune(at, retention);
    }

    /// Forgets what is older than the retention allows (and holds every bound even if
    /// points came faster than the interval).
    pub fn prune(&mut self, now: Timestamp, retention: &Retention) {
        let full_from = Timestamp(now.0.saturating_sub(retention.full.as_millis() as u64));
        while self.full.front().is_some_and(|p| p.at < full_from) {
            self.full.pop_front();
        }
        while self.full.len() > retention.full_points() {
            self.full.pop_front();
        }
        let summary_from = Timestamp(
            now.0
                .saturating_sub(retention.summarised.as_millis() as u64),
        );
        while self
            .summaries
            .front()
            .is_some_and(|s| s.start < summary_from)
        {
            self.summaries.pop_front();
        }
        while self.summaries.len() > retention.summaries() {
            self.summaries.pop_front();
        }
        if self.open.is_some_and(|o| o.start < summary_from) {
            self.open = None;
        }
    }

    pub fn last(&self) -> Option<Point> {
        self.full.back().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.summaries.is_empty() && self.open.is_none()
    }

    /// Points from `since` on, one per `step` (the mean of the points in it, aligned
    /// to multiples of `step`). Served from the full points while they reach back to
    /// `since` and `step` is under a minute, else from the summaries (whose means
    /// are averaged when `step` spans several minutes).
    pub fn query(&self, since: Timestamp, step: Duration, retention: &Retention) -> Vec<Point> {
        let step_ms = (step.as_millis() as u64).max(1);
        let full_reaches = self
            .full
            .front()
            .is_some_and(|first| first.at.0 <= since.0 + retention.interval.as_millis() as u64)
            || self.summaries.is_empty();
        let points: Vec<Point> = if full_reaches && step < SUMMARY_STEP {
            self.full
                .iter()
                .filter(|p| p.at >= since)
                .copied()
                .collect()
        } else {
            self.summaries
                .iter()
                .copied()
                .chain(self.open.map(|o| o.close()))
                .filter(|s| s.start.0 + SUMMARY_STEP.as_millis() as u64 > since.0)
                .map(|s| Point {
                    at: s.start,
                    value: f64::from(s.mean),
                })
                .collect()
        };
        let mut out: Vec<Point> = Vec::new();
        let mut bucket: Option<(u64, f64, u32)> = None;
        for point in points {
            let start = point.at.0 / step_ms * step_ms;
            match &mut bucket {
                Some((at, sum, count)) if *at == start => {
                    *sum += point.value;
                    *count += 1;
                }
                _ => {
                    if let Some((at, sum, count)) = bucket.take() {
                        out.push(Point {
                            at: Timestamp(at),
                            value: sum / f64::from(count),
                        });
                    }
                    bucket = Some((start, point.value, 1));
                }
            }
        }
        if let Some((at, sum, count)) = bucket {
            out.push(Point {
                at: Timestamp(at),
                value: sum / f64::from(count),
            });
        }
        out
    }

    /// The 1-minute summaries kept so far (the open minute last), for the
    /// predictive autoscaler's history.
    pub fn summaries(&self) -> impl Iterator<Item = Summary> + '_ {
        self.summaries
            .iter()
            .copied()
            .chain(self.open.map(|o| o.close()))
    }
}

/// What a series is about: the host, or one service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "service", rename_all = "snake_case")]
pub enum Scope {
    Host,
    Service(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub scope: Scope,
    /// e.g. `cpu_utilisation`, `requests_per_second`.
    pub metric: String,
    /// e.g. `[("version", "v2")]`, sorted by name.
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn host(metric: &str, labels: &[(&str, &str)]) -> Self {
        Self::new(Scope::Host, metric, labels)
    }

    pub fn service(service: &str, metric: &str, labels: &[(&str, &str)]) -> Self {
        Self::new(Scope::Service(service.to_string()), metric, labels)
    }

    fn new(scope: Scope, metric: &str, labels: &[(&str, &str)]) -> Self {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        Self {
            scope,
            metric: metric.to_string(),
            labels,
        }
    }
}

/// Series kept at most. A series per version and per instance lives as long as its
/// summaries (24 h by default) after its last point, so versions and instances that
/// come and go (a deploy every few minutes, autoscaled instances on new ports) would
/// otherwise add series all day: a soak deploying a version a second grew rampart's
/// RSS by megabytes per minute this way. Far above what a live setup has (20
/// services, each with two versions of ten instances, hold about 1 200).
pub const MAX_SERIES: usize = 4096;

/// Every series, keyed. Series that stop receiving points (a stopped instance) age
/// out with their data; past [`MAX_SERIES`] those that went quiet longest go first,
/// so the set stays bounded by what currently exists.
#[derive(Debug, Clone)]
pub struct SeriesStore {
    retention: Retention,
    series: BTreeMap<SeriesKey, Series>,
    max_series: usize,
}

impl Default for SeriesStore {
    fn default() -> Self {
        Self::new(Retention::default())
    }
}

impl SeriesStore {
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            series: BTreeMap::new(),
            max_series: MAX_SERIES,
        }
    }

    /// The same store keeping at most `max_series` series (at least one).
    pub fn with_max_series(mut self, max_series: usize) -> Self {
        self.max_series = max_series.max(1);
        self
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub fn record(&mut self, at: Timestamp, key: SeriesKey, value: f64) {
        self.series
            .entry(key)
            .or_default()
            .push(at, value, &self.retention);
    }

    /// Prunes every series and drops the empty ones; past the cap, drops the series
    /// whose last point is oldest.
    pub fn prune(&mut self, now: Timestamp) {
        let retention = self.retention;
        self.series.retain(|_, series| {
            series.prune(now, &retention);
            !series.is_empty()
        });
        let excess = self.series.len().saturating_sub(self.max_series);
        if excess > 0 {
            let mut by_age: Vec<(Option<Timestamp>, &SeriesKey)> = self
                .series
                .iter()
                .map(|(key, series)| (series.last_at(), key))
                .collect();
            by_age.select_nth_unstable_by_key(excess - 1, |(at, _)| *at);
            let stalest: Vec<SeriesKey> = by_age[..excess]
                .iter()
                .map(|(_, key)| (*key).clone())
                .collect();
            for key in stalest {
                self.series.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn get(&self, key: &SeriesKey) -> Option<&Series> {
        self.series.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SeriesKey, &Series)> {
        self.series.iter()
    }

    /// The bound on what the store holds now: series × the per-series bound.
    pub fn max_bytes(&self) -> usize {
        self.series.len() * self.retention.max_bytes_per_series()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const T0: u64 = 1_700_000_000_000 / 3_600_000 * 3_600_000;

    fn retention() -> Retention {
        Retention::default()
    }

    #[test]
    fn past_the_cap_the_series_quiet_longest_are_dropped() {
        let mut store = SeriesStore::new(retention()).with_max_series(3);
        let at = |s: u64| Timestamp(T0 + s * 1000);
        for (i, version) in ["v1", "v2", "v3", "v4", "v5"].into_iter().enumerate() {
            let key = SeriesKey::service("web", "rps", &[("version", version)]);
            store.record(at(i as u64 * 5), key, 1.0);
        }
        // v1 keeps receiving points: it is not the stalest although the oldest.
        store.record(
            at(30),
            SeriesKey::service("web", "rps", &[("version", "v1")]),
            2.0,
        );
        store.prune(at(30));
        let kept: Vec<&str> = store
            .iter()
            .map(|(key, _)| key.labels[0].1.as_str())
            .collect();
        assert_eq!(kept, ["v1", "v4", "v5"]);
    }

    #[test]
    fn the_default_bound_is_46_kilobytes_per_series() {
        assert_eq!(std::mem::size_of::<Point>(), 16);
        assert_eq!(std::mem::size_of::<Summary>(), 24);
        assert_eq!(retention().max_bytes_per_series(), 721 * 16 + 1441 * 24);
    }

    #[test]
    fn full_points_are_kept_for_the_full_window_then_only_summaries() {
        let clock = ManualClock::new(Timestamp(T0));
        let mut series = Series::default();
        // Two hours of points every 5 s, value = minute index.
        for i in 0..(2 * 720) {
            let now = clock.now();
            series.push(now, (i / 12) as f64, &retention());
            clock.advance(Duration::from_secs(5));
        }
        let now = clock.now();
        assert_eq!(series.full.len(), 721, "one hour of 5 s points, both ends");
        assert!(series.full.front().unwrap().at.0 >= now.0 - 5_000 - 3_600_000);
        // 119 closed minutes plus the open one cover the two hours.
        assert_eq!(series.summaries.len(), 119);
        let first = series.summaries.front().unwrap();
        assert_eq!(
            (first.start.0, first.mean, first.min, first.max),
            (T0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn summaries_hold_mean_min_and_max_of_their_minute() {
        let mut series = Series::default();
        for (i, v) in [1.0, 5.0, 3.0].iter().enumerate() {
            series.push(Timestamp(T0 + i as u64 * 5_000), *v, &retention());
        }
        series.push(Timestamp(T0 + 60_000), 10.0, &retention());
        let s = series.summaries.front().unwrap();
        assert_eq!((s.mean, s.min, s.max), (3.0, 1.0, 5.0));
    }

    #[test]
    fn summaries_older_than_their_retention_are_dropped_and_memory_stays_bounded() {
        let r = Retention {
            interval: Duration::from_secs(5),
            full: Duration::from_secs(600),
            summarised: Duration::from_secs(3600),
        };
        let mut series = Series::default();
        for i in 0..(3 * 720) {
            series.push(Timestamp(T0 + i * 5_000), 1.0, &r);
        }
        assert_eq!(series.full.len(), 121);
        assert!(series.summaries.len() <= 61, "{}", series.summaries.len());
        let bytes = series.full.len() * 16 + series.summaries.len() * 24;
        assert!(bytes <= r.max_bytes_per_series());
    }

    #[test]
    fn out_of_order_and_non_finite_points_are_dropped() {
        let mut series = Series::default();
        series.push(Timestamp(T0 + 10_000), 1.0, &retention());
        series.push(Timestamp(T0 + 5_000), 2.0, &retention());
        series.push(Timestamp(T0 + 10_000), 3.0, &retention());
        series.push(Timestamp(T0 + 15_000), f64::NAN, &retention());
        assert_eq!(series.full.len(), 1);
        assert_eq!(series.last().unwrap().value, 1.0);
    }

    #[test]
    fn a_recent_query_uses_every_point_averaged_per_step() {
        let mut series = Series::default();
        for i in 0..12 {
            series.push(Timestamp(T0 + i * 5_000), i as f64, &retention());
        }
        let all = series.query(Timestamp(T0), Duration::from_secs(5), &retention());
        assert_eq!(all.len(), 12);
        let per_20s = series.query(Timestamp(T0), Duration::from_secs(20), &retention());
        let values: Vec<f64> = per_20s.iter().map(|p| p.value).collect();
        assert_eq!(values, vec![1.5, 5.5, 9.5]);
        assert_eq!(per_20s[1].at, Timestamp(T0 + 20_000));
        let since = series.query(Timestamp(T0 + 50_000), Duration::from_secs(5), &retention());
        assert_eq!(since.len(), 2);
    }

    #[test]
    fn an_old_query_or_a_long_step_uses_the_summaries() {
        let mut series = Series::default();
        // Three hours: the first two are only in summaries.
        for i in 0..(3 * 720) {
            series.push(Timestamp(T0 + i * 5_000), (i / 12) as f64, &retention());
        }
        let day = series.query(Timestamp(T0), Duration::from_secs(5), &retention());
        assert_eq!(day.len(), 180, "one point a minute");
        assert_eq!(
            day[0],
            Point {
                at: Timestamp(T0),
                value: 0.0
            }
        );
        let hourly = series.query(Timestamp(T0), Duration::from_secs(3600), &retention());
        let values: Vec<f64> = hourly.iter().map(|p| p.value).collect();
        assert_eq!(values, vec![29.5, 89.5, 149.5]);
        // The last half hour at a 5-minute step is also from the summaries.
        let recent = series.query(
            Timestamp(T0 + 150 * 60_000),
            Duration::from_secs(300),
            &retention(),
        );
        assert_eq!(recent.len(), 6);
    }

    #[test]
    fn a_store_drops_series_that_stopped_receiving_points() {
        let r = Retention {
            interval: Duration::from_secs(5),
            full: Duration::from_secs(120),
            summarised: Duration::from_secs(300),
        };
        let mut store = SeriesStore::new(r);
        let gone = SeriesKey::service("web", "cpu_percent", &[("instance", "v1-0")]);
        let kept = SeriesKey::host("load1", &[]);
        store.record(Timestamp(T0), gone.clone(), 1.0);
        for i in 0..100 {
            store.record(Timestamp(T0 + i * 5_000), kept.clone(), 1.0);
        }
        store.prune(Timestamp(T0 + 99 * 5_000));
        assert!(store.get(&gone).is_none());
        assert!(store.get(&kept).is_some());
        assert_eq!(store.len(), 1);
        assert_eq!(store.max_bytes(), r.max_bytes_per_series());
    }

    #[test]
    fn keys_sort_labels_so_the_order_they_are_given_in_does_not_matter() {
        assert_eq!(
            SeriesKey::service("web", "m", &[("b", "1"), ("a", "2")]),
            SeriesKey::service("web", "m", &[("a", "2"), ("b", "1")])
        );
    }
}
