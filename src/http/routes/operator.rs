//! Operator routes: tenants and domains across the platform, through the
//! same service layer as the CLI (`tenancy::provision`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::auth::users::{self, NewUser, Role, UserSummary};
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, Operator};
use crate::http::state::AppState;
use crate::tenancy::events::{ChangeEvent, Signal};
use crate::tenancy::provision::{self, DomainRow, NewTenant, TenantSummary};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantRequest {
    /// The client id: `^[a-z][a-z0-9_]{2,62}$`, not `public`, `pg_*` or `information_schema`.
    #[schema(pattern = "^[a-z][a-z0-9_]{2,62}$")]
    pub schema: String,
    pub name: String,
    pub domain: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomainRequest {
    pub domain: String,
    pub tenant: String,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainToRemove {
    pub domain: String,
}

/// This process routes by the change at once; others hear the NOTIFY.
fn changed(state: &AppState) {
    state.apply(&Signal::Event(ChangeEvent::Tenancy));
}

/// Every tenant with its domains (operators).
#[utoipa::path(
    get,
    path = "/api/tenants",
    tag = "operator",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Done", body = Vec<TenantSummary>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
    )
)]
pub async fn list_tenants(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<TenantSummary>>, AppError> {
    Ok(Json(provision::list_tenants(&state.db).await?))
}

/// Creates a tenant: its schema, migrations and default bot (operators).
#[utoipa::path(
    post,
    path = "/api/tenants",
    tag = "operator",
    security(("bearer" = [])),
    request_body = NewTenantRequest,
    responses(
        (status = 201, description = "Done", body = TenantSummary),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 400, description = "A bad schema name, name or domain", body = ErrorBody),
        (status = 409, description = "The schema or the domain is taken", body = ErrorBody),
    )
)]
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
    let created = provision::create_tenant(&state.db, new).await?;
    changed(&state);
    Ok((StatusCode::CREATED, Json(created)))
}

/// Deletes a tenant and all its data (operators).
#[utoipa::path(
    delete,
    path = "/api/tenants/{schema}",
    tag = "operator",
    security(("bearer" = [])),
    params(("schema" = String, Path, description = "The tenant's schema name")),
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The public tenant cannot be deleted", body = ErrorBody),
    )
)]
pub async fn delete_tenant(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(schema): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    provision::delete_tenant(&state.db, &schema).await?;
    changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// Every domain with its tenant (operators).
#[utoipa::path(
    get,
    path = "/api/domains",
    tag = "operator",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Done", body = Vec<DomainRow>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
    )
)]
pub async fn list_domains(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<DomainRow>>, AppError> {
    Ok(Json(provision::list_domains(&state.db).await?))
}

/// Routes a domain to a tenant (operators).
#[utoipa::path(
    post,
    path = "/api/domains",
    tag = "operator",
    security(("bearer" = [])),
    request_body = NewDomainRequest,
    responses(
        (status = 201, description = "Done", body = DomainRow),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 400, description = "A bad domain", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The domain is taken", body = ErrorBody),
    )
)]
pub async fn add_domain(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<NewDomainRequest>,
) -> Result<(StatusCode, Json<DomainRow>), AppError> {
    let row = provision::add_domain(&state.db, &body.domain, &body.tenant, body.primary).await?;
    changed(&state);
    Ok((StatusCode::CREATED, Json(row)))
}

/// Stops routing a domain (operators).
#[utoipa::path(
    delete,
    path = "/api/domains",
    tag = "operator",
    security(("bearer" = [])),
    request_body = DomainToRemove,
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such domain", body = ErrorBody),
    )
)]
pub async fn remove_domain(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<DomainToRemove>,
) -> Result<StatusCode, AppError> {
    provision::remove_domain(&state.db, &body.domain).await?;
    changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub is_operator: bool,
    /// A tenant the user joins, with `role`.
    pub tenant: Option<String>,
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    pub email: String,
    pub tenant: String,
    /// Required to add or change; ignored to remove.
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

/// Every user with their memberships (operators).
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "operator",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Done", body = Vec<UserSummary>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    _: Operator,
) -> Result<Json<Vec<UserSummary>>, AppError> {
    Ok(Json(users::list_users(&state.db).await?))
}

/// Creates a user, optionally a member of one tenant (operators).
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "operator",
    security(("bearer" = [])),
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Done"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator, or `plan_limit`: the tenant's plan has no room for another member", body = ErrorBody),
        (status = 400, description = "A bad email, password or role", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
    )
)]
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
    let cap = match membership.map(|(tenant, _)| crate::db::SchemaName::parse(tenant)) {
        Some(Ok(schema)) => state.billing.member_cap(&schema).await?,
        _ => None,
    };
    let new = NewUser {
        email: &body.email,
        password: &body.password,
        is_operator: body.is_operator,
        membership,
    };
    users::create_user_within(&state.db, new, cap.as_ref()).await?;
    Ok(StatusCode::CREATED)
}

/// Makes a user a member of a tenant, or changes their role (operators).
#[utoipa::path(
    post,
    path = "/api/memberships",
    tag = "operator",
    security(("bearer" = [])),
    request_body = MembershipRequest,
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator, or `plan_limit`: the tenant's plan has no room for another member", body = ErrorBody),
        (status = 400, description = "A bad role", body = ErrorBody),
        (status = 404, description = "No such user or tenant", body = ErrorBody),
    )
)]
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
    let cap = match crate::db::SchemaName::parse(&body.tenant) {
        Ok(schema) => state.billing.member_cap(&schema).await?,
        Err(_) => None,
    };
    users::set_membership(&state.db, &body.email, &body.tenant, role, cap.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a tenant (operators).
#[utoipa::path(
    delete,
    path = "/api/memberships",
    tag = "operator",
    security(("bearer" = [])),
    request_body = MembershipRequest,
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such user or tenant", body = ErrorBody),
    )
)]
pub async fn remove_membership(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<MembershipRequest>,
) -> Result<StatusCode, AppError> {
    users::remove_membership(&state.db, &body.email, &body.tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}
