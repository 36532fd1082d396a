//! A prometheus check: a PromQL instant query (`GET {url}/api/v1/query`) must yield one
//! value that satisfies the check's comparison.

use std::collections::BTreeMap;

use super::attempt::Attempt;
use super::comparison::Comparison;
use super::http::{Body, client, parse_url, read_body};
use crate::prometheus_query::{QueryData, QueryResponse};
use crate::request_error::describe_request_error;

pub(crate) async fn probe(url: &str, query: &str, expect: &str) -> Attempt {
    let comparison = match Comparison::parse(expect) {
        Ok(comparison) => comparison,
        Err(err) => return Attempt::misconfigured(format!("invalid expect: {err}")),
    };
    let endpoint = match parse_url(&format!("{}/api/v1/query", url.trim_end_matches('/'))) {
        Ok(endpoint) => endpoint,
        Err(attempt) => return attempt,
    };
    let client = match client() {
        Ok(client) => client,
        Err(attempt) => return attempt,
    };
    let request = client.get(endpoint.clone()).query(&[("query", query)]);
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Attempt::fail(describe_request_error(&err, &endpoint)),
    };
    let status = response.status();
    let body = match read_body(response).await {
        Ok(body) => body,
        Err(err) => {
            return Attempt::fail(format!(
                "Prometheus answered {status}, then reading the body failed: {err}"
            ));
        }
    };
    let attempt = match single_value(&body) {
        Ok(value) if comparison.holds_for(value) => {
            Attempt::pass(format!("value {value} satisfies {comparison}"))
        }
        Ok(value) if value.is_nan() => Attempt::fail(format!(
            "the query returned NaN, which satisfies no comparison (expected {comparison})"
        )),
        Ok(value) => Attempt::fail(format!("value {value} does not satisfy {comparison}")),
        Err(reason) if status.is_success() => Attempt::fail(reason),
        Err(reason) => Attempt::fail(format!("Prometheus answered {status}: {reason}")),
    };
    attempt.with_output(body.excerpt())
}

/// The one value of the query's result, or why there is not exactly one.
fn single_value(body: &Body) -> Result<f64, String> {
    let response: QueryResponse = serde_json::from_slice(&body.bytes)
        .map_err(|err| format!("the response is not a Prometheus query result: {err}"))?;
    if response.status != "success" {
        return Err(format!(
            "the query failed: {} ({})",
            response.error.as_deref().unwrap_or("no error message"),
            response.error_type.as_deref().unwrap_or("no error type"),
        ));
    }
    match response.data {
        None => Err("the response has no data".into()),
        Some(QueryData::Scalar(sample)) => sample.value(),
        Some(QueryData::Vector(series)) => match series.as_slice() {
            [] => Err("the query returned no series; the check needs exactly one".into()),
            [only] => only.value.value(),
            several => {
                let shown: Vec<String> = several.iter().take(5).map(|s| labels(&s.metric)).collect();
                let more = if several.len() > shown.len() { ", …" } else { "" };
                Err(format!(
                    "the query returned {} series; the check needs exactly one (aggregate it, e.g. with sum(…)): {}{more}",
                    several.len(),
                    shown.join(", ")
                ))
            }
        },
        Some(QueryData::Matrix(_)) => Err(
            "the query returned a range vector; the check needs an instant value (drop the [range] or wrap it in a function such as rate(…))"
                .into(),
        ),
        Some(QueryData::String(_)) => Err("the query returned a string; the check needs a number".into()),
    }
}

fn labels(metric: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = metric
        .iter()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(json: &str) -> Result<f64, String> {
        single_value(&Body {
            bytes: json.as_bytes().to_vec(),
            truncated: false,
        })
    }

    #[test]
    fn reads_a_single_series() {
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"checkout"},"value":[1700000000.123,"0.004"]}]}}"#;
        assert_eq!(value_of(json), Ok(0.004));
    }

    #[test]
    fn reads_a_scalar() {
        let json =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"5"]}}"#;
        assert_eq!(value_of(json), Ok(5.0));
    }

    #[test]
    fn reads_special_values() {
        let json = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert!(value_of(json).unwrap().is_nan());
        let json = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert_eq!(value_of(json), Ok(f64::INFINITY));
    }

    #[test]
    fn several_series_name_their_labels() {
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"instance":"a"},"value":[1,"1"]},
            {"metric":{"instance":"b"},"value":[1,"2"]}]}}"#;
        let err = value_of(json).unwrap_err();
        assert!(err.contains("returned 2 series"), "{err}");
        assert!(err.contains(r#"{instance="a"}"#), "{err}");
    }

    #[test]
    fn errors_and_other_shapes_are_explained() {
        let json = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let err = value_of(json).unwrap_err();
        assert!(
            err.contains("parse error at char 5") && err.contains("bad_data"),
            "{err}"
        );
        let json = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(value_of(json).unwrap_err().contains("range vector"));
        assert!(
            value_of("<html>")
                .unwrap_err()
                .contains("not a Prometheus query result")
        );
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(value_of(json).unwrap_err().contains("no series"));
    }
}
