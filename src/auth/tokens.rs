//! Bearer tokens: 256 random bits, URL-safe base64 without padding. Only
//! their SHA-256 is stored, so a leaked table signs nobody in. A token dies
//! when unused for the idle timeout or at its maximum age, whichever comes
//! first.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::AuthError;
use crate::config::AuthSettings;
use crate::db::Statements;

/// 32 bytes in unpadded base64.
pub const TOKEN_CHARS: usize = 43;

/// `last_used_at` is refreshed at most this often: refreshing it on every
/// request would be a write to a shared table per request.
pub const TOUCH_INTERVAL_SECS: f64 = 60.0;

/// A fresh token's text, for the client only.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the table stores for `token`.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The token in an `Authorization` header value: `Bearer <token>` or
/// `Token <token>` (scheme case-insensitive). Anything else, including a
/// token of the wrong shape, is no token.
pub fn from_authorization(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let token = token.trim();
    let well_formed = token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then_some(token)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Stores a new token for `user_id` and returns its text.
pub async fn issue(
    client: &impl Statements,
    user_id: i64,
    settings: &AuthSettings,
) -> Result<String, AuthError> {
    let token = generate();
    client
        .execute(
            "INSERT INTO public.auth_tokens (token_sha256, user_id, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3))",
            &[&digest(&token), &user_id, &secs(settings.max_age())],
        )
        .await?;
    // The user's expired tokens go as a new one comes: the table never
    // grows with tokens nobody can use (a sign-in is rare; no per-request
    // write to a public table).
    client
        .execute(
            "DELETE FROM public.auth_tokens WHERE user_id = $1 AND expires_at < now()",
            &[&user_id],
        )
        .await?;
    Ok(token)
}

/// The user a live token belongs to. Both expiries are checked against the
/// current settings as well as the stored `expires_at`, so shortening them
/// takes effect for tokens already issued.
pub async fn user_of(
    client: &impl Statements,
    token: &str,
    settings: &AuthSettings,
) -> Result<Option<i64>, AuthError> {
    let hash = digest(token);
    let row = client
        .query_opt(
            "SELECT user_id, last_used_at < now() - make_interval(secs => $4) AS stale \
             FROM public.auth_tokens \
             WHERE token_sha256 = $1 \
               AND expires_at > now() \
               AND created_at > now() - make_interval(secs => $2) \
               AND last_used_at > now() - make_interval(secs => $3)",
            &[
                &hash,
                &secs(settings.max_age()),
                &secs(settings.idle_timeout()),
                &TOUCH_INTERVAL_SECS,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user_id: i64 = row.try_get("user_id")?;
    let stale: bool = row.try_get("stale")?;
    if stale {
        client
            .execute(
                "UPDATE public.auth_tokens SET last_used_at = now() WHERE token_sha256 = $1",
                &[&hash],
            )
            .await?;
    }
    Ok(Some(user_id))
}

/// Deletes one token; deleting an unknown one is not an error.
pub async fn revoke(client: &impl Statements, token: &str) -> Result<(), AuthError> {
    client
        .execute(
            "DELETE FROM public.auth_tokens WHERE token_sha256 = $1",
            &[&digest(token)],
        )
        .await?;
    Ok(())
}

/// Deletes every token of `user_id` but `keep` (the one in use, if any).
pub async fn revoke_others(
    client: &impl Statements,
    user_id: i64,
    keep: Option<&str>,
) -> Result<u64, AuthError> {
    let keep = keep.map(digest);
    Ok(client
        .execute(
            "DELETE FROM public.auth_tokens WHERE user_id = $1 \
             AND ($2::bytea IS NULL OR token_sha256 <> $2)",
            &[&user_id, &keep],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_of_url_safe_base64() {
        let token = generate();
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_ne!(token, generate());
        assert_eq!(digest(&token).len(), 32);
    }

    #[test]
    fn bearer_and_token_schemes_are_read() {
        let token = generate();
        assert_eq!(
            from_authorization(&format!("Bearer {token}")),
            Some(token.as_str())
        );
        assert_eq!(
            from_authorization(&format!("Token {token}")),
            Some(token.as_str())
        );
        assert_eq!(
            from_authorization(&format!("bearer {token}")),
            Some(token.as_str())
        );
        assert_eq!(from_authorization(&format!("Basic {token}")), None);
        assert_eq!(from_authorization(&token), None);
        assert_eq!(from_authorization("Bearer short"), None);
        assert_eq!(
            from_authorization(&format!("Bearer {}", "=".repeat(43))),
            None
        );
    }
}
