//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::Arc;

use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rampart",
        description = "Deploy without downtime: canary rollouts, judged on live traffic, with an audit log.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness (no auth)"),
        (name = "metrics", description = "Prometheus exposition (no auth)"),
        (name = "services", description = "Configured services"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "traffic", description = "The stable/canary split of a service"),
        (name = "deployments", description = "Rollouts and operator actions"),
        (name = "events", description = "Live updates (server-sent events)"),
        (name = "telemetry", description = "Host, service and instance history"),
        (name = "scaling", description = "Autoscaling decisions, manual scale, recommendations"),
        (name = "incidents", description = "Incidents: rules that fired, their timeline and actions"),
        (name = "notifications", description = "The notification outbox and delivery status"),
        (name = "server", description = "The running server: config reload (admin)"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    security(("bearer" = [])),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Arc<String>>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
        .into_response()
}

/// Documents the answers every operation of a kind can give besides its own: the
/// authentication middleware's (401, 403, 429) on every secured operation, the
/// body extractor's (400, 413, 415) on every operation with a body, a bad query
/// (400) or an unknown path parameter (404), and rampart's own failures (500, 503)
/// on every operation under `/api/v1`. Written once here, so no handler can forget
/// one and the document matches what the server sends (checked by schemathesis in
/// crates/cli/tests/api_schema.rs).
pub fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;

    for (path, item) in doc.paths.paths.iter_mut() {
        let in_api = path.starts_with("/api/v1/");
        for operation in [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            let parameters = operation.parameters.as_deref().unwrap_or_default();
            let has_query = parameters
                .iter()
                .any(|p| p.parameter_in == ParameterIn::Query);
            let has_path = parameters
                .iter()
                .any(|p| p.parameter_in == ParameterIn::Path);
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = operation.request_body.is_some();
            let mut add = |status: &str, description: &str| {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| problem_response(status, description).into());
            };
            if secured {
                add("401", "no bearer token, or one that is unknown or revoked");
                add("403", "the token's role does not allow this");
                add(
                    "429",
                    "too many failed authentications from this client address",
                );
            }
            if has_body {
                add("400", "the body is not valid for this operation");
                add("413", "the body is larger than 2 MiB");
                add("415", "the body is not sent as application/json");
            }
            if has_query {
                add("400", "a query parameter is not valid");
            }
            if has_path {
                add("404", "no such resource");
            }
            if in_api {
                add("500", "rampart failed to do its part; the detail says what");
                add(
                    "503",
                    "rampart is shutting down, or a backend cannot act now",
                );
            }
        }
    }
}

fn problem_response(status: &str, description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, schema::Type};

    let mut response = ResponseBuilder::new().description(description).content(
        crate::problem::PROBLEM_CONTENT_TYPE,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    let string = || utoipa::openapi::ObjectBuilder::new().schema_type(Type::String);
    match status {
        "401" => {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(string())
                    .description(Some("Bearer realm=\"rampart\""))
                    .build(),
            );
        }
        "429" => {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("seconds until the client may try again"))
                    .build(),
            );
        }
        _ => {}
    }
    response.build()
}
