//! The HTTP surface: the router (here), its layers (`layers`), the
//! extractors handlers take (`extract`), and one file per route group
//! (`routes`).

pub mod allowed_hosts;
pub mod assets;
pub mod extract;
pub mod layers;
pub mod openapi;
pub mod routes;
pub mod state;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::layers::{cors, hosts, request_log, security, tenant};
use crate::http::openapi::Layers;
use crate::http::routes::{
    analytics, auth, billing, bot, chat, conversations, dashboard, faq_tools, faqs, health,
    members, metrics, operator, recovery, session, signup, static_files, widget,
};
use crate::http::state::AppState;

/// Request bodies above this are answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application. Layers, outermost first: request log (and the
/// request metrics), allowed hosts (not for `/healthz` and `/metrics`, so
/// load-balancer probes and scrapers by IP work), tenant resolution (tenant
/// routes only; the visitor routes resolve it in their CORS layer).
/// [`openapi_document`] describes these routes from the same route lists.
pub fn router(state: AppState) -> Router {
    let (tenant_routes, _) = tenant_routes().split_for_parts();
    let tenant_routes = tenant_routes.route_layer(middleware::from_fn_with_state(
        state.clone(),
        tenant::resolve,
    ));
    // `layer`, not `route_layer`: a preflight (OPTIONS) matches no method
    // of these routes and must still reach the CORS layer.
    let (visitor_routes, _) = visitor_routes().split_for_parts();
    let visitor_routes =
        visitor_routes.layer(middleware::from_fn_with_state(state.clone(), cors::visitor));
    let (checked, _) = checked_routes().split_for_parts();
    let checked = checked
        .route("/api/schema.json", get(openapi::schema_json))
        .route("/api/docs", get(openapi::docs))
        // The front page and the embedded files (the widget): not API.
        .route("/", get(static_files::front_page))
        .route("/static/{*path}", get(static_files::file))
        .route("/app", get(dashboard::redirect))
        .route("/app/", get(dashboard::index))
        .route("/app/{*path}", get(dashboard::file))
        .merge(tenant_routes)
        .merge(visitor_routes)
        .fallback(health::not_found)
        // Nothing we take is large: refuse bigger bodies before reading them.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), hosts::check));
    let (open, _) = open_routes().split_for_parts();

    open.merge(checked)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            request_log::log,
        ))
        .layer(middleware::from_fn(security::headers))
        .with_state(state)
}

/// The OpenAPI document of [`router`]'s routes, from the same route lists.
pub fn openapi_document(chat: &crate::config::ChatSettings) -> utoipa::openapi::OpenApi {
    let mut paths = utoipa::openapi::OpenApi::default();
    for (routes, layers) in [
        (open_routes(), Layers::Open),
        (checked_routes(), Layers::HostChecked),
        (tenant_routes(), Layers::Tenant),
        (visitor_routes(), Layers::Tenant),
    ] {
        let mut api = routes.into_openapi();
        openapi::apply_layers(&mut api, layers);
        paths.merge(api);
    }
    openapi::document(paths, chat)
}

/// Outside the Host check.
fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(metrics::metrics))
}

/// Behind the Host check, with no tenant: accounts and the platform.
fn checked_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::readyz))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(session::sign_out_everywhere))
        .routes(routes!(session::sign_in, session::sign_out))
        .routes(routes!(auth::user))
        .routes(routes!(auth::change_password))
        .routes(routes!(signup::sign_up))
        .routes(routes!(signup::page))
        .routes(routes!(signup::options))
        .routes(routes!(recovery::request))
        .routes(routes!(recovery::confirm))
        .routes(routes!(recovery::verify_email))
        .routes(routes!(recovery::resend_verification))
        .routes(routes!(operator::list_tenants, operator::create_tenant))
        .routes(routes!(operator::delete_tenant))
        .routes(routes!(operator::list_users, operator::create_user))
        .routes(routes!(
            operator::set_membership,
            operator::remove_membership
        ))
        .routes(routes!(billing::tenant_status, billing::grant))
        .routes(routes!(billing::webhook))
        .routes(routes!(
            operator::list_domains,
            operator::add_domain,
            operator::remove_domain
        ))
}

/// What the widget calls from the client's site: behind the Host check,
/// CORS (`cors::visitor`) and tenant resolution.
fn visitor_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(widget::config))
        .routes(routes!(chat::chat))
        .routes(routes!(chat::history))
        .routes(routes!(chat::feedback))
}

/// Behind the Host check and tenant resolution.
fn tenant_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::membership))
        .routes(routes!(bot::get_config, bot::put_config))
        .routes(routes!(faqs::list, faqs::create))
        .routes(routes!(faqs::import))
        .routes(routes!(faq_tools::try_question))
        .routes(routes!(faq_tools::preview_import))
        .routes(routes!(faq_tools::health))
        .routes(routes!(faqs::get, faqs::update, faqs::delete))
        .routes(routes!(faqs::add_phrasing, faqs::remove_phrasing))
        .routes(routes!(analytics::summary))
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::export))
        .routes(routes!(conversations::get, conversations::delete))
        .routes(routes!(members::list, members::add))
        .routes(routes!(members::set_role, members::remove))
        .routes(routes!(billing::page))
        .routes(routes!(billing::subscribe))
        .routes(routes!(billing::checkout))
        .routes(routes!(billing::change_plan))
        .routes(routes!(billing::cancel))
        .routes(routes!(billing::invoices))
}
