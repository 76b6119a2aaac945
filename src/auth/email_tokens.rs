//! Single-use links sent by mail (address verification, password reset):
//! 256 random bits, as sign-in tokens are (`tokens`), stored only as their
//! SHA-256 with a purpose and an expiry. Taking one deletes it, so a link
//! works once; an expired one is deleted too, and refused.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth::{AuthError, tokens};
use crate::db::Statements;

/// What a link is for; a link made for one never serves the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Verify,
    Reset,
}

impl Purpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::Reset => "reset",
        }
    }
}

/// The token a link carries, if `raw` has a token's shape: anything else
/// is refused before it reaches the database.
pub fn well_formed(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    (raw.len() == tokens::TOKEN_CHARS
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(raw)
}

/// Stores a new link token for `user_id` and returns its text. The user's
/// expired links of any purpose go as it comes, so the table never grows
/// with links nobody can use.
pub async fn issue(
    client: &impl Statements,
    user_id: i64,
    purpose: Purpose,
    ttl: Duration,
) -> Result<String, AuthError> {
    let token = tokens::generate();
    client
        .execute(
            "INSERT INTO public.email_tokens (token_sha256, user_id, purpose, expires_at) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &[
                &tokens::digest(&token),
                &user_id,
                &purpose.as_str(),
                &ttl.as_secs_f64(),
            ],
        )
        .await?;
    client
        .execute(
            "DELETE FROM public.email_tokens WHERE user_id = $1 AND expires_at < now()",
            &[&user_id],
        )
        .await?;
    Ok(token)
}

/// The user a live link of `purpose` belongs to, without using it up (to
/// check a link before paying for a password hash).
pub async fn peek(
    client: &impl Statements,
    token: &str,
    purpose: Purpose,
) -> Result<Option<i64>, AuthError> {
    let row = client
        .query_opt(
            "SELECT user_id FROM public.email_tokens \
             WHERE token_sha256 = $1 AND purpose = $2 AND expires_at > now()",
            &[&tokens::digest(token), &purpose.as_str()],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// A link used up: whose it was, and the database's clock when it was.
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    pub user_id: i64,
    pub at: DateTime<Utc>,
}

/// Uses a link up: deletes it and says whose it was if it was live. A link
/// used, expired or unknown gives None. Plain statements only (no clock in
/// `RETURNING` or `SET`): on Citus the table is a reference table, whose
/// modifications take no such expression.
pub async fn take(
    client: &impl Statements,
    token: &str,
    purpose: Purpose,
) -> Result<Option<Taken>, AuthError> {
    let row = client
        .query_opt(
            "DELETE FROM public.email_tokens WHERE token_sha256 = $1 AND purpose = $2 \
             RETURNING user_id, expires_at",
            &[&tokens::digest(token), &purpose.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user_id: i64 = row.try_get("user_id")?;
    let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
    let at: DateTime<Utc> = client.query_one("SELECT now()", &[]).await?.try_get(0)?;
    Ok((expires_at > at).then_some(Taken { user_id, at }))
}

/// Deletes every link of `purpose` the user has (a password changed by one
/// reset link kills the others).
pub async fn revoke_all(
    client: &impl Statements,
    user_id: i64,
    purpose: Purpose,
) -> Result<u64, AuthError> {
    Ok(client
        .execute(
            "DELETE FROM public.email_tokens WHERE user_id = $1 AND purpose = $2",
            &[&user_id, &purpose.as_str()],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tokens_shape_is_well_formed() {
        let token = tokens::generate();
        assert_eq!(well_formed(&token), Some(token.as_str()));
        assert_eq!(well_formed(&format!(" {token}\n")), Some(token.as_str()));
        assert_eq!(well_formed("short"), None);
        assert_eq!(well_formed(&"=".repeat(43)), None);
        assert_eq!(well_formed(&"a".repeat(4000)), None);
    }
}
