//! Headers that make the browser do less on an attacker's behalf, and
//! refusal of requests that name their tenant twice (issue 16, item 9).
//! Our pages load nothing from elsewhere, so their Content-Security-Policy
//! can say so; nothing of ours is meant to be framed; JSON is never to be
//! sniffed as anything else.

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::http::tenant::CLIENT_ID_HEADER;

/// The front page: its own script and styles, the widget it embeds
/// (same origin), style attributes the widget sets.
const FRONT_PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The API docs page: one inline script and style of its own, the schema
/// fetched from here, nothing else.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn headers(request: Request, next: Next) -> Response {
    // Two Host or X-Client-ID headers: which one names the tenant would
    // depend on who reads them (a proxy, us), so neither does.
    for name in [header::HOST, HeaderName::from_static(CLIENT_ID_HEADER)] {
        if request.headers().get_all(&name).iter().nth(1).is_some() {
            return AppError::BadRequest(format!("more than one {name} header")).into_response();
        }
    }
    let page_csp = match request.uri().path() {
        "/" => Some(FRONT_PAGE_CSP),
        "/api/docs" => Some(DOCS_CSP),
        _ => None,
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(csp) = page_csp {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
    }
    response
}
