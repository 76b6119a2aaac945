//! `Answerer`: the chat use case, with one owner. A visitor's message is
//! checked (empty, too long, NUL), embedded while the tenant's FAQ index
//! and bot settings are fetched (each cached), answered by `decide`, and
//! the exchange stored. The HTTP route, `chatter ask` and the console all
//! go through here; none of them needs the others' state.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::billing::Billing;
use crate::bot_config::{BotConfig, BotConfigCache};
use crate::chat::writer::{ExchangeWriter, WriterStats};
use crate::chat::{self, Answer, ChatError, Exchange, QuestionVector, Stored};
use crate::config::ChatSettings;
use crate::db::{Db, SchemaName};
use crate::engine::index::FaqIndex;
use crate::engine::index_cache::{IndexCache, IndexCacheStats};
use crate::engine::question_cache::{Normalise, QuestionCache};
use crate::engine::worker::EmbeddingQueue;
use crate::engine::{Engine, EngineError};
use crate::faq::{self, FaqError, MatcherSource};

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

/// What the learned matchers cost since start (metrics, tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatcherStats {
    /// Heads fitted (on first use, after an FAQ change, or when the stored
    /// one was made by another model).
    pub trained: u64,
    /// Indexes that took the tenant's stored head instead of training one.
    pub loaded: u64,
}

/// The background training of learned matchers.
struct Trainer {
    /// Tenants with a training under way: one at a time each, so a burst
    /// of questions after a change trains once.
    busy: Mutex<HashSet<SchemaName>>,
    /// Trainings at once across tenants: after a restart, many tenants'
    /// first questions must not take every core from the chat.
    permits: tokio::sync::Semaphore,
    trained: AtomicU64,
    loaded: AtomicU64,
}

impl Trainer {
    fn busy(&self) -> std::sync::MutexGuard<'_, HashSet<SchemaName>> {
        // Insert and remove only: a poisoned set is still a consistent one.
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What building a tenant's index needs, owned, so that a build can run on
/// a task of its own (`Answerer::chat_index`).
struct Build {
    db: Db,
    indexes: Arc<IndexCache>,
    trainer: Arc<Trainer>,
    queue: EmbeddingQueue,
    /// Train a missing head now rather than in the background.
    inline: bool,
}

impl Build {
    /// Builds the tenant's index: with its stored head when that fits,
    /// else with a head trained now (`inline`) or, meanwhile, by nearest
    /// phrasing while one is trained in the background.
    async fn index(&self, schema: &SchemaName) -> Result<FaqIndex, FaqError> {
        let loaded = faq::load_index_deferred(&self.db, schema, &self.queue).await?;
        let mut index = loaded.index;
        match loaded.matcher {
            MatcherSource::Rule => {}
            MatcherSource::Stored => {
                self.trainer.loaded.fetch_add(1, Ordering::Relaxed);
            }
            MatcherSource::Pending(pending) if self.inline => {
                faq::train_into(&self.db, &mut index, pending).await?;
                self.trainer.trained.fetch_add(1, Ordering::Relaxed);
            }
            MatcherSource::Pending(_) => self.train_in_background(schema),
        }
        Ok(index)
    }

    /// Trains and stores the tenant's head on a task of its own, then drops
    /// the tenant's index, whose next build loads the head. Skipped while
    /// the tenant has a training under way: the end of that one drops the
    /// index, and the build after it sees whether the FAQs moved on.
    ///
    /// The task reads the FAQs' vectors again once its turn comes rather
    /// than holding the build's: after an upgrade, every tenant's first
    /// question queues a training, and a queue of schema names costs
    /// nothing where a queue of vector sets could cost hundreds of MB.
    fn train_in_background(&self, schema: &SchemaName) {
        if !self.trainer.busy().insert(schema.clone()) {
            return;
        }
        let schema = schema.clone();
        let queue = self.queue.clone();
        let trainer = Arc::clone(&self.trainer);
        let indexes = Arc::clone(&self.indexes);
        let db = self.db.clone();
        tokio::spawn(async move {
            let result = async {
                // Never closed: an error here cannot happen.
                let _permit = trainer.permits.acquire().await;
                match faq::load_index_deferred(&db, &schema, &queue)
                    .await?
                    .matcher
                {
                    MatcherSource::Pending(pending) => faq::train(&db, pending).await.map(|_| true),
                    // Another server stored it meanwhile, or the FAQs
                    // shrank below what a head needs: drop the index all
                    // the same, so its next build sees that.
                    MatcherSource::Stored | MatcherSource::Rule => Ok(false),
                }
            }
            .await;
            // Free before the drop, so the build that follows may train
            // again if the FAQs changed during this fit.
            trainer.busy().remove(&schema);
            match result {
                Ok(trained) => {
                    if trained {
                        trainer.trained.fetch_add(1, Ordering::Relaxed);
                    }
                    indexes.invalidate(&schema);
                }
                // The index keeps the nearest-phrasing rule; the next FAQ
                // change tries again (not every question: a failing fit
                // would fail on each).
                Err(e) => {
                    tracing::warn!(schema = %schema, error = %e, "the matcher was not trained")
                }
            }
        });
    }
}

pub struct Answerer {
    db: Db,
    engine: Arc<Engine>,
    /// Shared with the tasks that build indexes (see `chat_index`).
    indexes: Arc<IndexCache>,
    trainer: Arc<Trainer>,
    /// Train a missing head before answering instead of in the background
    /// (one-off commands, which would exit before a background fit ends).
    train_inline: bool,
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
            indexes: Arc::new(IndexCache::new(settings.index_cache_bytes)),
            trainer: Arc::new(Trainer {
                busy: Mutex::new(HashSet::new()),
                permits: tokio::sync::Semaphore::new(1),
                trained: AtomicU64::new(0),
                loaded: AtomicU64::new(0),
            }),
            train_inline: false,
            // The text is only whitespace-normalised: that leaves the
            // tokens, and so the vector, unchanged for any model.
            questions: QuestionCache::new(settings.question_cache_bytes, Normalise::Whitespace),
            bot_configs,
            billing,
            settings,
        }
    }

    /// A tenant without a fitting stored head gets one trained before its
    /// question is answered (`chatter ask`, `chatter eval SCHEMA`), not in
    /// the background as on a server.
    pub fn training_inline(mut self) -> Self {
        self.train_inline = true;
        self
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
        let meter = self.billing.meter(&entitlement, now);
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
        if let (Some(meter), Some(count)) = (meter, stored.month_count) {
            self.billing.metered(schema, meter, count);
        }
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
            let vector = vectors.pop().ok_or(EngineError::Stopped)?;
            // Answered with the vector the cache keeps (rounded), so the
            // next ask of the same question gets the same answer.
            Ok::<_, EngineError>(self.questions.insert(schema, model_id, message, &vector))
        };
        let index = self.chat_index(schema, &queue);
        let bot = self.bot_configs.get(schema);
        let (vector, index, bot) = tokio::join!(embed, index, bot);
        Ok((vector?, index?, bot?))
    }

    /// The tenant's index as it stands now (built if not held), its head
    /// trained on this task when none fits and the index is not held yet.
    pub async fn index(&self, schema: &SchemaName) -> Result<Arc<FaqIndex>, ChatError> {
        let build = self.build(self.engine.queue()?, true);
        Ok(self
            .indexes
            .get_or_build(schema, || build.index(schema))
            .await?)
    }

    /// The tenant's index for a visitor's question; a missing one is built
    /// in a task of its own. A build inside the request was cancelled with
    /// it: a visitor who gave up, or the request timeout, threw away the
    /// FAQs embedded so far, and the next question started again from
    /// nothing, so a tenant whose new FAQs took longer to embed than
    /// visitors waited never got an index (found by bench/citus.sh: its
    /// chat runs answered nothing).
    async fn chat_index(
        &self,
        schema: &SchemaName,
        queue: &EmbeddingQueue,
    ) -> Result<Arc<FaqIndex>, FaqError> {
        if let Some(hit) = self.indexes.get(schema) {
            return Ok(hit);
        }
        let build = self.build(queue.clone(), self.train_inline);
        let schema = schema.clone();
        tokio::spawn(async move {
            build
                .indexes
                .get_or_build(&schema, || build.index(&schema))
                .await
        })
        .await
        .map_err(|e| {
            FaqError::Engine(EngineError::Failed(format!("the index build stopped: {e}")))
        })?
    }

    fn build(&self, queue: EmbeddingQueue, inline: bool) -> Build {
        Build {
            db: self.db.clone(),
            indexes: Arc::clone(&self.indexes),
            trainer: Arc::clone(&self.trainer),
            queue,
            inline,
        }
    }

    /// Heads trained and loaded since start (for tests and metrics).
    pub fn matcher_stats(&self) -> MatcherStats {
        MatcherStats {
            trained: self.trainer.trained.load(Ordering::Relaxed),
            loaded: self.trainer.loaded.load(Ordering::Relaxed),
        }
    }

    /// The tenant's bot settings (threshold, caution), as the chat reads them.
    pub async fn bot_config(&self, schema: &SchemaName) -> Result<Arc<BotConfig>, ChatError> {
        Ok(self.bot_configs.get(schema).await?)
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

    /// Questions the cache had, and had not, since start (for metrics).
    pub fn question_cache_lookups(&self) -> (u64, u64) {
        self.questions.lookups()
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
