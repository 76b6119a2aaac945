//! Conversations started per calendar month (UTC), in the tenant's own
//! `usage` table. A billed tenant's new conversation is counted in the
//! transaction that stores it (`chat::writer`), so a rolled-back exchange
//! is never counted: at the limit [`count`] says [`Counted::Full`] and
//! nothing is stored. No extra round trip per message, and none at all
//! for a message in an existing conversation. The month's count is split
//! over [`SHARDS`] rows, each counting within a share of the limit, so
//! that concurrent groups of one tenant do not queue on one row lock.

use chrono::NaiveDate;
use futures_util::future::try_join_all;
use tokio_postgres::Statement;
use tokio_postgres::types::{ToSql, Type};

use crate::db::{Db, DbError, SchemaName, TenantsTx};

/// Rows a month's count is split over. A group of chats counts on the row
/// of its writer (`chat::writer` has two), an exchange stored alone on the
/// next row in turn: two groups of one busy tenant never wait for each
/// other's COMMIT on one row.
pub const SHARDS: i16 = 4;

/// Counts `$3` new conversations on row `$4` when they fit in its share
/// (handed out against the limit `$2`). No row: the share is used up, or
/// was handed out against another limit, or not yet. A count that had to
/// wait for the row keeps it locked even when it then fails (PostgreSQL
/// locks the newer row to recheck it): the transaction is rolled back, or
/// to a savepoint ([`count`]), before the month's rows are locked.
const COUNT_IN_SHARE: &str = "UPDATE {tenant}.usage AS u SET conversations = u.conversations + $3::int \
     WHERE u.month = $1 AND u.shard = $4 AND u.cap_limit = $2::int \
     AND u.conversations + $3::int <= u.cap RETURNING u.shard";

/// Counts `$3` new conversations on row `$2` of the month `$1`, with no
/// limit. Plain VALUES, typed: Citus sends it to the tenant's node as
/// written, and an untyped parameter in a SELECT list cannot be typed
/// there.
const COUNT_UNLIMITED: &str = "INSERT INTO {tenant}.usage AS u (month, shard, conversations) \
     VALUES ($1::date, $2::smallint, $3::int) \
     ON CONFLICT (month, shard) DO UPDATE SET conversations = u.conversations + excluded.conversations \
     RETURNING u.shard";

/// Every row of the month exists before they are locked (one per shard).
const MAKE_ROWS: &str = "INSERT INTO {tenant}.usage (month, shard) \
     VALUES ($1, 0), ($1, 1), ($1, 2), ($1, 3) ON CONFLICT DO NOTHING";

/// Every row of the month, locked, in one order for every transaction.
const LOCK_ROWS: &str = "SELECT conversations FROM {tenant}.usage WHERE month = $1 \
     ORDER BY shard FOR UPDATE";

/// Counts `$3` on row `$4` and hands shares out to the rows, valid under
/// the limit `$2`: `$5` each, `$6` more to row `$4`.
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
    /// The count at which the owners are warned (`billing.warn_percent`
    /// of the limit): the count that reaches it is always seen exactly.
    pub warn_at: Option<u32>,
}

impl Meter {
    pub fn limit_param(&self) -> Option<i32> {
        self.limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX))
    }
}

/// What counting new conversations did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted. The month's count after them when it was seen exactly
    /// (every row locked: the first count of a month, the one that
    /// reaches the warning, and near the limit); none within a share.
    Yes(Option<i32>),
    /// They do not all fit under the limit; nothing counted.
    Full,
}

/// Counts each `(tenant, meter, how many)` of `counts` within its row's
/// share, one statement each, pipelined, locking one row each; `shard`
/// (modulo [`SHARDS`]) is the row. False for those whose share does not
/// hold them (or whose month has none yet): the caller rolls its whole
/// transaction back and counts them again with [`count`], which may lock
/// the month. Far from the limit and the warning, every count is this.
pub async fn count_within_shares(
    tx: &TenantsTx,
    counts: &[(&SchemaName, Meter, i32)],
    shard: i16,
) -> Result<Vec<bool>, DbError> {
    let shard = shard.rem_euclid(SHARDS);
    // Every statement prepared first, then all sent in the callers' order:
    // a first use's PREPARE must not let a later tenant's row be locked
    // before an earlier one's.
    let statements = try_join_all(
        counts
            .iter()
            .map(|&(schema, meter, _)| prepare(tx, schema, meter)),
    )
    .await?;
    try_join_all(
        counts
            .iter()
            .zip(&statements)
            .map(|(&(_, meter, many), statement)| run_count(tx, statement, meter, many, shard)),
    )
    .await
}

/// Counts `many` new conversations of `schema`, all or none, on row
/// `shard` (modulo [`SHARDS`]), in the caller's transaction. Within the
/// row's share it is one statement; past it, the count is rolled back to
/// a savepoint (with the row lock it may have taken) and made again with
/// every row of the month locked, in order, handing new shares out.
///
/// Exact under any concurrency: a row counts only within its share, and
/// the shares are handed out with every row of the month locked, adding
/// up to the limit; so transactions take the meter's rows in one order
/// and never deadlock on them.
pub async fn count(
    tx: &TenantsTx,
    schema: &SchemaName,
    meter: Meter,
    many: i32,
    shard: i16,
) -> Result<Counted, DbError> {
    let shard = shard.rem_euclid(SHARDS);
    let Some(limit) = meter.limit_param() else {
        count_in_share(tx, schema, meter, many, shard).await?;
        return Ok(Counted::Yes(None));
    };
    tx.query_typed_in(schema, "SAVEPOINT meter", &[]).await?;
    if count_in_share(tx, schema, meter, many, shard).await? {
        return Ok(Counted::Yes(None));
    }
    tx.query_typed_in(schema, "ROLLBACK TO SAVEPOINT meter", &[])
        .await?;
    share_out(tx, schema, meter, limit, many, shard).await
}

/// One statement: [`COUNT_IN_SHARE`], or [`COUNT_UNLIMITED`] (which
/// always counts). Whether it counted.
async fn count_in_share(
    tx: &TenantsTx,
    schema: &SchemaName,
    meter: Meter,
    many: i32,
    shard: i16,
) -> Result<bool, DbError> {
    let statement = prepare(tx, schema, meter).await?;
    run_count(tx, &statement, meter, many, shard).await
}

/// The count of `meter` for `schema`, prepared on the transaction's
/// connection: it runs on every group of a billed tenant.
async fn prepare(tx: &TenantsTx, schema: &SchemaName, meter: Meter) -> Result<Statement, DbError> {
    Ok(match meter.limit {
        None => {
            tx.prepared_in(
                schema,
                COUNT_UNLIMITED,
                &[Type::DATE, Type::INT2, Type::INT4],
            )
            .await?
        }
        Some(_) => {
            tx.prepared_in(
                schema,
                COUNT_IN_SHARE,
                &[Type::DATE, Type::INT4, Type::INT4, Type::INT2],
            )
            .await?
        }
    })
}

/// Runs a statement from [`prepare`] for the same `meter`.
async fn run_count(
    tx: &TenantsTx,
    statement: &Statement,
    meter: Meter,
    many: i32,
    shard: i16,
) -> Result<bool, DbError> {
    let rows = match meter.limit_param() {
        None => {
            tx.query_statement(statement, &[&meter.month, &shard, &many])
                .await?
        }
        Some(limit) => {
            tx.query_statement(statement, &[&meter.month, &limit, &many, &shard])
                .await?
        }
    };
    Ok(!rows.is_empty())
}

/// Counts `many` on row `shard` with every row of the month locked, and
/// hands shares of `limit` out to the rows: of what is left up to the
/// warning while the month is under it (so the count that reaches it
/// comes here and is seen exactly), then of what is left of the limit.
async fn share_out(
    tx: &TenantsTx,
    schema: &SchemaName,
    meter: Meter,
    limit: i32,
    many: i32,
    shard: i16,
) -> Result<Counted, DbError> {
    let month: [(&(dyn ToSql + Sync), Type); 1] = [(&meter.month, Type::DATE)];
    tx.query_typed_in(schema, MAKE_ROWS, &month).await?;
    let rows = tx.query_typed_in(schema, LOCK_ROWS, &month).await?;
    let mut counted = 0_i64;
    for row in &rows {
        counted += i64::from(row.try_get::<_, i32>(0)?);
    }
    let after = counted + i64::from(many);
    if after > i64::from(limit) {
        return Ok(Counted::Full);
    }
    let up_to = match meter.warn_at.map(i64::from) {
        Some(warn_at) if after < warn_at => (warn_at - 1).min(i64::from(limit)),
        _ => i64::from(limit),
    };
    let (each, rest) = split(up_to - after, rows.len());
    let params: [(&(dyn ToSql + Sync), Type); 6] = [
        (&meter.month, Type::DATE),
        (&limit, Type::INT4),
        (&many, Type::INT4),
        (&shard, Type::INT2),
        (&each, Type::INT4),
        (&rest, Type::INT4),
    ];
    tx.query_typed_in(schema, SHARE_OUT, &params).await?;
    Ok(Counted::Yes(Some(saturate(after))))
}

/// `left` split over `rows`: what each gets, and what is left over (to
/// the counting row).
fn split(left: i64, rows: usize) -> (i32, i32) {
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

/// The month's count (`$1`: the month), the sum of its rows, in a
/// transaction in the tenant's schema.
pub(crate) const MONTH_TOTAL: &str =
    "SELECT coalesce(sum(conversations), 0)::bigint FROM usage WHERE month = $1";

/// The tenant's conversations started in `month`.
pub async fn conversations_in(
    db: &Db,
    schema: &SchemaName,
    month: NaiveDate,
) -> Result<i64, DbError> {
    let tx = db.tenant(schema).await?;
    let row = tx.query_one(MONTH_TOTAL, &[&month]).await?;
    tx.commit().await?;
    Ok(row.try_get(0)?)
}
