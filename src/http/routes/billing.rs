//! Billing: an owner's plan, usage, Razorpay Checkout, plan changes,
//! cancellation and invoices (`/api/billing/*`, tenant routes); Razorpay's
//! webhook (`/api/billing/razorpay/webhook`, no tenant: the event names
//! the subscription); and the operator's view and grant
//! (`/api/tenants/{schema}/billing`).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::billing::razorpay::Invoice;
use crate::billing::subscribe::Checkout;
use crate::billing::{PlanView, Status};
use crate::db::SchemaName;
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiBytes, ApiJson, ApiPath, Member, Operator, Owner};
use crate::http::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BillingPage {
    pub status: Status,
    /// What the owner can buy (empty without billing).
    pub plans: Vec<PlanView>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChoice {
    /// A plan's `name` from `GET /api/billing` (or `trial`, operators only).
    #[schema(min_length = 1, max_length = 100)]
    pub plan: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutResult {
    #[schema(max_length = 100)]
    pub razorpay_payment_id: String,
    #[schema(max_length = 100)]
    pub razorpay_subscription_id: String,
    /// Hex HMAC-SHA256 of `razorpay_payment_id|razorpay_subscription_id`.
    #[schema(max_length = 200)]
    pub razorpay_signature: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// `applied`, `duplicate` (this event id was handled before), `stale`
    /// (older than an event already applied) or `ignored`.
    pub outcome: String,
}

/// Spends one of the tenant's Razorpay calls, or says how long to wait.
fn razorpay_call(state: &AppState, schema: &SchemaName) -> Result<(), AppError> {
    state
        .razorpay_limits
        .check(schema.as_str())
        .map_err(AppError::TooManyRequests)
}

fn bounded(field: &str, value: &str, max: usize) -> Result<(), AppError> {
    if value.is_empty() || value.len() > max {
        return Err(AppError::BadRequest(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(())
}

/// The tenant's plan, its state, this month's usage, and the plans on sale.
///
/// `status.usage_warning` is set at `billing.warn_percent` (80%) of the
/// month's conversations: the dashboard shows a banner.
#[utoipa::path(
    get,
    path = "/api/billing",
    tag = "billing",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Plan, state and usage", body = BillingPage),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not a member of this tenant", body = ErrorBody),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<BillingPage>, AppError> {
    let status = state.billing.status(&member.tenant.schema).await?;
    let plans = if status.billing {
        state.billing.plans()
    } else {
        Vec::new()
    };
    Ok(Json(BillingPage { status, plans }))
}

/// Starts a subscription to a plan (owners): creates it at Razorpay and
/// returns what Razorpay Checkout opens with.
#[utoipa::path(
    post,
    path = "/api/billing/subscription",
    tag = "billing",
    security(("bearer" = [])),
    request_body = PlanChoice,
    responses(
        (status = 200, description = "Open Checkout with these", body = Checkout),
        (status = 400, description = "No such plan", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "`billing_off`: this server has no Razorpay keys", body = ErrorBody),
        (status = 409, description = "Already subscribed: change the plan instead", body = ErrorBody),
        (status = 429, description = "Too many calls to Razorpay for this tenant; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Razorpay did not answer", body = ErrorBody),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(body): ApiJson<PlanChoice>,
) -> Result<Json<Checkout>, AppError> {
    bounded("plan", &body.plan, 100)?;
    razorpay_call(&state, &owner.tenant.schema)?;
    Ok(Json(
        state
            .billing
            .subscribe(&owner.tenant.schema, &body.plan)
            .await?,
    ))
}

/// Confirms Checkout's payment (owners): the signature is checked against
/// this tenant's subscription; the plan is active at once.
#[utoipa::path(
    post,
    path = "/api/billing/checkout",
    tag = "billing",
    security(("bearer" = [])),
    request_body = CheckoutResult,
    responses(
        (status = 200, description = "Paid: the new standing", body = Status),
        (status = 400, description = "`bad_signature`: not Razorpay's signature of this tenant's subscription", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "`billing_off`", body = ErrorBody),
        (status = 409, description = "No subscription to pay for", body = ErrorBody),
    )
)]
pub async fn checkout(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(body): ApiJson<CheckoutResult>,
) -> Result<Json<Status>, AppError> {
    bounded("razorpay_payment_id", &body.razorpay_payment_id, 100)?;
    bounded(
        "razorpay_subscription_id",
        &body.razorpay_subscription_id,
        100,
    )?;
    bounded("razorpay_signature", &body.razorpay_signature, 200)?;
    let status = state
        .billing
        .confirm_checkout(
            &owner.tenant.schema,
            &body.razorpay_payment_id,
            &body.razorpay_subscription_id,
            &body.razorpay_signature,
        )
        .await?;
    Ok(Json(status))
}

/// Moves the subscription to another plan, from now (owners).
#[utoipa::path(
    post,
    path = "/api/billing/plan",
    tag = "billing",
    security(("bearer" = [])),
    request_body = PlanChoice,
    responses(
        (status = 200, description = "The new standing", body = Status),
        (status = 400, description = "No such plan", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "`billing_off`", body = ErrorBody),
        (status = 409, description = "No paid subscription to change", body = ErrorBody),
        (status = 429, description = "Too many calls to Razorpay for this tenant; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Razorpay did not answer", body = ErrorBody),
    )
)]
pub async fn change_plan(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(body): ApiJson<PlanChoice>,
) -> Result<Json<Status>, AppError> {
    bounded("plan", &body.plan, 100)?;
    razorpay_call(&state, &owner.tenant.schema)?;
    Ok(Json(
        state
            .billing
            .change_plan(&owner.tenant.schema, &body.plan)
            .await?,
    ))
}

/// Cancels the subscription at the end of the current cycle (owners).
#[utoipa::path(
    post,
    path = "/api/billing/cancel",
    tag = "billing",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancels at the cycle's end", body = Status),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "`billing_off`", body = ErrorBody),
        (status = 409, description = "No paid subscription to cancel", body = ErrorBody),
        (status = 429, description = "Too many calls to Razorpay for this tenant; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Razorpay did not answer", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Owner(owner): Owner,
) -> Result<Json<Status>, AppError> {
    razorpay_call(&state, &owner.tenant.schema)?;
    Ok(Json(state.billing.cancel(&owner.tenant.schema).await?))
}

/// The subscription's invoices, from Razorpay (owners).
#[utoipa::path(
    get,
    path = "/api/billing/invoices",
    tag = "billing",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Invoices, as Razorpay lists them", body = Vec<Invoice>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "`billing_off`", body = ErrorBody),
        (status = 429, description = "Too many calls to Razorpay for this tenant; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "Razorpay did not answer", body = ErrorBody),
    )
)]
pub async fn invoices(
    State(state): State<AppState>,
    Owner(owner): Owner,
) -> Result<Json<Vec<Invoice>>, AppError> {
    razorpay_call(&state, &owner.tenant.schema)?;
    Ok(Json(state.billing.invoices(&owner.tenant.schema).await?))
}

/// Razorpay's webhook. `X-Razorpay-Signature` must be the HMAC-SHA256 (hex)
/// of the raw body with the webhook secret, checked before the body is
/// read; `x-razorpay-event-id` makes a redelivery change nothing.
#[utoipa::path(
    post,
    path = "/api/billing/razorpay/webhook",
    tag = "billing",
    request_body(content = String, content_type = "application/json", description = "Razorpay's event, as sent"),
    params(
        ("X-Razorpay-Signature" = String, Header, description = "Hex HMAC-SHA256 of the body"),
        ("x-razorpay-event-id" = String, Header, description = "The event's id"),
    ),
    responses(
        (status = 200, description = "Handled (or handled before)", body = WebhookAnswer),
        (status = 400, description = "`bad_signature`, or not a Razorpay event", body = ErrorBody),
        (status = 404, description = "`billing_off`: no Razorpay keys or webhook secret", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<WebhookAnswer>, AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let outcome = state
        .billing
        .webhook(
            header("x-razorpay-signature"),
            header("x-razorpay-event-id"),
            &body,
        )
        .await?;
    Ok(Json(WebhookAnswer {
        outcome: outcome.as_str().to_string(),
    }))
}

fn schema_of(raw: &str) -> Result<SchemaName, AppError> {
    SchemaName::parse(raw).map_err(|e| AppError::BadRequest(e.to_string()))
}

/// A tenant's plan, state and this month's usage (operators).
#[utoipa::path(
    get,
    path = "/api/tenants/{schema}/billing",
    tag = "operator",
    security(("bearer" = [])),
    params(("schema" = String, Path, description = "The tenant's schema name")),
    responses(
        (status = 200, description = "Plan, state and usage", body = Status),
        (status = 400, description = "Not a schema name", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub async fn tenant_status(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(schema): ApiPath<String>,
) -> Result<Json<Status>, AppError> {
    let schema = schema_of(&schema)?;
    Ok(Json(state.billing.status(&schema).await?))
}

/// Puts a tenant on a plan by hand, without Razorpay (operators); `trial`
/// starts a new trial from now.
#[utoipa::path(
    put,
    path = "/api/tenants/{schema}/billing",
    tag = "operator",
    security(("bearer" = [])),
    params(("schema" = String, Path, description = "The tenant's schema name")),
    request_body = PlanChoice,
    responses(
        (status = 200, description = "The new standing", body = Status),
        (status = 400, description = "Not a schema name, or no such plan", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such tenant, or `billing_off`", body = ErrorBody),
    )
)]
pub async fn grant(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(schema): ApiPath<String>,
    ApiJson(body): ApiJson<PlanChoice>,
) -> Result<Json<Status>, AppError> {
    let schema = schema_of(&schema)?;
    bounded("plan", &body.plan, 100)?;
    Ok(Json(state.billing.grant(&schema, &body.plan).await?))
}
