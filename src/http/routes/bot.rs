//! `GET|PUT /api/bot/config`: a tenant's bot settings, for its members to
//! read and its owners to change.

use axum::Json;
use axum::extract::State;

use crate::bot_config::{self, BotConfig, BotConfigUpdate};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiJson, Member, Owner};
use crate::http::state::AppState;
use crate::tenancy::events::{ChangeEvent, Signal};

/// The bot's settings (members).
#[utoipa::path(
    get,
    path = "/api/bot/config",
    tag = "bot",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings", body = BotConfig),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
    )
)]
pub async fn get_config(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<BotConfig>, AppError> {
    let config = state.bot_configs.get(&member.tenant.schema).await?;
    Ok(Json((*config).clone()))
}

/// Changes the fields given (owners); the bot answers with them at once.
#[utoipa::path(
    put,
    path = "/api/bot/config",
    tag = "bot",
    security(("bearer" = [])),
    request_body = BotConfigUpdate,
    responses(
        (status = 200, description = "The settings after the change", body = BotConfig),
        (status = 400, description = "A value out of range, or an unknown field", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant, or `plan_limit`: `show_branding: false` on a plan that keeps \"Powered by Chatter\"", body = ErrorBody),
    )
)]
pub async fn put_config(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(update): ApiJson<BotConfigUpdate>,
) -> Result<Json<BotConfig>, AppError> {
    let schema = &owner.tenant.schema;
    if update.show_branding == Some(false) {
        state.billing.check_branding_removal(schema).await?;
    }
    let config = bot_config::update(&state.db, schema, update).await?;
    // This process answers with the new settings at once; others hear the NOTIFY.
    state.apply(&Signal::Event(ChangeEvent::BotConfig(schema.clone())));
    Ok(Json(config))
}
