//! Operator routes: tenants and domains across the platform, through the
//! same service layer as the CLI (`tenancy::provision`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::auth::users::{self, NewUser, Role, UserSummary};
use crate::error::AppError;
use crate::http::auth::Operator;
use crate::http::json::ApiJson;
use crate::state::AppState;
use crate::tenancy::events::{ChangeEvent, Signal};
use crate::tenancy::provision::{self, DomainRow, NewTenant, TenantSummary};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantRequest {
    pub schema: String,
    pub name: String,
    pub domain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDomainRequest {
    pub domain: String,
    pub tenant: String,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainToRemove {
    pub domain: String,
}

/// This process routes by the change at once; others hear the NOTIFY.
fn changed(state: &AppState) {
    state.apply(&Signal::Event(ChangeEvent::Tenancy));
}

pub async fn list_tenants(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<TenantSummary>>, AppError> {
    Ok(Json(provision::list_tenants(&state.pool).await?))
}

pub async fn create_tenant(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<NewTenantRequest>,
) -> Result<(StatusCode, Json<TenantSummary>), AppError> {
    let new = NewTenant {
        schema: &body.schema,
        name: &body.name,
        domain: body.domain.as_deref(),
        is_public: false,
    };
    let created = provision::create_tenant(&state.pool, new).await?;
    changed(&state);
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn delete_tenant(
    State(state): State<AppState>,
    _: Operator,
    Path(schema): Path<String>,
) -> Result<StatusCode, AppError> {
    provision::delete_tenant(&state.pool, &schema).await?;
    changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_domains(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<DomainRow>>, AppError> {
    Ok(Json(provision::list_domains(&state.pool).await?))
}

pub async fn add_domain(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<NewDomainRequest>,
) -> Result<(StatusCode, Json<DomainRow>), AppError> {
    let row = provision::add_domain(&state.pool, &body.domain, &body.tenant, body.primary).await?;
    changed(&state);
    Ok((StatusCode::CREATED, Json(row)))
}

pub async fn remove_domain(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<DomainToRemove>,
) -> Result<StatusCode, AppError> {
    provision::remove_domain(&state.pool, &body.domain).await?;
    changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub is_operator: bool,
    pub tenant: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    pub email: String,
    pub tenant: String,
    pub role: Option<String>,
}

pub async fn list_users(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<UserSummary>>, AppError> {
    Ok(Json(users::list_users(&state.pool).await?))
}

pub async fn create_user(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<NewUserRequest>,
) -> Result<StatusCode, AppError> {
    let role: Option<Role> = body.role.as_deref().map(str::parse).transpose()?;
    let membership = match (body.tenant.as_deref(), role) {
        (Some(tenant), Some(role)) => Some((tenant, role)),
        (None, None) => None,
        _ => return Err(AppError::BadRequest("give tenant and role together".into())),
    };
    let new = NewUser {
        email: &body.email,
        password: &body.password,
        is_operator: body.is_operator,
        membership,
    };
    users::create_user(&state.pool, new).await?;
    Ok(StatusCode::CREATED)
}

pub async fn set_membership(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<MembershipRequest>,
) -> Result<StatusCode, AppError> {
    let role: Role = body
        .role
        .as_deref()
        .ok_or_else(|| AppError::BadRequest("role is required: owner or agent".into()))?
        .parse()?;
    users::set_membership(&state.pool, &body.email, &body.tenant, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_membership(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<MembershipRequest>,
) -> Result<StatusCode, AppError> {
    users::remove_membership(&state.pool, &body.email, &body.tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}
