//! Getting back into an account by mail: `POST /api/auth/password-reset`
//! (asks for a link; the same answer whether the email has an account or
//! not), `POST /api/auth/password-reset/confirm` (a link's token and the
//! new password), `POST /api/auth/verify-email` (a sign-up's verification
//! link). The use cases are `crate::auth::recovery`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::users::normalize_email;
use crate::auth::{AuthUser, recovery};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiJson, ClientAddress};
use crate::http::routes::signup::reset_by_mail;
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(max_length = 254)]
    pub email: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetRequested {
    /// The same whether or not the email has an account.
    pub message: String,
}

/// Mails a password-reset link to the email's account, if it has one.
#[utoipa::path(
    post,
    path = "/api/auth/password-reset",
    tag = "account",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "Taken: a link is mailed if the email has an account (the answer does not say)", body = ResetRequested),
        (status = 400, description = "`email` is not an email address", body = ErrorBody),
        (status = 404, description = "Mail is not set up on this server: an operator resets passwords", body = ErrorBody),
        (status = 429, description = "Too many requests for this email or from this address; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn request(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<(StatusCode, Json<ResetRequested>), AppError> {
    let (Some(mailer), Some(base_url), true) = (
        state.mailer.clone(),
        state.settings.public_url(),
        reset_by_mail(&state),
    ) else {
        return Err(AppError::NotFound(
            "password reset by mail is not set up on this server: ask the platform's operator"
                .into(),
        ));
    };
    // Saying that a string is not an email tells nothing about accounts.
    let account =
        normalize_email(&body.email).map_err(|e| AppError::BadRequest(format!("email: {e}")))?;
    let limits = &state.reset_limits;
    limits
        .address
        .check(&address)
        .and_then(|()| limits.email.check(&account))
        .map_err(AppError::TooManyRequests)?;
    let ttl = Duration::from_secs(state.settings.auth.reset_link_ttl_secs);
    let db = state.db.clone();
    // In the background: finding the account, storing the link and talking
    // to the relay take time only when the email has an account.
    tokio::spawn(async move {
        if let Err(e) = recovery::request_reset(&db, &mailer, &base_url, &account, ttl).await {
            tracing::error!(error = %e, "password reset request failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetRequested {
            message: "If an account has this email, a link to choose a new password is on its way."
                .into(),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The token from the mailed link (after `#/reset/`).
    #[schema(max_length = 64)]
    pub token: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Sets a new password with a mailed link; the link works once, and every
/// sign-in of the account is revoked.
#[utoipa::path(
    post,
    path = "/api/auth/password-reset/confirm",
    tag = "account",
    request_body = ResetConfirm,
    responses(
        (status = 204, description = "The password is changed; sign in with it"),
        (status = 400, description = "`invalid_link` (used, expired or unknown), or `new_password` is too short or too long", body = ErrorBody),
        (status = 429, description = "Too many confirmations from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Too many passwords being hashed at once; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<StatusCode, AppError> {
    state
        .reset_limits
        .confirm
        .check(&address)
        .map_err(AppError::TooManyRequests)?;
    recovery::confirm_reset(&state.db, &body.token, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmail {
    /// The token from the mailed link (after `#/verify/`).
    #[schema(max_length = 64)]
    pub token: String,
}

/// Marks the account's address as verified; the link works once.
#[utoipa::path(
    post,
    path = "/api/auth/verify-email",
    tag = "account",
    request_body = VerifyEmail,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, description = "`invalid_link`: used, expired or unknown", body = ErrorBody),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyEmail>,
) -> Result<StatusCode, AppError> {
    recovery::verify_email(&state.db, &body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationResent {
    /// False when the address was confirmed already (nothing is sent).
    pub sent: bool,
}

/// Mails the signed-in user a new link to confirm their address (the older
/// links stop working).
#[utoipa::path(
    post,
    path = "/api/auth/verify-email/resend",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A link is on its way, or the address is confirmed already", body = VerificationResent),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "`csrf`: the CSRF check failed", body = ErrorBody),
        (status = 404, description = "Mail is not set up on this server", body = ErrorBody),
        (status = 429, description = "Too many links asked for this account; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<VerificationResent>, AppError> {
    let (Some(mailer), Some(base_url)) = (state.mailer.clone(), state.settings.public_url()) else {
        return Err(AppError::NotFound(
            "mail is not set up on this server".into(),
        ));
    };
    // The same bucket as reset requests for this address: either sends a
    // mail to it, and nobody may flood a mailbox.
    state
        .reset_limits
        .email
        .check(&user.email)
        .map_err(AppError::TooManyRequests)?;
    let ttl = Duration::from_secs(state.settings.auth.verify_link_ttl_secs);
    let sent = recovery::resend_verification(&state.db, &mailer, &base_url, user.id, ttl).await?;
    Ok(Json(VerificationResent { sent }))
}
