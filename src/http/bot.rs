//! `GET|PUT /api/bot/config`: a tenant's bot settings, for its members to
//! read and its owners to change.

use axum::Json;
use axum::extract::State;

use crate::bot_config::{self, BotConfig, BotConfigUpdate};
use crate::error::AppError;
use crate::http::auth::{Member, Owner};
use crate::http::json::ApiJson;
use crate::state::AppState;
use crate::tenancy::events::{ChangeEvent, Signal};

pub async fn get_config(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<BotConfig>, AppError> {
    let config = state.bot_configs.get(&member.tenant.schema).await?;
    Ok(Json((*config).clone()))
}

pub async fn put_config(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(update): ApiJson<BotConfigUpdate>,
) -> Result<Json<BotConfig>, AppError> {
    let schema = &owner.tenant.schema;
    let config = bot_config::update(&state.pool, schema, update).await?;
    // This process answers with the new settings at once; others hear the NOTIFY.
    state.apply(&Signal::Event(ChangeEvent::BotConfig(schema.clone())));
    Ok(Json(config))
}
