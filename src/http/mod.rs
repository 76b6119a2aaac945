//! The HTTP surface: the router, its layers, and one file per route group.

pub mod analytics;
pub mod auth;
pub mod bot;
pub mod chat;
pub mod conversations;
pub mod cors;
pub mod faqs;
pub mod health;
pub mod hosts;
pub mod json;
pub mod metrics;
pub mod operator;
pub mod request_log;
pub mod static_files;
pub mod tenant;
pub mod widget;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::state::AppState;

/// Request bodies above this are answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application. Layers, outermost first: request log (and the
/// request metrics), allowed hosts (not for `/healthz` and `/metrics`, so
/// load-balancer probes and scrapers by IP work), tenant resolution (tenant
/// routes only; the visitor routes resolve it in their CORS layer).
pub fn router(state: AppState) -> Router {
    // What the widget calls from the client's site: CORS, and the tenant.
    // `layer`, not `route_layer`: a preflight (OPTIONS) matches no method
    // here and must still reach the CORS layer.
    let visitor_routes = Router::new()
        .route("/api/widget/config", get(widget::config))
        .route("/api/chat", post(chat::chat))
        .route("/api/chat/history", get(chat::history))
        .route("/api/chat/feedback", post(chat::feedback))
        .layer(middleware::from_fn_with_state(state.clone(), cors::visitor));

    let tenant_routes = Router::new()
        .route("/api/auth/membership", get(auth::membership))
        .route("/api/bot/config", get(bot::get_config).put(bot::put_config))
        .route("/api/faqs", get(faqs::list).post(faqs::create))
        .route("/api/faqs/import", post(faqs::import))
        .route("/api/analytics/summary", get(analytics::summary))
        .route("/api/conversations", get(conversations::list))
        .route("/api/conversations/export.csv", get(conversations::export))
        .route(
            "/api/conversations/{id}",
            get(conversations::get).delete(conversations::delete),
        )
        .route(
            "/api/faqs/{id}",
            get(faqs::get).put(faqs::update).delete(faqs::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            tenant::resolve,
        ));

    let checked = Router::new()
        .route("/readyz", get(health::readyz))
        // The front page and the embedded files (the widget).
        .route("/", get(static_files::front_page))
        .route("/static/{*path}", get(static_files::file))
        // Accounts are not a tenant's: no X-Client-ID needed.
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/user", get(auth::user))
        .route("/api/auth/password/change", post(auth::change_password))
        // The platform's: operators only, no tenant.
        .route(
            "/api/tenants",
            get(operator::list_tenants).post(operator::create_tenant),
        )
        .route("/api/tenants/{schema}", delete(operator::delete_tenant))
        .route(
            "/api/users",
            get(operator::list_users).post(operator::create_user),
        )
        .route(
            "/api/memberships",
            post(operator::set_membership).delete(operator::remove_membership),
        )
        .route(
            "/api/domains",
            get(operator::list_domains)
                .post(operator::add_domain)
                .delete(operator::remove_domain),
        )
        .merge(tenant_routes)
        .merge(visitor_routes)
        .fallback(health::not_found)
        // Nothing we take is large: refuse bigger bodies before reading them.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), hosts::check));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(checked)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            request_log::log,
        ))
        .with_state(state)
}
