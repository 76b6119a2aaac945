//! Answering a visitor: `Answerer` (the use case: check, embed, decide,
//! store); `decide`, between an FAQ's answer, a fallback with suggestions,
//! and a plain fallback; storing the exchange. Also what the widget asks
//! of a stored conversation: its messages back (a reload continues the
//! conversation) and the visitor's thumbs up or down on an answer.

pub mod answerer;

pub use answerer::{Answerer, Question, Reply, check_message};

use crate::db::Db;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;

use crate::bot_config::BotConfig;
use crate::config::ChatSettings;
use crate::db::DbError;
use crate::engine::EngineError;
use crate::engine::index::FaqIndex;
use crate::error_kind::{Class, Classify, Kind};
use crate::faq::FaqError;
use crate::tenancy::SchemaName;

/// What the bot says, before it is stored.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Answer {
    pub reply: String,
    pub matched: bool,
    pub score: f32,
    pub faq_id: Option<i64>,
    pub suggestions: Vec<String>,
}

/// Score ≥ threshold: that FAQ's answer. Within `suggestion_margin` below
/// it: the fallback reply, plus the nearest questions to pick from. Lower:
/// the fallback reply alone.
pub fn decide(index: &FaqIndex, query: &[f32], bot: &BotConfig, chat: &ChatSettings) -> Answer {
    let hits = index.nearest(query, chat.max_suggestions.max(1));
    let Some(best) = hits.first() else {
        return fallback(bot, 0.0, Vec::new());
    };
    let score = best.score;
    if score >= bot.match_threshold {
        return Answer {
            reply: best.faq.answer.clone(),
            matched: true,
            score,
            faq_id: Some(best.faq.id),
            suggestions: Vec::new(),
        };
    }
    let suggestions = if score >= bot.match_threshold - chat.suggestion_margin {
        hits.iter()
            .filter(|hit| hit.score >= bot.match_threshold - chat.suggestion_margin)
            .take(chat.max_suggestions)
            .map(|hit| hit.faq.question.clone())
            .collect()
    } else {
        Vec::new()
    };
    fallback(bot, score, suggestions)
}

fn fallback(bot: &BotConfig, score: f32, suggestions: Vec<String>) -> Answer {
    Answer {
        reply: bot.fallback_reply.clone(),
        matched: false,
        score,
        faq_id: None,
        suggestions,
    }
}

/// A new session id: 128 random bits as 32 hex digits.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn is_session_id(raw: &str) -> bool {
    raw.len() == 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("message is empty")]
    EmptyMessage,
    #[error("message is longer than {0} characters")]
    TooLong(usize),
    #[error("message may not contain NUL (\\u0000) characters")]
    Nul,
    #[error("session_id must be the 32 hex digits the chat answered with")]
    InvalidSession,
    #[error("no conversation with that session id")]
    UnknownSession,
    #[error("no answer {0} in this conversation")]
    UnknownMessage(i64),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The FAQ index could not be built.
    #[error(transparent)]
    Index(#[from] FaqError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(ChatError);

impl Classify for ChatError {
    fn kind(&self) -> Kind {
        match self {
            ChatError::EmptyMessage | ChatError::TooLong(_) | ChatError::Nul => {
                Kind::new(Class::BadInput, "bad_request")
            }
            ChatError::InvalidSession => Kind::bad_input(),
            ChatError::UnknownSession | ChatError::UnknownMessage(_) => Kind::not_found(),
            ChatError::Engine(e) => e.kind(),
            ChatError::Index(e) => e.kind(),
            ChatError::Db(e) => e.kind(),
        }
    }
}

/// Where an exchange was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub session_id: String,
    /// The bot's message: what feedback refers to.
    pub message_id: i64,
}

/// Stores the visitor's message and the bot's answer in the conversation
/// of `session_id`, or in a new conversation with a new id when that one is
/// missing, malformed or unknown here.
pub async fn store_exchange(
    db: &Db,
    schema: &SchemaName,
    session_id: Option<&str>,
    origin: Option<&str>,
    message: &str,
    answer: &Answer,
) -> Result<Stored, DbError> {
    let tx = db.tenant(schema).await?;
    let existing = match session_id.filter(|s| is_session_id(s)) {
        Some(id) => tx
            .query_opt(
                "UPDATE conversations SET last_message_at = now() WHERE session_id = $1 RETURNING id",
                &[&id],
            )
            .await?
            .map(|row| row.try_get::<_, i64>(0).map(|conv| (id.to_string(), conv)))
            .transpose()?,
        None => None,
    };
    let (session_id, conversation) = match existing {
        Some(found) => found,
        None => {
            let id = new_session_id();
            let row = tx
                .query_one(
                    "INSERT INTO conversations (session_id, origin) VALUES ($1, $2) RETURNING id",
                    &[&id, &origin],
                )
                .await?;
            (id, row.try_get(0)?)
        }
    };
    // The FAQ may have been deleted since the index was built: keep the
    // message, drop the link. Looked up (and kept from deletion until we
    // commit) first, not in a subquery of the INSERT: Citus refuses
    // subqueries in INSERT ... VALUES.
    let faq_id: Option<i64> = match answer.faq_id {
        Some(id) => tx
            .query_opt("SELECT id FROM faqs WHERE id = $1 FOR KEY SHARE", &[&id])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?,
        None => None,
    };
    let row = tx
        .query_one(
            "WITH inserted AS (INSERT INTO messages (conversation_id, role, text, faq_id, score) VALUES \
             ($1, 'visitor', $2, NULL, NULL), \
             ($1, 'bot', $3, $4, $5) RETURNING id, role) \
             SELECT id FROM inserted WHERE role = 'bot'",
            &[&conversation, &message, &answer.reply, &faq_id, &answer.score],
        )
        .await?;
    let message_id = row.try_get(0)?;
    tx.commit().await?;
    Ok(Stored {
        session_id,
        message_id,
    })
}

/// Messages a reload shows at most: the latest ones.
pub const HISTORY_LIMIT: i64 = 200;

/// One message as the widget shows it again.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct HistoryMessage {
    pub id: i64,
    /// `visitor` or `bot`.
    pub role: String,
    pub text: String,
    /// The visitor's feedback on a bot answer, if any.
    pub helpful: Option<bool>,
    pub created_at: DateTime<Utc>,
}

/// The conversation of `session_id`, oldest message first (the latest
/// `HISTORY_LIMIT`). Only that session's: the id is the visitor's secret.
pub async fn history(
    db: &Db,
    schema: &SchemaName,
    session_id: &str,
) -> Result<Vec<HistoryMessage>, ChatError> {
    if !is_session_id(session_id) {
        return Err(ChatError::InvalidSession);
    }
    let tx = db.tenant(schema).await?;
    let conversation: i64 = tx
        .query_opt(
            "SELECT id FROM conversations WHERE session_id = $1",
            &[&session_id],
        )
        .await?
        .ok_or(ChatError::UnknownSession)?
        .try_get(0)?;
    let rows = tx
        .query(
            "SELECT * FROM (SELECT m.id, m.role, m.text, f.helpful, m.created_at FROM messages m \
             LEFT JOIN feedback f ON f.message_id = m.id \
             WHERE m.conversation_id = $1 ORDER BY m.id DESC LIMIT $2) latest ORDER BY id",
            &[&conversation, &HISTORY_LIMIT],
        )
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| -> Result<HistoryMessage, ChatError> {
            Ok(HistoryMessage {
                id: row.try_get(0)?,
                role: row.try_get(1)?,
                text: row.try_get(2)?,
                helpful: row.try_get(3)?,
                created_at: row.try_get(4)?,
            })
        })
        .collect()
}

/// Records the visitor's verdict on one bot answer of their own
/// conversation; a second verdict replaces the first.
pub async fn record_feedback(
    db: &Db,
    schema: &SchemaName,
    session_id: &str,
    message_id: i64,
    helpful: bool,
) -> Result<(), ChatError> {
    if !is_session_id(session_id) {
        return Err(ChatError::InvalidSession);
    }
    let tx = db.tenant(schema).await?;
    // A lookup, then INSERT ... VALUES: Citus 13 mis-plans INSERT ... SELECT
    // into a schema-sharded table (it sends the worker "AND ( IS NOT
    // NULL)") and refuses now() in DO UPDATE; excluded.updated_at is the
    // same now(), from the column's default.
    let found = tx
        .query_opt(
            "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.session_id = $1 AND m.id = $2 AND m.role = 'bot' FOR KEY SHARE OF m",
            &[&session_id, &message_id],
        )
        .await?;
    if found.is_none() {
        return Err(ChatError::UnknownMessage(message_id));
    }
    tx.execute(
        "INSERT INTO feedback (message_id, helpful) VALUES ($1, $2) \
         ON CONFLICT (message_id) DO UPDATE SET helpful = excluded.helpful, \
         updated_at = excluded.updated_at",
        &[&message_id, &helpful],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::{FaqVectors, IndexedFaq};

    fn bot(threshold: f32) -> BotConfig {
        BotConfig {
            bot_name: "Bot".into(),
            greeting: "Hi".into(),
            fallback_reply: "Sorry".into(),
            match_threshold: threshold,
            theme: serde_json::json!({}),
            allowed_origins: vec![],
        }
    }

    fn index() -> FaqIndex {
        let faq = |id: i64| IndexedFaq {
            id,
            question: format!("question {id}"),
            answer: format!("answer {id}"),
        };
        FaqIndex::build(
            2,
            vec![
                FaqVectors {
                    faq: faq(1),
                    vectors: vec![vec![1.0, 0.0]],
                },
                FaqVectors {
                    faq: faq(2),
                    vectors: vec![vec![0.0, 1.0]],
                },
            ],
        )
    }

    #[test]
    fn above_threshold_answers_within_margin_suggests_below_falls_back() {
        let chat = ChatSettings::default();
        let a = decide(&index(), &[1.0, 0.0], &bot(0.6), &chat);
        assert!(a.matched);
        assert_eq!((a.reply.as_str(), a.faq_id), ("answer 1", Some(1)));

        let q = [0.55f32, 0.835]; // cos 0.55 with faq 1, 0.835 with faq 2
        let a = decide(&index(), &q, &bot(0.9), &chat);
        assert!(!a.matched);
        assert_eq!(a.reply, "Sorry");
        assert_eq!(a.suggestions, vec!["question 2"]);

        let a = decide(&index(), &q, &bot(0.99), &chat);
        assert!(!a.matched && a.suggestions.is_empty());

        let empty = FaqIndex::build(2, vec![]);
        let a = decide(&empty, &q, &bot(0.5), &chat);
        assert!(!a.matched && a.faq_id.is_none());
    }

    #[test]
    fn session_ids_are_128_bit_hex() {
        let id = new_session_id();
        assert!(is_session_id(&id), "{id}");
        assert_ne!(id, new_session_id());
        assert!(!is_session_id("'; DROP TABLE x; --"));
    }
}
