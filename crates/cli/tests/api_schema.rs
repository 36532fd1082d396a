//! The API against its own OpenAPI document, checked by schemathesis (a Python
//! package; .ci/run installs it and sets RAMPART_REQUIRE_SCHEMATHESIS so the check
//! cannot be skipped there). With a token of each role (viewer, operator, admin) it
//! generates requests for every operation from the document served at
//! `/api/v1/openapi.json`: no answer may be a 5xx, and every answer's status,
//! content type, headers and body must be the ones the document gives.
//!
//! `RAMPART_SCHEMATHESIS_EXAMPLES` (default 15 per operation) makes a longer run.
//!
//! Left out: `/api/v1/events` (a server-sent event stream that ends only when
//! rampart stops; schemathesis would wait for its end), and, until the last run,
//! revoking tokens: schemathesis revokes whatever token it can name, its own
//! included, after which every request would only test authentication.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::{RampartServer, free_addr, sample_app};

/// The conformance checks: no server error, and the document describes the answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

fn schemathesis_available() -> bool {
    match Command::new("schemathesis").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        outcome => {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_SCHEMATHESIS").is_none(),
                "schemathesis is required but could not run: {outcome:?}"
            );
            eprintln!("schemathesis not installed; skipping the API conformance run");
            false
        }
    }
}

/// Runs schemathesis with `token` over the operations `filters` select.
fn run(server: &RampartServer, role: &str, token: &str, filters: &[&str], cwd: &Path) {
    let examples = std::env::var("RAMPART_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "15".into());
    let output = Command::new("schemathesis")
        .current_dir(cwd)
        .args(["run", &format!("{}/api/v1/openapi.json", server.api)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        // The token is given; generating other credentials would only trip the
        // failed-auth limiter and leave the operations untested.
        .args(["--generation-with-security-parameters", "false"])
        .args(["--max-examples", &examples])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--exclude-path", "/api/v1/events"])
        .args(filters)
        .args(["--no-color"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis as {role} found failures:\n{stdout}\n{}\n--- rampart log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    eprintln!(
        "schemathesis as {role}: {}",
        stdout
            .lines()
            .rev()
            .find(|l| l.contains("passed") || l.contains("generated"))
            .unwrap_or_default()
    );
}

fn create_token(server: &RampartServer, name: &str, role: &str) -> String {
    let (status, body) = server.post_json("/api/v1/tokens", &json!({ "name": name, "role": role }));
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().expect("secret").to_string()
}

#[test]
fn every_answer_of_the_api_conforms_to_its_openapi_document_for_every_role() {
    if !schemathesis_available() {
        return;
    }
    let (listen, stable) = (free_addr(), free_addr());
    let _stable = sample_app(stable, "v1");
    let server = RampartServer::start_serving(&format!(
        "[[service]]\nname = \"web\"\nlisten = \"{listen}\"\n[service.backend]\nkind = \"static\"\nstable = [\"{stable}\"]\n"
    ));
    let viewer = create_token(&server, "schema-viewer", "viewer");
    let operator = create_token(&server, "schema-operator", "operator");
    let cwd = server.dir.path().to_path_buf();
    let not_revoking = ["--exclude-path", "/api/v1/tokens/{name}"];
    run(&server, "viewer", &viewer, &not_revoking, &cwd);
    run(&server, "operator", &operator, &not_revoking, &cwd);
    run(&server, "admin", &server.admin_token, &not_revoking, &cwd);
    // Last, revoking: every role, the admin's own token included.
    let revoking = ["--include-path", "/api/v1/tokens/{name}"];
    run(&server, "viewer", &viewer, &revoking, &cwd);
    run(&server, "operator", &operator, &revoking, &cwd);
    run(&server, "admin", &server.admin_token, &revoking, &cwd);
}
