//! Backup and offboarding: one tenant as one portable JSON file
//! (`TenantArchive`), and back. An export reads everything in one
//! repeatable-read transaction, so the file is one consistent snapshot; an
//! import creates the tenant exactly as `provision::create_tenant` does and
//! writes all its data in that same transaction: the whole tenant, or
//! nothing. Ids are kept as they were, so the links from messages to FAQs
//! survive, and the sequences are moved past them.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use tokio_postgres::IsolationLevel;

use crate::db::DbError;
use crate::tenancy::events::ChangeEvent;
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::{SchemaName, TenancyError, TenantTx};

/// What `format` says in every archive, so a stray JSON file is named as
/// such rather than failing on some missing field.
pub const FORMAT: &str = "chatter-tenant";
/// Bumped whenever an older reader could not restore a newer file exactly.
/// Version 2 added the visitors' feedback; version 1 files (none) still load.
pub const FORMAT_VERSION: u32 = 2;
const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the file is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the file is not a chatter tenant archive (no \"format\": \"{FORMAT}\")")]
    NotAnArchive,
    #[error(
        "the archive has format version {0}; this chatter reads versions \
         {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}"
    )]
    UnsupportedVersion(String),
    #[error("the archive is malformed: {0}")]
    Malformed(serde_json::Error),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(BackupError);

/// One tenant, everything needed to bring it back. No field is optional
/// (apart from nullable columns): a file missing one is refused, not
/// restored with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantArchive {
    pub format: String,
    pub version: u32,
    pub schema: String,
    pub name: String,
    /// Where the tenant was reachable; informational, never re-attached.
    pub domains: Vec<String>,
    pub bot_config: BotConfigRow,
    pub faqs: Vec<FaqRow>,
    pub conversations: Vec<ConversationRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfigRow {
    pub bot_name: String,
    pub greeting: String,
    pub fallback_reply: String,
    pub match_threshold: f32,
    pub theme: serde_json::Value,
    pub allowed_origins: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqRow {
    pub id: i64,
    pub question: String,
    pub answer: String,
    pub alternatives: Vec<String>,
    pub embedding: Option<Vec<f32>>,
    pub model_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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

impl TenantArchive {
    pub fn message_count(&self) -> usize {
        self.conversations.iter().map(|c| c.messages.len()).sum()
    }

    /// Parses a file, naming the problem: not JSON (a truncated file), not
    /// an archive, another format version, or a malformed archive.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BackupError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(BackupError::NotJson)?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(BackupError::NotAnArchive);
        }
        match value.get("version") {
            Some(v)
                if v.as_u64().is_some_and(|v| {
                    (u64::from(OLDEST_READABLE_VERSION)..=u64::from(FORMAT_VERSION)).contains(&v)
                }) => {}
            Some(v) => return Err(BackupError::UnsupportedVersion(v.to_string())),
            None => return Err(BackupError::UnsupportedVersion("(none)".into())),
        }
        serde_json::from_value(value).map_err(BackupError::Malformed)
    }
}

/// Reads the tenant `schema` whole, in one read-only repeatable-read
/// transaction: chats going on meanwhile land wholly before or after it.
pub async fn export(pool: &Pool, schema: &SchemaName) -> Result<TenantArchive, BackupError> {
    let mut client = pool.get().await?;
    let tx = tokio_postgres::Client::build_transaction(&mut client)
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let tx = TenantTx::enter(tx, schema).await?;

    let tenant = tx
        .query_opt(
            "SELECT t.name, coalesce(array_agg(d.domain ORDER BY d.is_primary DESC, d.domain) \
                             FILTER (WHERE d.domain IS NOT NULL), '{}') \
             FROM public.tenants t LEFT JOIN public.domains d ON d.tenant_id = t.id \
             WHERE t.schema_name = $1 GROUP BY t.id",
            &[&schema.as_str()],
        )
        .await?
        .ok_or_else(|| TenancyError::UnknownTenant(schema.to_string()))?;

    let row = tx
        .query_one(
            "SELECT bot_name, greeting, fallback_reply, match_threshold, theme, \
                    allowed_origins, updated_at FROM bot_config",
            &[],
        )
        .await?;
    let bot_config = BotConfigRow {
        bot_name: row.try_get(0)?,
        greeting: row.try_get(1)?,
        fallback_reply: row.try_get(2)?,
        match_threshold: row.try_get(3)?,
        theme: row.try_get(4)?,
        allowed_origins: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    };

    let faqs = tx
        .query(
            "SELECT id, question, answer, alternatives, embedding, model_id, created_at, \
                    updated_at FROM faqs ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(FaqRow {
                id: row.try_get(0)?,
                question: row.try_get(1)?,
                answer: row.try_get(2)?,
                alternatives: row.try_get(3)?,
                embedding: row.try_get(4)?,
                model_id: row.try_get(5)?,
                created_at: row.try_get(6)?,
                updated_at: row.try_get(7)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;

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
    tx.commit().await?;

    Ok(TenantArchive {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        schema: schema.to_string(),
        name: tenant.try_get(0)?,
        domains: tenant.try_get(1)?,
        bot_config,
        faqs,
        conversations,
    })
}

/// Creates a tenant from `archive` under `as_schema` (default: the
/// archive's own schema), with no domain, and writes all its data, in one
/// transaction. A schema that exists already is refused untouched.
pub async fn import(
    pool: &Pool,
    archive: &TenantArchive,
    as_schema: Option<&str>,
) -> Result<SchemaName, BackupError> {
    let new = NewTenant {
        schema: as_schema.unwrap_or(&archive.schema),
        name: &archive.name,
        // The archive's domains may still route to the old tenant.
        domain: None,
        is_public: false,
    }
    .checked()?;
    let mut client = pool.get().await?;
    let tx = tokio_postgres::Client::transaction(&mut client).await?;
    let (_, tx) = provision::create_tenant_in(tx, &new).await?;
    write_data(&tx, archive).await?;
    ChangeEvent::BotConfig(new.schema.clone())
        .notify(&*tx)
        .await?;
    ChangeEvent::Faqs(new.schema.clone()).notify(&*tx).await?;
    tx.commit().await?;
    Ok(new.schema)
}

/// Writes the archive's rows into the freshly created tenant of `tx`.
async fn write_data(tx: &TenantTx<'_>, archive: &TenantArchive) -> Result<(), BackupError> {
    let bot = &archive.bot_config;
    tx.execute(
        "UPDATE bot_config SET bot_name = $1, greeting = $2, fallback_reply = $3, \
                match_threshold = $4, theme = $5, allowed_origins = $6, updated_at = $7",
        &[
            &bot.bot_name,
            &bot.greeting,
            &bot.fallback_reply,
            &bot.match_threshold,
            &bot.theme,
            &bot.allowed_origins,
            &bot.updated_at,
        ],
    )
    .await?;

    let insert_faq = tx
        .prepare(
            "INSERT INTO faqs (id, question, answer, alternatives, embedding, model_id, \
                               created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    for faq in &archive.faqs {
        tx.execute(
            &insert_faq,
            &[
                &faq.id,
                &faq.question,
                &faq.answer,
                &faq.alternatives,
                &faq.embedding,
                &faq.model_id,
                &faq.created_at,
                &faq.updated_at,
            ],
        )
        .await?;
    }

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
    for conversation in &archive.conversations {
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
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('faqs', 'id'), \
                       coalesce((SELECT max(id) FROM faqs), 0) + 1, false); \
         SELECT setval(pg_get_serial_sequence('conversations', 'id'), \
                       coalesce((SELECT max(id) FROM conversations), 0) + 1, false); \
         SELECT setval(pg_get_serial_sequence('messages', 'id'), \
                       coalesce((SELECT max(id) FROM messages), 0) + 1, false);",
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_json() -> serde_json::Value {
        serde_json::json!({
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "schema": "acme",
            "name": "Acme",
            "domains": ["acme.test"],
            "bot_config": {
                "bot_name": "Ace",
                "greeting": "Hi",
                "fallback_reply": "Sorry",
                "match_threshold": 0.55,
                "theme": {"color": "#000"},
                "allowed_origins": [],
                "updated_at": "2024-05-01T10:00:00.123456Z"
            },
            "faqs": [],
            "conversations": []
        })
    }

    #[test]
    fn an_archive_round_trips_through_json() {
        let bytes = serde_json::to_vec(&archive_json()).unwrap();
        let archive = TenantArchive::from_json(&bytes).unwrap();
        assert_eq!(archive.bot_config.match_threshold, 0.55);
        let again = serde_json::to_vec(&archive).unwrap();
        assert_eq!(TenantArchive::from_json(&again).unwrap(), archive);
    }

    #[test]
    fn a_version_1_file_loads_with_no_feedback() {
        let mut v1 = archive_json();
        v1["version"] = serde_json::json!(1);
        v1["conversations"] = serde_json::json!([{
            "id": 1, "session_id": "s", "origin": null,
            "started_at": "2024-05-01T10:00:00Z", "last_message_at": "2024-05-01T10:00:00Z",
            "messages": [{"id": 1, "role": "bot", "text": "Hi", "faq_id": null, "score": null,
                          "created_at": "2024-05-01T10:00:00Z"}]
        }]);
        let archive = TenantArchive::from_json(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(archive.conversations[0].messages[0].feedback, None);
    }

    #[test]
    fn bad_files_are_named() {
        let bytes = serde_json::to_vec(&archive_json()).unwrap();
        let err = TenantArchive::from_json(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, BackupError::NotJson(_)), "{err}");
        assert!(err.to_string().contains("not valid JSON"), "{err}");

        let err = TenantArchive::from_json(b"[1, 2]").unwrap_err();
        assert!(matches!(err, BackupError::NotAnArchive), "{err}");

        let mut newer = archive_json();
        newer["version"] = serde_json::json!(FORMAT_VERSION + 1);
        let err = TenantArchive::from_json(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("format version {}", FORMAT_VERSION + 1)),
            "{err}"
        );

        let mut missing = archive_json();
        missing.as_object_mut().unwrap().remove("faqs");
        let err = TenantArchive::from_json(&serde_json::to_vec(&missing).unwrap()).unwrap_err();
        assert!(err.to_string().contains("faqs"), "{err}");
    }
}
