//! Sign-in for the client API: `POST /api/auth/login`, `POST
//! /api/auth/logout`, `GET /api/auth/user`, `POST /api/auth/password/change`,
//! and the extractors later routes use: `AuthUser` (401 without a live
//! token) and `Member` (403 unless the user belongs to the request's
//! tenant; operators pass). Tokens come as `Authorization: Bearer <token>`,
//! or `Token <token>` as Django REST framework clients send them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, AuthUser, Role, users};
use crate::error::{AppError, ErrorBody};
use crate::http::json::ApiJson;
use crate::http::tenant::CurrentTenant;
use crate::state::AppState;
use crate::tenancy::Tenant;

/// The well-formed token in the request's `Authorization` header.
#[derive(Debug, Clone)]
pub struct PresentedToken(pub String);

impl FromRequestParts<AppState> for PresentedToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
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
        let user = users::find_by_token(&state.pool, &token, &state.settings.auth)
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Send it back as `Authorization: Bearer <token>`.
    pub token: String,
}

/// Signs in: a token for the API.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "account",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = LoginResponse),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or for this account; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, AppError> {
    // Checked before any hashing: a refused attempt costs us nothing.
    let account = body.email.trim().to_lowercase();
    let limits = &state.login_limits;
    limits
        .address
        .check(&address)
        .and_then(|()| {
            limits
                .account_from_address
                .check(&format!("{account}\n{address}"))
        })
        .map_err(AppError::TooManyRequests)?;
    let token = users::authenticate(
        &state.pool,
        &body.email,
        &body.password,
        &state.settings.auth,
    )
    .await?;
    Ok(Json(LoginResponse { token }))
}

/// Revokes the token sent.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No live token", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    PresentedToken(token): PresentedToken,
) -> Result<StatusCode, AppError> {
    users::revoke_token(&state.pool, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user and their tenants.
#[utoipa::path(
    get,
    path = "/api/auth/user",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AuthUser),
        (status = 401, description = "No live token", body = ErrorBody),
    )
)]
pub async fn user(user: AuthUser) -> Json<AuthUser> {
    Json(user)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Changes the password; every other token of the user is revoked.
#[utoipa::path(
    post,
    path = "/api/auth/password/change",
    tag = "account",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "The new password is too short or too long", body = ErrorBody),
        (status = 401, description = "No live token, or the old password is wrong", body = ErrorBody),
        (status = 429, description = "Too many password changes for this account; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Too many passwords being checked at once; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    PresentedToken(token): PresentedToken,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, AppError> {
    // Before any hashing, right or wrong: see `LoginLimits::password_change`.
    state
        .login_limits
        .password_change
        .check(&user.id.to_string())
        .map_err(AppError::TooManyRequests)?;
    users::change_password(
        &state.pool,
        user.id,
        &body.old_password,
        &body.new_password,
        Some(&token),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MembershipResponse {
    /// The tenant's client id.
    pub tenant: String,
    /// None for an operator who is not also a member.
    pub role: Option<Role>,
    pub is_operator: bool,
}

/// The user's standing in the request's tenant.
#[utoipa::path(
    get,
    path = "/api/auth/membership",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's role here", body = MembershipResponse),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
    )
)]
pub async fn membership(member: Member) -> Json<MembershipResponse> {
    Json(MembershipResponse {
        tenant: member.tenant.schema.to_string(),
        role: member.role,
        is_operator: member.user.is_operator,
    })
}
