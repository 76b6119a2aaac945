//! The owners' notice at `billing.warn_percent` of the month's
//! conversations (the dashboard's banner says the same): one mail per
//! tenant per month, sent only with SMTP configured.
//!
//! The chat path pays nothing for it: the count that reaches the share
//! is made with the month's rows locked (the warning ends a share of the
//! meter, `usage::count`) and returns the month's count, and only a chat
//! at or past the share (and not yet known to be noticed this month in
//! this process) spawns the work, off the request. That work claims the month's `usage.warned_at` (tenant
//! migration V8) before mailing, so a restart or another server never
//! mails twice; when no owner could be reached the claim is given back and
//! a later chat tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use crate::billing::usage::{self, Meter};
use crate::billing::{Billing, BillingError};
use crate::db::SchemaName;
use crate::mail::Mailer;

/// What the notice needs besides billing's own handles.
pub struct Notices {
    mailer: Option<Mailer>,
    /// The dashboard's address, for the mail's link (`server.public_url`).
    dashboard_url: Option<String>,
    /// Tenants whose month is noticed (or being noticed) from here: their
    /// later chats spawn nothing. Bounded like the other per-tenant maps.
    noticed: Mutex<HashMap<SchemaName, NaiveDate>>,
    capacity: usize,
}

impl Notices {
    pub fn new(mailer: Option<Mailer>, public_url: Option<String>, capacity: usize) -> Self {
        Self {
            mailer,
            dashboard_url: public_url.map(|url| format!("{url}/app/#/billing")),
            noticed: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Marks the month as handled here; false when it already was.
    fn begin(&self, schema: &SchemaName, month: NaiveDate) -> bool {
        let mut noticed = self.noticed.lock().unwrap_or_else(|e| e.into_inner());
        if noticed.get(schema) == Some(&month) {
            return false;
        }
        if noticed.len() >= self.capacity {
            noticed.clear();
        }
        noticed.insert(schema.clone(), month);
        true
    }

    /// The month could not be noticed: a later chat tries again.
    fn forget(&self, schema: &SchemaName, month: NaiveDate) {
        let mut noticed = self.noticed.lock().unwrap_or_else(|e| e.into_inner());
        if noticed.get(schema) == Some(&month) {
            noticed.remove(schema);
        }
    }
}

/// The smallest count that [`reaches`] `percent` of `limit`.
pub fn first_warned(limit: u32, percent: u32) -> u32 {
    let share = u64::from(limit) * u64::from(percent);
    u32::try_from(share.div_ceil(100)).unwrap_or(u32::MAX)
}

/// Whether `count` conversations reach `percent` of `limit`.
pub fn reaches(count: i64, limit: u32, percent: u32) -> bool {
    count.saturating_mul(100) >= i64::from(limit) * i64::from(percent)
}

impl Billing {
    /// A new conversation was metered: the month's count is `count`. At the
    /// warning share, the owners are mailed once, in the background.
    pub fn metered(self: &Arc<Self>, schema: &SchemaName, meter: Meter, count: i32) {
        let Some(limit) = meter.limit else { return };
        if self.notices.mailer.is_none()
            || !reaches(i64::from(count), limit, self.settings.warn_percent)
            || !self.notices.begin(schema, meter.month)
        {
            return;
        }
        let billing = Arc::clone(self);
        let schema = schema.clone();
        tokio::spawn(async move {
            match billing.notify_owners(&schema, meter.month, limit).await {
                Ok(true) => {}
                Ok(false) => billing.notices.forget(&schema, meter.month),
                Err(e) => {
                    billing.notices.forget(&schema, meter.month);
                    tracing::error!(error = %e, tenant = %schema, "usage notice not sent");
                }
            }
        });
    }

    /// Claims the month's notice and mails the owners. True when the
    /// month is noticed (now or before, here or elsewhere); false when no
    /// owner could be mailed (the claim is given back).
    async fn notify_owners(
        &self,
        schema: &SchemaName,
        month: NaiveDate,
        limit: u32,
    ) -> Result<bool, BillingError> {
        let Some(mailer) = &self.notices.mailer else {
            return Ok(false);
        };
        let tx = self.db.tenant(schema).await?;
        // Row 0 of the month's meter keeps the notice (V9); the month was
        // metered against its limit, so the row exists. The count is read
        // after the claim, in its own statement (no subquery in RETURNING,
        // which Citus may not route).
        let claimed = tx
            .query_opt(
                "UPDATE usage SET warned_at = now() \
                 WHERE month = $1 AND shard = 0 AND warned_at IS NULL RETURNING shard",
                &[&month],
            )
            .await?;
        if claimed.is_none() {
            tx.commit().await?;
            return Ok(true);
        }
        let count: i64 = tx
            .query_one(usage::MONTH_TOTAL, &[&month])
            .await?
            .try_get(0)?;
        tx.commit().await?;
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        let client = self.db.shared().await?;
        let owners = client
            .query(
                "SELECT t.name, u.email FROM public.tenants t \
                 JOIN public.memberships m ON m.tenant_id = t.id AND m.role = 'owner' \
                 JOIN public.users u ON u.id = m.user_id \
                 WHERE t.schema_name = $1 ORDER BY u.email",
                &[&schema.as_str()],
            )
            .await?;
        drop(client);
        let mut sent = 0;
        for owner in &owners {
            let (name, email): (String, String) = (owner.try_get(0)?, owner.try_get(1)?);
            let (subject, body) = self.notice_text(&name, month, count, limit);
            match mailer.send(&email, &subject, &body).await {
                Ok(()) => sent += 1,
                Err(e) => {
                    let domain = email.rsplit('@').next().unwrap_or_default().to_string();
                    tracing::error!(error = %e, %domain, tenant = %schema, "usage notice not sent");
                }
            }
        }
        if sent == 0 && !owners.is_empty() {
            let tx = self.db.tenant(schema).await?;
            tx.execute(
                "UPDATE usage SET warned_at = NULL WHERE month = $1 AND shard = 0",
                &[&month],
            )
            .await?;
            tx.commit().await?;
            return Ok(false);
        }
        Ok(true)
    }

    fn notice_text(
        &self,
        name: &str,
        month: NaiveDate,
        count: i32,
        limit: u32,
    ) -> (String, String) {
        let percent = self.settings.warn_percent;
        let next = month
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(month)
            .format("%-d %B %Y");
        let link = match &self.notices.dashboard_url {
            Some(url) => format!("See your plan and upgrade on the Billing page:\n\n{url}\n\n"),
            None => "See your plan and upgrade on the dashboard's Billing page.\n\n".to_string(),
        };
        let subject = format!("{name}: {percent}% of this month's conversations used");
        let body = format!(
            "Your chat assistant {name} has started {count} of the {limit} conversations \
             its plan allows this month ({percent}%).\n\n\
             When all {limit} are used, new visitors are told that chat is unavailable \
             (in your own words, from the bot's settings) until the month ends on {next}. \
             Conversations under way go on.\n\n\
             {link}\
             You get this notice once a month.\n"
        );
        (subject, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_reached_at_the_first_count_past_it() {
        assert!(!reaches(79, 100, 80));
        assert!(reaches(80, 100, 80));
        // 80% of 7 is 5.6: the sixth conversation is the first past it.
        assert!(!reaches(5, 7, 80));
        assert!(reaches(6, 7, 80));
    }

    #[test]
    fn a_month_is_begun_once_until_forgotten() {
        let notices = Notices::new(None, None, 4);
        let shop = SchemaName::parse("shop").unwrap();
        let may = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        let june = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        assert!(notices.begin(&shop, may));
        assert!(!notices.begin(&shop, may));
        assert!(notices.begin(&shop, june), "a new month is noticed anew");
        notices.forget(&shop, june);
        assert!(notices.begin(&shop, june));
    }
}
