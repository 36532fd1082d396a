//! Counts every HTTP request by route template (not raw path, to keep label
//! cardinality bounded), method (non-standard ones as `other`, see
//! `ServerMetrics::observe_request`) and status.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state
        .metrics
        .observe_request(&route, &method, response.status().as_u16());
    response
}
