//! A tenant's bot settings (`bot_config`), read through the tenant door and
//! kept in memory: the widget asks for them on every page view, so they are
//! served without a database round trip until a change event drops them.

use std::sync::Arc;

use crate::db::Db;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cache::InvalidatingCache;
use crate::db::DbError;
use crate::db::TenantTx;
use crate::error_kind::{Classify, Kind};
use crate::tenancy::SchemaName;
use crate::tenancy::events::ChangeEvent;

/// A new tenant's `match_threshold` (the column default of tenant
/// migration V1; `tests/api/cli.rs` checks that they agree).
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.40;
/// A new tenant's `caution` (the column default of tenant migration V4).
pub const DEFAULT_CAUTION: f32 = 0.5;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct BotConfig {
    pub bot_name: String,
    pub greeting: String,
    pub fallback_reply: String,
    pub match_threshold: f32,
    /// With a learned matcher: the confidence (0 to 1) the best FAQ needs
    /// before the bot answers outright; below it, the bot offers its
    /// likeliest FAQs to pick from. Higher is more cautious.
    pub caution: f32,
    /// Colours and position for the widget, e.g. `{"color": "#2563eb", "position": "right"}`.
    #[schema(value_type = Object)]
    pub theme: serde_json::Value,
    /// Sites whose pages may embed the widget; empty: any.
    pub allowed_origins: Vec<String>,
    /// What the widget says when chat is unavailable (the month's
    /// conversations used up, or the subscription lapsed).
    pub unavailable_reply: String,
    /// Whether the widget shows "Powered by Chatter". Off only on a plan
    /// that allows removing it (`remove_branding`); a plan that does not
    /// shows it whatever this says.
    pub show_branding: bool,
}

impl BotConfig {
    /// Reads the tenant's row inside its transaction.
    pub async fn load(tx: &TenantTx) -> Result<Self, DbError> {
        let row = tx
            .query_one(
                "SELECT bot_name, greeting, fallback_reply, match_threshold, theme, allowed_origins, \
                 caution, unavailable_reply, show_branding FROM bot_config",
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
            caution: row.try_get(6)?,
            unavailable_reply: row.try_get(7)?,
            show_branding: row.try_get(8)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BotConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(BotConfigError);

impl Classify for BotConfigError {
    fn kind(&self) -> Kind {
        match self {
            BotConfigError::Invalid(_) => Kind::bad_input(),
            BotConfigError::Db(e) => e.kind(),
        }
    }
}

/// A change to the bot's settings: the fields given are replaced.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotConfigUpdate {
    pub bot_name: Option<String>,
    pub greeting: Option<String>,
    pub fallback_reply: Option<String>,
    pub match_threshold: Option<f32>,
    pub caution: Option<f32>,
    #[schema(value_type = Option<Object>)]
    pub theme: Option<serde_json::Value>,
    pub allowed_origins: Option<Vec<String>>,
    pub unavailable_reply: Option<String>,
    /// False hides "Powered by Chatter": `403 plan_limit` unless the plan
    /// allows it.
    pub show_branding: Option<bool>,
}

const MAX_ORIGINS: usize = 50;
const MAX_THEME_BYTES: usize = 4_096;

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, BotConfigError> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim().to_string();
    if value.is_empty() || value.chars().count() > max {
        return Err(BotConfigError::Invalid(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(Some(value))
}

/// An origin as browsers send it: `scheme://host[:port]`, http or https,
/// nothing after the host.
pub fn parse_origin(raw: &str) -> Result<String, BotConfigError> {
    let bad = || {
        BotConfigError::Invalid(format!(
            "{raw:?} is not an origin like https://shop.example.com"
        ))
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

impl BotConfigUpdate {
    /// Checks every field; the message names the first bad one.
    pub fn validated(self) -> Result<Self, BotConfigError> {
        if let Some(t) = self.match_threshold
            && !(t.is_finite() && (0.0..=1.0).contains(&t))
        {
            return Err(BotConfigError::Invalid(
                "match_threshold must be between 0 and 1".into(),
            ));
        }
        if let Some(c) = self.caution
            && !(c.is_finite() && (0.0..=1.0).contains(&c))
        {
            return Err(BotConfigError::Invalid(
                "caution must be between 0 and 1".into(),
            ));
        }
        if let Some(theme) = &self.theme
            && (!theme.is_object() || theme.to_string().len() > MAX_THEME_BYTES)
        {
            return Err(BotConfigError::Invalid(format!(
                "theme must be a JSON object of at most {MAX_THEME_BYTES} bytes"
            )));
        }
        let allowed_origins = match self.allowed_origins {
            Some(origins) if origins.len() > MAX_ORIGINS => {
                return Err(BotConfigError::Invalid(format!(
                    "at most {MAX_ORIGINS} allowed origins"
                )));
            }
            Some(origins) => Some(
                origins
                    .iter()
                    .map(|o| parse_origin(o))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        Ok(Self {
            bot_name: text("bot_name", self.bot_name, 100)?,
            greeting: text("greeting", self.greeting, 1_000)?,
            fallback_reply: text("fallback_reply", self.fallback_reply, 1_000)?,
            match_threshold: self.match_threshold,
            caution: self.caution,
            theme: self.theme,
            allowed_origins,
            unavailable_reply: text("unavailable_reply", self.unavailable_reply, 1_000)?,
            show_branding: self.show_branding,
        })
    }
}

/// Applies a validated update and announces it; returns the new settings.
pub async fn update(
    db: &Db,
    schema: &SchemaName,
    update: BotConfigUpdate,
) -> Result<BotConfig, BotConfigError> {
    let update = update.validated()?;
    let tx = db.tenant(schema).await?;
    tx.execute(
        "UPDATE bot_config SET bot_name = coalesce($1, bot_name), greeting = coalesce($2, greeting), \
         fallback_reply = coalesce($3, fallback_reply), match_threshold = coalesce($4, match_threshold), \
         theme = coalesce($5, theme), allowed_origins = coalesce($6, allowed_origins), caution = coalesce($7, caution), \
         unavailable_reply = coalesce($8, unavailable_reply), \
         show_branding = coalesce($9, show_branding), updated_at = now()",
        &[
            &update.bot_name,
            &update.greeting,
            &update.fallback_reply,
            &update.match_threshold,
            &update.theme,
            &update.allowed_origins,
            &update.caution,
            &update.unavailable_reply,
            &update.show_branding,
        ],
    )
    .await?;
    let config = BotConfig::load(&tx).await?;
    ChangeEvent::BotConfig(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(config)
}

/// The tenant's settings, read now (the console; servers go through the cache).
pub async fn get(db: &Db, schema: &SchemaName) -> Result<BotConfig, DbError> {
    let tx = db.tenant(schema).await?;
    let config = BotConfig::load(&tx).await?;
    tx.commit().await?;
    Ok(config)
}

pub struct BotConfigCache {
    db: Db,
    entries: InvalidatingCache<SchemaName, Arc<BotConfig>>,
}

impl BotConfigCache {
    pub fn new(db: Db, capacity: usize) -> Self {
        Self {
            db,
            entries: InvalidatingCache::new(capacity),
        }
    }

    pub async fn get(&self, schema: &SchemaName) -> Result<Arc<BotConfig>, DbError> {
        if let Some(hit) = self.entries.get(schema) {
            return Ok(hit);
        }
        let ticket = self.entries.ticket(schema);
        let config = Arc::new(get(&self.db, schema).await?);
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

// --- The row whole, as a backup carries it ---

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfigRow {
    pub bot_name: String,
    pub greeting: String,
    pub fallback_reply: String,
    pub match_threshold: f32,
    /// Archives of format version 2 and older predate it: the default.
    #[serde(default = "default_caution")]
    pub caution: f32,
    pub theme: serde_json::Value,
    pub allowed_origins: Vec<String>,
    pub updated_at: DateTime<Utc>,
    /// What the widget says when chat is unavailable; archives made before
    /// billing have none and restore with the column's default.
    #[serde(default)]
    pub unavailable_reply: Option<String>,
    /// Archives made before branding have none: shown.
    #[serde(default)]
    pub show_branding: Option<bool>,
}

fn default_caution() -> f32 {
    DEFAULT_CAUTION
}

/// The settings row, read inside a tenant's (snapshot) transaction.
pub async fn export_in(tx: &TenantTx) -> Result<BotConfigRow, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT bot_name, greeting, fallback_reply, match_threshold, theme, \
                    allowed_origins, updated_at, caution, unavailable_reply, show_branding \
             FROM bot_config",
            &[],
        )
        .await?;
    Ok(BotConfigRow {
        bot_name: row.try_get(0)?,
        greeting: row.try_get(1)?,
        fallback_reply: row.try_get(2)?,
        match_threshold: row.try_get(3)?,
        theme: row.try_get(4)?,
        allowed_origins: row.try_get(5)?,
        updated_at: row.try_get(6)?,
        caution: row.try_get(7)?,
        unavailable_reply: row.try_get(8)?,
        show_branding: row.try_get(9)?,
    })
}

/// Writes a restored settings row over a new tenant's default one.
pub async fn restore_in(tx: &TenantTx, bot: &BotConfigRow) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE bot_config SET bot_name = $1, greeting = $2, fallback_reply = $3, \
                match_threshold = $4, theme = $5, allowed_origins = $6, updated_at = $7, \
                caution = $8, unavailable_reply = coalesce($9, unavailable_reply), \
                show_branding = coalesce($10, show_branding)",
        &[
            &bot.bot_name,
            &bot.greeting,
            &bot.fallback_reply,
            &bot.match_threshold,
            &bot.theme,
            &bot.allowed_origins,
            &bot.updated_at,
            &bot.caution,
            &bot.unavailable_reply,
            &bot.show_branding,
        ],
    )
    .await?;

    Ok(())
}
