//! Browser sessions for the dashboard (`/app/`): `POST /api/auth/session`
//! signs in as `POST /api/auth/login` does but puts the token in an
//! HttpOnly, SameSite=Strict cookie the page's scripts cannot read;
//! `DELETE /api/auth/session` revokes it and clears the cookies. The
//! extractors that take a bearer token take this cookie too
//! ([`from_cookie`]), so every route serves both kinds of client.
//!
//! A cookie is sent by the browser whoever made the page, so an unsafe
//! request (anything but GET, HEAD, OPTIONS) authenticated by it must prove
//! it came from our own page: its `Origin` (else `Referer`) names the
//! request's own host, and its `X-CSRF-Token` header repeats the
//! `chatter_csrf` cookie (double submit: another site can neither read
//! that cookie nor set the header). Bearer tokens need neither: a browser
//! never attaches them on its own.

use axum::extract::State;
use axum::http::header::{COOKIE, HOST, ORIGIN, REFERER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;

use crate::auth::users;
use crate::error::{AppError, ErrorBody};
use crate::http::auth::{ClientAddress, LoginRequest, LoginResponse};
use crate::http::json::ApiJson;
use crate::state::AppState;

/// The token, HttpOnly.
pub const SESSION_COOKIE: &str = "chatter_session";
/// The CSRF secret the page's scripts read and echo in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "chatter_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The session token of a request that sent no `Authorization` header:
/// None without the cookie; a CSRF refusal for an unsafe method that does
/// not prove it came from our page.
pub fn from_cookie(parts: &Parts) -> Result<Option<String>, AppError> {
    // Checked as a bearer token is: a malformed cookie is no session.
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE).and_then(|t| {
        crate::auth::tokens::from_authorization(&format!("Bearer {t}")).map(str::to_string)
    }) else {
        return Ok(None);
    };
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        check_csrf(&parts.headers)?;
    }
    Ok(Some(token))
}

/// Origin (else Referer) is this host, and the header repeats the cookie.
pub fn check_csrf(headers: &HeaderMap) -> Result<(), AppError> {
    check_same_origin(headers)?;
    let cookie = cookie(headers, CSRF_COOKIE).unwrap_or("");
    let header = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if cookie.is_empty() || !constant_time_eq(cookie.as_bytes(), header.as_bytes()) {
        return Err(AppError::Csrf(
            "the X-CSRF-Token header does not match the chatter_csrf cookie",
        ));
    }
    Ok(())
}

/// The request's `Origin`, or the origin of its `Referer`, names its `Host`
/// (port included). A request with neither is refused: every browser we
/// serve sends `Origin` on a POST, PUT or DELETE from a script.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let source = headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
        .or_else(|| headers.get(REFERER).and_then(|v| v.to_str().ok()));
    let authority = source
        .and_then(|s| s.split_once("://"))
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    match authority {
        Some(authority) if !host.is_empty() && authority.eq_ignore_ascii_case(host) => Ok(()),
        Some(_) => Err(AppError::Csrf("the request comes from another site")),
        None => Err(AppError::Csrf(
            "a request signed in by cookie must send Origin or Referer",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the browser reached us over TLS: only a trusted proxy's
/// `X-Forwarded-Proto` can say so (the server itself speaks plain HTTP).
fn over_tls(headers: &HeaderMap, state: &AppState) -> bool {
    state.settings.server.trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next_back())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age: u64, http_only: bool, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; SameSite=Strict{}{}",
        if http_only { "; HttpOnly" } else { "" },
        if secure { "; Secure" } else { "" },
    )
}

fn with_cookies(mut response: Response, cookies: [String; 2]) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// Signs in for a browser: the session and CSRF cookies, no token in the body.
#[utoipa::path(
    post,
    path = "/api/auth/session",
    tag = "account",
    request_body = LoginRequest,
    responses(
        (status = 204, description = "Signed in: `chatter_session` (HttpOnly) and `chatter_csrf` cookies set"),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "`csrf`: Origin is another site", body = ErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    body: ApiJson<LoginRequest>,
) -> Result<Response, AppError> {
    // Another site must not sign a visitor in to an account of its choosing.
    check_same_origin(&headers)?;
    let secure = over_tls(&headers, &state);
    let max_age = state.settings.auth.max_age_secs;
    let axum::Json(LoginResponse { token }) =
        crate::http::auth::login(State(state), address, body).await?;
    let mut csrf = [0u8; 32];
    rand::rng().fill_bytes(&mut csrf);
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        [
            set_cookie(SESSION_COOKIE, &token, max_age, true, secure),
            set_cookie(CSRF_COOKIE, &hex::encode(csrf), max_age, false, secure),
        ],
    ))
}

/// Signs the browser out: revokes its cookie's session and clears both cookies.
#[utoipa::path(
    delete,
    path = "/api/auth/session",
    tag = "account",
    responses(
        (status = 204, description = "Signed out; the cookies are cleared"),
        (status = 403, description = "`csrf`: the CSRF check failed", body = ErrorBody),
    )
)]
pub async fn sign_out(State(state): State<AppState>, parts: Parts) -> Result<Response, AppError> {
    // The cookie's session only: a bearer token sent along is an API
    // client's, revoked by `POST /api/auth/logout`. Without the cookie
    // (signed out already) there is nothing to revoke, but the cookies
    // left are still cleared.
    if let Some(token) = from_cookie(&parts)? {
        users::revoke_token(&state.pool, &token).await?;
    }
    let headers = &parts.headers;
    let secure = over_tls(headers, &state);
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        [
            set_cookie(SESSION_COOKIE, "", 0, true, secure),
            set_cookie(CSRF_COOKIE, "", 0, false, secure),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; chatter_csrf=xyz"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "chatter"), None);
    }

    #[test]
    fn the_origin_must_be_this_host() {
        let ok = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ]);
        assert!(check_same_origin(&ok).is_ok());
        let referer = headers(&[
            ("host", "app.example"),
            ("referer", "https://app.example/app/#/faqs"),
        ]);
        assert!(check_same_origin(&referer).is_ok());
        let other_port = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:9000"),
        ]);
        assert!(check_same_origin(&other_port).is_err());
        let suffix = headers(&[
            ("host", "app.example"),
            ("origin", "https://app.example.evil"),
        ]);
        assert!(check_same_origin(&suffix).is_err());
        assert!(check_same_origin(&headers(&[("host", "app.example")])).is_err());
    }

    #[test]
    fn the_csrf_header_must_repeat_the_cookie() {
        let base = [("host", "h"), ("origin", "http://h")];
        let good = headers(&[
            base[0],
            base[1],
            ("cookie", "chatter_csrf=abc"),
            (CSRF_HEADER, "abc"),
        ]);
        assert!(check_csrf(&good).is_ok());
        let wrong = headers(&[
            base[0],
            base[1],
            ("cookie", "chatter_csrf=abc"),
            (CSRF_HEADER, "abd"),
        ]);
        assert!(check_csrf(&wrong).is_err());
        let missing = headers(&[base[0], base[1], ("cookie", "chatter_csrf=abc")]);
        assert!(check_csrf(&missing).is_err());
        let empty = headers(&[
            base[0],
            base[1],
            ("cookie", "chatter_csrf="),
            (CSRF_HEADER, ""),
        ]);
        assert!(check_csrf(&empty).is_err());
    }
}
