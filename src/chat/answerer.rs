//! `Answerer`: the chat use case, with one owner. A visitor's message is
//! checked (empty, too long, NUL), embedded while the tenant's FAQ index
//! and bot settings are fetched (each cached), answered by `decide`, and
//! the exchange stored. The HTTP route, `chatter ask` and the console all
//! go through here; none of them needs the others' state.

use std::sync::Arc;

use crate::billing::usage::Meter;
use crate::billing::{Billing, month_of};
use crate::bot_config::{BotConfig, BotConfigCache};
use crate::chat::writer::{ExchangeWriter, WriterStats};
use crate::chat::{self, Answer, ChatError, Exchange, QuestionVector, Stored};
use crate::config::ChatSettings;
use crate::db::{Db, SchemaName};
use crate::engine::index::FaqIndex;
use crate::engine::index_cache::{IndexCache, IndexCacheStats};
use crate::engine::question_cache::{Normalise, QuestionCache};
use crate::engine::{Engine, EngineError};
use crate::faq;

/// A visitor's message and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The conversation to continue; none (or an unknown one) starts one.
    pub session_id: Option<&'a str>,
    /// The page's origin, kept with a new conversation.
    pub origin: Option<&'a str>,
    pub message: &'a str,
    /// The FAQ the visitor picked among an earlier answer's choices for
    /// this same message.
    pub pick: Option<i64>,
}

/// What an owner's try shows: the answer, the threshold it was held to,
/// and the nearest FAQs.
#[derive(Debug, Clone)]
pub struct Trial {
    pub answer: Answer,
    pub threshold: f32,
    pub nearest: Vec<Nearest>,
}

#[derive(Debug, Clone)]
pub struct Nearest {
    pub faq_id: i64,
    pub question: String,
    /// Cosine similarity of the closest phrasing, -1 to 1.
    pub score: f32,
    /// That closest phrasing: the question, an alternative or the answer.
    pub matched: Option<(faq::PhrasingKind, String)>,
}

/// The bot's answer, and where the exchange was stored.
#[derive(Debug, Clone)]
pub struct Reply {
    pub answer: Answer,
    pub stored: Stored,
}

/// The message as the bot reads it (trimmed), or why it cannot be: what
/// every way of asking checks before any work.
pub fn check_message<'m>(message: &'m str, settings: &ChatSettings) -> Result<&'m str, ChatError> {
    let message = message.trim();
    // Zero-width characters are not whitespace to `trim`, but a message of
    // nothing else says nothing.
    if message
        .chars()
        .all(|c| c.is_whitespace() || is_invisible(c))
    {
        return Err(ChatError::EmptyMessage);
    }
    let limit = settings.max_message_chars;
    if message.chars().count() > limit {
        return Err(ChatError::TooLong(limit));
    }
    // PostgreSQL cannot store NUL: refused before any inference.
    if message.contains('\0') {
        return Err(ChatError::Nul);
    }
    Ok(message)
}

/// Characters that take no space: zero-width space, joiners, word joiner,
/// the byte-order mark, soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

pub struct Answerer {
    db: Db,
    engine: Arc<Engine>,
    indexes: IndexCache,
    /// Embeddings of questions asked before, per tenant: a repeated
    /// question costs no inference (never the answer: that is decided
    /// against the current index every time).
    questions: QuestionCache,
    bot_configs: Arc<BotConfigCache>,
    /// The tenant's plan and standing, cached like the bot's settings.
    billing: Arc<Billing>,
    /// Stores exchanges in groups, one transaction for those that finish
    /// together.
    writer: ExchangeWriter,
    settings: ChatSettings,
}

impl Answerer {
    /// `bot_configs` is shared with the routes that read the settings
    /// (widget config, CORS); `settings.index_cache_bytes` bounds the FAQ
    /// indexes kept.
    pub fn new(
        db: Db,
        engine: Arc<Engine>,
        bot_configs: Arc<BotConfigCache>,
        billing: Arc<Billing>,
        settings: ChatSettings,
    ) -> Self {
        Self {
            writer: ExchangeWriter::new(db.clone(), settings.group_commit_max),
            db,
            engine,
            indexes: IndexCache::new(settings.index_cache_bytes),
            // The text is only whitespace-normalised: that leaves the
            // tokens, and so the vector, unchanged for any model.
            questions: QuestionCache::new(settings.question_cache_bytes, Normalise::Whitespace),
            bot_configs,
            billing,
            settings,
        }
    }

    /// The message as the bot reads it, or why it cannot be.
    pub fn check<'m>(&self, message: &'m str) -> Result<&'m str, ChatError> {
        check_message(message, &self.settings)
    }

    /// What the bot would answer, storing nothing (`chatter ask`, tries).
    pub async fn answer(&self, schema: &SchemaName, message: &str) -> Result<Answer, ChatError> {
        let message = self.check(message)?;
        self.decide(schema, message).await
    }

    /// Answers the visitor and stores the exchange. Chat closed (the
    /// subscription lapsed past its grace, or the month's conversations
    /// used up for a new conversation): `ChatError::Unavailable` with the
    /// owner's own words, before any inference when known from memory.
    pub async fn respond(
        &self,
        schema: &SchemaName,
        question: Question<'_>,
    ) -> Result<Reply, ChatError> {
        let message = self.check(question.message)?;
        let now = self.billing.now();
        // Both from memory on every message but a tenant's first.
        let (entitlement, bot) = tokio::join!(
            self.billing.entitlement(schema),
            self.bot_configs.get(schema)
        );
        let (entitlement, bot) = (entitlement?, bot?);
        let continuing = question.session_id.is_some_and(chat::is_session_id);
        if !entitlement.chat_open(now) || (!continuing && self.billing.month_full(schema, now)) {
            return Err(ChatError::Unavailable(bot.unavailable_reply.clone()));
        }
        // Only a billed tenant is metered: a self-hosted one (no Razorpay
        // keys) skips the month's counter, one row every new conversation of
        // the tenant would otherwise wait on.
        let meter = entitlement.billed.then(|| Meter {
            month: month_of(now),
            limit: entitlement.limits.conversations_per_month,
        });
        let (answer, vector) = match question.pick {
            None => {
                let (vector, index, current) = self.prepare(schema, message).await?;
                (
                    chat::decide(&index, &vector, &current, &self.settings),
                    Some(vector),
                )
            }
            Some(faq_id) => {
                let (answer, learn) = self.answer_pick(schema, message, faq_id).await?;
                if learn {
                    faq::add_phrasing(&self.db, schema, faq_id, message).await?;
                }
                (answer, None)
            }
        };
        // An unanswered question keeps its vector, for grouping it with
        // others later without embedding it again (analytics).
        let model_id = self.engine.queue()?.model_id().to_string();
        let kept = vector
            .as_deref()
            .filter(|_| answer.faq_id.is_none())
            .map(|v| QuestionVector {
                vector: v,
                model_id: &model_id,
            });
        let exchange = Exchange::new(
            schema,
            chat::Asked {
                session_id: question.session_id,
                origin: question.origin,
                message,
                vector: kept,
            },
            &answer,
            meter,
        );
        let stored = self.writer.store(exchange).await?;
        let Some(stored) = stored else {
            if let Some(meter) = meter {
                self.billing.mark_full(schema, meter.month);
            }
            return Err(ChatError::Unavailable(bot.unavailable_reply.clone()));
        };
        Ok(Reply { answer, stored })
    }

    /// What the bot would answer and the FAQs nearest to the message,
    /// storing nothing (an owner trying a question).
    pub async fn try_question(
        &self,
        schema: &SchemaName,
        message: &str,
        nearest: usize,
    ) -> Result<Trial, ChatError> {
        let message = self.check(message)?;
        let (vector, index, bot) = self.prepare(schema, message).await?;
        let answer = chat::decide(&index, &vector, &bot, &self.settings);
        let mut found = Vec::new();
        for hit in index.nearest(&vector, nearest) {
            // The phrasing's text is read back (the index keeps vectors,
            // not every alternative's words); a FAQ deleted or edited
            // since the index was built names none.
            let matched = match faq::get(&self.db, schema, hit.faq.id).await {
                Ok(stored) if stored.question == hit.faq.question => {
                    faq::phrasing_at(&stored, hit.phrasing)
                        .map(|(kind, text)| (kind, text.to_string()))
                }
                Ok(_) | Err(faq::FaqError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            found.push(Nearest {
                faq_id: hit.faq.id,
                question: hit.faq.question.clone(),
                score: hit.score,
                matched,
            });
        }
        let nearest = found;
        Ok(Trial {
            answer,
            threshold: bot.match_threshold,
            nearest,
        })
    }

    /// The answer of the FAQ the visitor picked for `message`, and whether
    /// to learn `message` as a phrasing of it: only when that FAQ is among
    /// the likeliest for it, so a pick cannot teach a FAQ unrelated words.
    async fn answer_pick(
        &self,
        schema: &SchemaName,
        message: &str,
        faq_id: i64,
    ) -> Result<(Answer, bool), ChatError> {
        let (vector, index, _) = self.prepare(schema, message).await?;
        let answer = chat::picked(&index, faq_id).ok_or(ChatError::UnknownChoice(faq_id))?;
        let learn = index
            .rank(&vector, self.settings.max_suggestions.max(2))
            .iter()
            .any(|hit| hit.faq.id == faq_id);
        Ok((answer, learn))
    }

    async fn decide(&self, schema: &SchemaName, message: &str) -> Result<Answer, ChatError> {
        let (vector, index, bot) = self.prepare(schema, message).await?;
        Ok(chat::decide(&index, &vector, &bot, &self.settings))
    }

    /// The query is embedded while the tenant's index is fetched (or built)
    /// and its bot settings read.
    async fn prepare(
        &self,
        schema: &SchemaName,
        message: &str,
    ) -> Result<(Arc<[f32]>, Arc<FaqIndex>, Arc<BotConfig>), ChatError> {
        let queue = self.engine.queue()?;
        let model_id = queue.model_id();
        let embed = async {
            if let Some(vector) = self.questions.get(schema, model_id, message) {
                return Ok(vector);
            }
            let mut vectors = queue.embed(vec![message.to_string()]).await?;
            let vector: Arc<[f32]> = vectors.pop().ok_or(EngineError::Stopped)?.into();
            self.questions
                .insert(schema, model_id, message, Arc::clone(&vector));
            Ok::<_, EngineError>(vector)
        };
        let index = self
            .indexes
            .get_or_build(schema, || faq::load_index(&self.db, schema, &queue));
        let bot = self.bot_configs.get(schema);
        let (vector, index, bot) = tokio::join!(embed, index, bot);
        Ok((vector?, index?, bot?))
    }

    /// Which of the tenant's FAQs the bot confuses (`faq_health`).
    pub async fn faq_health(
        &self,
        schema: &SchemaName,
    ) -> Result<crate::faq_health::Health, ChatError> {
        let queue = self.engine.queue()?;
        Ok(crate::faq_health::check(&self.db, schema, &queue).await?)
    }

    /// A tenant's FAQs changed: its index is rebuilt on the next question.
    pub fn faqs_changed(&self, schema: &SchemaName) {
        self.indexes.invalidate(schema);
    }

    /// Tenants came or went: no index (or cached question) may outlive its
    /// schema.
    pub fn forget_all(&self) {
        self.indexes.invalidate_all();
        self.questions.clear();
    }

    /// Bytes the question cache holds (for tests and metrics).
    pub fn question_cache_bytes(&self) -> usize {
        self.questions.bytes()
    }

    /// What the FAQ index cache holds and did (for tests and metrics).
    pub fn index_cache_stats(&self) -> IndexCacheStats {
        self.indexes.stats()
    }

    /// What the exchange writer did (tests and metrics).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Whether the tenant's FAQ index is held (tests).
    pub fn index_cached(&self, schema: &SchemaName) -> bool {
        self.indexes.contains(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_checked_before_any_work() {
        let settings = ChatSettings {
            max_message_chars: 10,
            ..ChatSettings::default()
        };
        assert_eq!(check_message("  hello ", &settings).ok(), Some("hello"));
        for empty in ["", "   ", "\u{200B}\u{200B}", " \u{FEFF}\u{2060} \u{200D}"] {
            assert!(
                matches!(
                    check_message(empty, &settings),
                    Err(ChatError::EmptyMessage)
                ),
                "{empty:?}"
            );
        }
        assert!(matches!(
            check_message("0123456789x", &settings),
            Err(ChatError::TooLong(10))
        ));
        assert!(matches!(
            check_message("a\0b", &settings),
            Err(ChatError::Nul)
        ));
    }
}
