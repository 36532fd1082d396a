//! Bearer-token authentication and role checks for every `/api/v1` route.
//!
//! The required role follows from the request alone — token management needs admin,
//! other changes need operator, reads need viewer — so a route added later is
//! protected without anyone remembering to protect it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rampart_store::Role;

use crate::problem::ApiError;
use crate::state::AppState;

/// Who made the request; handlers use the name as the audit actor.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_name: String,
    pub role: Role,
}

/// The event stream, the one route a stream ticket may open.
pub const EVENTS_PATH: &str = "/api/v1/events";
/// Trades the caller's token for a stream ticket: any role, as reading the stream.
pub const EVENTS_TICKET_PATH: &str = "/api/v1/events/ticket";

/// Re-reading the config changes every service at once: admin only.
pub const RELOAD_PATH: &str = "/api/v1/reload";

pub fn required_role(method: &Method, path: &str) -> Role {
    if path == "/api/v1/tokens" || path.starts_with("/api/v1/tokens/") || path == RELOAD_PATH {
        Role::Admin
    } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (path == EVENTS_TICKET_PATH && *method == Method::POST)
        || is_approval(method, path)
    {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// An approval needs no right to deploy: its handler matches the token against the
/// approval the step names (`routes::approvals`).
fn is_approval(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && path
            .strip_prefix("/api/v1/services/")
            .and_then(|rest| rest.strip_suffix("/approve"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

pub async fn require_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    // Owned copies: the request itself cannot be held across the store read.
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    if authorization.is_none()
        && path == EVENTS_PATH
        && let Some(ticket) = ticket_in(request.uri().query())
    {
        return match redeem(&state, peer, ticket) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                next.run(request).await
            }
            Err(e) => e.into_response(),
        };
    }
    match authorize(&state, peer, &method, &path, authorization.as_ref()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// The `ticket` query parameter (tickets are hex: nothing to decode).
fn ticket_in(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ticket="))
        .map(str::to_string)
}

/// A stream ticket in place of the bearer header: single use, short-lived, counted
/// against the address's failure budget like a wrong token when it does not work.
fn redeem(state: &AppState, peer: SocketAddr, ticket: String) -> Result<Principal, ApiError> {
    let ip = peer.ip();
    if let Some(retry_after_secs) = state.auth_limiter.blocked_for(ip) {
        state.metrics.auth_failure("rate_limited");
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "too many failed authentication attempts from {ip}; try again in {retry_after_secs}s"
            ),
            retry_after_secs,
        });
    }
    state.live.redeem_ticket(&ticket).ok_or_else(|| {
        state.metrics.auth_failure("invalid");
        state.auth_limiter.record_failure(ip);
        ApiError::Unauthorized(
            "the stream ticket is unknown, used or expired; get a new one with \
             `POST /api/v1/events/ticket`"
                .into(),
        )
    })
}

async fn authorize(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Result<Principal, ApiError> {
    let ip = peer.ip();
    if let Some(retry_after_secs) = state.auth_limiter.blocked_for(ip) {
        state.metrics.auth_failure("rate_limited");
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "too many failed authentication attempts from {ip}; try again in {retry_after_secs}s"
            ),
            retry_after_secs,
        });
    }
    let fail = |reason: &'static str, error: ApiError| {
        state.metrics.auth_failure(reason);
        state.auth_limiter.record_failure(ip);
        error
    };
    let Some(value) = authorization else {
        return Err(fail(
            "missing",
            ApiError::Unauthorized(
                "this route needs a bearer token: send `Authorization: Bearer <token>` \
                 (create one with `rampart token create`)"
                    .into(),
            ),
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let Some(secret) = secret else {
        return Err(fail(
            "malformed",
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into()),
        ));
    };
    let secret = secret.to_string();
    // A read only: the use is noted in memory and written in a batch later.
    let found = state.store.read(move |tx| tx.authenticate(&secret)).await?;
    let Some(mut token) = found else {
        return Err(fail(
            "invalid",
            ApiError::Unauthorized("the token is unknown or revoked".into()),
        ));
    };
    let needed = required_role(method, path);
    if token.role < needed {
        // A valid token with too small a role is not a guessing attempt: counted, but
        // it does not use up the address's failure budget.
        state.metrics.auth_failure("forbidden");
        return Err(ApiError::Forbidden(format!(
            "token `{}` has role {}, but {} {} needs role {}",
            token.name, token.role, method, path, needed
        )));
    }
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes
        && token.role < Role::Admin
        && let Some(incident) = state.engine.safeguards().locked_down_by()
    {
        return Err(ApiError::Forbidden(format!(
            "the API is read-only below admin while incident {incident} holds it in lock-down; \
             an admin can resolve it (`rampart incident resolve {incident}`)"
        )));
    }
    state.store.note_token_use(&mut token);
    Ok(Principal {
        token_name: token.name,
        role: token.role,
    })
}
