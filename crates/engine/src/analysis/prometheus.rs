//! The `prometheus` metric provider: one instant query, `GET {address}/api/v1/query`
//! (Prometheus' HTTP API), answered with one value, no data, or why not.

use std::time::Duration;

use reqwest::{Client, Url};

use super::{MetricProvider, ProviderError, QueryAnswer, QueryFuture};
use crate::prometheus_query::{QueryData, QueryResponse, Sample};
use crate::request_error::describe_request_error;

/// A query's answer is one number; more than this is not a Prometheus answer to it.
const BODY_LIMIT: usize = 1024 * 1024;

pub(crate) struct Prometheus {
    client: Client,
    endpoint: Url,
}

impl Prometheus {
    pub fn new(address: &str, timeout: Duration) -> Result<Self, String> {
        let endpoint = Url::parse(&format!("{}/api/v1/query", address.trim_end_matches('/')))
            .map_err(|e| format!("invalid address `{address}`: {e}"))?;
        let client = Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self { client, endpoint })
    }

    async fn run(&self, query: &str) -> Result<QueryAnswer, ProviderError> {
        let mut response = self
            .client
            .get(self.endpoint.clone())
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| describe_request_error(&e, &self.endpoint))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            format!(
                "Prometheus answered {status}, then reading failed: {}",
                describe_request_error(&e, &self.endpoint)
            )
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > BODY_LIMIT {
                return Err(format!("Prometheus answered {status} with more than 1 MiB"));
            }
        }
        match answer(&body) {
            Ok(answer) => Ok(answer),
            Err(reason) if status.is_success() => Err(reason),
            Err(reason) => Err(format!("Prometheus answered {status}: {reason}")),
        }
    }
}

impl MetricProvider for Prometheus {
    fn kind(&self) -> &'static str {
        "prometheus"
    }

    fn query<'a>(&'a self, query: &'a str) -> QueryFuture<'a> {
        Box::pin(self.run(query))
    }
}

fn value(sample: &Sample) -> Result<QueryAnswer, ProviderError> {
    let v = sample.value()?;
    if v.is_nan() {
        // 0/0: typically a ratio over a version that had no requests yet.
        return Ok(QueryAnswer::NoData("the query returned NaN".into()));
    }
    Ok(QueryAnswer::Value(v))
}

/// One value, no data, or why the body is no answer.
fn answer(body: &[u8]) -> Result<QueryAnswer, ProviderError> {
    let response: QueryResponse = serde_json::from_slice(body)
        .map_err(|e| format!("the response is not a Prometheus query result: {e}"))?;
    if response.status != "success" {
        return Err(format!(
            "the query failed: {} ({})",
            response.error.as_deref().unwrap_or("no error message"),
            response.error_type.as_deref().unwrap_or("no error type"),
        ));
    }
    match response.data {
        None => Err("the response has no data".into()),
        Some(QueryData::Scalar(sample)) => value(&sample),
        Some(QueryData::Vector(series)) => match series.as_slice() {
            [] => Ok(QueryAnswer::NoData("the query returned no series".into())),
            [only] => value(&only.value),
            several => {
                let shown: Vec<String> = several
                    .iter()
                    .take(3)
                    .map(|s| format!("{:?}", s.metric))
                    .collect();
                Err(format!(
                    "the query returned {} series; a metric needs one value (aggregate it, e.g. with sum(…)): {}",
                    several.len(),
                    shown.join(", ")
                ))
            }
        },
        Some(QueryData::Matrix(_)) => Err(
            "the query returned a range vector; a metric needs an instant value (wrap it in rate(…) or similar)".into(),
        ),
        Some(QueryData::String(_)) => {
            Err("the query returned a string; a metric needs a number".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_value_no_data_and_errors() {
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.004"]}]}}"#;
        assert_eq!(answer(one), Ok(QueryAnswer::Value(0.004)));
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"2"]}}"#;
        assert_eq!(answer(scalar), Ok(QueryAnswer::Value(2.0)));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(answer(empty), Ok(QueryAnswer::NoData(_))));
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(matches!(answer(nan), Ok(QueryAnswer::NoData(_))));
        let inf = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"+Inf"]}]}}"#;
        assert_eq!(answer(inf), Ok(QueryAnswer::Value(f64::INFINITY)));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let err = answer(bad).unwrap_err();
        assert!(
            err.contains("parse error at char 5") && err.contains("bad_data"),
            "{err}"
        );
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        assert!(answer(two).unwrap_err().contains("2 series"));
        assert!(answer(b"<html>").is_err());
    }
}
