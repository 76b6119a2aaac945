//! A tenant's conversations for its members: a paged, searchable list, a
//! transcript, erasure of one conversation, and a CSV export.

use crate::db::Db;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::db::TenantTx;
use crate::error_kind::{Classify, Kind};
use crate::tenancy::SchemaName;

pub const PAGE_SIZE: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("no conversation {0}")]
    NotFound(i64),
    #[error("the export could not be written: {0}")]
    Export(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(ConversationError);

impl Classify for ConversationError {
    fn kind(&self) -> Kind {
        match self {
            ConversationError::NotFound(_) => Kind::not_found(),
            ConversationError::Export(_) => Kind::internal(),
            ConversationError::Db(e) => e.kind(),
        }
    }
}

/// What to list: words to search for, a date range (inclusive, UTC days),
/// whether every question was answered (`Some(false)`: at least one fell
/// back), and whether a visitor gave an answer a thumbs down
/// (`Some(true)`: at least one 👎; `Some(false)`: none).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub q: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub answered: Option<bool>,
    pub thumbs_down: Option<bool>,
    pub page: i64,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = ConversationSummary)]
pub struct Summary {
    pub id: i64,
    pub session_id: String,
    pub origin: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub messages: i64,
    pub first_message: Option<String>,
    pub answered: bool,
    /// The bot's answers in it that the visitor gave a thumbs down.
    pub thumbs_down: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ConversationPage)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
    pub conversations: Vec<Summary>,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Message {
    pub role: String,
    pub text: String,
    pub faq_id: Option<i64>,
    pub score: Option<f32>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Transcript {
    #[serde(flatten)]
    pub conversation: Summary,
    pub transcript: Vec<Message>,
}

// One WHERE clause for the list and its count; every value is a bind parameter.
const FILTER: &str = "($1::text IS NULL OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
     AND to_tsvector('simple', m.text) @@ plainto_tsquery('simple', $1))) \
     AND ($2::date IS NULL OR c.last_message_at >= $2::date) \
     AND ($3::date IS NULL OR c.started_at < $3::date + 1) \
     AND ($4::bool IS NULL OR $4 = NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
     AND m.role = 'bot' AND m.faq_id IS NULL)) \
     AND ($5::bool IS NULL OR $5 = (c.id IN (SELECT m.conversation_id FROM feedback f \
     JOIN messages m ON m.id = f.message_id WHERE NOT f.helpful)))";

const SUMMARY: &str = "c.id, c.session_id, c.origin, c.started_at, c.last_message_at, \
     (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id), \
     (SELECT m.text FROM messages m WHERE m.conversation_id = c.id AND m.role = 'visitor' ORDER BY m.id LIMIT 1), \
     NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.role = 'bot' AND m.faq_id IS NULL), \
     (SELECT count(*) FROM messages m JOIN feedback f ON f.message_id = m.id \
       WHERE m.conversation_id = c.id AND NOT f.helpful)";

fn summary(row: &tokio_postgres::Row) -> Result<Summary, tokio_postgres::Error> {
    Ok(Summary {
        id: row.try_get(0)?,
        session_id: row.try_get(1)?,
        origin: row.try_get(2)?,
        started_at: row.try_get(3)?,
        last_message_at: row.try_get(4)?,
        messages: row.try_get(5)?,
        first_message: row.try_get(6)?,
        answered: row.try_get(7)?,
        thumbs_down: row.try_get(8)?,
    })
}

/// The newest conversations first, `PAGE_SIZE` a page (pages count from 1).
pub async fn list(
    db: &Db,
    schema: &SchemaName,
    filter: &Filter,
) -> Result<Page, ConversationError> {
    let page = filter.page.max(1);
    let tx = db.tenant(schema).await?;
    let total = count_in(&tx, filter).await?;
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    let conversations = newest_in(&tx, filter, PAGE_SIZE, offset).await?;
    tx.commit().await?;
    Ok(Page {
        page,
        per_page: PAGE_SIZE,
        total,
        conversations,
    })
}

/// How many of the tenant's conversations match `filter` (the page is ignored).
pub async fn count(
    db: &Db,
    schema: &SchemaName,
    filter: &Filter,
) -> Result<i64, ConversationError> {
    let tx = db.tenant(schema).await?;
    let total = count_in(&tx, filter).await?;
    tx.commit().await?;
    Ok(total)
}

/// A conversation and the tenant it belongs to.
#[derive(Debug, Serialize, PartialEq)]
pub struct TenantConversation {
    pub tenant: SchemaName,
    #[serde(flatten)]
    pub conversation: Summary,
}

/// The `limit` newest conversations matching `filter` across `tenants`,
/// newest first. One transaction per tenant schema (never a query across
/// two schemas: see DESIGN.md, Scale), a few schemas at a time so many
/// tenants do not read one by one; a schema dropped meanwhile (its tenant
/// deleted right now) is skipped rather than hiding the others.
pub async fn latest_across(
    db: &Db,
    tenants: &[SchemaName],
    filter: &Filter,
    limit: i64,
) -> Result<Vec<TenantConversation>, ConversationError> {
    // At most half the pool, so the reads leave room for other work.
    let concurrency = (db.status().max_size / 2).clamp(1, 8);
    // The futures are made first: a closure inside the stream would make
    // the whole future !Send for tokio::spawn (a known HRTB limitation).
    let reads: Vec<_> = tenants
        .iter()
        .map(|schema| newest_of(db, schema, filter, limit))
        .collect();
    let per_tenant: Vec<_> = futures_util::stream::iter(reads)
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let mut all: Vec<TenantConversation> = per_tenant.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        b.conversation
            .last_message_at
            .cmp(&a.conversation.last_message_at)
            .then_with(|| a.tenant.as_str().cmp(b.tenant.as_str()))
            .then_with(|| b.conversation.id.cmp(&a.conversation.id))
    });
    all.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
    Ok(all)
}

/// One tenant's newest conversations for `latest_across`; none when its
/// schema has gone.
async fn newest_of(
    db: &Db,
    schema: &SchemaName,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<TenantConversation>, ConversationError> {
    let tx = db.tenant(schema).await?;
    let rows = match newest_in(&tx, filter, limit, 0).await {
        Ok(rows) => rows,
        Err(ConversationError::Db(DbError::Postgres(e)))
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
        {
            tracing::warn!(%schema, error = %e, "skipping a tenant without its tables");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|conversation| TenantConversation {
            tenant: schema.clone(),
            conversation,
        })
        .collect())
}

fn search_words(filter: &Filter) -> Option<&str> {
    filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
}

async fn count_in(tx: &TenantTx, filter: &Filter) -> Result<i64, ConversationError> {
    let q = search_words(filter);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &q,
        &filter.from,
        &filter.to,
        &filter.answered,
        &filter.thumbs_down,
    ];
    Ok(tx
        .query_one(
            &format!("SELECT count(*) FROM conversations c WHERE {FILTER}"),
            &params,
        )
        .await?
        .try_get(0)?)
}

async fn newest_in(
    tx: &TenantTx,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Summary>, ConversationError> {
    let q = search_words(filter);
    let rows = tx
        .query(
            &format!(
                "SELECT {SUMMARY} FROM conversations c WHERE {FILTER} \
                 ORDER BY c.last_message_at DESC, c.id DESC LIMIT $7 OFFSET $6"
            ),
            &[
                &q,
                &filter.from,
                &filter.to,
                &filter.answered,
                &filter.thumbs_down,
                &offset,
                &limit,
            ],
        )
        .await?;
    Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
}

pub async fn transcript(
    db: &Db,
    schema: &SchemaName,
    id: i64,
) -> Result<Transcript, ConversationError> {
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {SUMMARY} FROM conversations c WHERE c.id = $1"),
            &[&id],
        )
        .await?
        .ok_or(ConversationError::NotFound(id))?;
    let rows = tx
        .query(
            "SELECT role, text, faq_id, score, created_at FROM messages WHERE conversation_id = $1 ORDER BY id",
            &[&id],
        )
        .await?;
    tx.commit().await?;
    let transcript = rows
        .iter()
        .map(|r| {
            Ok(Message {
                role: r.try_get(0)?,
                text: r.try_get(1)?,
                faq_id: r.try_get(2)?,
                score: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(Transcript {
        conversation: summary(&row)?,
        transcript,
    })
}

/// Erases one conversation and its messages (a visitor's right to erasure).
pub async fn delete(db: &Db, schema: &SchemaName, id: i64) -> Result<(), ConversationError> {
    let tx = db.tenant(schema).await?;
    if tx
        .execute("DELETE FROM conversations WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Err(ConversationError::NotFound(id));
    }
    tx.commit().await?;
    Ok(())
}

/// Visitors write the text: a cell a spreadsheet would read as a formula
/// (`=`, `+`, `-`, `@`, or a tab or carriage return first) is prefixed with
/// `'`, OWASP's advice against CSV injection (issue 16).
fn spreadsheet_safe(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// Every message as CSV rows, oldest conversation first.
pub async fn export_csv(db: &Db, schema: &SchemaName) -> Result<String, ConversationError> {
    let tx = db.tenant(schema).await?;
    let rows = tx
        .query(
            "SELECT c.id, c.session_id, m.created_at, m.role, m.text, m.faq_id, m.score \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id ORDER BY c.id, m.id",
            &[],
        )
        .await?;
    tx.commit().await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| ConversationError::Export(e.to_string());
    writer
        .write_record([
            "conversation_id",
            "session_id",
            "created_at",
            "role",
            "text",
            "faq_id",
            "score",
        ])
        .map_err(csv_error)?;
    for row in rows {
        let created: DateTime<Utc> = row.try_get(2)?;
        let faq_id: Option<i64> = row.try_get(5)?;
        let score: Option<f32> = row.try_get(6)?;
        writer
            .write_record([
                row.try_get::<_, i64>(0)?.to_string(),
                row.try_get::<_, String>(1)?,
                created.to_rfc3339(),
                row.try_get::<_, String>(3)?,
                spreadsheet_safe(row.try_get::<_, String>(4)?),
                faq_id.map(|f| f.to_string()).unwrap_or_default(),
                score.map(|s| s.to_string()).unwrap_or_default(),
            ])
            .map_err(csv_error)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| ConversationError::Export(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

// --- The rows whole, as a backup carries them ---

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRow {
    pub id: i64,
    pub session_id: String,
    pub origin: Option<String>,
    pub started_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub messages: Vec<MessageRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRow {
    pub id: i64,
    pub role: String,
    pub text: String,
    pub faq_id: Option<i64>,
    pub score: Option<f32>,
    pub created_at: DateTime<Utc>,
    /// The visitor's thumbs on a bot answer (absent from version 1 files).
    #[serde(default)]
    pub feedback: Option<FeedbackRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRow {
    pub helpful: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every conversation with its messages and their feedback, read inside a
/// tenant's (snapshot) transaction.
pub async fn export_in(tx: &TenantTx) -> Result<Vec<ConversationRow>, tokio_postgres::Error> {
    let mut conversations = tx
        .query(
            "SELECT id, session_id, origin, started_at, last_message_at \
             FROM conversations ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(ConversationRow {
                id: row.try_get(0)?,
                session_id: row.try_get(1)?,
                origin: row.try_get(2)?,
                started_at: row.try_get(3)?,
                last_message_at: row.try_get(4)?,
                messages: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;

    // One pass over the messages, in conversation order: both lists are
    // sorted by conversation id, so each message goes to the current one.
    let messages = tx
        .query(
            "SELECT m.conversation_id, m.id, m.role, m.text, m.faq_id, m.score, m.created_at, \
                    f.helpful, f.created_at, f.updated_at \
             FROM messages m LEFT JOIN feedback f ON f.message_id = m.id \
             ORDER BY m.conversation_id, m.id",
            &[],
        )
        .await?;
    let mut slots = conversations.iter_mut().peekable();
    for row in &messages {
        let conversation_id: i64 = row.try_get(0)?;
        let message = MessageRow {
            id: row.try_get(1)?,
            role: row.try_get(2)?,
            text: row.try_get(3)?,
            faq_id: row.try_get(4)?,
            score: row.try_get(5)?,
            created_at: row.try_get(6)?,
            feedback: match row.try_get::<_, Option<bool>>(7)? {
                Some(helpful) => Some(FeedbackRow {
                    helpful,
                    created_at: row.try_get(8)?,
                    updated_at: row.try_get(9)?,
                }),
                None => None,
            },
        };
        // The foreign key guarantees a conversation; only ids before it are skipped.
        while slots.next_if(|c| c.id < conversation_id).is_some() {}
        if let Some(conversation) = slots.peek_mut() {
            conversation.messages.push(message);
        }
    }
    Ok(conversations)
}

/// Writes restored conversations, ids and all, into a new tenant.
pub async fn restore_in(
    tx: &TenantTx,
    conversations: &[ConversationRow],
) -> Result<(), tokio_postgres::Error> {
    let insert_conversation = tx
        .prepare(
            "INSERT INTO conversations (id, session_id, origin, started_at, last_message_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let insert_message = tx
        .prepare(
            "INSERT INTO messages (id, conversation_id, role, text, faq_id, score, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let insert_feedback = tx
        .prepare(
            "INSERT INTO feedback (message_id, helpful, created_at, updated_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    for conversation in conversations {
        tx.execute(
            &insert_conversation,
            &[
                &conversation.id,
                &conversation.session_id,
                &conversation.origin,
                &conversation.started_at,
                &conversation.last_message_at,
            ],
        )
        .await?;
        for message in &conversation.messages {
            tx.execute(
                &insert_message,
                &[
                    &message.id,
                    &conversation.id,
                    &message.role,
                    &message.text,
                    &message.faq_id,
                    &message.score,
                    &message.created_at,
                ],
            )
            .await?;
            if let Some(feedback) = &message.feedback {
                tx.execute(
                    &insert_feedback,
                    &[
                        &message.id,
                        &feedback.helpful,
                        &feedback.created_at,
                        &feedback.updated_at,
                    ],
                )
                .await?;
            }
        }
    }

    // The rows came with their ids, so the sequences never moved: the next
    // row written by the app must come after the largest restored id.
    // Reads first, then setval alone: on Citus a query that reads a tenant
    // table runs on its worker, where the sequence is not the coordinator's.
    let next = tx
        .query_one(
            "SELECT (SELECT coalesce(max(id), 0) + 1 FROM conversations), \
                    (SELECT coalesce(max(id), 0) + 1 FROM messages)",
            &[],
        )
        .await?;
    let (conversations_next, messages_next): (i64, i64) = (next.try_get(0)?, next.try_get(1)?);
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('conversations', 'id'), $1, false), \
                setval(pg_get_serial_sequence('messages', 'id'), $2, false)",
        &[&conversations_next, &messages_next],
    )
    .await?;
    Ok(())
}
