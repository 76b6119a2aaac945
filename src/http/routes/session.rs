//! Browser sign-in for the dashboard (`/app/`): `POST /api/auth/session`
//! signs in as `POST /api/auth/login` does but puts the token in an
//! HttpOnly, SameSite=Strict cookie, with a CSRF cookie beside it;
//! `DELETE /api/auth/session` revokes it and clears the cookies. How a
//! request's cookie is read and CSRF-checked is `extract::session`.
//! `DELETE /api/auth/sessions` signs the user out everywhere.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;

use crate::auth::{AuthUser, users};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::session::{CSRF_COOKIE, SESSION_COOKIE, check_same_origin, from_cookie};
use crate::http::extract::{ApiJson, ClientAddress};
use crate::http::routes::auth::{LoginRequest, LoginResponse};
use crate::http::state::AppState;

/// Whether the browser reached us over TLS: only a trusted proxy's
/// `X-Forwarded-Proto` can say so (the server itself speaks plain HTTP).
pub(crate) fn over_tls(headers: &HeaderMap, state: &AppState) -> bool {
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
        crate::http::routes::auth::login(State(state), address, body).await?;
    Ok(signed_in(
        StatusCode::NO_CONTENT.into_response(),
        &token,
        max_age,
        secure,
    ))
}

/// `response` with the session cookie for `token` and a fresh CSRF cookie:
/// the browser is signed in (sign-in, sign-up).
pub(crate) fn signed_in(response: Response, token: &str, max_age: u64, secure: bool) -> Response {
    let mut csrf = [0u8; 32];
    rand::rng().fill_bytes(&mut csrf);
    with_cookies(
        response,
        [
            set_cookie(SESSION_COOKIE, token, max_age, true, secure),
            set_cookie(CSRF_COOKIE, &hex::encode(csrf), max_age, false, secure),
        ],
    )
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
        users::revoke_token(&state.db, &token).await?;
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

/// Signs the user out everywhere: every token and browser session of the
/// user (this one too) is revoked, and this browser's cookies cleared.
#[utoipa::path(
    delete,
    path = "/api/auth/sessions",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session revoked; the cookies are cleared"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "`csrf`: the CSRF check failed", body = ErrorBody),
    )
)]
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    users::revoke_all_tokens(&state.db, user.id).await?;
    let secure = over_tls(&headers, &state);
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        [
            set_cookie(SESSION_COOKIE, "", 0, true, secure),
            set_cookie(CSRF_COOKIE, "", 0, false, secure),
        ],
    ))
}
