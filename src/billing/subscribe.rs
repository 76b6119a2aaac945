//! An owner's side of Razorpay: subscribe (create the subscription that
//! Checkout then opens), confirm Checkout's payment signature, change
//! plan, cancel at the end of the cycle, list invoices.

use serde::Serialize;

use crate::billing::razorpay::{Invoice, checkout_signature_matches};
use crate::billing::{Billing, BillingError, State, Status};
use crate::db::SchemaName;
use crate::tenancy::events::ChangeEvent;

/// What the Billing page opens Razorpay Checkout with.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Checkout {
    /// Checkout's `subscription_id`.
    pub subscription_id: String,
    /// Checkout's `key` (the public key id).
    pub key_id: String,
    pub plan: String,
    /// Razorpay's hosted page for the same subscription: where to pay
    /// when Checkout's script cannot be loaded.
    pub short_url: Option<String>,
    /// Checkout's script (`billing.checkout_script_url`).
    pub script_url: String,
}

impl Billing {
    /// Creates a Razorpay subscription to `plan` for the tenant and records
    /// it (state `created`, the trial or grace running on) until Checkout
    /// is paid.
    pub async fn subscribe(
        &self,
        schema: &SchemaName,
        plan: &str,
    ) -> Result<Checkout, BillingError> {
        let razorpay = self.razorpay()?;
        let chosen = self
            .settings
            .plan(plan)
            .ok_or_else(|| BillingError::UnknownPlan(plan.to_string()))?;
        let ent = self.entitlement(schema).await?;
        if ent.state.is_paying()
            && ent.state != State::Granted
            && ent.razorpay_subscription_id.is_some()
        {
            return Err(BillingError::AlreadySubscribed);
        }
        let sub = razorpay
            .create_subscription(
                &chosen.razorpay_plan_id,
                self.settings.total_count,
                schema.as_str(),
            )
            .await?;
        // A trial keeps its end; a lapsed subscription keeps its state (and
        // grace) until the new one's events arrive.
        let trial_ends = ent.trial_ends_at;
        let tx = self.db.shared_tx().await?;
        // excluded.updated_at, not now(): Citus refuses now() in DO UPDATE SET.
        let updated = tx
            .execute(
                "INSERT INTO public.subscriptions (tenant_id, plan, state, razorpay_subscription_id, trial_ends_at) \
                 SELECT id, $2, 'created', $3, $4 FROM public.tenants WHERE schema_name = $1 \
                 ON CONFLICT (tenant_id) DO UPDATE SET plan = excluded.plan, \
                 razorpay_subscription_id = excluded.razorpay_subscription_id, \
                 trial_ends_at = coalesce(subscriptions.trial_ends_at, excluded.trial_ends_at), \
                 cancel_at_cycle_end = false, last_paid_count = 0, updated_at = excluded.updated_at",
                &[&schema.as_str(), &chosen.name, &sub.id, &trial_ends],
            )
            .await?;
        if updated == 0 {
            return Err(BillingError::UnknownTenant(schema.to_string()));
        }
        ChangeEvent::Billing(schema.clone()).notify(&tx).await?;
        tx.commit().await?;
        self.invalidate(schema);
        Ok(Checkout {
            subscription_id: sub.id,
            key_id: razorpay.key_id().to_string(),
            plan: chosen.name.clone(),
            short_url: sub.short_url,
            script_url: self.settings.checkout_script_url.clone(),
        })
    }

    /// Checkout's handler reports a payment: its signature must be the
    /// HMAC of `payment_id|subscription_id` for *this tenant's*
    /// subscription. Then the subscription is active at once (paying
    /// again ends a halt or grace without waiting for the webhook).
    pub async fn confirm_checkout(
        &self,
        schema: &SchemaName,
        payment_id: &str,
        subscription_id: &str,
        signature: &str,
    ) -> Result<Status, BillingError> {
        let razorpay = self.razorpay()?;
        let ent = self.entitlement(schema).await?;
        let ours = ent
            .razorpay_subscription_id
            .as_deref()
            .ok_or(BillingError::NoSubscription)?;
        if subscription_id != ours
            || !checkout_signature_matches(razorpay.key_secret(), payment_id, ours, signature)
        {
            return Err(BillingError::BadCheckoutSignature);
        }
        let tx = self.db.shared_tx().await?;
        tx.execute(
            "UPDATE public.subscriptions SET state = 'active', halted_since = NULL, updated_at = now() \
             WHERE razorpay_subscription_id = $1 AND state NOT IN ('active', 'cancelled', 'completed')",
            &[&ours],
        )
        .await?;
        ChangeEvent::Billing(schema.clone()).notify(&tx).await?;
        tx.commit().await?;
        self.invalidate(schema);
        self.status(schema).await
    }

    /// Moves the paid subscription to another plan, from now.
    pub async fn change_plan(
        &self,
        schema: &SchemaName,
        plan: &str,
    ) -> Result<Status, BillingError> {
        let razorpay = self.razorpay()?;
        let chosen = self
            .settings
            .plan(plan)
            .ok_or_else(|| BillingError::UnknownPlan(plan.to_string()))?;
        let ent = self.entitlement(schema).await?;
        let id = match (&ent.razorpay_subscription_id, ent.state.is_paying()) {
            (Some(id), true) => id.clone(),
            _ => return Err(BillingError::NoSubscription),
        };
        razorpay.change_plan(&id, &chosen.razorpay_plan_id).await?;
        self.set(schema, "plan = $2", &chosen.name).await?;
        self.status(schema).await
    }

    /// Asks Razorpay to cancel at the end of the current cycle; the bot
    /// answers until then (the `cancelled` event ends it).
    pub async fn cancel(&self, schema: &SchemaName) -> Result<Status, BillingError> {
        let razorpay = self.razorpay()?;
        let ent = self.entitlement(schema).await?;
        let id = match (&ent.razorpay_subscription_id, ent.state.is_paying()) {
            (Some(id), true) => id.clone(),
            _ => return Err(BillingError::NoSubscription),
        };
        razorpay.cancel_at_cycle_end(&id).await?;
        self.set(schema, "cancel_at_cycle_end = ($2 = 'yes')", "yes")
            .await?;
        self.status(schema).await
    }

    /// The subscription's invoices, newest first, from Razorpay.
    pub async fn invoices(&self, schema: &SchemaName) -> Result<Vec<Invoice>, BillingError> {
        let razorpay = self.razorpay()?;
        let ent = self.entitlement(schema).await?;
        match &ent.razorpay_subscription_id {
            Some(id) => razorpay.invoices(id).await,
            None => Ok(Vec::new()),
        }
    }

    /// One change to the tenant's row, announced.
    async fn set(
        &self,
        schema: &SchemaName,
        assignment: &'static str,
        value: &str,
    ) -> Result<(), BillingError> {
        let tx = self.db.shared_tx().await?;
        tx.execute(
            &format!(
                "UPDATE public.subscriptions SET {assignment}, updated_at = now() \
                 WHERE tenant_id = (SELECT id FROM public.tenants WHERE schema_name = $1)"
            ),
            &[&schema.as_str(), &value],
        )
        .await?;
        ChangeEvent::Billing(schema.clone()).notify(&tx).await?;
        tx.commit().await?;
        self.invalidate(schema);
        Ok(())
    }
}
