//! What a tenant may do now: its plan's limits and until when its bot
//! answers, from its `public.subscriptions` row (none: the trial that
//! began when the tenant was made). Pure, so each rule has a unit test.

use chrono::{DateTime, Duration, Utc};

use crate::config::{BillingSettings, Limits};
use crate::db::{Db, DbError, SchemaName};

/// A subscription's state, as Razorpay names it, plus ours: `trial` (no
/// row), `granted` (an operator's hand) and `unbilled` (billing off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trial,
    /// A subscription made, its checkout not finished: still on the trial.
    Created,
    Authenticated,
    Active,
    Pending,
    Halted,
    Cancelled,
    Completed,
    Paused,
    Granted,
    Unbilled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Trial => "trial",
            State::Created => "created",
            State::Authenticated => "authenticated",
            State::Active => "active",
            State::Pending => "pending",
            State::Halted => "halted",
            State::Cancelled => "cancelled",
            State::Completed => "completed",
            State::Paused => "paused",
            State::Granted => "granted",
            State::Unbilled => "unbilled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "trial" => State::Trial,
            "created" => State::Created,
            "authenticated" => State::Authenticated,
            "active" => State::Active,
            "pending" => State::Pending,
            "halted" => State::Halted,
            "cancelled" => State::Cancelled,
            "completed" => State::Completed,
            "paused" => State::Paused,
            "granted" => State::Granted,
            "unbilled" => State::Unbilled,
            _ => return None,
        })
    }

    /// Paid for (or granted): the plan's limits apply and nothing expires.
    pub fn is_paying(self) -> bool {
        matches!(
            self,
            State::Authenticated | State::Active | State::Pending | State::Granted
        )
    }
}

/// A tenant's row of `public.tenants` with its subscription, if any.
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub created_at: DateTime<Utc>,
    pub is_public: bool,
    pub plan: Option<String>,
    pub state: Option<String>,
    pub razorpay_subscription_id: Option<String>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub halted_since: Option<DateTime<Utc>>,
    pub cancel_at_cycle_end: bool,
}

pub async fn load(db: &Db, schema: &SchemaName) -> Result<Option<SubscriptionRow>, DbError> {
    let client = db.shared().await?;
    let row = client
        .query_opt(
            "SELECT t.created_at, t.is_public, s.plan, s.state, s.razorpay_subscription_id, \
                    s.trial_ends_at, s.current_period_end, s.halted_since, \
                    coalesce(s.cancel_at_cycle_end, false) \
             FROM public.tenants t LEFT JOIN public.subscriptions s ON s.tenant_id = t.id \
             WHERE t.schema_name = $1 AND t.is_active",
            &[&schema.as_str()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(SubscriptionRow {
        created_at: row.try_get(0)?,
        is_public: row.try_get(1)?,
        plan: row.try_get(2)?,
        state: row.try_get(3)?,
        razorpay_subscription_id: row.try_get(4)?,
        trial_ends_at: row.try_get(5)?,
        current_period_end: row.try_get(6)?,
        halted_since: row.try_get(7)?,
        cancel_at_cycle_end: row.try_get(8)?,
    }))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entitlement {
    /// False: billing is off, or this is the platform's own tenant.
    pub billed: bool,
    pub plan: String,
    pub state: State,
    pub limits: Limits,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_cycle_end: bool,
    pub razorpay_subscription_id: Option<String>,
    /// Grace began here (the trial's end, the halt); none: not in grace.
    pub grace_from: Option<DateTime<Utc>>,
    /// The bot answers until then; none: no end.
    pub answers_until: Option<DateTime<Utc>>,
}

impl Entitlement {
    pub fn unbilled() -> Self {
        Self {
            billed: false,
            plan: "unlimited".into(),
            state: State::Unbilled,
            limits: Limits::UNLIMITED,
            trial_ends_at: None,
            current_period_end: None,
            cancel_at_cycle_end: false,
            razorpay_subscription_id: None,
            grace_from: None,
            answers_until: None,
        }
    }

    /// The rules: a trial answers until its end plus `grace_days`; a paid
    /// (or granted) plan without end; a halted one for `grace_days` from
    /// the halt; a paused, cancelled or completed one until the end of
    /// the period paid for.
    pub fn of(settings: &BillingSettings, row: &SubscriptionRow) -> Self {
        if !settings.enabled() || row.is_public {
            return Self::unbilled();
        }
        let grace = Duration::days(i64::from(settings.grace_days));
        let state = row
            .state
            .as_deref()
            .and_then(State::parse)
            .unwrap_or(State::Trial);
        let plan_limits = |name: &str| match settings.plan(name) {
            Some(plan) => plan.limits.clone(),
            // A plan taken out of the configuration: whoever pays for it
            // keeps the trial's limits until an operator grants another.
            None => settings.trial.limits(),
        };
        let mut ent = Self {
            billed: true,
            plan: row.plan.clone().unwrap_or_else(|| "trial".into()),
            state,
            limits: settings.trial.limits(),
            trial_ends_at: None,
            current_period_end: row.current_period_end,
            cancel_at_cycle_end: row.cancel_at_cycle_end,
            razorpay_subscription_id: row.razorpay_subscription_id.clone(),
            grace_from: None,
            answers_until: None,
        };
        match state {
            State::Trial | State::Created | State::Unbilled => {
                let ends = row
                    .trial_ends_at
                    .unwrap_or(row.created_at + Duration::days(i64::from(settings.trial.days)));
                ent.plan = "trial".into();
                ent.state = if state == State::Created {
                    State::Created
                } else {
                    State::Trial
                };
                ent.trial_ends_at = Some(ends);
                ent.grace_from = Some(ends);
                ent.answers_until = Some(ends + grace);
            }
            State::Authenticated | State::Active | State::Pending | State::Granted => {
                ent.limits = plan_limits(&ent.plan);
            }
            State::Halted => {
                ent.limits = plan_limits(&ent.plan);
                let since = row.halted_since.unwrap_or(row.created_at);
                ent.grace_from = Some(since);
                ent.answers_until = Some(since + grace);
            }
            State::Paused | State::Cancelled | State::Completed => {
                ent.limits = plan_limits(&ent.plan);
                let stopped = row.halted_since.unwrap_or(row.created_at);
                ent.answers_until = Some(match row.current_period_end {
                    Some(end) if end > stopped => end,
                    _ => stopped,
                });
            }
        }
        ent
    }

    /// Whether the bot answers visitors at `now`.
    pub fn chat_open(&self, now: DateTime<Utc>) -> bool {
        self.answers_until.is_none_or(|until| now < until)
    }

    /// Answering on borrowed time: the trial ended or payments stopped.
    pub fn in_grace(&self, now: DateTime<Utc>) -> bool {
        self.grace_from.is_some_and(|from| now >= from) && self.chat_open(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PlanSettings, Secret};

    fn settings() -> BillingSettings {
        BillingSettings {
            key_id: Some(Secret::new("rzp_test_x")),
            key_secret: Some(Secret::new("s")),
            grace_days: 3,
            plans: vec![PlanSettings {
                name: "pro".into(),
                price: "₹1".into(),
                razorpay_plan_id: "plan_pro".into(),
                limits: Limits {
                    faqs: Some(1000),
                    ..Limits::default()
                },
            }],
            ..BillingSettings::default()
        }
    }

    fn row(state: Option<&str>, plan: Option<&str>) -> SubscriptionRow {
        SubscriptionRow {
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            is_public: false,
            plan: plan.map(String::from),
            state: state.map(String::from),
            razorpay_subscription_id: None,
            trial_ends_at: None,
            current_period_end: None,
            halted_since: None,
            cancel_at_cycle_end: false,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn no_row_is_the_trial_then_grace_then_closed() {
        let ent = Entitlement::of(&settings(), &row(None, None));
        assert_eq!((ent.state, ent.plan.as_str()), (State::Trial, "trial"));
        assert_eq!(ent.limits.faqs, Some(50));
        let end = at("2026-01-15T00:00:00Z");
        assert_eq!(ent.trial_ends_at, Some(end));
        assert!(
            ent.chat_open(end - Duration::seconds(1)) && !ent.in_grace(end - Duration::seconds(1))
        );
        assert!(ent.chat_open(end) && ent.in_grace(end));
        let closed = end + Duration::days(3);
        assert!(!ent.chat_open(closed) && !ent.in_grace(closed));
    }

    #[test]
    fn paying_states_have_the_plan_and_no_end() {
        for state in ["authenticated", "active", "pending", "granted"] {
            let ent = Entitlement::of(&settings(), &row(Some(state), Some("pro")));
            assert_eq!(ent.limits.faqs, Some(1000), "{state}");
            assert!(ent.chat_open(at("2099-01-01T00:00:00Z")), "{state}");
        }
    }

    #[test]
    fn halted_answers_for_the_grace_days() {
        let mut r = row(Some("halted"), Some("pro"));
        r.halted_since = Some(at("2026-03-01T00:00:00Z"));
        let ent = Entitlement::of(&settings(), &r);
        assert!(ent.in_grace(at("2026-03-03T23:00:00Z")));
        assert!(!ent.chat_open(at("2026-03-04T00:00:00Z")));
    }

    #[test]
    fn cancelled_answers_to_the_end_of_the_paid_period() {
        let mut r = row(Some("cancelled"), Some("pro"));
        r.halted_since = Some(at("2026-03-01T00:00:00Z"));
        r.current_period_end = Some(at("2026-03-20T00:00:00Z"));
        let ent = Entitlement::of(&settings(), &r);
        assert!(ent.chat_open(at("2026-03-19T00:00:00Z")));
        assert!(!ent.chat_open(at("2026-03-20T00:00:00Z")));
        assert!(!ent.in_grace(at("2026-03-19T00:00:00Z")));
    }

    #[test]
    fn without_keys_or_for_the_public_tenant_everything_is_unlimited() {
        let off = BillingSettings::default();
        let ent = Entitlement::of(&off, &row(Some("halted"), Some("pro")));
        assert_eq!(ent, Entitlement::unbilled());
        let mut public = row(None, None);
        public.is_public = true;
        assert_eq!(
            Entitlement::of(&settings(), &public),
            Entitlement::unbilled()
        );
        assert!(Entitlement::unbilled().chat_open(at("2999-01-01T00:00:00Z")));
    }
}
