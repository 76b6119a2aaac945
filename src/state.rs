//! `AppState`: cheap, cloneable handles shared by every request.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::bot_config::BotConfigCache;
use crate::chat::{self, Answer};
use crate::config::Settings;
use crate::engine::Engine;
use crate::engine::EngineError;
use crate::engine::index::IndexCache;
use crate::error::AppError;
use crate::faq;
use crate::http::hosts::AllowedHosts;
use crate::http::static_files::FrontPage;
use crate::metrics::Metrics;
use crate::origins::OriginUnionCache;
use crate::rate_limit::RateLimiter;
use crate::tenancy::events::{ChangeEvent, Signal};
use crate::tenancy::{SchemaName, TenantResolver};

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub tenants: Arc<TenantResolver>,
    pub bot_configs: Arc<BotConfigCache>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub engine: Arc<Engine>,
    pub faq_indexes: Arc<IndexCache>,
    pub metrics: Arc<Metrics>,
    pub login_limits: Arc<LoginLimits>,
    pub chat_limits: Arc<ChatLimits>,
    /// The origins any tenant allows: what a CORS preflight is answered from.
    pub widget_origins: Arc<OriginUnionCache>,
    pub front_page: Arc<FrontPage>,
}

/// Sign-in attempts: per account from one address, and per address. Not
/// per account alone: that would let anyone lock a user out from anywhere.
pub struct LoginLimits {
    pub account_from_address: RateLimiter,
    pub address: RateLimiter,
}

/// Fair use of the chat: per visitor (tenant and client address) and per
/// tenant; feedback per visitor, apart, so rating answers never costs a
/// question.
pub struct ChatLimits {
    pub visitor: RateLimiter,
    pub tenant: RateLimiter,
    pub feedback: RateLimiter,
}

impl ChatLimits {
    pub fn new(chat: &crate::config::ChatSettings) -> Self {
        let visitor =
            || RateLimiter::per_minute(chat.visitor_messages_per_minute, chat.visitor_burst);
        Self {
            visitor: visitor(),
            tenant: RateLimiter::per_minute(chat.tenant_messages_per_minute, chat.tenant_burst),
            feedback: visitor(),
        }
    }

    /// Spends a chat message of `address` at `schema`, or says how long
    /// to wait.
    pub fn check_message(&self, schema: &SchemaName, address: &str) -> Result<(), Duration> {
        self.visitor
            .check(&format!("{schema}\n{address}"))
            .and_then(|()| self.tenant.check(schema.as_str()))
    }

    pub fn check_feedback(&self, schema: &SchemaName, address: &str) -> Result<(), Duration> {
        self.feedback.check(&format!("{schema}\n{address}"))
    }
}

impl AppState {
    /// `metrics` is passed in because the model's worker, started before
    /// the state exists, records into the same registry.
    pub fn new(pool: Pool, settings: Settings, engine: Arc<Engine>, metrics: Arc<Metrics>) -> Self {
        let capacity = settings.tenancy.cache_capacity;
        let attempts = settings.auth.login_attempts_per_minute;
        Self {
            login_limits: Arc::new(LoginLimits {
                account_from_address: RateLimiter::per_minute(attempts, attempts),
                address: RateLimiter::per_minute(
                    attempts.saturating_mul(3),
                    attempts.saturating_mul(3),
                ),
            }),
            chat_limits: Arc::new(ChatLimits::new(&settings.chat)),
            widget_origins: Arc::new(OriginUnionCache::new(pool.clone())),
            front_page: Arc::new(FrontPage::new()),
            engine,
            metrics,
            faq_indexes: Arc::new(IndexCache::new(capacity)),
            tenants: Arc::new(TenantResolver::new(pool.clone(), capacity)),
            bot_configs: Arc::new(BotConfigCache::new(pool.clone(), capacity)),
            allowed_hosts: Arc::new(AllowedHosts::new(&settings.effective_allowed_hosts())),
            settings: Arc::new(settings),
            pool,
        }
    }

    /// The bot's answer to `message` for this tenant: the query is embedded
    /// while the tenant's index is fetched (or built).
    pub async fn answer(&self, schema: &SchemaName, message: &str) -> Result<Answer, AppError> {
        let queue = self.engine.queue()?;
        let embed = async {
            let mut vectors = queue.embed(vec![message.to_string()]).await?;
            vectors.pop().ok_or(EngineError::Stopped)
        };
        let index = self
            .faq_indexes
            .get_or_build(schema, || faq::load_index(&self.pool, schema, &queue));
        let bot = self.bot_configs.get(schema);
        let (vector, index, bot) = tokio::join!(embed, index, bot);
        let (vector, index, bot) = (vector?, index?, bot?);
        Ok(chat::decide(&index, &vector, &bot, &self.settings.chat))
    }

    /// The answer of the FAQ the visitor picked for `message`, and whether
    /// to learn `message` as a phrasing of it: only when that FAQ is among
    /// the likeliest for it, so a pick cannot teach a FAQ unrelated words.
    pub async fn answer_pick(
        &self,
        schema: &SchemaName,
        message: &str,
        faq_id: i64,
    ) -> Result<(Answer, bool), AppError> {
        let queue = self.engine.queue()?;
        let embed = async {
            let mut vectors = queue.embed(vec![message.to_string()]).await?;
            vectors.pop().ok_or(EngineError::Stopped)
        };
        let index = self
            .faq_indexes
            .get_or_build(schema, || faq::load_index(&self.pool, schema, &queue));
        let (vector, index) = tokio::join!(embed, index);
        let (vector, index) = (vector?, index?);
        let answer = chat::picked(&index, faq_id)
            .ok_or_else(|| AppError::BadRequest(format!("no FAQ {faq_id}")))?;
        let learn = index
            .rank(&vector, self.settings.chat.max_suggestions.max(2))
            .iter()
            .any(|hit| hit.faq.id == faq_id);
        Ok((answer, learn))
    }

    /// Drops whatever a change event makes stale.
    pub fn apply(&self, signal: &Signal) {
        match signal {
            Signal::Resync => {
                self.widget_origins.invalidate();
                self.tenants.invalidate();
                self.bot_configs.invalidate_all();
                self.faq_indexes.invalidate_all();
            }
            Signal::Event(ChangeEvent::Tenancy) => {
                // A new tenant may keep the open list; a deleted one took its origins.
                self.widget_origins.invalidate();
                self.tenants.invalidate();
                // A deleted and re-created schema must not answer with old data.
                self.bot_configs.invalidate_all();
                self.faq_indexes.invalidate_all();
            }
            Signal::Event(ChangeEvent::BotConfig(schema)) => {
                self.bot_configs.invalidate(schema);
                self.widget_origins.invalidate();
            }
            Signal::Event(ChangeEvent::Faqs(schema)) => self.faq_indexes.invalidate(schema),
        }
    }
}
