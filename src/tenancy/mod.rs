//! Tenancy: naming a tenant (`SchemaName`), finding the tenant of a request
//! (`TenantResolver`), provisioning tenants and domains, and the one door to
//! tenant data (`TenantTx`).

pub mod domain;
pub mod events;
pub mod provision;
pub mod resolver;
pub mod schema_name;
pub mod tx;

pub use domain::DomainName;
pub use resolver::{Tenant, TenantResolver};
pub use schema_name::{SchemaName, SchemaNameError};
pub use tx::TenantTx;

use crate::db::DbError;
use crate::db::migrate::MigrateError;

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error(transparent)]
    InvalidSchema(#[from] SchemaNameError),
    #[error("{0}")]
    InvalidDomain(String),
    #[error("tenant name must be 1 to 200 characters")]
    InvalidName,
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    #[error("tenant {0:?} already exists")]
    TenantExists(String),
    #[error("domain {0:?} already belongs to a tenant")]
    DomainTaken(String),
    #[error("no domain {0:?}")]
    UnknownDomain(String),
    #[error("the public tenant {0:?} cannot be deleted: it serves the platform's own site")]
    PublicTenant(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

crate::db::db_error_conversions!(TenancyError);
