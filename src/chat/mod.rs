//! Answering a visitor: `Answerer` (the use case: check, embed, decide,
//! store); `decide`, between an FAQ's answer, a fallback with suggestions,
//! and a plain fallback; storing the exchange. Also what the widget asks
//! of a stored conversation: its messages back (a reload continues the
//! conversation) and the visitor's thumbs up or down on an answer.

pub mod answerer;
pub mod writer;

pub use answerer::{Answerer, Nearest, Question, Reply, Trial, check_message};
pub use writer::{ExchangeWriter, WriterStats};

use crate::db::Db;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;

use crate::billing::BillingError;
use crate::billing::usage::Meter;
use crate::bot_config::BotConfig;
use crate::config::ChatSettings;
use crate::db::DbError;
use crate::engine::EngineError;
use crate::engine::index::FaqIndex;
use crate::engine::packed;
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
    /// The questions of `choices`, for clients that predate them.
    pub suggestions: Vec<String>,
    /// `answer`, `clarify` (pick one of `choices`) or `fallback`.
    pub outcome: Outcome,
    /// The FAQs offered to pick from when the bot is not sure; a pick is
    /// sent back as `faq_id` of the next chat request.
    pub choices: Vec<Choice>,
    /// The learned matcher's calibrated probability that the best FAQ is
    /// the one meant; absent when the tenant has too little data for one.
    pub confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Answer,
    Clarify,
    Fallback,
}

/// One FAQ the visitor may pick.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Choice {
    pub faq_id: i64,
    pub question: String,
}

/// A clarify list names no FAQ less likely than this (after the first two):
/// a third choice that is almost surely wrong only costs reading time.
const MIN_CHOICE_CONFIDENCE: f32 = 0.02;

/// With a learned matcher (enough phrasings): answer when the best FAQ's
/// nearest phrasing reaches the threshold and its calibrated confidence
/// reaches the bot's caution; otherwise, while it is within
/// `suggestion_margin` below the threshold or above, offer the likeliest
/// FAQs (2 to `max_suggestions`); lower, fall back.
///
/// Without one, today's rule: score ≥ threshold: that FAQ's answer.
/// Within `suggestion_margin` below it: the fallback reply, plus the
/// nearest questions to pick from. Lower: the fallback reply alone.
pub fn decide(index: &FaqIndex, query: &[f32], bot: &BotConfig, chat: &ChatSettings) -> Answer {
    let ranked = index.rank(query, chat.max_suggestions.max(2));
    let Some(best) = ranked.first() else {
        return fallback(bot, 0.0, None, Vec::new());
    };
    let score = best.score;
    let floor = bot.match_threshold - chat.suggestion_margin;
    let answers = match best.confidence {
        Some(confidence) => score >= bot.match_threshold && confidence >= bot.caution,
        None => score >= bot.match_threshold,
    };
    if answers {
        return Answer {
            reply: best.faq.answer.clone(),
            matched: true,
            score,
            faq_id: Some(best.faq.id),
            suggestions: Vec::new(),
            outcome: Outcome::Answer,
            choices: Vec::new(),
            confidence: best.confidence,
        };
    }
    let choices = if score >= floor {
        ranked
            .iter()
            .enumerate()
            .filter(|(i, hit)| match hit.confidence {
                Some(c) => *i < 2 || c >= MIN_CHOICE_CONFIDENCE,
                None => hit.score >= floor,
            })
            .take(chat.max_suggestions)
            .map(|(_, hit)| Choice {
                faq_id: hit.faq.id,
                question: hit.faq.question.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    fallback(bot, score, best.confidence, choices)
}

/// The answer of a FAQ the visitor picked among the choices.
pub fn picked(index: &FaqIndex, faq_id: i64) -> Option<Answer> {
    let faq = index.faq(faq_id)?;
    Some(Answer {
        reply: faq.answer.clone(),
        matched: true,
        score: 1.0,
        faq_id: Some(faq.id),
        suggestions: Vec::new(),
        outcome: Outcome::Answer,
        choices: Vec::new(),
        confidence: None,
    })
}

fn fallback(bot: &BotConfig, score: f32, confidence: Option<f32>, choices: Vec<Choice>) -> Answer {
    Answer {
        reply: bot.fallback_reply.clone(),
        matched: false,
        score,
        faq_id: None,
        suggestions: choices.iter().map(|c| c.question.clone()).collect(),
        outcome: if choices.is_empty() {
            Outcome::Fallback
        } else {
            Outcome::Clarify
        },
        choices,
        confidence,
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
    #[error("no FAQ {0} to pick")]
    UnknownChoice(i64),
    #[error("no conversation with that session id")]
    UnknownSession,
    #[error("no answer {0} in this conversation")]
    UnknownMessage(i64),
    /// The month's conversations are used up or the subscription lapsed:
    /// the bot's owner's own words.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The FAQ index could not be built, or a pick not learned.
    #[error(transparent)]
    Faq(#[from] FaqError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(ChatError);

impl Classify for ChatError {
    fn kind(&self) -> Kind {
        match self {
            ChatError::EmptyMessage
            | ChatError::TooLong(_)
            | ChatError::Nul
            | ChatError::UnknownChoice(_) => Kind::new(Class::BadInput, "bad_request"),
            ChatError::InvalidSession => Kind::bad_input(),
            ChatError::UnknownSession | ChatError::UnknownMessage(_) => Kind::not_found(),
            ChatError::Unavailable(_) => Kind::new(Class::Forbidden, "chat_unavailable").expected(),
            ChatError::Billing(e) => e.kind(),
            ChatError::Engine(e) => e.kind(),
            ChatError::Faq(e) => e.kind(),
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
    /// A metered new conversation: the month's count with it.
    pub month_count: Option<i32>,
}

/// The vector of the visitor's message, kept with it when the bot could
/// not answer, and the model that made it.
#[derive(Debug, Clone, Copy)]
pub struct QuestionVector<'a> {
    pub vector: &'a [f32],
    pub model_id: &'a str,
}

/// The visitor's side of an exchange, as it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The conversation to continue, if the visitor named one.
    pub session_id: Option<&'a str>,
    /// The page's origin, kept with a new conversation.
    pub origin: Option<&'a str>,
    pub message: &'a str,
    /// Kept when the bot could not answer (for grouping unanswered questions).
    pub vector: Option<QuestionVector<'a>>,
}

/// One exchange as it is stored: owned, so that it can wait for the
/// group it is committed with (`writer`).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub schema: SchemaName,
    pub session_id: Option<String>,
    pub origin: Option<String>,
    pub message: String,
    /// The visitor's message's vector, packed, and its model.
    pub embedding: Option<Vec<u8>>,
    pub embedding_model: Option<String>,
    pub reply: String,
    pub faq_id: Option<i64>,
    pub score: f32,
    /// Set for a billed tenant: a new conversation is counted against it.
    pub meter: Option<Meter>,
}

impl Exchange {
    pub fn new(
        schema: &SchemaName,
        asked: Asked<'_>,
        answer: &Answer,
        meter: Option<Meter>,
    ) -> Self {
        Self {
            schema: schema.clone(),
            session_id: asked.session_id.map(str::to_string),
            origin: asked.origin.map(str::to_string),
            message: asked.message.to_string(),
            embedding: asked.vector.map(|v| packed::pack(v.vector)),
            embedding_model: asked.vector.map(|v| v.model_id.to_string()),
            reply: answer.reply.clone(),
            faq_id: answer.faq_id,
            score: answer.score,
            meter,
        }
    }

    /// The conversation it continues, if the visitor named a well-formed one.
    fn continues(&self) -> Option<&str> {
        self.session_id.as_deref().filter(|s| is_session_id(s))
    }
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
            caution: 0.5,
            theme: serde_json::json!({}),
            allowed_origins: vec![],
            unavailable_reply: "Closed".into(),
            show_branding: true,
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

    /// Three FAQs along three axes of four, four rows each: a matcher.
    fn learned_index() -> FaqIndex {
        let entries = (0..3)
            .map(|i| FaqVectors {
                faq: IndexedFaq {
                    id: i as i64 + 1,
                    question: format!("question {}", i + 1),
                    answer: format!("answer {}", i + 1),
                },
                vectors: (0..4)
                    .map(|j| {
                        let mut v = vec![0.0f32; 4];
                        v[i] = 1.0;
                        // The same spread for every FAQ, on the axis none is about.
                        v[3] = 0.05 * (j as f32 - 1.5);
                        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                        v.into_iter().map(|x| x / n).collect()
                    })
                    .collect(),
            })
            .collect();
        FaqIndex::build(4, entries)
    }

    #[test]
    fn with_a_matcher_confidence_chooses_answer_clarify_or_fallback() {
        let index = learned_index();
        assert!(index.has_matcher());
        let chat = ChatSettings::default();
        let a = decide(&index, &[1.0, 0.0, 0.0, 0.0], &bot(0.4), &chat);
        assert_eq!((a.outcome, a.faq_id), (Outcome::Answer, Some(1)), "{a:?}");
        assert!(a.confidence.is_some_and(|c| c >= 0.5), "{a:?}");

        // Halfway between two FAQs: ask which one.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let a = decide(&index, &[h, h, 0.0, 0.0], &bot(0.4), &chat);
        assert_eq!(a.outcome, Outcome::Clarify, "{a:?}");
        let ids: Vec<i64> = a.choices.iter().map(|c| c.faq_id).collect();
        assert!(
            ids.contains(&1) && ids.contains(&2) && ids.len() <= 3,
            "{ids:?}"
        );
        assert_eq!(a.suggestions.len(), a.choices.len());
        assert!(!a.matched && a.faq_id.is_none());

        // A cautious bot asks even when one FAQ is clearly best.
        let mut careful = bot(0.4);
        careful.caution = 1.0;
        let a = decide(&index, &[1.0, 0.0, 0.0, 0.0], &careful, &chat);
        assert_eq!(a.outcome, Outcome::Clarify, "{a:?}");
        assert_eq!(a.choices[0].faq_id, 1);

        // Far from every FAQ.
        let a = decide(&index, &[0.0, 0.0, 0.0, 1.0], &bot(0.4), &chat);
        assert_eq!(a.outcome, Outcome::Fallback, "{a:?}");
        assert!(a.choices.is_empty() && a.suggestions.is_empty());

        assert_eq!(picked(&index, 3).map(|a| a.reply), Some("answer 3".into()));
        assert!(picked(&index, 9).is_none());
    }

    #[test]
    fn session_ids_are_128_bit_hex() {
        let id = new_session_id();
        assert!(is_session_id(&id), "{id}");
        assert_ne!(id, new_session_id());
        assert!(!is_session_id("'; DROP TABLE x; --"));
    }
}
