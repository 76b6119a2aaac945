//! Sign-in for the client API: `POST /api/auth/login`, `POST
//! /api/auth/logout`, `GET /api/auth/user`, `POST /api/auth/password/change`,
//! and `GET /api/auth/membership`; who is asking is found by the extractors
//! in `http::extract::auth`. Tokens come as `Authorization: Bearer <token>`,
//! or `Token <token>` as Django REST framework clients send them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, Role, users};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiJson, ClientAddress, Member, PresentedToken};
use crate::http::state::AppState;

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
    let token =
        users::authenticate(&state.db, &body.email, &body.password, &state.settings.auth).await?;
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
    users::revoke_token(&state.db, &token).await?;
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
        (status = 400, description = "The new password is too short or too long, or `old_password` is not the current password (`wrong_password`)", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
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
        &state.db,
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
