//! Password hashing: argon2id at no less than OWASP's minimum (19 MiB,
//! two passes, one lane). Hashing takes tens of milliseconds of CPU, so it
//! runs on the blocking pool, never on the async workers.
//!
//! Each hash also takes 19 MiB, so at most `max_concurrent` run at once
//! (issue 16: thirty concurrent wrong sign-ins grew the process by 500 MB,
//! and glibc kept it). A call waits a little for its turn, then gets
//! `AuthError::Busy` (503 with `Retry-After`).

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::auth::AuthError;

/// OWASP's minimum for argon2id: m = 19 MiB, t = 2, p = 1.
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

fn hash_now(password: &str) -> Result<String, AuthError> {
    hash_with(password, MEMORY_KIB, ITERATIONS, LANES)
}

/// An argon2id hash with chosen parameters and a random 128-bit salt. Only
/// `hash` should make stored hashes; tests make weak ones with this to see
/// them upgraded.
pub fn hash_with(password: &str, m_kib: u32, t: u32, p: u32) -> Result<String, AuthError> {
    let failed = |e: argon2::password_hash::Error| AuthError::Hash(e.to_string());
    let params = Params::new(m_kib, t, p, None).map_err(|e| AuthError::Hash(e.to_string()))?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(failed)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(failed)?
        .to_string())
}

/// A hash of a random password, made once: unknown emails are verified
/// against it so that they cost what a wrong password costs.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    hash_now(&hex::encode(secret)).ok()
});

/// Makes the dummy hash now, off the runtime, so that not even the first
/// unknown-email login after start costs more than a wrong password.
pub fn prepare() {
    tokio::task::spawn_blocking(|| LazyLock::force(&DUMMY_HASH));
}

/// Hashes running at once, process-wide: the memory they take is the
/// process's, whichever server or command asks. Set once at start
/// (`auth.max_concurrent_hashes`); later calls keep the first value.
static HASHING: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// Without a setting: two hashes per core.
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// Caps the hashes running at once (0: two per core). The first call wins.
pub fn limit_concurrency(max: usize) {
    let max = if max == 0 { default_concurrency() } else { max };
    let _ = HASHING.set(Arc::new(Semaphore::new(max)));
}

/// How long a hash waits for its turn before the request answers 503: long
/// enough to ride out a burst of honest sign-ins, short enough that a
/// flood queues no more than a few seconds of work.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// A turn at hashing; the permit travels into the blocking task, so a
/// request that gives up does not free the slot before its hash ends.
async fn turn() -> Result<OwnedSemaphorePermit, AuthError> {
    turn_on(HASHING.get_or_init(|| Arc::new(Semaphore::new(default_concurrency())))).await
}

async fn turn_on(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, AuthError> {
    match tokio::time::timeout(QUEUE_WAIT, Arc::clone(slots).acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AuthError::Busy),
    }
}

/// The PHC string of `password` with the current parameters.
pub async fn hash(password: String) -> Result<String, AuthError> {
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        hash_now(&password)
    })
    .await
    .map_err(|e| AuthError::Hash(e.to_string()))?
}

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    Correct,
    /// Correct, but the hash is weaker than today's parameters: store a new one.
    CorrectNeedsRehash,
}

/// Checks `password` against `stored` (a PHC string, with the parameters
/// it was made with). A malformed stored hash is a wrong password.
pub async fn verify(password: String, stored: String) -> Result<Verdict, AuthError> {
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify_now(&password, &stored)
    })
    .await
    .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Spends the time a verification takes, for an email with no account.
pub async fn verify_dummy(password: String) -> Result<(), AuthError> {
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if let Some(dummy) = DUMMY_HASH.as_deref() {
            let _ = verify_now(&password, dummy);
        }
    })
    .await
    .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify_now(password: &str, stored: &str) -> Verdict {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict::Wrong;
    };
    if Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verdict::Wrong;
    }
    if needs_rehash(&parsed) {
        Verdict::CorrectNeedsRehash
    } else {
        Verdict::Correct
    }
}

/// Another algorithm, or any parameter below today's.
fn needs_rehash(parsed: &PasswordHash<'_>) -> bool {
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    match Params::try_from(parsed) {
        Ok(params) => {
            params.m_cost() < MEMORY_KIB || params.t_cost() < ITERATIONS || params.p_cost() < LANES
        }
        Err(_) => true,
    }
}

/// The (m, t, p) a stored hash was made with, for tests and diagnostics.
pub fn parameters(stored: &str) -> Option<(u32, u32, u32)> {
    let parsed = PasswordHash::new(stored).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    Some((params.m_cost(), params.t_cost(), params.p_cost()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_carry_the_owasp_parameters() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert_eq!(parameters(&stored), Some((MEMORY_KIB, ITERATIONS, LANES)));
        assert_eq!(
            verify("correct horse".into(), stored.clone())
                .await
                .unwrap(),
            Verdict::Correct
        );
        assert_eq!(
            verify("wrong horse".into(), stored).await.unwrap(),
            Verdict::Wrong
        );
    }

    #[tokio::test]
    async fn a_weaker_hash_still_verifies_but_asks_for_a_rehash() {
        let weak = hash_with("pw123456", 1024, 1, 1).unwrap();
        assert_eq!(
            verify("pw123456".into(), weak).await.unwrap(),
            Verdict::CorrectNeedsRehash
        );
    }

    /// A slot taken for longer than a caller waits: the caller gets
    /// `Busy` after `QUEUE_WAIT`, and a turn once the slot is free.
    #[tokio::test]
    async fn hashes_beyond_the_cap_wait_then_answer_busy() {
        let slots = Arc::new(Semaphore::new(1));
        let held = Arc::clone(&slots).acquire_owned().await.unwrap();
        let started = std::time::Instant::now();
        let err = turn_on(&slots).await.unwrap_err();
        assert!(matches!(err, AuthError::Busy), "{err:?}");
        assert!(started.elapsed() >= QUEUE_WAIT);
        drop(held);
        assert!(turn_on(&slots).await.is_ok());
    }

    #[tokio::test]
    async fn garbage_is_a_wrong_password() {
        assert_eq!(
            verify("x".into(), "not a hash".into()).await.unwrap(),
            Verdict::Wrong
        );
        verify_dummy("anything".into()).await.unwrap();
    }
}
