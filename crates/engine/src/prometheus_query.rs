//! The response of Prometheus' `/api/v1/query`, as its documentation describes it,
//! read by both the validation check (`validation/prometheus.rs`) and the rollout's
//! metric provider (`analysis/prometheus.rs`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, Deserialize)]
pub(crate) struct QueryResponse {
    pub status: String,
    pub data: Option<QueryData>,
    #[serde(rename = "errorType")]
    pub error_type: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(crate) enum QueryData {
    Vector(Vec<Series>),
    Scalar(Sample),
    Matrix(IgnoredAny),
    String(IgnoredAny),
}

#[derive(Debug, Deserialize)]
pub(crate) struct Series {
    #[serde(default)]
    pub metric: BTreeMap<String, String>,
    pub value: Sample,
}

/// `[unix_time, "value"]`: Prometheus sends values as strings so that NaN and ±Inf
/// survive JSON.
#[derive(Debug, Deserialize)]
pub(crate) struct Sample(IgnoredAny, String);

impl Sample {
    pub fn value(&self) -> Result<f64, String> {
        self.1
            .parse()
            .map_err(|_| format!("the query returned `{}`, which is not a number", self.1))
    }
}
