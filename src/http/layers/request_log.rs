//! One log line per request: tenant, method, route, status, latency; and
//! the request metrics (route and status only: no tenant label).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::extract::TenantTag;
use crate::metrics::Metrics;

pub async fn log(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
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
    let status = response.status().as_u16();
    let latency = started.elapsed();
    metrics.record_request(&route, status, latency);
    tracing::info!(
        target: "chatter::http",
        tenant,
        %method,
        route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
    response
}
