//! Per-version request metrics: per-second windows for the judge, cumulative
//! counters for Prometheus.

pub(crate) mod arrivals;
pub(crate) mod collector;
pub(crate) mod counters;
mod second_tag;
pub(crate) mod window;

/// Index of a status class: 0 for 1xx … 4 for 5xx.
pub(crate) fn status_class(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

pub(crate) const CLASS_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
