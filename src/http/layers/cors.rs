//! CORS for the visitor routes: the widget runs on the client's site, so
//! its requests come from another origin. A preflight is answered from its
//! `Origin` alone: browsers send no header values in it, so the tenant is
//! unknown, and the origin passes when any active tenant allows it (or any
//! tenant keeps the default open list). The real request names its tenant
//! and is held to that tenant's `allowed_origins` (empty: any origin); a
//! refused one gets 403 `origin_not_allowed`, readable by the widget so it
//! can say why. `Vary: Origin` always; `Access-Control-Allow-Origin` is the
//! request's own origin and never `null`. This layer also resolves the
//! tenant for these routes (`tenant::resolve` would refuse a preflight for
//! naming none).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::http::extract::TenantTag;
use crate::http::layers::tenant;
use crate::http::state::AppState;
use crate::origins::{MAX_ORIGIN_LEN, normalise, tenant_allows};

/// What the widget sends beyond the CORS-safelisted headers.
pub const ALLOW_HEADERS: &str = "Content-Type, X-Client-ID";
pub const ALLOW_METHODS: &str = "GET, POST";
/// Browsers may reuse a preflight this long (seconds); the real request is
/// checked every time anyway.
pub const MAX_AGE_SECS: u32 = 600;

pub async fn visitor(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Refused before it is stored with a conversation or echoed back.
    if origin.as_ref().is_some_and(|o| o.len() > MAX_ORIGIN_LEN) {
        return AppError::BadRequest(format!(
            "the Origin header is longer than {MAX_ORIGIN_LEN} characters"
        ))
        .into_response();
    }
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(&state, origin.as_deref()).await;
    }
    // The platform's own pages (the front page's live widget) are not
    // cross-origin: CORS does not apply to them.
    let origin = origin.filter(|o| !same_origin(o, request.headers()));
    let (client_id, host) = tenant::names(&request);
    let tenant = tenant::find(&state, client_id, host).await;
    let Some(origin) = origin else {
        let response = match tenant {
            Ok(tenant) => tenant::run_for(tenant, request, next).await,
            Err(e) => e.into_response(),
        };
        return vary(response);
    };
    // An origin that may read our answers: well formed and not `null`.
    let readable = normalise(&origin);
    let tenant = match tenant {
        Ok(tenant) => tenant,
        Err(e) => return allow(e.into_response(), &origin, readable.is_some()),
    };
    let bot = match state.bot_configs.get(&tenant.schema).await {
        Ok(bot) => bot,
        Err(e) => return allow(AppError::Db(e).into_response(), &origin, readable.is_some()),
    };
    if !readable
        .as_deref()
        .is_some_and(|o| tenant_allows(&bot.allowed_origins, o))
    {
        let mut response = AppError::OriginNotAllowed(origin.clone()).into_response();
        response
            .extensions_mut()
            .insert(TenantTag(tenant.schema.clone()));
        return allow(response, &origin, readable.is_some());
    }
    let response = tenant::run_for(tenant, request, next).await;
    allow(response, &origin, true)
}

async fn preflight(state: &AppState, origin: Option<&str>) -> Response {
    let Some((origin, normalised)) = origin.and_then(|o| Some((o, normalise(o)?))) else {
        return vary(refuse(origin));
    };
    let union = match state.widget_origins.get().await {
        Ok(union) => union,
        Err(e) => return vary(AppError::Db(e).into_response()),
    };
    if !union.allows(&normalised) {
        return vary(refuse(Some(origin)));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(MAX_AGE_SECS),
    );
    allow(vary(response), origin, true)
}

fn refuse(origin: Option<&str>) -> Response {
    AppError::OriginNotAllowed(origin.unwrap_or("(none)").to_string()).into_response()
}

/// Lets `origin` read the response (when `readable`), and says so varies.
fn allow(mut response: Response, origin: &str, readable: bool) -> Response {
    if readable && let Ok(value) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        // The widget waits as long as a 429 or 503 asks.
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
    vary(response)
}

/// The answer depends on `Origin` (and a preflight's on what it asks).
fn vary(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// `Origin` names this very host (the platform's own pages).
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(authority) = origin
        .split_once("://")
        .map(|(_, rest)| rest.to_ascii_lowercase())
    else {
        return false;
    };
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(&authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_compares_host_and_port() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("chat.example.com:8000"),
        );
        assert!(same_origin("http://chat.example.com:8000", &headers));
        assert!(!same_origin("http://chat.example.com", &headers));
        assert!(!same_origin("https://shop.example.com", &headers));
        assert!(!same_origin("null", &headers));
    }
}
