//! Self-service sign-up: `POST /api/signup` (when `signup.enabled`; else
//! 404), `GET /signup` (the dashboard's sign-up page), and `GET
//! /api/auth/options`, which tells the sign-in page what this server
//! offers. The use case is `crate::signup`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::auth::recovery;
use crate::error::{AppError, ErrorBody};
use crate::http::extract::session::check_same_origin;
use crate::http::extract::{ApiJson, ClientAddress};
use crate::http::routes::session::{over_tls, signed_in};
use crate::http::state::AppState;
use crate::signup::{self, NewSignup};

fn signup_off() -> AppError {
    AppError::NotFound("sign-up is off on this server: ask the platform's operator".into())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// The business, as its bot and dashboard will name it.
    #[schema(min_length = 1, max_length = 200)]
    pub business_name: String,
    /// The bot's client id (and schema): lowercase letters, digits and
    /// `_`, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9_]{2,62}$")]
    pub slug: String,
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignupResponse {
    /// The new tenant's client id.
    pub tenant: String,
    pub email: String,
    /// Whether a verification link was mailed (only when mail is set up).
    pub verification_sent: bool,
    /// Whether this response signed the browser in (a same-origin request:
    /// the session cookies are set). Otherwise sign in with
    /// `POST /api/auth/login`.
    pub signed_in: bool,
}

/// Creates a business's tenant and its owner's account, all or nothing.
#[utoipa::path(
    post,
    path = "/api/signup",
    tag = "account",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Created; a browser on this site is signed in (`chatter_session` and `chatter_csrf` cookies)", body = SignupResponse),
        (status = 400, description = "A field is not valid; the message starts with its name", body = ErrorBody),
        (status = 403, description = "`csrf`: Origin is another site", body = ErrorBody),
        (status = 404, description = "Sign-up is off on this server (`signup.enabled`)", body = ErrorBody),
        (status = 409, description = "`slug_taken` or `email_taken`", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address or for this email; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Too many passwords being hashed at once; see `Retry-After`", body = ErrorBody),
    )
)]
pub async fn sign_up(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignupRequest>,
) -> Result<Response, AppError> {
    if !state.settings.signup.enabled {
        return Err(signup_off());
    }
    // A browser is signed in by the answer: another site must not sign a
    // visitor in to an account of its choosing. A client that sends
    // neither Origin nor Referer (not a browser) gets no cookies.
    let browser = headers.contains_key("origin") || headers.contains_key("referer");
    if browser {
        check_same_origin(&headers)?;
    }
    let limits = &state.signup_limits;
    limits
        .address
        .check(&address)
        .map_err(AppError::TooManyRequests)?;
    let checked = signup::check(&NewSignup {
        business_name: &body.business_name,
        slug: &body.slug,
        email: &body.email,
        password: &body.password,
    })?;
    limits
        .email
        .check(&checked.email)
        .map_err(AppError::TooManyRequests)?;
    let tenant = checked.tenant.schema.to_string();
    let email = checked.email.clone();
    let auth = &state.settings.auth;
    let verify_ttl = std::time::Duration::from_secs(auth.verify_link_ttl_secs);
    let base_url = state.settings.public_url();
    // A link only when it can be mailed and followed.
    let mail = state.mailer.as_ref().zip(base_url);
    let account = signup::sign_up(
        &state.db,
        checked,
        mail.is_some().then_some(verify_ttl),
        browser.then_some(auth),
    )
    .await?;
    tracing::info!(%tenant, "a business signed up");
    if let (Some((mailer, base_url)), Some(token)) = (&mail, &account.verification) {
        recovery::send_verification(mailer, base_url, &email, token, verify_ttl);
    }
    let response = (
        StatusCode::CREATED,
        Json(SignupResponse {
            tenant,
            email,
            verification_sent: account.verification.is_some(),
            signed_in: browser,
        }),
    )
        .into_response();
    Ok(match &account.session {
        Some(token) => signed_in(
            response,
            token,
            auth.max_age_secs,
            over_tls(&headers, &state),
        ),
        None => response,
    })
}

/// `GET /signup`: the dashboard's sign-up page.
#[utoipa::path(
    get,
    path = "/signup",
    tag = "account",
    responses(
        (status = 303, description = "To the dashboard's sign-up page, `/app/#/signup`"),
        (status = 404, description = "Sign-up is off on this server", body = ErrorBody),
    )
)]
pub async fn page(State(state): State<AppState>) -> Result<Redirect, AppError> {
    match state.settings.signup.enabled {
        true => Ok(Redirect::to("/app/#/signup")),
        false => Err(signup_off()),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthOptions {
    /// `POST /api/signup` is open.
    pub signup: bool,
    /// Mail is set up: `POST /api/auth/password-reset` sends links. Without
    /// it an operator resets passwords (`chatter user reset-password`).
    pub password_reset: bool,
}

/// What this server offers a signed-out visitor of the dashboard.
#[utoipa::path(
    get,
    path = "/api/auth/options",
    tag = "account",
    responses((status = 200, description = "Sign-up and password reset: on or off", body = AuthOptions))
)]
pub async fn options(State(state): State<AppState>) -> Json<AuthOptions> {
    Json(AuthOptions {
        signup: state.settings.signup.enabled,
        password_reset: reset_by_mail(&state),
    })
}

/// Mail is set up and links can be made.
pub(crate) fn reset_by_mail(state: &AppState) -> bool {
    state.mailer.is_some() && state.settings.public_url().is_some()
}
