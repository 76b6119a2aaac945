//! Getting into an account by mail: address verification after sign-up
//! and password reset (links made by `email_tokens`), and the operator's
//! reset for a server without mail (`chatter user reset-password`).
//!
//! Links point at the dashboard (`/app/#/verify/<token>`,
//! `/app/#/reset/<token>`): the token stays in the fragment, which the
//! browser never sends to a server or in a `Referer`, and the page spends
//! it with a POST, so a mail scanner that fetches links uses nothing up.

use std::time::Duration;

use crate::auth::email_tokens::{self, Purpose};
use crate::auth::password;
use crate::auth::users::{check_password, normalize_email};
use crate::auth::{AuthError, tokens};
use crate::db::Db;
use crate::mail::Mailer;

/// Where a link of `purpose` with `token` leads, on the server at `base_url`.
pub fn link(base_url: &str, purpose: Purpose, token: &str) -> String {
    let page = match purpose {
        Purpose::Verify => "verify",
        Purpose::Reset => "reset",
    };
    format!("{}/app/#/{page}/{token}", base_url.trim_end_matches('/'))
}

fn describe(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s if s >= 120 => format!("{} minutes", s / 60),
        _ => "a minute".to_string(),
    }
}

/// The verification mail, sent in the background.
pub fn send_verification(mailer: &Mailer, base_url: &str, email: &str, token: &str, ttl: Duration) {
    let body = format!(
        "Welcome to Chatter.\n\n\
         Please confirm that {email} is your address by opening this link:\n\n\
         {}\n\n\
         The link works once, for {}. If you did not sign up, ignore this message.\n",
        link(base_url, Purpose::Verify, token),
        describe(ttl),
    );
    mailer.send_later(
        email.to_string(),
        "Confirm your email address".to_string(),
        body,
    );
}

/// A new verification link for a signed-in user whose address is not
/// confirmed yet, mailed in the background; false when it already is.
pub async fn resend_verification(
    db: &Db,
    mailer: &Mailer,
    base_url: &str,
    user_id: i64,
    ttl: Duration,
) -> Result<bool, AuthError> {
    let client = db.shared().await?;
    let row = client
        .query_one(
            "SELECT email, email_verified_at IS NOT NULL FROM public.users WHERE id = $1",
            &[&user_id],
        )
        .await?;
    let (email, verified): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
    if verified {
        return Ok(false);
    }
    // One live link at a time: the older ones stop working.
    email_tokens::revoke_all(&client, user_id, Purpose::Verify).await?;
    let token = email_tokens::issue(&client, user_id, Purpose::Verify, ttl).await?;
    drop(client);
    send_verification(mailer, base_url, &email, &token, ttl);
    Ok(true)
}

/// A reset request: when `email` has an account, a reset link is stored
/// and mailed; when it has none, nothing happens. The caller answers the
/// same either way (and runs this in the background, so the time taken
/// does not tell either).
pub async fn request_reset(
    db: &Db,
    mailer: &Mailer,
    base_url: &str,
    email: &str,
    ttl: Duration,
) -> Result<(), AuthError> {
    let Ok(email) = normalize_email(email) else {
        return Ok(());
    };
    let client = db.shared().await?;
    let Some(row) = client
        .query_opt("SELECT id FROM public.users WHERE email = $1", &[&email])
        .await?
    else {
        return Ok(());
    };
    let user_id: i64 = row.try_get(0)?;
    let token = email_tokens::issue(&client, user_id, Purpose::Reset, ttl).await?;
    drop(client);
    let body = format!(
        "Someone, we hope you, asked to reset the password of the Chatter account {email}.\n\n\
         Choose a new password here:\n\n\
         {}\n\n\
         The link works once, for {}. If you did not ask, ignore this message: \
         your password stays as it is.\n",
        link(base_url, Purpose::Reset, &token),
        describe(ttl),
    );
    mailer
        .send(&email, "Reset your Chatter password", &body)
        .await
        .map_err(|e| AuthError::Mail(e.to_string()))
}

/// Sets a new password with a reset link: the link is used up, every
/// sign-in of the user and every other reset link dies, and the address
/// counts as verified (the link reached it). The link is checked before
/// the password is hashed, and no pooled connection is held while hashing.
pub async fn confirm_reset(db: &Db, token: &str, new_password: &str) -> Result<(), AuthError> {
    check_password(new_password).map_err(|e| AuthError::Invalid(format!("new_password: {e}")))?;
    let token = email_tokens::well_formed(token).ok_or(AuthError::InvalidLink)?;
    let live = email_tokens::peek(&db.shared().await?, token, Purpose::Reset).await?;
    if live.is_none() {
        return Err(AuthError::InvalidLink);
    }
    let hash = password::hash(new_password.to_string()).await?;
    let tx = db.shared_tx().await?;
    // Taken now, in the transaction: of two confirmations racing, one wins.
    let taken = email_tokens::take(&tx, token, Purpose::Reset)
        .await?
        .ok_or(AuthError::InvalidLink)?;
    let user_id = taken.user_id;
    tx.execute(
        "UPDATE public.users SET password_hash = $2, \
         email_verified_at = coalesce(email_verified_at, $3) WHERE id = $1",
        &[&user_id, &hash, &taken.at],
    )
    .await?;
    tokens::revoke_others(&tx, user_id, None).await?;
    email_tokens::revoke_all(&tx, user_id, Purpose::Reset).await?;
    tx.commit().await?;
    Ok(())
}

/// Marks the address of a verification link's user as verified; the link
/// is used up.
pub async fn verify_email(db: &Db, token: &str) -> Result<(), AuthError> {
    let token = email_tokens::well_formed(token).ok_or(AuthError::InvalidLink)?;
    let tx = db.shared_tx().await?;
    let taken = email_tokens::take(&tx, token, Purpose::Verify)
        .await?
        .ok_or(AuthError::InvalidLink)?;
    tx.execute(
        "UPDATE public.users SET email_verified_at = coalesce(email_verified_at, $2) \
         WHERE id = $1",
        &[&taken.user_id, &taken.at],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The operator's reset (no mail needed): sets `email`'s password, and
/// signs the user out everywhere.
pub async fn set_password(db: &Db, email: &str, new_password: &str) -> Result<(), AuthError> {
    let email = normalize_email(email)?;
    check_password(new_password)?;
    let hash = password::hash(new_password.to_string()).await?;
    let tx = db.shared_tx().await?;
    let user_id: i64 = tx
        .query_opt(
            "UPDATE public.users SET password_hash = $2 WHERE email = $1 RETURNING id",
            &[&email, &hash],
        )
        .await?
        .ok_or_else(|| AuthError::UnknownUser(email.clone()))?
        .try_get(0)?;
    tokens::revoke_others(&tx, user_id, None).await?;
    email_tokens::revoke_all(&tx, user_id, Purpose::Reset).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_token_in_the_fragment() {
        assert_eq!(
            link("https://chat.example.com/", Purpose::Reset, "abc"),
            "https://chat.example.com/app/#/reset/abc"
        );
        assert_eq!(
            link("http://127.0.0.1:8000", Purpose::Verify, "xyz"),
            "http://127.0.0.1:8000/app/#/verify/xyz"
        );
    }

    #[test]
    fn lifetimes_read_as_people_say_them() {
        assert_eq!(describe(Duration::from_secs(3600)), "60 minutes");
        assert_eq!(describe(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(describe(Duration::from_secs(6 * 3600)), "6 hours");
        assert_eq!(describe(Duration::from_secs(5)), "a minute");
    }
}
