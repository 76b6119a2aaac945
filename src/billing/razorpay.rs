//! Razorpay's API as Chatter uses it (subscriptions: create, fetch, update,
//! cancel; invoices: list), with basic auth of the key id and secret, and
//! the two signatures: the webhook's (HMAC-SHA256 of the raw body with the
//! webhook secret) and Checkout's (HMAC-SHA256 of `payment_id|subscription_id`
//! with the key secret), both checked in constant time by `ring`.

use std::time::Duration;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::billing::BillingError;
use crate::config::{BillingSettings, Secret};

/// Razorpay's answers are small; more than this is refused unread.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Whether `signature_hex` is the HMAC-SHA256 of `message` under `secret`
/// (compared in constant time).
pub fn signature_matches(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, message, &signature).is_ok()
}

/// Checkout's signature of a subscription payment.
pub fn checkout_signature_matches(
    key_secret: &str,
    payment_id: &str,
    subscription_id: &str,
    signature_hex: &str,
) -> bool {
    let message = format!("{payment_id}|{subscription_id}");
    signature_matches(key_secret, message.as_bytes(), signature_hex)
}

/// A subscription as Razorpay returns it (the fields we read).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Subscription {
    pub id: String,
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub current_start: Option<i64>,
    #[serde(default)]
    pub current_end: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    #[serde(default)]
    pub paid_count: Option<i64>,
    #[serde(default)]
    pub short_url: Option<String>,
    #[serde(default)]
    pub notes: serde_json::Value,
}

/// One invoice, as owners see it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Invoice {
    pub id: String,
    /// In the currency's smallest unit (paise).
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    /// `issued`, `paid`, `cancelled`, `expired`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub date: Option<i64>,
    #[serde(default)]
    pub paid_at: Option<i64>,
    /// Razorpay's page for the invoice.
    #[serde(default)]
    pub short_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Collection<T> {
    items: Vec<T>,
}

pub struct Razorpay {
    http: reqwest::Client,
    base: String,
    key_id: Secret,
    key_secret: Secret,
    webhook_secret: Option<Secret>,
}

impl Razorpay {
    /// None unless both keys are set (billing off).
    pub fn from_settings(settings: &BillingSettings) -> Option<Self> {
        let (key_id, key_secret) = (settings.key_id.clone()?, settings.key_secret.clone()?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        Some(Self {
            http,
            base: settings.api_base.trim_end_matches('/').to_string(),
            key_id,
            key_secret,
            webhook_secret: settings.webhook_secret.clone(),
        })
    }

    /// The public key id Checkout is opened with.
    pub fn key_id(&self) -> &str {
        self.key_id.expose()
    }

    pub fn key_secret(&self) -> &str {
        self.key_secret.expose()
    }

    pub fn webhook_secret(&self) -> Option<&str> {
        self.webhook_secret.as_ref().map(Secret::expose)
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, BillingError> {
        let fail = |what: String| BillingError::Razorpay(what);
        let mut response = request
            .basic_auth(self.key_id.expose(), Some(self.key_secret.expose()))
            .send()
            .await
            .map_err(|e| fail(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(format!("reading the answer: {}", e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(fail("the answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // Razorpay's error body names the problem; never our keys.
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["description"].as_str().map(String::from))
                .unwrap_or_default();
            return Err(fail(format!("status {status}: {detail}")));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("unexpected answer: {e}")))
    }

    /// `POST /v1/subscriptions`.
    pub async fn create_subscription(
        &self,
        plan_id: &str,
        total_count: u32,
        tenant: &str,
    ) -> Result<Subscription, BillingError> {
        let body = serde_json::json!({
            "plan_id": plan_id,
            "total_count": total_count,
            "quantity": 1,
            "customer_notify": 1,
            "notes": { "tenant": tenant },
        });
        self.call(
            self.http
                .post(format!("{}/v1/subscriptions", self.base))
                .json(&body),
        )
        .await
    }

    /// `GET /v1/subscriptions/{id}`.
    pub async fn fetch_subscription(&self, id: &str) -> Result<Subscription, BillingError> {
        self.call(self.http.get(format!(
            "{}/v1/subscriptions/{}",
            self.base,
            path_segment(id)?
        )))
        .await
    }

    /// `PATCH /v1/subscriptions/{id}`: another plan, from now.
    pub async fn change_plan(&self, id: &str, plan_id: &str) -> Result<Subscription, BillingError> {
        let body = serde_json::json!({ "plan_id": plan_id, "schedule_change_at": "now" });
        self.call(
            self.http
                .patch(format!(
                    "{}/v1/subscriptions/{}",
                    self.base,
                    path_segment(id)?
                ))
                .json(&body),
        )
        .await
    }

    /// `POST /v1/subscriptions/{id}/cancel`, at the end of the cycle.
    pub async fn cancel_at_cycle_end(&self, id: &str) -> Result<Subscription, BillingError> {
        let body = serde_json::json!({ "cancel_at_cycle_end": 1 });
        self.call(
            self.http
                .post(format!(
                    "{}/v1/subscriptions/{}/cancel",
                    self.base,
                    path_segment(id)?
                ))
                .json(&body),
        )
        .await
    }

    /// `GET /v1/invoices?subscription_id=...`.
    pub async fn invoices(&self, subscription_id: &str) -> Result<Vec<Invoice>, BillingError> {
        let list: Collection<Invoice> = self
            .call(
                self.http
                    .get(format!("{}/v1/invoices", self.base))
                    .query(&[("subscription_id", subscription_id), ("count", "100")]),
            )
            .await?;
        Ok(list.items)
    }
}

/// Razorpay ids are letters, digits and `_`: anything else is not one of
/// theirs and never goes into a URL.
fn path_segment(id: &str) -> Result<&str, BillingError> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(BillingError::BadRequest(format!(
            "{id:?} is not a Razorpay id"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_of_other_bytes_or_not_hex_does_not_match() {
        assert!(!signature_matches("k", b"body", "zz"));
        assert!(!signature_matches("k", b"body", ""));
        assert!(!signature_matches("k", b"body", &"00".repeat(32)));
    }

    #[test]
    fn ids_outside_razorpays_alphabet_are_refused() {
        assert!(path_segment("sub_00000000000001").is_ok());
        assert!(path_segment("../v1/payments").is_err());
        assert!(path_segment("").is_err());
    }
}
