//! Token buckets by key, in memory: each key may spend `burst` at once and
//! earns `per_minute` back over a minute. A refused call learns how long to
//! wait (the `Retry-After`). Per process: with several replicas each keeps
//! its own buckets, which bounds abuse per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{AuthSettings, BillingSettings, ChatSettings, SignupSettings};
use crate::db::SchemaName;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    // A std lock: one map operation per call, never held across an await.
    buckets: Mutex<HashMap<String, Bucket>>,
    max_keys: usize,
}

impl RateLimiter {
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
            max_keys: 100_000,
        }
    }

    /// `per_hour` earned back an hour, `burst` at once: for what is rare
    /// by nature (sign-ups, password resets).
    pub fn per_hour(per_hour: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_hour.max(1)) / 3600.0,
            ..Self::per_minute(1, burst)
        }
    }

    /// Spends one token of `key`, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_keys {
            // Full buckets carry no information: drop them first.
            let (burst, per_second) = (self.burst, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst
            });
            if buckets.len() >= self.max_keys {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(stored_key(key)).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let earned = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + earned).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(
                Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second)
                    .max(Duration::from_secs(1)),
            )
        }
    }
}

/// Keys are built from what clients send (addresses, emails): a long one
/// is kept as its SHA-256, so a bucket costs the same whatever its key
/// (issue 16: 2,000 unique 65 KB keys had grown the process by 125 MB).
fn stored_key(key: &str) -> String {
    const MAX_KEY_LEN: usize = 128;
    if key.len() <= MAX_KEY_LEN {
        key.to_string()
    } else {
        use sha2::{Digest, Sha256};
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

/// Sign-in attempts: per account from one address, and per address. Not
/// per account alone: that would let anyone lock a user out from anywhere.
pub struct LoginLimits {
    pub account_from_address: RateLimiter,
    pub address: RateLimiter,
    /// Password changes per account: each costs two hashes, and a wrong
    /// old password must not be an unthrottled guessing oracle.
    pub password_change: RateLimiter,
}

impl LoginLimits {
    pub fn new(auth: &AuthSettings) -> Self {
        let attempts = auth.login_attempts_per_minute;
        Self {
            account_from_address: RateLimiter::per_minute(attempts, attempts),
            address: RateLimiter::per_minute(
                attempts.saturating_mul(3),
                attempts.saturating_mul(3),
            ),
            password_change: RateLimiter::per_minute(
                auth.password_changes_per_minute,
                auth.password_changes_per_minute,
            ),
        }
    }
}

/// Sign-ups: per client address, and per email (each makes a tenant, runs
/// every tenant migration and may send a mail).
pub struct SignupLimits {
    pub address: RateLimiter,
    pub email: RateLimiter,
}

impl SignupLimits {
    pub fn new(signup: &SignupSettings) -> Self {
        Self {
            address: RateLimiter::per_hour(
                signup.per_address_per_hour,
                signup.per_address_per_hour,
            ),
            email: RateLimiter::per_hour(signup.per_email_per_hour, signup.per_email_per_hour),
        }
    }
}

/// Password resets: requests per email (each sends a mail to that
/// address: nobody may flood a mailbox) and per address (three times as
/// many), and confirmations per address (each costs a hash).
pub struct ResetLimits {
    pub email: RateLimiter,
    pub address: RateLimiter,
    pub confirm: RateLimiter,
}

impl ResetLimits {
    pub fn new(auth: &AuthSettings) -> Self {
        let per_hour = auth.password_resets_per_hour;
        let from_address = per_hour.saturating_mul(3);
        Self {
            email: RateLimiter::per_hour(per_hour, per_hour),
            address: RateLimiter::per_hour(from_address, from_address),
            confirm: RateLimiter::per_hour(from_address, from_address),
        }
    }
}

/// Owners' billing actions that call Razorpay (subscribe, change plan,
/// cancel, invoices), per tenant: each is a request to Razorpay's API on
/// the platform's account (which Razorpay limits), and a subscribe makes
/// a subscription there.
pub fn razorpay_calls(billing: &BillingSettings) -> RateLimiter {
    let per_minute = billing.razorpay_calls_per_minute;
    RateLimiter::per_minute(per_minute, per_minute)
}

/// Fair use of the chat: per visitor (tenant and client address) and per
/// tenant; feedback per visitor, apart, so rating answers never costs a
/// question.
pub struct ChatLimits {
    pub visitor: RateLimiter,
    pub tenant: RateLimiter,
    pub feedback: RateLimiter,
}

impl ChatLimits {
    pub fn new(chat: &ChatSettings) -> Self {
        let visitor =
            || RateLimiter::per_minute(chat.visitor_messages_per_minute, chat.visitor_burst);
        Self {
            visitor: visitor(),
            tenant: RateLimiter::per_minute(chat.tenant_messages_per_minute, chat.tenant_burst),
            feedback: visitor(),
        }
    }

    /// Spends a chat message of `address` at `schema`, or says how long
    /// to wait.
    pub fn check_message(&self, schema: &SchemaName, address: &str) -> Result<(), Duration> {
        self.visitor
            .check(&format!("{schema}\n{address}"))
            .and_then(|()| self.tenant.check(schema.as_str()))
    }

    pub fn check_feedback(&self, schema: &SchemaName, address: &str) -> Result<(), Duration> {
        self.feedback.check(&format!("{schema}\n{address}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_stored_as_their_digest() {
        let limiter = RateLimiter::per_minute(1, 1);
        let long = "x".repeat(60_000);
        assert!(limiter.check(&long).is_ok());
        assert!(
            limiter.check(&long).is_err(),
            "the same long key is one bucket"
        );
        let buckets = limiter.buckets.lock().unwrap();
        assert!(buckets.keys().all(|k| k.len() <= 128));
    }

    #[test]
    fn hourly_limits_refill_over_an_hour() {
        let limiter = RateLimiter::per_hour(6, 2);
        let start = Instant::now();
        assert!(limiter.check_at("a", start).is_ok());
        assert!(limiter.check_at("a", start).is_ok());
        let wait = limiter.check_at("a", start).unwrap_err();
        // One of six an hour: ten minutes.
        assert!(
            wait >= Duration::from_secs(590) && wait <= Duration::from_secs(610),
            "{wait:?}"
        );
        assert!(
            limiter
                .check_at("a", start + Duration::from_secs(601))
                .is_ok()
        );
    }

    #[test]
    fn a_key_spends_its_burst_then_waits_for_the_refill() {
        let limiter = RateLimiter::per_minute(10, 10);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.check_at("a", start).is_ok());
        }
        let wait = limiter.check_at("a", start).unwrap_err();
        assert!(
            wait >= Duration::from_secs(5) && wait <= Duration::from_secs(7),
            "{wait:?}"
        );
        assert!(
            limiter.check_at("b", start).is_ok(),
            "other keys are not affected"
        );
        assert!(
            limiter
                .check_at("a", start + Duration::from_secs(7))
                .is_ok()
        );
    }
}
