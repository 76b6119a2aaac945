//! One log line per request: tenant, method, route, status, latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::tenant::TenantTag;

pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The route pattern, not the path: no ids or query strings in the log.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let response = next.run(request).await;
    let tenant = response
        .extensions()
        .get::<TenantTag>()
        .map(|t| t.0.as_str())
        .unwrap_or("-");
    tracing::info!(
        target: "chatter::http",
        tenant,
        %method,
        route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
