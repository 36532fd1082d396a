//! The API's fuzz suite, as property tests against the real binary: every route that
//! takes a body gets arbitrary JSON, JSON shaped like its own body with hostile
//! values, and bytes that are not JSON at all. Each answer is a success or a 4xx
//! problem document (`application/problem+json` whose `status` is the response's);
//! never a 5xx, never a dropped connection.
//!
//! The CI form runs a few hundred cases per route; `RAMPART_FUZZ_CASES=20000`
//! (or any number) makes a long run.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use support::{RampartServer, client, free_addr, sample_app};

const SERVICE: &str = "web";

fn cases(ci: u32) -> u32 {
    std::env::var("RAMPART_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ci)
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the API's bodies and a few others, so objects often hit real
/// fields with the wrong values.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![
            Just("version"), Just("canary"), Just("env"), Just("reason"), Just("name"),
            Just("role"), Just("canary_weight"), Just("max_concurrency"),
            Just("outlier_detection"),
        ].prop_map(str::to_string),
        1 => "[a-z_]{0,12}",
    ]
}

/// Strings that have broken parsers elsewhere: paths, options, addresses at and past
/// their edges, huge numbers as text, control characters.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("..".into()),
        Just("--help".into()),
        Just("v2/../../etc".into()),
        Just("127.0.0.1:0".into()),
        Just("127.0.0.1:9".into()),
        Just("0.0.0.0:1".into()),
        Just("[::]:80".into()),
        Just("256.0.0.1:80".into()),
        Just("127.0.0.1:65536".into()),
        Just("admin".into()),
        Just("operator".into()),
        Just("viewer".into()),
        Just("root".into()),
        Just("1e999".into()),
        Just("\u{0}\u{1b}[31m".into()),
        "[a-zA-Z0-9.@_-]{1,70}",
        "v[0-9]{1,3}",
    ]
}

/// A body shaped like the route's own, with each field present or not and of
/// plausible or hostile value.
fn shaped_body(route: Route) -> BoxedStrategy<Value> {
    // Plausible values half the time, so that cases get past the first check and
    // into the engine and the store.
    let text = prop_oneof![
        2 => prop_oneof!["v[0-9]{1,3}", "[a-z]{1,10}", Just("viewer".to_string()), Just("operator".to_string()), Just("admin".to_string())],
        1 => hostile_string(),
        1 => any::<String>(),
    ]
    .boxed();
    let addrs = prop_oneof![
        2 => proptest::collection::vec("127\\.0\\.0\\.1:9[0-9]{0,3}".prop_map(Value::String), 1..3),
        1 => proptest::collection::vec(
            prop_oneof![hostile_string().prop_map(Value::String), any_json()],
            0..4,
        ),
    ]
    .prop_map(Value::Array)
    .boxed();
    let maybe = |s: BoxedStrategy<Value>| proptest::option::weighted(0.7, s).boxed();
    let fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)> = match route {
        Route::Deploy => vec![
            (
                "version",
                maybe(text.clone().prop_map(Value::String).boxed()),
            ),
            ("canary", maybe(addrs.clone())),
            (
                "env",
                maybe(
                    proptest::collection::btree_map(any::<String>(), any_json(), 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect()))
                        .boxed(),
                ),
            ),
            ("reason", maybe(any_json().boxed())),
        ],
        Route::Operation(_) => vec![("reason", maybe(any_json().boxed()))],
        Route::Token => vec![
            ("name", maybe(text.clone().prop_map(Value::String).boxed())),
            ("role", maybe(text.clone().prop_map(Value::String).boxed())),
        ],
        Route::Traffic => vec![
            (
                "canary_weight",
                maybe(
                    prop_oneof![
                        any::<f64>().prop_map(|n| json!(n)),
                        (-10.0f64..110.0).prop_map(|n| json!(n)),
                        any::<i64>().prop_map(|n| json!(n)),
                    ]
                    .boxed(),
                ),
            ),
            ("canary", maybe(addrs)),
            ("version", maybe(text.prop_map(Value::String).boxed())),
            ("max_concurrency", maybe(any_json().boxed())),
            (
                "outlier_detection",
                maybe(any::<bool>().prop_map(Value::Bool).boxed()),
            ),
        ],
        Route::Validate => vec![("reason", maybe(any_json().boxed()))],
    };
    let (names, strategies): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    strategies
        .prop_map(move |values| {
            Value::Object(
                names
                    .iter()
                    .zip(values)
                    .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
                    .collect(),
            )
        })
        .boxed()
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Deploy,
    Operation(&'static str),
    Validate,
    Token,
    Traffic,
}

impl Route {
    fn all() -> Vec<Route> {
        let mut routes = vec![Route::Deploy, Route::Validate, Route::Token, Route::Traffic];
        for op in ["promote", "pause", "resume", "abort", "rollback"] {
            routes.push(Route::Operation(op));
        }
        routes
    }

    fn method_and_path(self, service: &str) -> (reqwest::Method, String) {
        match self {
            Route::Deploy => (
                reqwest::Method::POST,
                format!("/api/v1/services/{service}/deployments"),
            ),
            Route::Operation(op) => (
                reqwest::Method::POST,
                format!("/api/v1/services/{service}/{op}"),
            ),
            Route::Validate => (
                reqwest::Method::POST,
                format!("/api/v1/services/{service}/validate"),
            ),
            Route::Token => (reqwest::Method::POST, "/api/v1/tokens".to_string()),
            Route::Traffic => (
                reqwest::Method::PUT,
                format!("/api/v1/services/{service}/traffic"),
            ),
        }
    }
}

/// What one request may be: JSON of any shape, JSON of the route's shape, or bytes.
#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Raw {
        bytes: Vec<u8>,
        content_type: String,
    },
}

fn body(route: Route) -> impl Strategy<Value = Body> {
    prop_oneof![
        2 => any_json().prop_map(Body::Json),
        4 => shaped_body(route).prop_map(Body::Json),
        1 => (
            proptest::collection::vec(any::<u8>(), 0..256),
            prop_oneof![
                Just("application/json".to_string()),
                Just("application/json; charset=latin1".to_string()),
                Just("text/plain".to_string()),
                Just("application/x-www-form-urlencoded".to_string()),
                "[ -~]{0,30}",
            ],
        )
            .prop_map(|(bytes, content_type)| Body::Raw { bytes, content_type }),
    ]
}

/// Sends one request and checks the answer's contract.
fn check(
    http: &reqwest::blocking::Client,
    server: &RampartServer,
    route: Route,
    service: &str,
    body: &Body,
) -> Result<u16, TestCaseError> {
    let (method, path) = route.method_and_path(service);
    let mut request = http
        .request(method.clone(), format!("{}{path}", server.api))
        .bearer_auth(&server.admin_token);
    request = match body {
        Body::Json(value) => request.json(value),
        Body::Raw {
            bytes,
            content_type,
        } => request
            .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
            .body(bytes.clone()),
    };
    let response = request
        .send()
        .map_err(|e| TestCaseError::fail(format!("{method} {path}: no answer: {e}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
        prop_assert!(
            response.headers().contains_key(reqwest::header::ALLOW),
            "{method} {path}: 405 without Allow"
        );
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().unwrap_or_default();
    prop_assert!(
        !status.is_server_error(),
        "{method} {path} with {body:?}: {status} {text}"
    );
    if !status.is_success() {
        prop_assert_eq!(
            content_type.as_str(),
            "application/problem+json",
            "{} {} with {:?}: {}",
            method,
            path,
            body,
            text
        );
        let problem: Value = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{path}: not JSON ({e}): {text}")))?;
        prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status.as_u16())));
        prop_assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            text
        );
    }
    Ok(status.as_u16())
}

/// A rollout that some fuzz case may have started is ended, so the next cases see
/// both the idle and the busy service.
fn settle(server: &RampartServer) {
    let _ = server.post_json(
        &format!("/api/v1/services/{SERVICE}/abort"),
        &json!({ "reason": "fuzz: end whatever a case started" }),
    );
}

#[test]
fn every_body_taking_route_answers_arbitrary_input_with_success_or_a_4xx_problem() {
    let (listen, stable) = (free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"{SERVICE}\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{stable}\"]\n"
    ));
    let http = client();
    for route in Route::all() {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: cases(200),
            // Failures name the route and the body; no regression file for a test
            // against a live server.
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
        let outcome = runner.run(&body(route), |body| {
            let status = check(&http, &server, route, SERVICE, &body)?;
            *seen.borrow_mut().entry(status).or_default() += 1;
            Ok(())
        });
        settle(&server);
        if let Err(e) = outcome {
            panic!("{route:?}: {e}\n--- rampart log ---\n{}", server.log());
        }
        let seen = seen.into_inner();
        eprintln!("{route:?}: statuses {seen:?}");
        // The bodies reach the handlers: some are refused as invalid, not all
        // stopped at authentication or routing.
        assert!(
            matches!(route, Route::Validate) || seen.keys().any(|s| *s == 400 || *s == 415),
            "{route:?}: no body was refused as invalid: {seen:?}"
        );
        if matches!(route, Route::Token | Route::Traffic) {
            assert!(
                seen.keys().any(|s| (200..300).contains(s)),
                "{route:?}: no shaped body was accepted: {seen:?}"
            );
        }
    }
}

#[test]
fn arbitrary_service_and_token_names_in_paths_are_404_or_400_problems() {
    let (listen, stable) = (free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"{SERVICE}\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{stable}\"]\n"
    ));
    let http = client();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(300),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let name = prop_oneof![any::<String>(), hostile_string()].prop_map(|n| utf8_percent_encode(&n));
    let outcome = runner.run(
        &(name, proptest::sample::select(Route::all())),
        |(name, route)| {
            check(&http, &server, route, &name, &Body::Json(json!({})))?;
            // Revoking by an arbitrary name, and reading an arbitrary deployment.
            for (method, path) in [
                (reqwest::Method::DELETE, format!("/api/v1/tokens/{name}")),
                (reqwest::Method::GET, format!("/api/v1/deployments/{name}")),
                (
                    reqwest::Method::GET,
                    format!("/api/v1/services/{name}/status"),
                ),
            ] {
                let response = http
                    .request(method.clone(), format!("{}{path}", server.api))
                    .bearer_auth(&server.admin_token)
                    .send()
                    .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
                let status = response.status();
                prop_assert!(
                    !status.is_server_error(),
                    "{} {}: {}",
                    method,
                    path,
                    response.text().unwrap_or_default()
                );
            }
            Ok(())
        },
    );
    settle(&server);
    if let Err(e) = outcome {
        panic!("{e}\n--- rampart log ---\n{}", server.log());
    }
}

/// Percent-encodes everything but unreserved characters, so any string is one
/// path segment.
fn utf8_percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() { "%20".into() } else { out }
}
