//! Conversations started per calendar month (UTC), in the tenant's own
//! `usage` table. A billed tenant's new conversation is counted in the
//! transaction that stores it (`chat::writer`), so a rolled-back exchange
//! is never counted: under the plan's limit [`count`] returns the new
//! count; at the limit it returns none and nothing is stored. No extra
//! round trip per message, and none at all for a message in an existing
//! conversation. The month's count is split over [`SHARDS`] rows, so that
//! concurrent groups of one tenant do not queue on one row lock.

use chrono::NaiveDate;
use futures_util::future::try_join_all;
use tokio_postgres::types::{ToSql, Type};

use crate::db::{Db, DbError, SchemaName, TenantsTx};

/// Rows a month's count is split over. A group of chats counts on the row
/// of its writer (`chat::writer` has two), an exchange stored alone on the
/// next row in turn: two groups of one busy tenant never wait for each
/// other's COMMIT on one row.
pub const SHARDS: i16 = 4;

/// Counts `$3` new conversations on row `$4` when they fit in its share of
/// the limit `$2` (handed out against that same limit): the month's count
/// after them, the other rows as this statement sees them. No row: the
/// share is used up, or was handed out against another limit, or not yet.
/// A count that had to wait for the row keeps it locked even when it then
/// fails (PostgreSQL locks the newer row to recheck it): [`count`] rolls
/// it back to a savepoint before it locks the month's rows.
const COUNT_IN_SHARE: &str = "UPDATE {tenant}.usage AS u SET conversations = u.conversations + $3::int \
     WHERE u.month = $1 AND u.shard = $4 AND u.cap_limit = $2::int \
     AND u.conversations + $3::int <= u.cap \
     RETURNING u.conversations::bigint + (SELECT coalesce(sum(o.conversations), 0) \
     FROM {tenant}.usage o WHERE o.month = $1 AND o.shard <> $4)::bigint";

/// Counts `$3` new conversations on row `$4` of a month with no limit.
/// `$2` is unused (the statements share their parameters).
const COUNT_UNLIMITED: &str = "INSERT INTO {tenant}.usage AS u (month, shard, conversations) \
     SELECT $1, $4, $3::int WHERE $2::int IS NULL \
     ON CONFLICT (month, shard) DO UPDATE SET conversations = u.conversations + $3::int \
     RETURNING u.conversations::bigint + (SELECT coalesce(sum(o.conversations), 0) \
     FROM {tenant}.usage o WHERE o.month = $1 AND o.shard <> $4)::bigint";

/// Every row of the month exists before they are locked (one per shard).
const MAKE_ROWS: &str = "INSERT INTO {tenant}.usage (month, shard) \
     VALUES ($1, 0), ($1, 1), ($1, 2), ($1, 3) ON CONFLICT DO NOTHING";

/// Every row of the month, locked, in one order for every transaction.
const LOCK_ROWS: &str = "SELECT conversations FROM {tenant}.usage WHERE month = $1 \
     ORDER BY shard FOR UPDATE";

/// Counts `$3` on row `$4` and hands what is left of the limit `$2` out
/// to the rows: `$5` each, `$6` more to row `$4`.
const SHARE_OUT: &str = "UPDATE {tenant}.usage SET cap_limit = $2::int, \
     conversations = conversations + CASE WHEN shard = $4 THEN $3::int ELSE 0 END, \
     cap = conversations + CASE WHEN shard = $4 THEN $3::int + $6::int ELSE 0 END + $5::int \
     WHERE month = $1";

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

/// Counts new conversations in the caller's transaction, for each
/// `(tenant, meter, how many)` of `counts` (in one order for every
/// transaction: by schema), on row `shard` (modulo [`SHARDS`]) of each
/// month. Each entry's month count after them, or `None` when they do not
/// all fit under its limit (its transaction must then roll back what it
/// wrote: the other entries are counted).
///
/// Exact under any concurrency: a row counts only within its share, and
/// the shares are handed out with every row of the month locked, adding
/// up to the limit. Far from the limit every count is one statement,
/// pipelined, that locks one row; when a share runs out the counts are
/// rolled back to a savepoint (with any row lock they took) and made
/// again one by one, each with its month's rows locked in order, so
/// transactions take the meter's rows in one order and never deadlock.
pub async fn count(
    tx: &TenantsTx,
    counts: &[(&SchemaName, Meter, i32)],
    shard: i16,
) -> Result<Vec<Option<i32>>, DbError> {
    let Some(&(anchor, _, _)) = counts.first() else {
        return Ok(Vec::new());
    };
    let shard = shard.rem_euclid(SHARDS);
    let limited = counts.iter().any(|(_, meter, _)| meter.limit.is_some());
    if limited {
        tx.query_typed_in(anchor, "SAVEPOINT meter", &[]).await?;
    }
    let first = try_join_all(
        counts
            .iter()
            .map(|&(schema, meter, many)| count_in_share(tx, schema, meter, many, shard)),
    )
    .await?;
    if first.iter().all(Option::is_some) {
        return Ok(first);
    }
    tx.query_typed_in(anchor, "ROLLBACK TO SAVEPOINT meter", &[])
        .await?;
    let mut again = Vec::with_capacity(counts.len());
    for &(schema, meter, many) in counts {
        let counted = match meter.limit {
            None => count_in_share(tx, schema, meter, many, shard).await?,
            Some(_) => share_out(tx, schema, meter, many, shard).await?,
        };
        again.push(counted);
    }
    Ok(again)
}

/// One statement: [`COUNT_IN_SHARE`], or [`COUNT_UNLIMITED`] (which
/// always counts).
async fn count_in_share(
    tx: &TenantsTx,
    schema: &SchemaName,
    meter: Meter,
    many: i32,
    shard: i16,
) -> Result<Option<i32>, DbError> {
    let limit = meter.limit_param();
    let params: [(&(dyn ToSql + Sync), Type); 4] = [
        (&meter.month, Type::DATE),
        (&limit, Type::INT4),
        (&many, Type::INT4),
        (&shard, Type::INT2),
    ];
    let sql = match limit {
        None => COUNT_UNLIMITED,
        Some(_) => COUNT_IN_SHARE,
    };
    let rows = tx.query_typed_in(schema, sql, &params).await?;
    match rows.first() {
        Some(row) => Ok(Some(saturate(row.try_get(0)?))),
        None if limit.is_none() => Err(DbError::NoRow("the month's count")),
        None => Ok(None),
    }
}

/// Counts `many` on row `shard` with every row of the month locked, and
/// hands what is left of the limit out to the rows; `None` (nothing
/// changed) when they do not fit.
async fn share_out(
    tx: &TenantsTx,
    schema: &SchemaName,
    meter: Meter,
    many: i32,
    shard: i16,
) -> Result<Option<i32>, DbError> {
    let Some(limit) = meter.limit_param() else {
        return count_in_share(tx, schema, meter, many, shard).await;
    };
    let month: [(&(dyn ToSql + Sync), Type); 1] = [(&meter.month, Type::DATE)];
    tx.query_typed_in(schema, MAKE_ROWS, &month).await?;
    let rows = tx.query_typed_in(schema, LOCK_ROWS, &month).await?;
    let mut counted = 0_i64;
    for row in &rows {
        counted += i64::from(row.try_get::<_, i32>(0)?);
    }
    let left = i64::from(limit) - counted - i64::from(many);
    if left < 0 {
        return Ok(None);
    }
    let (each, rest) = share_out_split(left, rows.len());
    let params: [(&(dyn ToSql + Sync), Type); 6] = [
        (&meter.month, Type::DATE),
        (&Some(limit), Type::INT4),
        (&many, Type::INT4),
        (&shard, Type::INT2),
        (&each, Type::INT4),
        (&rest, Type::INT4),
    ];
    tx.query_typed_in(schema, SHARE_OUT, &params).await?;
    Ok(Some(saturate(counted + i64::from(many))))
}

/// `left` split over `rows`: what each gets, and what is left over (to
/// the counting row).
fn share_out_split(left: i64, rows: usize) -> (i32, i32) {
    let rows = i64::try_from(rows.max(1)).unwrap_or(i64::MAX);
    let each = i32::try_from(left / rows).unwrap_or(i32::MAX);
    let rest = i32::try_from(left % rows).unwrap_or(0);
    (each, rest)
}

fn saturate(count: i64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
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
        .query_one(
            "SELECT coalesce(sum(conversations), 0)::bigint FROM usage WHERE month = $1",
            &[&month],
        )
        .await?;
    tx.commit().await?;
    Ok(row.try_get(0)?)
}
