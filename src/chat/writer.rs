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
//! back and is retried with it: the count stays exact. In a group it is
//! bumped last, once per tenant, on the meter's row of the group's writer
//! (`usage::SHARDS`): the two writers never wait for each other's COMMIT
//! on a busy tenant's meter (measured in bench/README.md, issue 13).

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::future::try_join_all;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::Type;

use crate::billing::usage::{self, Counted, Meter};
use crate::chat::{Exchange, Stored, new_session_id};
use crate::db::{Db, DbError, TenantsTx};
use crate::tenancy::SchemaName;

/// Groups committing at once. Two: while one waits for its WAL flush,
/// the next gathers and runs its statements; PostgreSQL merges the
/// flushes of concurrent commits. Each counts on its own meter row.
const WRITERS: i16 = 2;

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
    // The free writers, by number (their meter rows).
    let (free, mut writers) = mpsc::unbounded_channel();
    for writer in 0..WRITERS {
        let _ = free.send(writer);
    }
    loop {
        let Some(writer) = writers.recv().await else {
            return;
        };
        let mut group = Vec::with_capacity(max_group);
        if receiver.recv_many(&mut group, max_group).await == 0 {
            return; // every sender gone: the server is stopping
        }
        let (db, counters, free) = (db.clone(), Arc::clone(&counters), free.clone());
        tokio::spawn(async move {
            store_group(&db, group, writer, &counters).await;
            let _ = free.send(writer);
        });
    }
}

/// Why a group was not stored.
enum GroupFailure {
    /// Before COMMIT: the transaction is rolled back, nothing of it stored.
    Before(DbError),
    /// A billed tenant's new conversations did not fit in its meter row's
    /// share (the month's first, near the warning or the limit): rolled
    /// back, and each stored alone, which hands new shares out and counts
    /// them one by one up to the limit.
    OutOfShare,
    /// At COMMIT: stored or not, nobody can tell.
    AtCommit(DbError),
}

async fn store_group(db: &Db, mut group: Vec<Pending>, writer: i16, counters: &Counters) {
    // One order for every group: two groups writing to the same tenants'
    // rows (the month's meter) take their locks in the same order.
    group.sort_by(|a, b| a.exchange.schema.as_str().cmp(b.exchange.schema.as_str()));
    match write_group(db, &group, writer).await {
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
        Err(failure @ (GroupFailure::Before(_) | GroupFailure::OutOfShare)) => {
            counters.failed_groups.fetch_add(1, Ordering::Relaxed);
            if let GroupFailure::Before(e) = failure {
                tracing::warn!(exchanges = group.len(), error = %e, "a group of chat exchanges failed; storing each alone");
            }
            let alone = group.into_iter().map(|pending| async move {
                let stored = store_alone(db, &pending.exchange).await;
                counters.alone.fetch_add(1, Ordering::Relaxed);
                let _ = pending.done.send(stored);
            });
            futures_util::future::join_all(alone).await;
        }
    }
}

/// Stores one exchange in a transaction of its own: what every chat paid
/// before the group commit (`group_commit_max = 1`), and what an exchange
/// of a failed group gets. Its FAQ is looked up first (and kept from
/// deletion until COMMIT): one deleted meanwhile drops the link, not the
/// exchange. A billed tenant's new conversation is counted before
/// anything is written: at the month's limit nothing is (`Ok(None)`).
/// Exchanges stored alone take the meter's rows in turn.
pub(crate) async fn store_alone(db: &Db, exchange: &Exchange) -> Result<Option<Stored>, DbError> {
    static NEXT_ROW: AtomicU16 = AtomicU16::new(0);
    let tx = db.tenants().await?;
    let exchanges = [exchange];
    let settled = settle(&tx, &exchanges, FaqLink::Checked).await?;
    let month_count = match (exchange.meter, &settled[0].conversation) {
        (Some(meter), None) => {
            let row = NEXT_ROW.fetch_add(1, Ordering::Relaxed) % usage::SHARDS.unsigned_abs();
            let row = i16::try_from(row).unwrap_or_default();
            match usage::count(&tx, &exchange.schema, meter, 1, row).await? {
                Counted::Yes(total) => total,
                Counted::Full => return Ok(None),
            }
        }
        _ => None,
    };
    let conversations = insert_conversations(&tx, &exchanges, &settled).await?;
    let mut messages = insert_messages(&tx, &exchanges, &settled, &conversations).await?;
    tx.commit().await?;
    let (Some((_, session_id)), Some(message_id)) =
        (conversations.into_iter().next(), messages.pop())
    else {
        return Err(DbError::NoRow("the stored exchange"));
    };
    Ok(Some(Stored {
        session_id,
        message_id,
        month_count,
    }))
}

/// One transaction for the whole group, each step's statements sent for
/// every exchange at once (pipelined on the one connection): a group
/// costs the round trips of one exchange. A billed tenant's new
/// conversations are counted last, with one statement per tenant sent
/// with the messages, on the writer's own meter row: the other writer's
/// group counts on another row meanwhile.
async fn write_group(
    db: &Db,
    group: &[Pending],
    writer: i16,
) -> Result<Vec<Option<Stored>>, GroupFailure> {
    let tx = db.tenants().await.map_err(GroupFailure::Before)?;
    let exchanges: Vec<&Exchange> = group.iter().map(|pending| &pending.exchange).collect();
    let settled = settle(&tx, &exchanges, FaqLink::Trusted)
        .await
        .map_err(GroupFailure::Before)?;
    let conversations = insert_conversations(&tx, &exchanges, &settled)
        .await
        .map_err(GroupFailure::Before)?;
    let (messages, counted) = tokio::try_join!(
        insert_messages(&tx, &exchanges, &settled, &conversations),
        count_new(&tx, &exchanges, &settled, writer),
    )
    .map_err(GroupFailure::Before)?;
    if !counted {
        return Err(GroupFailure::OutOfShare);
    }
    tx.commit()
        .await
        .map_err(|e| GroupFailure::AtCommit(DbError::Postgres(e)))?;
    // Counted within shares: the month's count is not seen here.
    Ok(conversations
        .into_iter()
        .zip(messages)
        .map(|((_, session_id), message_id)| {
            Some(Stored {
                session_id,
                message_id,
                month_count: None,
            })
        })
        .collect())
}

/// What a transaction does with an exchange's FAQ link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaqLink {
    /// Left to the messages' foreign key: an FAQ deleted since the answer
    /// fails the group, whose exchanges are then stored alone.
    Trusted,
    /// Looked up first; a deleted FAQ's link is dropped.
    Checked,
}

/// An exchange's place, before anything of it is written.
struct Settled {
    /// The existing conversation it continues; none: a new one.
    conversation: Option<(i64, String)>,
    faq_id: Option<i64>,
}

/// The conversations continued (their last message time moved on: a
/// session id that is missing, malformed or unknown here starts a new
/// one) and, when checked, the FAQs still there.
async fn settle(
    tx: &TenantsTx,
    exchanges: &[&Exchange],
    link: FaqLink,
) -> Result<Vec<Settled>, DbError> {
    let continued = try_join_all(exchanges.iter().map(|e| continued_conversation(tx, e)));
    let faqs = async {
        match link {
            FaqLink::Trusted => Ok(exchanges.iter().map(|e| e.faq_id).collect()),
            FaqLink::Checked => try_join_all(exchanges.iter().map(|e| existing_faq(tx, e))).await,
        }
    };
    let (continued, faqs): (Vec<_>, Vec<_>) = tokio::try_join!(continued, faqs)?;
    Ok(continued
        .into_iter()
        .zip(faqs)
        .map(|(conversation, faq_id)| Settled {
            conversation,
            faq_id,
        })
        .collect())
}

async fn continued_conversation(
    tx: &TenantsTx,
    exchange: &Exchange,
) -> Result<Option<(i64, String)>, DbError> {
    let Some(session_id) = exchange.continues() else {
        return Ok(None);
    };
    let rows = tx
        .query_typed_in(
            &exchange.schema,
            "UPDATE {tenant}.conversations SET last_message_at = now() \
             WHERE session_id = $1 RETURNING id",
            &[(&session_id, Type::TEXT)],
        )
        .await?;
    match rows.first() {
        Some(row) => Ok(Some((row.try_get(0)?, session_id.to_string()))),
        None => Ok(None),
    }
}

/// The exchange's FAQ if it still exists, kept from deletion until COMMIT.
/// Looked up on its own, not in a subquery of the INSERT: Citus refuses
/// subqueries in INSERT ... VALUES.
async fn existing_faq(tx: &TenantsTx, exchange: &Exchange) -> Result<Option<i64>, DbError> {
    let Some(id) = exchange.faq_id else {
        return Ok(None);
    };
    let rows = tx
        .query_typed_in(
            &exchange.schema,
            "SELECT id FROM {tenant}.faqs WHERE id = $1 FOR KEY SHARE",
            &[(&id, Type::INT8)],
        )
        .await?;
    rows.first()
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(DbError::from)
}

/// Each exchange's conversation id and session id: the one it continues,
/// or a new one.
async fn insert_conversations(
    tx: &TenantsTx,
    exchanges: &[&Exchange],
    settled: &[Settled],
) -> Result<Vec<(i64, String)>, DbError> {
    try_join_all(
        exchanges
            .iter()
            .zip(settled)
            .map(|(exchange, settled)| async move {
                if let Some(existing) = &settled.conversation {
                    return Ok(existing.clone());
                }
                let session_id = new_session_id();
                let rows = tx
                    .query_typed_in(
                        &exchange.schema,
                        "INSERT INTO {tenant}.conversations (session_id, origin) \
                 VALUES ($1, $2) RETURNING id",
                        &[(&session_id, Type::TEXT), (&exchange.origin, Type::TEXT)],
                    )
                    .await?;
                let row = rows.first().ok_or(DbError::NoRow("a new conversation"))?;
                Ok((row.try_get(0)?, session_id))
            }),
    )
    .await
}

/// The visitor's message and the bot's answer of each exchange; the
/// answers' ids.
async fn insert_messages(
    tx: &TenantsTx,
    exchanges: &[&Exchange],
    settled: &[Settled],
    conversations: &[(i64, String)],
) -> Result<Vec<i64>, DbError> {
    try_join_all(exchanges.iter().zip(settled).zip(conversations).map(
        |((exchange, settled), (conversation, _))| async move {
            let rows = tx
                .query_typed_in(
                    &exchange.schema,
                    "WITH inserted AS (INSERT INTO {tenant}.messages \
                     (conversation_id, role, text, faq_id, score, embedding, embedding_model) VALUES \
                     ($1, 'visitor', $2, NULL, NULL, $6, $7), \
                     ($1, 'bot', $3, $4, $5, NULL, NULL) RETURNING id, role) \
                     SELECT id FROM inserted WHERE role = 'bot'",
                    &[
                        (conversation, Type::INT8),
                        (&exchange.message, Type::TEXT),
                        (&exchange.reply, Type::TEXT),
                        (&settled.faq_id, Type::INT8),
                        (&exchange.score, Type::FLOAT4),
                        (&exchange.embedding, Type::BYTEA),
                        (&exchange.embedding_model, Type::TEXT),
                    ],
                )
                .await?;
            Ok(rows
                .first()
                .ok_or(DbError::NoRow("the stored messages"))?
                .try_get(0)?)
        },
    ))
    .await
}

/// Counts the group's new conversations of billed tenants within their
/// meter rows' shares: once per tenant and month, on the writer's row, in
/// the group's order (by schema, then month), so two groups never wait on
/// each other's meter rows in a cycle. False when a share does not hold
/// them: the group is then stored again one exchange at a time, which
/// hands new shares out and counts exactly up to the limit.
async fn count_new(
    tx: &TenantsTx,
    exchanges: &[&Exchange],
    settled: &[Settled],
    writer: i16,
) -> Result<bool, DbError> {
    // New, metered conversations by tenant and meter.
    let mut meters: Vec<(&SchemaName, Meter, i32)> = Vec::new();
    for (exchange, settled) in exchanges.iter().zip(settled) {
        let (Some(meter), None) = (exchange.meter, &settled.conversation) else {
            continue;
        };
        match meters
            .iter_mut()
            .find(|(schema, m, _)| **schema == exchange.schema && *m == meter)
        {
            Some((_, _, many)) => *many = many.saturating_add(1),
            None => meters.push((&exchange.schema, meter, 1)),
        }
    }
    meters.sort_by(|a, b| (a.0.as_str(), a.1.month).cmp(&(b.0.as_str(), b.1.month)));
    let counted = usage::count_within_shares(tx, &meters, writer).await?;
    Ok(counted.into_iter().all(|counted| counted))
}
