//! Every `/api/v1` route × {no token, wrong token, viewer, operator, admin}.
//!
//! The routes come from the served OpenAPI document, which is generated from the
//! handlers, so a route added later is covered without editing this test.

mod support;

use reqwest::Method;
use support::{RampartServer, client, client_from};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Operator,
    Admin,
}

fn required(method: &Method, path: &str) -> Role {
    if path.starts_with("/api/v1/tokens") || path == "/api/v1/reload" {
        // Token management, and re-reading the config (every service at once).
        Role::Admin
    } else if method == Method::GET || path == "/api/v1/events/ticket" {
        // A stream ticket only opens the event stream, which viewers may read.
        Role::Viewer
    } else if path.ends_with("/approve") {
        // Any token may ask; the handler matches it against the approval's name.
        Role::Viewer
    } else {
        Role::Operator
    }
}

fn create_token(server: &RampartServer, name: &str, role: &str) -> String {
    let response = client()
        .post(format!("{}/api/v1/tokens", server.api))
        .bearer_auth(&server.admin_token)
        .json(&serde_json::json!({ "name": name, "role": role }))
        .send()
        .expect("create token");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().expect("json");
    body["secret"].as_str().expect("secret").to_string()
}

#[test]
fn every_api_route_requires_the_right_role() {
    // This test fails authentication twice on every route, well over 100 times a
    // minute: the default `security_breach_detected` rule would rightly lock the API
    // down and revoke the tokens made here. Its own tests are in incidents_e2e.
    let server = RampartServer::start(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{}\"]\n\n\
         [[incident_rule]]\nname = \"security_breach_detected\"\nwhen = \"security.failed_auth > 100/min\"\nenabled = false\n",
        support::free_addr(),
        support::free_addr()
    ));
    let viewer = create_token(&server, "matrix-viewer", "viewer");
    let operator = create_token(&server, "matrix-operator", "operator");

    let doc: serde_json::Value = client()
        .get(format!("{}/api/v1/openapi.json", server.api))
        .bearer_auth(&viewer)
        .send()
        .and_then(|r| r.json())
        .expect("openapi");
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true),
        "{doc}"
    );

    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1") {
            continue;
        }
        for method in item.as_object().expect("path item").keys() {
            let method: Method = method.to_uppercase().parse().expect("method");
            routes.push((method, path.clone()));
        }
    }
    assert!(routes.len() >= 20, "too few routes found: {routes:?}");

    let mut checked = 0;
    for (i, (method, template)) in routes.iter().enumerate() {
        let path = template
            .replace("{name}", "web")
            .replace("{id}", "does-not-exist");
        let url = format!("{}{path}", server.api);
        // Failures come from their own loopback address each, so the per-address
        // limit on failed authentications does not turn 401s into 429s.
        let failing = client_from([127, 0, 1, (i % 250) as u8 + 1]);
        let send = |http: &reqwest::blocking::Client, token: Option<&str>| {
            let mut request = http.request(method.clone(), &url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if *method != Method::GET && *method != Method::DELETE {
                request = request.json(&serde_json::json!({}));
            }
            request.send().expect("request").status().as_u16()
        };
        assert_eq!(send(&failing, None), 401, "{method} {path} without a token");
        assert_eq!(
            send(&failing, Some("rpt_wrong")),
            401,
            "{method} {path} with a wrong token"
        );
        let needed = required(method, template);
        let http = client();
        for (role, token) in [
            (Role::Viewer, viewer.as_str()),
            (Role::Operator, operator.as_str()),
            (Role::Admin, server.admin_token.as_str()),
        ] {
            let status = send(&http, Some(token));
            if role >= needed {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} as {role:?} should be allowed, got {status}"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{method} {path} as {role:?} should be forbidden"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, routes.len());
}

#[test]
fn repeated_failures_from_one_address_are_rate_limited() {
    let server = RampartServer::start("");
    let http = client_from([127, 0, 2, 1]);
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let status = http
            .get(format!("{}/api/v1/services", server.api))
            .bearer_auth("rpt_guess")
            .send()
            .expect("request")
            .status()
            .as_u16();
        statuses.push(status);
    }
    assert!(statuses[..20].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    // Another address is not affected, and a valid token still works from it.
    let ok = client_from([127, 0, 2, 2])
        .get(format!("{}/api/v1/services", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .expect("request");
    assert_eq!(ok.status(), 200);
    let problem: serde_json::Value = http
        .get(format!("{}/api/v1/services", server.api))
        .send()
        .and_then(|r| r.json())
        .expect("problem");
    assert_eq!(problem["status"], 429);
}

#[test]
fn api_changes_are_audited_with_the_token_name_as_actor() {
    let server = RampartServer::start("");
    let _ci = create_token(&server, "ci", "operator");
    let entries: Vec<serde_json::Value> = client()
        .get(format!("{}/api/v1/audit?action=token.create", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .and_then(|r| r.json())
        .expect("audit");
    let last = entries.last().expect("an entry");
    assert_eq!(last["actor"], "admin");
    assert_eq!(last["subject"], "token/ci");
    let verify: serde_json::Value = client()
        .get(format!("{}/api/v1/audit/verify", server.api))
        .bearer_auth(&server.admin_token)
        .send()
        .and_then(|r| r.json())
        .expect("verify");
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn errors_are_problem_documents() {
    let server = RampartServer::start("");
    let response = client()
        .post(format!("{}/api/v1/tokens", server.api))
        .bearer_auth(&server.admin_token)
        .json(&serde_json::json!({ "name": "x", "role": "superuser" }))
        .send()
        .expect("request");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().expect("json");
    assert_eq!(body["status"], 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("superuser"),
        "{body}"
    );
}
