//! What the widget needs before the visitor types: the bot's public face.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::error::AppError;
use crate::http::extract::CurrentTenant;
use crate::http::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WidgetConfig {
    pub client_id: String,
    pub bot_name: String,
    pub greeting: String,
    #[schema(value_type = Object)]
    pub theme: serde_json::Value,
    /// False when the bot's plan has lapsed (past its grace): the widget
    /// shows `unavailable_reply` instead of taking questions.
    pub chat_open: bool,
    /// The owner's words for a closed chat; only when `chat_open` is false.
    pub unavailable_reply: Option<String>,
    /// Whether to show "Powered by Chatter": unless the owner turned it
    /// off on a plan that allows it.
    pub branding: bool,
}

/// The bot's public face, for the widget before the visitor types.
#[utoipa::path(
    get,
    path = "/api/widget/config",
    tag = "visitor",
    responses((status = 200, description = "Bot name, greeting and theme", body = WidgetConfig))
)]
pub async fn config(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
) -> Result<Json<WidgetConfig>, AppError> {
    let (config, entitlement) = tokio::join!(
        state.bot_configs.get(&tenant.schema),
        state.billing.entitlement(&tenant.schema)
    );
    let (config, entitlement) = (config?, entitlement?);
    let chat_open = entitlement.chat_open(state.billing.now());
    Ok(Json(WidgetConfig {
        chat_open,
        branding: config.show_branding || !entitlement.limits.remove_branding,
        unavailable_reply: (!chat_open).then(|| config.unavailable_reply.clone()),
        client_id: tenant.schema.to_string(),
        bot_name: config.bot_name.clone(),
        greeting: config.greeting.clone(),
        theme: config.theme.clone(),
    }))
}
