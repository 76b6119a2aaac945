//! `/api/members`: a tenant's owners manage who else runs the bot: list,
//! add an existing user as an agent or an owner, change a role, remove.
//! Agents are refused (403); the last owner can be neither removed nor
//! demoted (409).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::auth::Role;
use crate::auth::members::{self, Change, MemberSummary};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, Owner};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMemberRequest {
    /// The email of a user who has an account.
    pub email: String,
    #[schema(value_type = Role)]
    pub role: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[schema(value_type = Role)]
    pub role: String,
}

/// The tenant's members, owners first (owners).
#[utoipa::path(
    get,
    path = "/api/members",
    tag = "bot",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The members", body = Vec<MemberSummary>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Owner(owner): Owner,
) -> Result<Json<Vec<MemberSummary>>, AppError> {
    Ok(Json(members::list(&state.db, owner.tenant.id).await?))
}

/// Adds a user who has an account as an agent or an owner (owners).
#[utoipa::path(
    post,
    path = "/api/members",
    tag = "bot",
    security(("bearer" = [])),
    request_body = NewMemberRequest,
    responses(
        (status = 201, description = "Added", body = MemberSummary),
        (status = 400, description = "A bad email or role", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant, or `plan_limit`: the plan has no room for another member", body = ErrorBody),
        (status = 404, description = "No user with that email", body = ErrorBody),
        (status = 409, description = "A member already", body = ErrorBody),
    )
)]
pub async fn add(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiJson(body): ApiJson<NewMemberRequest>,
) -> Result<(StatusCode, Json<MemberSummary>), AppError> {
    let role: Role = body.role.parse()?;
    let cap = state.billing.member_cap(&owner.tenant.schema).await?;
    let added = members::add(&state.db, owner.tenant.id, &body.email, role, cap.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Changes a member's role (owners); the last owner stays one.
#[utoipa::path(
    put,
    path = "/api/members/{email}",
    tag = "bot",
    security(("bearer" = [])),
    params(("email" = String, Path, description = "The member's email")),
    request_body = RoleRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "A bad role", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
        (status = 409, description = "That would leave no owner", body = ErrorBody),
    )
)]
pub async fn set_role(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiPath(email): ApiPath<String>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<StatusCode, AppError> {
    let role: Role = body.role.parse()?;
    members::change(&state.db, owner.tenant.id, &email, Change::Role(role)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (owners); the last owner stays.
#[utoipa::path(
    delete,
    path = "/api/members/{email}",
    tag = "bot",
    security(("bearer" = [])),
    params(("email" = String, Path, description = "The member's email")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an owner of this tenant", body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
        (status = 409, description = "That would leave no owner", body = ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    Owner(owner): Owner,
    ApiPath(email): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    members::change(&state.db, owner.tenant.id, &email, Change::Remove).await?;
    Ok(StatusCode::NO_CONTENT)
}
