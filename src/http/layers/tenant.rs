//! Tenant routes name their tenant by `X-Client-ID`, else by `Host`. The
//! `resolve` layer finds it (404 for an unknown or inactive one, 400 for a
//! request that names none) and hands it to handlers as `CurrentTenant`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::http::extract::{CurrentTenant, TenantTag};
use crate::http::layers::hosts::request_host;
use crate::http::state::AppState;
use crate::tenancy::Tenant;

pub const CLIENT_ID_HEADER: &str = "x-client-id";

pub async fn resolve(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (client_id, host) = names(&request);
    let tenant = match find(&state, client_id, host).await {
        Ok(tenant) => tenant,
        Err(e) => return e.into_response(),
    };
    run_for(tenant, request, next).await
}

/// What a request names its tenant by: `X-Client-ID` and `Host`. Read
/// before any await: a &Request held across one is not Send.
pub fn names(request: &Request) -> (Option<String>, Option<String>) {
    let client_id = request
        .headers()
        .get(CLIENT_ID_HEADER)
        .map(|v| v.to_str().unwrap_or_default().trim().to_string());
    (client_id, request_host(request))
}

/// Runs the request as `tenant`'s: handlers get `CurrentTenant`, the log its tag.
pub async fn run_for(tenant: Arc<Tenant>, mut request: Request, next: Next) -> Response {
    let tag = TenantTag(tenant.schema.clone());
    request.extensions_mut().insert(CurrentTenant(tenant));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(tag);
    response
}

/// The active tenant named by `client_id`, else by `host`.
pub async fn find(
    state: &AppState,
    client_id: Option<String>,
    host: Option<String>,
) -> Result<Arc<Tenant>, AppError> {
    if let Some(client_id) = client_id {
        return match state.tenants.by_client_id(&client_id).await? {
            Some(tenant) if tenant.is_active => Ok(tenant),
            _ => Err(AppError::UnknownTenant(client_id)),
        };
    }
    let host = host.ok_or(AppError::MissingTenant)?;
    match state.tenants.by_host(&host).await? {
        Some(tenant) if tenant.is_active => Ok(tenant),
        Some(tenant) => Err(AppError::UnknownTenant(tenant.schema.to_string())),
        None => Err(AppError::MissingTenant),
    }
}
