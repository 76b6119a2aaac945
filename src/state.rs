//! `AppState`: cheap, cloneable handles shared by every request.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::bot_config::BotConfigCache;
use crate::config::Settings;
use crate::http::hosts::AllowedHosts;
use crate::tenancy::TenantResolver;
use crate::tenancy::events::{ChangeEvent, Signal};

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub tenants: Arc<TenantResolver>,
    pub bot_configs: Arc<BotConfigCache>,
    pub allowed_hosts: Arc<AllowedHosts>,
}

impl AppState {
    pub fn new(pool: Pool, settings: Settings) -> Self {
        let capacity = settings.tenancy.cache_capacity;
        Self {
            tenants: Arc::new(TenantResolver::new(pool.clone(), capacity)),
            bot_configs: Arc::new(BotConfigCache::new(pool.clone(), capacity)),
            allowed_hosts: Arc::new(AllowedHosts::new(&settings.effective_allowed_hosts())),
            settings: Arc::new(settings),
            pool,
        }
    }

    /// Drops whatever a change event makes stale.
    pub fn apply(&self, signal: &Signal) {
        match signal {
            Signal::Resync => {
                self.tenants.invalidate();
                self.bot_configs.invalidate_all();
            }
            Signal::Event(ChangeEvent::Tenancy) => {
                self.tenants.invalidate();
                // A deleted and re-created schema must not answer with old settings.
                self.bot_configs.invalidate_all();
            }
            Signal::Event(ChangeEvent::BotConfig(schema)) => self.bot_configs.invalidate(schema),
            Signal::Event(ChangeEvent::Faqs(_)) => {}
        }
    }
}
