//! `AppState`: cheap, cloneable handles shared by every request. Only
//! handles: the chat use case is `chat::Answerer`, the limits' policy is in
//! `rate_limit`. Parts are taken with `FromRef`, so a layer or route that
//! needs one part does not depend on the whole.

use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::HeaderValue;

use crate::billing::Billing;
use crate::bot_config::BotConfigCache;
use crate::chat::Answerer;
use crate::config::Settings;
use crate::db::Db;
use crate::engine::Engine;
use crate::http::allowed_hosts::AllowedHosts;
use crate::http::assets::FrontPage;
use crate::http::openapi::RenderedDocument;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::origins::OriginUnionCache;
use crate::rate_limit::{ChatLimits, LoginLimits, RateLimiter, ResetLimits, SignupLimits};
use crate::tenancy::TenantResolver;
use crate::tenancy::events::{ChangeEvent, Signal};

/// One reference count to clone: axum clones the state for every layer and
/// extractor that takes it, several times a request, and a struct of
/// seventeen `Arc`s made that seventeen contended atomic increments and
/// decrements each time: a fifth of the light routes' CPU (issue 16; see
/// bench/README.md, 2026-12-01).
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// What `AppState` shares.
pub struct Handles {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub tenants: Arc<TenantResolver>,
    pub bot_configs: Arc<BotConfigCache>,
    /// Plans, usage and Razorpay; each tenant's standing cached.
    pub billing: Arc<Billing>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub engine: Arc<Engine>,
    pub answerer: Arc<Answerer>,
    pub metrics: Arc<Metrics>,
    pub login_limits: Arc<LoginLimits>,
    pub signup_limits: Arc<SignupLimits>,
    pub reset_limits: Arc<ResetLimits>,
    /// None without `smtp.host`: no mail is sent.
    pub mailer: Option<Mailer>,
    pub chat_limits: Arc<ChatLimits>,
    /// Analytics summaries per user (`chat.summaries_per_minute`).
    pub summary_limits: Arc<RateLimiter>,
    /// Owners' calls to Razorpay per tenant (`billing.razorpay_calls_per_minute`).
    pub razorpay_limits: Arc<RateLimiter>,
    /// The origins any tenant allows: what a CORS preflight is answered from.
    pub widget_origins: Arc<OriginUnionCache>,
    pub front_page: Arc<FrontPage>,
    /// The dashboard's Content-Security-Policy on this server (Razorpay
    /// Checkout allowed only with billing on), made on first use by the
    /// dashboard's route, which owns the policy.
    pub dashboard_csp: std::sync::OnceLock<HeaderValue>,
    pub api_document: Arc<RenderedDocument>,
}

impl AppState {
    /// `metrics` is passed in because the model's worker, started before
    /// the state exists, records into the same registry.
    pub fn new(
        db: Db,
        settings: Settings,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        mailer: Option<Mailer>,
    ) -> Self {
        let capacity = settings.tenancy.cache_capacity;
        let bot_configs = Arc::new(BotConfigCache::new(db.clone(), capacity));
        let billing = Arc::new(
            Billing::new(db.clone(), settings.billing.clone(), capacity)
                .with_notices(mailer.clone(), settings.public_url()),
        );
        let answerer = Answerer::new(
            db.clone(),
            Arc::clone(&engine),
            Arc::clone(&bot_configs),
            Arc::clone(&billing),
            settings.chat.clone(),
        );
        Self(Arc::new(Handles {
            login_limits: Arc::new(LoginLimits::new(&settings.auth)),
            signup_limits: Arc::new(SignupLimits::new(&settings.signup)),
            reset_limits: Arc::new(ResetLimits::new(&settings.auth)),
            mailer,
            chat_limits: Arc::new(ChatLimits::new(&settings.chat)),
            summary_limits: Arc::new(RateLimiter::per_minute(
                settings.chat.summaries_per_minute,
                settings.chat.summaries_per_minute,
            )),
            razorpay_limits: Arc::new(crate::rate_limit::razorpay_calls(&settings.billing)),
            widget_origins: Arc::new(OriginUnionCache::new(db.clone())),
            front_page: Arc::new(FrontPage::new()),
            dashboard_csp: std::sync::OnceLock::new(),
            api_document: Arc::default(),
            answerer: Arc::new(answerer),
            engine,
            metrics,
            tenants: Arc::new(TenantResolver::new(db.clone(), capacity)),
            bot_configs,
            billing,
            allowed_hosts: Arc::new(AllowedHosts::new(&settings.effective_allowed_hosts())),
            settings: Arc::new(settings),
            db,
        }))
    }

    /// Drops whatever a change event makes stale.
    pub fn apply(&self, signal: &Signal) {
        match signal {
            Signal::Resync | Signal::Event(ChangeEvent::Tenancy) => {
                // A new tenant may keep the open list; a deleted one took its origins.
                self.widget_origins.invalidate();
                self.tenants.invalidate();
                // A deleted and re-created schema must not answer with old data.
                self.bot_configs.invalidate_all();
                self.billing.invalidate_all();
                self.answerer.forget_all();
            }
            Signal::Event(ChangeEvent::BotConfig(schema)) => {
                self.bot_configs.invalidate(schema);
                self.widget_origins.invalidate();
            }
            Signal::Event(ChangeEvent::Faqs(schema)) => self.answerer.faqs_changed(schema),
            Signal::Event(ChangeEvent::Billing(schema)) => self.billing.invalidate(schema),
        }
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.settings)
    }
}

impl FromRef<AppState> for Arc<AllowedHosts> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.allowed_hosts)
    }
}

impl FromRef<AppState> for Arc<TenantResolver> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.tenants)
    }
}

impl FromRef<AppState> for Arc<FrontPage> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.front_page)
    }
}

impl FromRef<AppState> for Arc<RenderedDocument> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.api_document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cloning the state is one reference count, whatever it holds: it is
    /// cloned several times for every request (bench/http.sh lost a fifth
    /// of its light-route throughput when it was a struct of `Arc`s).
    #[test]
    fn the_state_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<AppState>(),
            std::mem::size_of::<usize>()
        );
    }
}
