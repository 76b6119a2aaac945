//! The extractors that say who is asking: `PresentedToken` (the bearer
//! token), `AuthUser` (401 without a live token), `Member` (403 unless the
//! user belongs to the request's tenant; operators pass), `Owner`,
//! `Operator`, and `ClientAddress` (for rate limits). Tokens come as
//! `Authorization: Bearer <token>`, or `Token <token>` as Django REST
//! framework clients send them.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::auth::{AuthError, AuthUser, Role, users};
use crate::error::AppError;
use crate::http::extract::CurrentTenant;
use crate::http::state::AppState;
use crate::tenancy::Tenant;

/// The well-formed token in the request's `Authorization` header.
#[derive(Debug, Clone)]
pub struct PresentedToken(pub String);

impl FromRequestParts<AppState> for PresentedToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        let Some(authorization) = parts.headers.get(AUTHORIZATION) else {
            // A browser's session cookie (the dashboard), CSRF-checked.
            return crate::http::extract::session::from_cookie(parts)?
                .map(Self)
                .ok_or(AppError::Auth(AuthError::Unauthenticated));
        };
        authorization
            .to_str()
            .ok()
            .and_then(crate::auth::tokens::from_authorization)
            .map(|t| Self(t.to_string()))
            .ok_or(AppError::Auth(AuthError::Unauthenticated))
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Found once per request, however many extractors ask.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let PresentedToken(token) = PresentedToken::from_request_parts(parts, state).await?;
        let user = users::find_by_token(&state.db, &token, &state.settings.auth)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// A user allowed into the request's tenant: a member, or an operator
/// (`role` is then None unless they are also a member).
#[derive(Debug, Clone)]
pub struct Member {
    pub user: AuthUser,
    pub tenant: Arc<Tenant>,
    pub role: Option<Role>,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Who before where: a stranger gets 401, not a hint about tenants.
        let user = AuthUser::from_request_parts(parts, state).await?;
        let CurrentTenant(tenant) = CurrentTenant::from_request_parts(parts, state).await?;
        let role = user.role_in(tenant.schema.as_str());
        if role.is_none() && !user.is_operator {
            return Err(AuthError::Forbidden.into());
        }
        Ok(Self { user, tenant, role })
    }
}

/// The client's address: with `trust_proxy`, the last `X-Forwarded-For` hop
/// (what the proxy in front of us, such as Render's, saw); else the TCP peer.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .settings
            .server
            .trust_proxy
            .then(|| parts.headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            // An address or nothing: the hop is a limiter's key, and a
            // client must not choose keys of any length (issue 16).
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| ip.to_string());
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        Ok(Self(forwarded.or(peer).unwrap_or_else(|| "unknown".into())))
    }
}

/// An operator: runs the whole platform.
#[derive(Debug, Clone)]
pub struct Operator(pub AuthUser);

impl FromRequestParts<AppState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_operator {
            Ok(Self(user))
        } else {
            Err(AuthError::OperatorOnly.into())
        }
    }
}

/// Someone who may read `/metrics`: a scraper presenting
/// `server.metrics_token`, or a signed-in operator. The scrape names no
/// tenant, but it tells the load, the pool and the queue to whoever asks,
/// which helps an attacker time an attack (issue 16, item 13).
#[derive(Debug, Clone)]
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The scrape token is the operator's choice of text, not one of our
        // sign-in tokens: read the header as is.
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if let (Some(expected), Some(token)) = (&state.settings.server.metrics_token, presented) {
            // Digests of equal length, compared in constant time.
            use sha2::Digest;
            let given = sha2::Sha256::digest(token.as_bytes());
            let expected = sha2::Sha256::digest(expected.expose().as_bytes());
            if crate::http::extract::session::constant_time_eq(&given, &expected) {
                return Ok(Self);
            }
        }
        Operator::from_request_parts(parts, state)
            .await
            .map(|_| Self)
    }
}

/// A member who may change the tenant's bot: an owner, or an operator.
#[derive(Debug, Clone)]
pub struct Owner(pub Member);

impl FromRequestParts<AppState> for Owner {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let member = Member::from_request_parts(parts, state).await?;
        if member.role == Some(Role::Owner) || member.user.is_operator {
            Ok(Self(member))
        } else {
            Err(AuthError::OwnerOnly.into())
        }
    }
}
