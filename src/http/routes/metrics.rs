//! `GET /metrics`: the Prometheus scrape. Outside the allowed-host check
//! (scrapers come by IP); it shows no tenant, path or visitor text, and
//! answers only `server.metrics_token` or an operator (`MetricsReader`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ErrorBody;
use crate::http::extract::MetricsReader;
use crate::http::state::AppState;
use crate::metrics::ScrapeGauges;

/// The Prometheus scrape: requests, latencies, answers, the pool, the model and the exchange writer.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Neither `server.metrics_token` nor a live token", body = ErrorBody),
        (status = 403, description = "Signed in, but not an operator", body = ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>, _reader: MetricsReader) -> Response {
    let pool = state.db.status();
    let indexes = state.answerer.index_cache_stats();
    let matchers = state.answerer.matcher_stats();
    let (question_cache_hits, question_cache_misses) = state.answerer.question_cache_lookups();
    let writer = state.answerer.writer_stats();
    let gauges = ScrapeGauges {
        queue_depth: state.engine.queue().map_or(0, |queue| queue.depth()),
        pool_size: pool.size,
        pool_available: pool.available,
        pool_waiting: pool.waiting,
        index_cache_bytes: indexes.bytes,
        index_cache_tenants: indexes.entries,
        index_builds: indexes.builds,
        index_evictions: indexes.evictions,
        question_cache_bytes: state.answerer.question_cache_bytes(),
        question_cache_hits,
        question_cache_misses,
        matcher_trainings: matchers.trained,
        matcher_loads: matchers.loaded,
        exchange_groups: writer.groups,
        exchanges_grouped: writer.grouped,
        exchange_groups_failed: writer.failed_groups,
        exchanges_stored_alone: writer.alone,
    };
    match state.metrics.render(gauges) {
        Ok(body) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
