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
