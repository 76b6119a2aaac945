//! Razorpay's webhook: the signature is checked on the raw body before
//! anything reads it; a delivery is applied once (by its event id); and
//! an event older than the newest one applied changes nothing, so a late
//! `pending` never undoes a later `charged`. Order is the event's
//! `created_at`, then the subscription's `paid_count` (two events in the
//! same second: the one that saw more payments is the later).

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::billing::razorpay::{Subscription, signature_matches};
use crate::billing::{Billing, BillingError, State};
use crate::db::SchemaName;
use crate::tenancy::events::ChangeEvent;

#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    created_at: i64,
    #[serde(default)]
    payload: Payload,
}

#[derive(Debug, Default, Deserialize)]
struct Payload {
    subscription: Option<Wrapped>,
}

#[derive(Debug, Deserialize)]
struct Wrapped {
    entity: Subscription,
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// This event id was handled before.
    Duplicate,
    /// Older than what was applied already.
    Stale,
    /// Not a subscription event, or a subscription that is not ours.
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
        }
    }
}

/// The state an event moves a subscription to; none: not a state change.
fn target_state(event: &str) -> Option<State> {
    Some(match event {
        "subscription.authenticated" => State::Authenticated,
        "subscription.activated" | "subscription.charged" | "subscription.resumed" => State::Active,
        "subscription.pending" => State::Pending,
        "subscription.halted" => State::Halted,
        "subscription.cancelled" => State::Cancelled,
        "subscription.completed" => State::Completed,
        "subscription.paused" => State::Paused,
        _ => return None,
    })
}

fn timestamp(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

impl Billing {
    /// Handles one delivery: `signature` is `X-Razorpay-Signature`,
    /// `event_id` is `x-razorpay-event-id`, `body` the raw bytes.
    pub async fn webhook(
        &self,
        signature: Option<&str>,
        event_id: Option<&str>,
        body: &[u8],
    ) -> Result<Outcome, BillingError> {
        let razorpay = self.razorpay()?;
        let secret = razorpay.webhook_secret().ok_or(BillingError::WebhooksOff)?;
        let signature = signature.ok_or(BillingError::BadWebhookSignature)?;
        if !signature_matches(secret, body, signature) {
            return Err(BillingError::BadWebhookSignature);
        }
        let event_id = event_id
            .filter(|id| !id.is_empty() && id.len() <= 100)
            .ok_or_else(|| {
                BillingError::BadRequest("x-razorpay-event-id is missing or too long".into())
            })?;
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| BillingError::BadRequest(format!("not a Razorpay event: {e}")))?;
        let at = timestamp(event.created_at)
            .ok_or_else(|| BillingError::BadRequest("created_at is not a time".into()))?;

        let tx = self.db.shared_tx().await?;
        let first = tx
            .query_opt(
                "INSERT INTO public.billing_events (event_id) VALUES ($1) \
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                &[&event_id],
            )
            .await?;
        if first.is_none() {
            return Ok(Outcome::Duplicate);
        }
        let (Some(state), Some(sub)) = (target_state(&event.event), event.payload.subscription)
        else {
            tx.commit().await?;
            return Ok(Outcome::Ignored);
        };
        let sub = sub.entity;
        let row = tx
            .query_opt(
                "SELECT s.tenant_id, t.schema_name, s.last_event_at, s.last_paid_count \
                 FROM public.subscriptions s JOIN public.tenants t ON t.id = s.tenant_id \
                 WHERE s.razorpay_subscription_id = $1 FOR UPDATE OF s",
                &[&sub.id],
            )
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            tracing::warn!(subscription = %sub.id, event = %event.event, "webhook for a subscription we did not make");
            return Ok(Outcome::Ignored);
        };
        let tenant_id: i64 = row.try_get(0)?;
        let schema: String = row.try_get(1)?;
        let last_at: Option<DateTime<Utc>> = row.try_get(2)?;
        let last_paid: i32 = row.try_get(3)?;
        let paid = i32::try_from(sub.paid_count.unwrap_or(0)).unwrap_or(i32::MAX);
        if let Some(last_at) = last_at
            && (at, paid) < (last_at, last_paid)
        {
            tx.commit().await?;
            return Ok(Outcome::Stale);
        }
        let plan = sub
            .plan_id
            .as_deref()
            .and_then(|id| self.settings.plan_by_razorpay_id(id))
            .map(|p| p.name.clone());
        let period_end = sub.current_end.and_then(timestamp);
        // Grace and "until the end of the period" count from here.
        let stopped = matches!(
            state,
            State::Halted | State::Paused | State::Cancelled | State::Completed
        )
        .then(|| sub.ended_at.and_then(timestamp).unwrap_or(at));
        tx.execute(
            "UPDATE public.subscriptions SET state = $2, plan = coalesce($3, plan), \
             current_period_end = coalesce($4, current_period_end), \
             halted_since = CASE WHEN $5::timestamptz IS NULL THEN NULL \
                                 WHEN state = $2 THEN coalesce(halted_since, $5) ELSE $5 END, \
             last_event_at = $6, last_paid_count = $7, updated_at = now() \
             WHERE tenant_id = $1",
            &[
                &tenant_id,
                &state.as_str(),
                &plan,
                &period_end,
                &stopped,
                &at,
                &paid,
            ],
        )
        .await?;
        let schema = SchemaName::parse(&schema)
            .map_err(|_| BillingError::BadRequest("stored schema name is invalid".into()))?;
        ChangeEvent::Billing(schema.clone()).notify(&tx).await?;
        tx.commit().await?;
        self.invalidate(&schema);
        tracing::info!(tenant = %schema, event = %event.event, state = state.as_str(), "billing state changed");
        Ok(Outcome::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_event_moves_the_state() {
        for (event, state) in [
            ("subscription.authenticated", State::Authenticated),
            ("subscription.activated", State::Active),
            ("subscription.charged", State::Active),
            ("subscription.pending", State::Pending),
            ("subscription.halted", State::Halted),
            ("subscription.cancelled", State::Cancelled),
            ("subscription.completed", State::Completed),
            ("subscription.paused", State::Paused),
            ("subscription.resumed", State::Active),
        ] {
            assert_eq!(target_state(event), Some(state), "{event}");
        }
        assert_eq!(target_state("payment.captured"), None);
    }
}
