//! Django's ALLOWED_HOSTS, kept: a request whose Host is neither allowed by
//! the settings nor a tenant's domain gets 400.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::http::allowed_hosts::AllowedHosts;
use crate::tenancy::TenantResolver;
use crate::tenancy::domain::host_without_port;

/// The request's host without port: the Host header, or the URI's
/// authority (HTTP/2). None for a host no DNS name or address could be
/// (see `plausible_host`).
pub fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .filter(|raw| raw.len() <= MAX_HOST_HEADER_LEN)
        .map(host_without_port)
        .filter(|h| plausible_host(h))
}

/// A DNS name is at most 253 characters (RFC 1035); with a port and IPv6
/// brackets a Host header is a few more.
const MAX_HOST_LEN: usize = 253;
const MAX_HOST_HEADER_LEN: usize = MAX_HOST_LEN + 8;

/// Could be a host name or an address: 1 to 253 characters of letters,
/// digits, `-`, `.`, `_` (seen in the wild) and `:` (IPv6). Anything else is
/// refused before it reaches a cache or the database, so a client cannot
/// fill memory with unique 60 KB hosts (issue 16).
pub fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

pub async fn check(
    State(allowed): State<Arc<AllowedHosts>>,
    State(tenants): State<Arc<TenantResolver>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(host) = request_host(&request) else {
        return AppError::DisallowedHost(String::new()).into_response();
    };
    if allowed.allows(&host) {
        return next.run(request).await;
    }
    // A tenant's own domain is allowed without listing it in ALLOWED_HOSTS.
    let known = tenants.by_host(&host).await;
    match known {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => AppError::DisallowedHost(host).into_response(),
        Err(e) => AppError::Db(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_work_like_django() {
        let hosts = AllowedHosts::new(&[".onrender.com".into(), "localhost".into()]);
        assert!(hosts.allows("chatter.onrender.com"));
        assert!(hosts.allows("onrender.com"));
        assert!(hosts.allows("localhost"));
        assert!(!hosts.allows("evilonrender.com"));
        assert!(!hosts.allows("example.com"));
        assert!(AllowedHosts::new(&["*".into()]).allows("anything.example"));
    }

    #[test]
    fn implausible_hosts_are_refused() {
        assert!(plausible_host("shop.example.com"));
        assert!(plausible_host("::1"));
        assert!(!plausible_host(""));
        assert!(!plausible_host(&"a".repeat(254)));
        assert!(!plausible_host("acme.test@beta.test"));
        assert!(!plausible_host("a b"));
    }
}
