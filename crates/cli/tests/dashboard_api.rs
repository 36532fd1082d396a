//! What the dashboard needs from the server, over real HTTP: its files with the right
//! types, caching and security headers; who the caller is; every status at once;
//! stream tickets (single use) and streams that resume where they broke off.

mod support;

use std::io::{BufRead, BufReader, Lines};
use std::time::Duration;

use support::{RampartServer, client, free_addr};

fn static_web() -> RampartServer {
    RampartServer::start_serving(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{}\"\n[service.backend]\nkind = \"static\"\nstable = [\"127.0.0.1:9\"]\n",
        free_addr()
    ))
}

fn create_token(server: &RampartServer, name: &str, role: &str) -> String {
    let (status, body) = server.post_json(
        "/api/v1/tokens",
        &serde_json::json!({ "name": name, "role": role }),
    );
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().expect("secret").to_string()
}

fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_dashboard_is_served_with_types_caching_and_a_strict_policy() {
    let server = static_web();
    let http = client();

    let index = http.get(format!("{}/", server.api)).send().expect("GET /");
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    let csp = header(&index, "content-security-policy");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&index, "x-content-type-options"), "nosniff");
    let html = index.text().expect("html");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a script src in index.html");
    assert!(script.starts_with("/assets/"), "{script}");

    let asset = http
        .get(format!("{}{script}", server.api))
        .send()
        .expect("asset");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        header(&asset, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(header(&asset, "cache-control").contains("immutable"));

    // A client route is the app; a missing asset and an unknown API path are not.
    let route = http
        .get(format!("{}/rollouts/some-id", server.api))
        .send()
        .expect("client route");
    assert_eq!(route.status(), 200);
    assert_eq!(route.text().expect("html"), html);
    let missing = http
        .get(format!("{}/assets/gone-0000.js", server.api))
        .send()
        .expect("missing asset");
    assert_eq!(missing.status(), 404);
    let api = http
        .get(format!("{}/api/v1/nothing-here", server.api))
        .send()
        .expect("unknown api path");
    assert_eq!(api.status(), 404);
    assert_eq!(
        header(&api, "content-type"),
        "application/problem+json",
        "the API's own 404"
    );
}

#[test]
fn whoami_and_all_status_answer_what_the_dashboard_asks() {
    let server = static_web();
    let viewer = create_token(&server, "dash-viewer", "viewer");
    let me: serde_json::Value = client()
        .get(format!("{}/api/v1/whoami", server.api))
        .bearer_auth(&viewer)
        .send()
        .and_then(|r| r.json())
        .expect("whoami");
    assert_eq!(
        me,
        serde_json::json!({ "name": "dash-viewer", "role": "viewer", "can_operate": false, "can_admin": false })
    );
    let admin = server.get_json("/api/v1/whoami");
    assert_eq!(admin["can_operate"], true);
    assert_eq!(admin["can_admin"], true);

    let all = server.get_json("/api/v1/status");
    let services: Vec<&str> = all
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(services, ["web"]);
    assert_eq!(
        all[0]["stable_version"],
        server.get_json("/api/v1/services/web/status")["stable_version"]
    );
}

fn open_stream(
    url: &str,
    bearer: Option<&str>,
    last_event_id: Option<&str>,
) -> reqwest::blocking::Response {
    let http = reqwest::blocking::Client::builder()
        .timeout(None::<Duration>)
        .build()
        .expect("client");
    let mut request = http.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().expect("events")
}

/// The next event on the stream: (id, event name, data).
fn next_event(
    lines: &mut Lines<BufReader<reqwest::blocking::Response>>,
) -> (String, String, String) {
    let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.expect("read");
        if line.is_empty() {
            if !name.is_empty() {
                return (id, name, data);
            }
            continue;
        }
        if let Some(v) = line
            .strip_prefix("id: ")
            .or_else(|| line.strip_prefix("id:"))
        {
            id = v.to_string();
        } else if let Some(v) = line
            .strip_prefix("event: ")
            .or_else(|| line.strip_prefix("event:"))
        {
            name = v.to_string();
        } else if let Some(v) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
        {
            data = v.to_string();
        }
    }
    panic!("the stream ended");
}

fn set_weight(server: &RampartServer, weight: f64) {
    let response = client()
        .put(format!("{}/api/v1/services/web/traffic", server.api))
        .bearer_auth(&server.admin_token)
        .json(&serde_json::json!({ "canary": ["127.0.0.1:9"], "version": "v2", "canary_weight": weight }))
        .send()
        .expect("put traffic");
    assert_eq!(response.status(), 200);
}

#[test]
fn a_ticket_opens_one_stream_and_a_broken_stream_resumes_with_what_it_missed() {
    let server = static_web();
    let viewer = create_token(&server, "stream-viewer", "viewer");
    let events = format!("{}/api/v1/events", server.api);

    // A viewer may get a ticket; it works once.
    let (status, ticket) = {
        let response = client()
            .post(format!("{}/api/v1/events/ticket", server.api))
            .bearer_auth(&viewer)
            .send()
            .expect("ticket");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().expect("json");
        (status, body)
    };
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["expires_in_secs"], 30);
    let ticket = ticket["ticket"].as_str().expect("ticket").to_string();
    let first = open_stream(&format!("{events}?ticket={ticket}"), None, None);
    assert_eq!(first.status(), 200);
    let again = open_stream(&format!("{events}?ticket={ticket}"), None, None);
    assert_eq!(again.status(), 401, "a ticket works once");
    let bogus = open_stream(&format!("{events}?ticket=00ff"), None, None);
    assert_eq!(bogus.status(), 401);

    // Manual weight changes are events with ids.
    let mut lines = BufReader::new(first).lines();
    set_weight(&server, 10.0);
    let (id_10, name, data) = next_event(&mut lines);
    assert_eq!(name, "traffic");
    assert!(data.contains("\"canary_weight\":10.0"), "{data}");
    set_weight(&server, 20.0);
    set_weight(&server, 30.0);
    let (id_20, _, _) = next_event(&mut lines);
    let (id_30, _, _) = next_event(&mut lines);

    // Reconnecting after the first: the two it missed come first, in order.
    let resumed = open_stream(&events, Some(&server.admin_token), Some(&id_10));
    let mut resumed = BufReader::new(resumed).lines();
    let replayed: Vec<String> = (0..2).map(|_| next_event(&mut resumed).0).collect();
    assert_eq!(replayed, [id_20.clone(), id_30.clone()]);

    // The same with the query parameter and a fresh ticket, as the dashboard does.
    let ticket: serde_json::Value = client()
        .post(format!("{}/api/v1/events/ticket", server.api))
        .bearer_auth(&viewer)
        .send()
        .and_then(|r| r.json())
        .expect("ticket");
    let by_query = open_stream(
        &format!(
            "{events}?ticket={}&last_event_id={id_20}",
            ticket["ticket"].as_str().expect("ticket")
        ),
        None,
        None,
    );
    assert_eq!(next_event(&mut BufReader::new(by_query).lines()).0, id_30);

    // An id from another run of rampart: reload everything.
    let stale = open_stream(&events, Some(&server.admin_token), Some("1-5"));
    assert_eq!(next_event(&mut BufReader::new(stale).lines()).1, "resync");
}
