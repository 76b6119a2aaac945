//! Plans, usage and Razorpay subscriptions (issue 13). Owns
//! `public.subscriptions` and `public.billing_events` (public migration
//! V2) and each tenant's `usage` table (tenant migration V5).
//!
//! - `entitlement`: what a tenant may do now (plan limits, whether the bot
//!   answers), from its subscription row; a pure function, cached per
//!   tenant here like the bot's settings and dropped by change events.
//! - `usage`: conversations started per calendar month, metered in the
//!   statement that creates a conversation.
//! - `razorpay`: the API client and the two signatures.
//! - `webhook`: Razorpay's events moving the subscription's state.
//! - `notice`: the owners' mail at the month's warning share.
//!
//! Billing is on only with Razorpay's keys; without them every tenant is
//! unlimited and nothing here touches the database.

pub mod entitlement;
pub mod notice;
pub mod razorpay;
pub mod subscribe;
pub mod usage;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

use crate::cache::InvalidatingCache;
use crate::config::{BillingSettings, Limits};
use crate::db::{Db, DbError, SchemaName, Statements};
use crate::error_kind::{Class, Classify, Kind};
use crate::mail::Mailer;
use crate::tenancy::events::ChangeEvent;
use usage::Meter;

pub use entitlement::{Entitlement, State, SubscriptionRow};
pub use razorpay::Razorpay;

/// The time billing decides by. Production reads the system clock; tests
/// move it forward (a month's rollover, a grace period's end) instead of
/// sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves this clock forward (tests).
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_secs
            .fetch_add(by.num_seconds(), Ordering::Relaxed);
    }
}

/// The first day of `at`'s calendar month (UTC): the key of `usage`.
pub fn month_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive().with_day(1).unwrap_or(NaiveDate::MIN)
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("billing is off on this server")]
    Disabled,
    #[error("Razorpay webhooks are off: set RAZORPAY_WEBHOOK_SECRET")]
    WebhooksOff,
    #[error("no plan named {0:?}")]
    UnknownPlan(String),
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    #[error("your plan ({plan}) allows {limit} {what}; upgrade on the Billing page to add more")]
    Limit {
        plan: String,
        what: &'static str,
        limit: u32,
    },
    #[error(
        "your plan ({plan}) shows \"Powered by Chatter\"; upgrade on the Billing page to remove it"
    )]
    BrandingStays { plan: String },
    #[error("there is no Razorpay subscription to change: subscribe first")]
    NoSubscription,
    #[error("the subscription is already paid for: change its plan instead")]
    AlreadySubscribed,
    #[error("X-Razorpay-Signature does not match the body")]
    BadWebhookSignature,
    #[error("razorpay_signature does not match this tenant's subscription and payment")]
    BadCheckoutSignature,
    #[error("{0}")]
    BadRequest(String),
    #[error("Razorpay did not answer as expected: {0}")]
    Razorpay(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(BillingError);

impl Classify for BillingError {
    fn kind(&self) -> Kind {
        match self {
            BillingError::Disabled | BillingError::WebhooksOff => {
                Kind::new(Class::NotFound, "billing_off")
            }
            BillingError::UnknownPlan(_) | BillingError::BadRequest(_) => Kind::bad_input(),
            BillingError::UnknownTenant(_) => Kind::new(Class::NotFound, "unknown_tenant"),
            BillingError::Limit { .. } | BillingError::BrandingStays { .. } => {
                Kind::new(Class::Forbidden, "plan_limit")
            }
            BillingError::NoSubscription | BillingError::AlreadySubscribed => Kind::conflict(),
            BillingError::BadWebhookSignature | BillingError::BadCheckoutSignature => {
                Kind::new(Class::BadInput, "bad_signature")
            }
            BillingError::Razorpay(_) => Kind::new(Class::Unavailable, "payment_provider")
                .saying("the payment provider did not answer; try again shortly")
                .retry_after(std::time::Duration::from_secs(5)),
            BillingError::Db(e) => e.kind(),
        }
    }
}

/// What an owner (and an operator) sees of a tenant's billing.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// False on a server without Razorpay keys (and for the public tenant):
    /// no plans, no limits.
    pub billing: bool,
    /// The plan's name, or `trial`.
    pub plan: String,
    /// `trial`, `created` (checkout not finished), `authenticated`,
    /// `active`, `pending` (a charge failed; Razorpay retries), `halted`,
    /// `cancelled`, `completed`, `paused`, `granted` (by an operator), or
    /// `unbilled`.
    pub state: String,
    pub limits: Limits,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_cycle_end: bool,
    /// Whether the bot answers visitors now.
    pub chat_open: bool,
    /// The bot answers until then (grace included); none: no end.
    pub chat_until: Option<DateTime<Utc>>,
    /// In grace: the trial ended or payments failed; chat stops at `chat_until`.
    pub in_grace: bool,
    /// Conversations started this calendar month (UTC).
    pub conversations_this_month: i64,
    /// At `billing.warn_percent` of the month's conversations or more.
    pub usage_warning: bool,
    pub razorpay_subscription_id: Option<String>,
}

/// One plan, as owners choose among them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub name: String,
    pub price: String,
    pub limits: Limits,
}

/// What a plan's limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    Faqs,
    Members,
}

impl CapKind {
    fn label(self) -> &'static str {
        match self {
            CapKind::Faqs => "FAQs",
            CapKind::Members => "members",
        }
    }

    /// The first key of the tenant's advisory lock for this kind (the
    /// second is the tenant's): adds of one kind wait for each other,
    /// nothing else does.
    fn lock_class(self) -> &'static str {
        match self {
            CapKind::Faqs => "chatter.cap.faqs",
            CapKind::Members => "chatter.cap.members",
        }
    }
}

/// A plan's limit on something a tenant keeps (FAQs, members). It is
/// checked in the transaction that adds, under a per-tenant lock held to
/// its end: two adds at the limit cannot both count the same rows and
/// both pass (a count, then an insert, would let concurrent adds overshoot).
#[derive(Debug, Clone)]
pub struct Cap {
    pub plan: String,
    pub kind: CapKind,
    pub limit: u32,
}

impl Cap {
    pub fn exceeded(&self) -> BillingError {
        BillingError::Limit {
            plan: self.plan.clone(),
            what: self.kind.label(),
            limit: self.limit,
        }
    }

    /// Takes the tenant's lock for this kind (`tenant`: any text naming the
    /// tenant the same way at every caller), then counts with `count_sql`
    /// (one bigint) and refuses when `adding` more would pass the limit.
    /// The count is its own statement, so it sees every add committed
    /// before the lock was granted.
    pub async fn hold(
        &self,
        tx: &impl Statements,
        tenant: &str,
        count_sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        adding: usize,
    ) -> Result<(), BillingError> {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
            &[&self.kind.lock_class(), &tenant],
        )
        .await?;
        let count: i64 = tx.query_one(count_sql, params).await?.try_get(0)?;
        let adding = i64::try_from(adding).unwrap_or(i64::MAX);
        if count.saturating_add(adding) > i64::from(self.limit) {
            return Err(self.exceeded());
        }
        Ok(())
    }
}

/// The billing service: settings, the Razorpay client, and each tenant's
/// entitlement cached in memory.
pub struct Billing {
    db: Db,
    settings: BillingSettings,
    razorpay: Option<Razorpay>,
    clock: Clock,
    entitlements: InvalidatingCache<SchemaName, Arc<Entitlement>>,
    /// Tenants whose month is used up, and which month: a new conversation
    /// is refused before any inference. Dropped with the entitlements.
    full: Mutex<HashMap<SchemaName, NaiveDate>>,
    capacity: usize,
    /// What every tenant gets without billing (shared, no allocation).
    unbilled: Arc<Entitlement>,
    notices: notice::Notices,
}

impl Billing {
    pub fn new(db: Db, settings: BillingSettings, capacity: usize) -> Self {
        let razorpay = Razorpay::from_settings(&settings);
        Self {
            db,
            settings,
            razorpay,
            clock: Clock::default(),
            entitlements: InvalidatingCache::new(capacity),
            full: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            unbilled: Arc::new(Entitlement::unbilled()),
            notices: notice::Notices::new(None, None, capacity),
        }
    }

    /// Mails the owners at the month's warning share through `mailer`,
    /// linking to the dashboard at `public_url`.
    pub fn with_notices(mut self, mailer: Option<Mailer>, public_url: Option<String>) -> Self {
        self.notices = notice::Notices::new(mailer, public_url, self.capacity);
        self
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled()
    }

    pub fn settings(&self) -> &BillingSettings {
        &self.settings
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn razorpay(&self) -> Result<&Razorpay, BillingError> {
        self.razorpay.as_ref().ok_or(BillingError::Disabled)
    }

    pub fn plans(&self) -> Vec<PlanView> {
        self.settings
            .plans
            .iter()
            .map(|p| PlanView {
                name: p.name.clone(),
                price: p.price.clone(),
                limits: p.limits.clone(),
            })
            .collect()
    }

    /// What the tenant may do: from memory, else one read of the public
    /// tables. Without billing, unlimited and no read at all.
    pub async fn entitlement(&self, schema: &SchemaName) -> Result<Arc<Entitlement>, BillingError> {
        if !self.enabled() {
            return Ok(Arc::clone(&self.unbilled));
        }
        if let Some(hit) = self.entitlements.get(schema) {
            return Ok(hit);
        }
        let ticket = self.entitlements.ticket(schema);
        let row = entitlement::load(&self.db, schema)
            .await?
            .ok_or_else(|| BillingError::UnknownTenant(schema.to_string()))?;
        let value = Arc::new(Entitlement::of(&self.settings, &row));
        self.entitlements
            .insert(ticket, schema.clone(), Arc::clone(&value));
        Ok(value)
    }

    /// What a new conversation of a tenant with `entitlement` is metered
    /// against at `now`; none for a tenant that is not billed (self-hosted:
    /// no counter row for every new conversation to wait on).
    pub fn meter(&self, entitlement: &Entitlement, now: DateTime<Utc>) -> Option<Meter> {
        let limit = entitlement.limits.conversations_per_month;
        entitlement.billed.then(|| Meter {
            month: month_of(now),
            limit,
            warn_at: limit.map(|limit| notice::first_warned(limit, self.settings.warn_percent)),
        })
    }

    /// Whether the month of `now` is known to be used up for `schema`.
    pub fn month_full(&self, schema: &SchemaName, now: DateTime<Utc>) -> bool {
        let full = self.full.lock().unwrap_or_else(|e| e.into_inner());
        full.get(schema) == Some(&month_of(now))
    }

    /// Remembers that `month` is used up (a new conversation was refused).
    pub fn mark_full(&self, schema: &SchemaName, month: NaiveDate) {
        let mut full = self.full.lock().unwrap_or_else(|e| e.into_inner());
        if full.len() >= self.capacity {
            full.clear();
        }
        full.insert(schema.clone(), month);
    }

    /// The tenant's billing changed (here or on another replica).
    pub fn invalidate(&self, schema: &SchemaName) {
        self.entitlements.remove(schema);
        self.full
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(schema);
    }

    pub fn invalidate_all(&self) {
        self.entitlements.clear();
        self.full.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The tenant's plan, state and this month's usage.
    pub async fn status(&self, schema: &SchemaName) -> Result<Status, BillingError> {
        let now = self.now();
        if !self.enabled() && entitlement::load(&self.db, schema).await?.is_none() {
            // Without billing nothing else would have looked the tenant up.
            return Err(BillingError::UnknownTenant(schema.to_string()));
        }
        let ent = self.entitlement(schema).await?;
        let used = match ent.billed {
            true => usage::conversations_in(&self.db, schema, month_of(now)).await?,
            // Never metered (see chat::store_exchange): counted instead.
            false => usage::conversations_started_in(&self.db, schema, month_of(now)).await?,
        };
        Ok(self.status_of(&ent, used, now))
    }

    fn status_of(&self, ent: &Entitlement, used: i64, now: DateTime<Utc>) -> Status {
        let usage_warning = ent.billed
            && ent.limits.conversations_per_month.is_some_and(|limit| {
                used * 100 >= i64::from(limit) * i64::from(self.settings.warn_percent)
            });
        Status {
            billing: ent.billed,
            plan: ent.plan.clone(),
            state: ent.state.as_str().to_string(),
            limits: ent.limits.clone(),
            trial_ends_at: ent.trial_ends_at,
            current_period_end: ent.current_period_end,
            cancel_at_cycle_end: ent.cancel_at_cycle_end,
            chat_open: ent.chat_open(now),
            chat_until: ent.answers_until,
            in_grace: ent.in_grace(now),
            conversations_this_month: used,
            usage_warning,
            razorpay_subscription_id: ent.razorpay_subscription_id.clone(),
        }
    }

    /// Refuses hiding "Powered by Chatter" on a plan that keeps it.
    pub async fn check_branding_removal(&self, schema: &SchemaName) -> Result<(), BillingError> {
        let ent = self.entitlement(schema).await?;
        match ent.limits.remove_branding {
            true => Ok(()),
            false => Err(BillingError::BrandingStays {
                plan: ent.plan.clone(),
            }),
        }
    }

    /// The plan's limit on the tenant's FAQs, if it has one.
    pub async fn faq_cap(&self, schema: &SchemaName) -> Result<Option<Cap>, BillingError> {
        let ent = self.entitlement(schema).await?;
        Ok(ent.limits.faqs.map(|limit| Cap {
            plan: ent.plan.clone(),
            kind: CapKind::Faqs,
            limit,
        }))
    }

    /// The plan's limit on the tenant's members, if it has one.
    pub async fn member_cap(&self, schema: &SchemaName) -> Result<Option<Cap>, BillingError> {
        let ent = self.entitlement(schema).await?;
        Ok(ent.limits.members.map(|limit| Cap {
            plan: ent.plan.clone(),
            kind: CapKind::Members,
            limit,
        }))
    }

    /// An operator puts the tenant on `plan` by hand (no Razorpay); `trial`
    /// starts a fresh trial from now.
    pub async fn grant(&self, schema: &SchemaName, plan: &str) -> Result<Status, BillingError> {
        if !self.enabled() {
            return Err(BillingError::Disabled);
        }
        let now = self.now();
        let (state, trial_ends) = if plan == "trial" {
            (
                State::Created,
                Some(now + chrono::Duration::days(i64::from(self.settings.trial.days))),
            )
        } else if self.settings.plan(plan).is_some() {
            (State::Granted, None)
        } else {
            return Err(BillingError::UnknownPlan(plan.to_string()));
        };
        let tx = self.db.shared_tx().await?;
        // Citus refuses now() in DO UPDATE SET on a reference table;
        // excluded.updated_at is the same now(), from the column's default.
        let updated = tx
            .execute(
                "INSERT INTO public.subscriptions (tenant_id, plan, state, trial_ends_at, last_event_at) \
                 SELECT id, $2, $3, $4, $5 FROM public.tenants WHERE schema_name = $1 \
                 ON CONFLICT (tenant_id) DO UPDATE SET plan = excluded.plan, state = excluded.state, \
                 trial_ends_at = excluded.trial_ends_at, halted_since = NULL, \
                 cancel_at_cycle_end = false, last_event_at = excluded.last_event_at, updated_at = excluded.updated_at",
                &[&schema.as_str(), &plan, &state.as_str(), &trial_ends, &now],
            )
            .await?;
        if updated == 0 {
            return Err(BillingError::UnknownTenant(schema.to_string()));
        }
        ChangeEvent::Billing(schema.clone()).notify(&tx).await?;
        tx.commit().await?;
        self.invalidate(schema);
        self.status(schema).await
    }
}
