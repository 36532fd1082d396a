//! rampart's HTTP API: REST under `/api/v1` (bearer tokens with roles), health
//! endpoints, `/metrics`, and the OpenAPI document generated from the handlers.

pub mod auth;
pub mod auth_limiter;
pub mod dashboard;
pub mod health;
pub mod http_metrics;
pub mod live;
pub mod openapi;
pub mod probes;
pub mod problem;
pub mod routes;
pub mod state;
pub mod store_health;
pub mod store_memory;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::AppState;

use crate::problem::ApiError;

/// The whole HTTP application and its OpenAPI document.
pub fn app(state: AppState) -> (axum::Router, utoipa::openapi::OpenApi) {
    let protected = OpenApiRouter::new()
        .routes(routes!(routes::services::list_services))
        .routes(routes!(routes::services::get_service))
        .routes(routes!(routes::audit::list_audit))
        .routes(routes!(routes::audit::verify_audit))
        .routes(routes!(
            routes::tokens::list_tokens,
            routes::tokens::create_token
        ))
        .routes(routes!(routes::tokens::revoke_token))
        .routes(routes!(
            routes::traffic::get_traffic,
            routes::traffic::put_traffic
        ))
        .routes(routes!(
            routes::deployments::create_deployment,
            routes::deployments::list_service_deployments
        ))
        .routes(routes!(routes::deployments::list_deployments))
        .routes(routes!(routes::deployments::get_deployment))
        .routes(routes!(routes::deployments::get_deployment_samples))
        .routes(routes!(routes::deployments::list_measurements))
        .routes(routes!(routes::deployments::service_status))
        .routes(routes!(routes::deployments::promote))
        .routes(routes!(routes::deployments::pause))
        .routes(routes!(routes::deployments::resume))
        .routes(routes!(routes::deployments::abort))
        .routes(routes!(routes::deployments::rollback))
        .routes(routes!(routes::deployments::validate))
        // Gates and approvals (issue 15).
        .routes(routes!(routes::approvals::approve))
        // Revisions (issue 15).
        .routes(routes!(routes::history::history))
        .routes(routes!(routes::history::rollback_to))
        .routes(routes!(routes::events::events))
        .routes(routes!(routes::telemetry::get_telemetry))
        // Autoscaling (issue 14).
        .routes(routes!(routes::scaling::get_scaling))
        .routes(routes!(routes::scaling::post_scale))
        .routes(routes!(routes::scaling::get_recommendations))
        .routes(routes!(routes::incidents::list_incidents))
        .routes(routes!(routes::incidents::get_incident))
        .routes(routes!(routes::incidents::acknowledge))
        .routes(routes!(routes::incidents::escalate))
        .routes(routes!(routes::incidents::resolve))
        .routes(routes!(routes::alerts::alertmanager))
        .routes(routes!(routes::alerts::webhook))
        .routes(routes!(routes::notifications::list_notifications))
        // Config reload (issue 11).
        .routes(routes!(routes::reload::reload))
        .routes(routes!(openapi::openapi_json))
        // The dashboard's own questions and the browser's way into the event stream.
        .routes(routes!(routes::dashboard_api::whoami))
        .routes(routes!(routes::dashboard_api::all_status))
        .routes(routes!(routes::events::create_ticket))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let public = OpenApiRouter::new()
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::health))
        .routes(routes!(routes::telemetry::health_metrics))
        .routes(routes!(metrics));
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(public)
        .merge(protected)
        .split_for_parts();
    openapi::add_common_responses(&mut doc);
    let doc_json = Arc::new(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let router = router
        // Aliases used by the original probes; same handlers, kept out of the document.
        .route("/health/liveness", axum::routing::get(health::live))
        .route("/health/readiness", axum::routing::get(health::ready))
        .fallback(dashboard_or_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            problem::BODY_LIMIT_BYTES,
        ))
        .layer(axum::Extension(doc_json))
        .layer(middleware::map_response(problem::plain_errors_as_problems))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http_metrics::count_requests,
        ))
        .with_state(state);
    (router, doc)
}

/// The dashboard answers what no API route does (its files and client routes);
/// anything else is the API's 404.
async fn dashboard_or_not_found(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    match dashboard::respond(&method, &uri, &headers) {
        Some(response) => response,
        None => not_found(uri).await.into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {}; the API is described at /api/v1/openapi.json",
        uri.path()
    ))
}

/// A route that exists, asked with a method it does not take (axum adds `Allow`).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} does not take {method}; the `Allow` header lists what it takes, and the API is described at /api/v1/openapi.json",
        uri.path()
    ))
}

/// Prometheus text exposition of rampart's own metrics and the router's.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match rampart_telemetry::render(&state.registry) {
        Ok(text) => (
            [(header::CONTENT_TYPE, rampart_telemetry::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight
/// requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, _) = app(state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
