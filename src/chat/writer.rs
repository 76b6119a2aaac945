//! Group commit of chat exchanges (issue 17). Every chat stores an
//! exchange; alone, each paid a transaction of its own: `BEGIN`, its
//! statements, a `COMMIT` that waits for its WAL flush, four round trips,
//! and PostgreSQL's CPU for all of it, taken from inference on a small
//! machine. Here a chat hands its exchange to the writer and waits; the
//! writer takes every exchange that is waiting (no timer: those that
//! finished while the previous group was committing) and stores them in
//! one transaction, all their statements pipelined on one connection, each
//! naming its tenant's tables (`TenantsTx`). A chat is answered only after
//! its group committed, so an answered exchange is a stored one.
//!
//! A statement that fails rolls its whole group back; each exchange of it
//! is then stored again alone (`store_alone`), so one bad exchange fails
//! only its own chat. A COMMIT whose outcome is unknown (the connection
//! broke) is not retried: that could store the group twice; every chat of
//! it fails with `DbError::CommitUnknown`. A billed tenant's meter is
//! bumped inside the same transaction as its conversation, so it rolls
//! back and is retried with it: the count stays exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::types::{ToSql, Type};

use crate::billing::usage;
use crate::chat::{Exchange, Stored, new_session_id, store_alone};
use crate::db::{Db, DbError, TenantsTx};

/// Groups committing at once. Two: while one waits for its WAL flush,
/// the next gathers and runs its statements; PostgreSQL merges the
/// flushes of concurrent commits.
const WRITERS: usize = 2;

/// Exchanges waiting for a group at most; beyond that a chat waits to
/// hand its exchange over (its own request stays bounded by the request
/// timeout).
const QUEUE: usize = 4096;

type Done = oneshot::Sender<Result<Option<Stored>, DbError>>;

struct Pending {
    exchange: Exchange,
    done: Done,
}

/// What the writer did, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed with one group each.
    pub groups: u64,
    /// Exchanges stored in those groups.
    pub grouped: u64,
    /// Groups rolled back because one of their statements failed.
    pub failed_groups: u64,
    /// Exchanges stored again alone after their group failed.
    pub alone: u64,
}

#[derive(Default)]
struct Counters {
    groups: AtomicU64,
    grouped: AtomicU64,
    failed_groups: AtomicU64,
    alone: AtomicU64,
}

/// Stores chat exchanges in groups. See the module header.
pub struct ExchangeWriter {
    db: Db,
    max_group: usize,
    /// Started with the first exchange, on the runtime that stores it.
    sender: OnceLock<mpsc::Sender<Pending>>,
    counters: Arc<Counters>,
}

impl ExchangeWriter {
    /// `max_group`: exchanges in one transaction at most; 1 stores each in
    /// a transaction of its own, as before the group commit.
    pub fn new(db: Db, max_group: usize) -> Self {
        Self {
            db,
            max_group: max_group.max(1),
            sender: OnceLock::new(),
            counters: Arc::default(),
        }
    }

    /// Stores `exchange` (with the others waiting) and answers once its
    /// transaction committed: `Ok(None)` when the tenant's month is full
    /// (nothing stored).
    pub async fn store(&self, exchange: Exchange) -> Result<Option<Stored>, DbError> {
        if self.max_group == 1 {
            return store_alone(&self.db, &exchange).await;
        }
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(run(
                self.db.clone(),
                receiver,
                self.max_group,
                Arc::clone(&self.counters),
            ));
            sender
        });
        let (done, stored) = oneshot::channel();
        sender
            .send(Pending { exchange, done })
            .await
            .map_err(|_| DbError::Unreachable("the exchange writer has stopped".into()))?;
        stored
            .await
            .map_err(|_| DbError::CommitUnknown("the exchange writer stopped".into()))?
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            groups: c.groups.load(Ordering::Relaxed),
            grouped: c.grouped.load(Ordering::Relaxed),
            failed_groups: c.failed_groups.load(Ordering::Relaxed),
            alone: c.alone.load(Ordering::Relaxed),
        }
    }
}

/// Takes what is waiting, up to `max_group`, whenever a writer is free.
async fn run(
    db: Db,
    mut receiver: mpsc::Receiver<Pending>,
    max_group: usize,
    counters: Arc<Counters>,
) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    loop {
        let Ok(writer) = Arc::clone(&writers).acquire_owned().await else {
            return;
        };
        let mut group = Vec::with_capacity(max_group);
        if receiver.recv_many(&mut group, max_group).await == 0 {
            return; // every sender gone: the server is stopping
        }
        let (db, counters) = (db.clone(), Arc::clone(&counters));
        tokio::spawn(async move {
            store_group(&db, group, &counters).await;
            drop(writer);
        });
    }
}

/// Why a group was not stored.
enum GroupFailure {
    /// Before COMMIT: the transaction is rolled back, nothing of it stored.
    Before(DbError),
    /// At COMMIT: stored or not, nobody can tell.
    AtCommit(DbError),
}

async fn store_group(db: &Db, mut group: Vec<Pending>, counters: &Counters) {
    // One order for every group: two groups writing to the same tenants'
    // rows (the month's meter) take their locks in the same order.
    group.sort_by(|a, b| a.exchange.schema.as_str().cmp(b.exchange.schema.as_str()));
    match write_group(db, &group).await {
        Ok(stored) => {
            counters.groups.fetch_add(1, Ordering::Relaxed);
            counters
                .grouped
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            for (pending, stored) in group.into_iter().zip(stored) {
                // The chat may have gone away (cancelled): its exchange is
                // stored all the same.
                let _ = pending.done.send(Ok(stored));
            }
        }
        Err(GroupFailure::AtCommit(e)) => {
            tracing::error!(exchanges = group.len(), error = %e, "a group of chat exchanges may not be stored");
            let what = e.to_string();
            let mut first = Some(e);
            for pending in group {
                let e = first
                    .take()
                    .unwrap_or_else(|| DbError::CommitUnknown(what.clone()));
                let e = match e {
                    DbError::CommitUnknown(_) => e,
                    other => DbError::CommitUnknown(other.to_string()),
                };
                let _ = pending.done.send(Err(e));
            }
        }
        Err(GroupFailure::Before(e)) => {
            counters.failed_groups.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(exchanges = group.len(), error = %e, "a group of chat exchanges failed; storing each alone");
            let alone = group.into_iter().map(|pending| async move {
                let stored = store_alone(db, &pending.exchange).await;
                counters.alone.fetch_add(1, Ordering::Relaxed);
                let _ = pending.done.send(stored);
            });
            futures_util::future::join_all(alone).await;
        }
    }
}

/// One transaction for the whole group, every exchange's statements sent
/// at once (pipelined): a group costs the round trips of one exchange.
async fn write_group(db: &Db, group: &[Pending]) -> Result<Vec<Option<Stored>>, GroupFailure> {
    let tx = db.tenants().await.map_err(GroupFailure::Before)?;
    let stored = futures_util::future::try_join_all(
        group
            .iter()
            .map(|pending| write_one(&tx, &pending.exchange)),
    )
    .await
    .map_err(GroupFailure::Before)?;
    tx.commit()
        .await
        .map_err(|e| GroupFailure::AtCommit(DbError::Postgres(e)))?;
    Ok(stored)
}

/// `store_alone`'s statements for one exchange of a group, with two
/// differences. The meter is awaited before the conversation's INSERT: at
/// the limit this exchange alone stores nothing (its group cannot roll
/// back for it). The FAQ is not looked up first: the messages' foreign key
/// checks it; if it was deleted meanwhile the group fails and the exchange
/// is stored alone, which drops the link.
async fn write_one(tx: &TenantsTx, exchange: &Exchange) -> Result<Option<Stored>, DbError> {
    let schema = &exchange.schema;
    let mut conversation = None;
    let mut month_count = None;
    if let Some(id) = exchange.continues() {
        let rows = tx
            .query_typed_in(
                schema,
                "UPDATE {tenant}.conversations SET last_message_at = now() \
                 WHERE session_id = $1 RETURNING id",
                &[(&id, Type::TEXT)],
            )
            .await?;
        if let Some(row) = rows.first() {
            conversation = Some((id.to_string(), row.try_get::<_, i64>(0)?));
        }
    }
    let (session_id, conversation) = match conversation {
        Some(found) => found,
        None => {
            if let Some(meter) = exchange.meter {
                let limit = meter.limit_param();
                let params: [(&(dyn ToSql + Sync), Type); 2] =
                    [(&meter.month, Type::DATE), (&limit, Type::INT4)];
                let metered = tx.query_typed_in(schema, usage::METER_IN, &params).await?;
                let Some(row) = metered.first() else {
                    return Ok(None);
                };
                month_count = Some(row.try_get::<_, i32>(0)?);
            }
            let id = new_session_id();
            let rows = tx
                .query_typed_in(
                    schema,
                    "INSERT INTO {tenant}.conversations (session_id, origin) \
                     VALUES ($1, $2) RETURNING id",
                    &[(&id, Type::TEXT), (&exchange.origin, Type::TEXT)],
                )
                .await?;
            let row = rows.first().ok_or(DbError::NoRow("a new conversation"))?;
            let conversation: i64 = row.try_get(0)?;
            (id, conversation)
        }
    };
    let rows = tx
        .query_typed_in(
            schema,
            "WITH inserted AS (INSERT INTO {tenant}.messages \
             (conversation_id, role, text, faq_id, score, embedding, embedding_model) VALUES \
             ($1, 'visitor', $2, NULL, NULL, $6, $7), \
             ($1, 'bot', $3, $4, $5, NULL, NULL) RETURNING id, role) \
             SELECT id FROM inserted WHERE role = 'bot'",
            &[
                (&conversation, Type::INT8),
                (&exchange.message, Type::TEXT),
                (&exchange.reply, Type::TEXT),
                (&exchange.faq_id, Type::INT8),
                (&exchange.score, Type::FLOAT4),
                (&exchange.embedding, Type::BYTEA),
                (&exchange.embedding_model, Type::TEXT),
            ],
        )
        .await?;
    let message_id = rows
        .first()
        .ok_or(DbError::NoRow("the stored messages"))?
        .try_get(0)?;
    Ok(Some(Stored {
        session_id,
        message_id,
        month_count,
    }))
}
