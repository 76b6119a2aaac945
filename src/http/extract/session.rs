//! Browser sessions for the dashboard (`/app/`), as requests carry them:
//! the token in an HttpOnly, SameSite=Strict cookie the page's scripts
//! cannot read (set and cleared by `routes::session`). The extractors that
//! take a bearer token take this cookie too ([`from_cookie`]), so every
//! route serves both kinds of client.
//!
//! A cookie is sent by the browser whoever made the page, so an unsafe
//! request (anything but GET, HEAD, OPTIONS) authenticated by it must prove
//! it came from our own page: its `Origin` (else `Referer`) names the
//! request's own host, and its `X-CSRF-Token` header repeats the
//! `chatter_csrf` cookie (double submit: another site can neither read
//! that cookie nor set the header). Bearer tokens need neither: a browser
//! never attaches them on its own.

use axum::http::header::{COOKIE, HOST, ORIGIN, REFERER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

use crate::error::AppError;

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

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
