//! Conversations started per calendar month (UTC), in the tenant's own
//! `usage` table. A billed tenant's new conversation is counted in the
//! transaction that stores it (`chat::writer`), so a rolled-back exchange
//! is never counted: under the plan's limit the statement returns the new
//! count; at the limit it returns no row and nothing is stored. No extra
//! round trip per message, and none at all for a message in an existing
//! conversation.

use chrono::NaiveDate;

use crate::db::{Db, DbError, SchemaName};

/// Counts one new conversation, for a `TenantsTx` (the table named with
/// the tenant's schema). `$1`: the month (its first day), `$2`: the limit
/// (NULL: none). Returns the month's count after this conversation, or no
/// row when the limit is reached.
pub const METER_IN: &str = "INSERT INTO {tenant}.usage AS u (month, conversations) VALUES ($1, 1) \
     ON CONFLICT (month) DO UPDATE SET conversations = u.conversations + 1 \
     WHERE $2::int IS NULL OR u.conversations < $2::int \
     RETURNING conversations";

/// Counts `$3` new conversations at once, all or none (a group of chats,
/// `chat::writer`): the month's count after them, or no row when they do
/// not all fit under the limit `$2` (the group is then stored again one
/// exchange at a time, with [`METER_IN`]).
pub const METER_MANY_IN: &str = "INSERT INTO {tenant}.usage AS u (month, conversations) \
     SELECT $1, $3::int WHERE $2::int IS NULL OR $3::int <= $2::int \
     ON CONFLICT (month) DO UPDATE SET conversations = u.conversations + $3::int \
     WHERE $2::int IS NULL OR u.conversations + $3::int <= $2::int \
     RETURNING conversations";

/// What to meter a new conversation against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meter {
    pub month: NaiveDate,
    /// Conversations the month allows; none: no limit.
    pub limit: Option<u32>,
}

impl Meter {
    pub fn limit_param(&self) -> Option<i32> {
        self.limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX))
    }
}

/// Conversations started in `month`, counted from the conversations
/// themselves: what an unbilled tenant (never metered) shows.
pub async fn conversations_started_in(
    db: &Db,
    schema: &SchemaName,
    month: NaiveDate,
) -> Result<i64, DbError> {
    let start = month.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = month
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(month)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_one(
            "SELECT count(*) FROM conversations WHERE started_at >= $1 AND started_at < $2",
            &[&start, &end],
        )
        .await?;
    tx.commit().await?;
    Ok(row.try_get(0)?)
}

/// The tenant's conversations started in `month`.
pub async fn conversations_in(
    db: &Db,
    schema: &SchemaName,
    month: NaiveDate,
) -> Result<i64, DbError> {
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            "SELECT conversations FROM usage WHERE month = $1",
            &[&month],
        )
        .await?;
    tx.commit().await?;
    Ok(match row {
        Some(row) => i64::from(row.try_get::<_, i32>(0)?),
        None => 0,
    })
}
