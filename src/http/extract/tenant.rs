//! The request's tenant as the `layers::tenant` layer found it:
//! `CurrentTenant` for handlers, `TenantTag` on the response for the log.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::AppError;
use crate::tenancy::{SchemaName, Tenant};

/// The request's tenant, for handlers.
#[derive(Debug, Clone)]
pub struct CurrentTenant(pub Arc<Tenant>);

/// Put on the response so the request log can name the tenant.
#[derive(Debug, Clone)]
pub struct TenantTag(pub SchemaName);

impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentTenant>()
            .cloned()
            .ok_or(AppError::MissingTenant)
    }
}
