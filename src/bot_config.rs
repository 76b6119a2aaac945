//! A tenant's bot settings (`bot_config`), read through the tenant door and
//! kept in memory: the widget asks for them on every page view, so they are
//! served without a database round trip until a change event drops them.

use std::sync::Arc;

use deadpool_postgres::Pool;
use serde::Serialize;

use crate::cache::InvalidatingCache;
use crate::db::DbError;
use crate::tenancy::{SchemaName, TenantTx};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BotConfig {
    pub bot_name: String,
    pub greeting: String,
    pub fallback_reply: String,
    pub match_threshold: f32,
    pub theme: serde_json::Value,
    pub allowed_origins: Vec<String>,
}

impl BotConfig {
    /// Reads the tenant's row inside its transaction.
    pub async fn load(tx: &TenantTx<'_>) -> Result<Self, DbError> {
        let row = tx
            .query_one(
                "SELECT bot_name, greeting, fallback_reply, match_threshold, theme, allowed_origins \
                 FROM bot_config",
                &[],
            )
            .await?;
        Ok(Self {
            bot_name: row.try_get(0)?,
            greeting: row.try_get(1)?,
            fallback_reply: row.try_get(2)?,
            match_threshold: row.try_get(3)?,
            theme: row.try_get(4)?,
            allowed_origins: row.try_get(5)?,
        })
    }
}

pub struct BotConfigCache {
    pool: Pool,
    entries: InvalidatingCache<SchemaName, Arc<BotConfig>>,
}

impl BotConfigCache {
    pub fn new(pool: Pool, capacity: usize) -> Self {
        Self {
            pool,
            entries: InvalidatingCache::new(capacity),
        }
    }

    pub async fn get(&self, schema: &SchemaName) -> Result<Arc<BotConfig>, DbError> {
        if let Some(hit) = self.entries.get(schema) {
            return Ok(hit);
        }
        let ticket = self.entries.ticket();
        let mut client = self.pool.get().await?;
        let tx = TenantTx::begin(&mut client, schema).await?;
        let config = Arc::new(BotConfig::load(&tx).await?);
        tx.commit().await?;
        self.entries
            .insert(ticket, schema.clone(), Arc::clone(&config));
        Ok(config)
    }

    pub fn invalidate(&self, schema: &SchemaName) {
        self.entries.remove(schema);
    }

    pub fn invalidate_all(&self) {
        self.entries.clear();
    }
}
