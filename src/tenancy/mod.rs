//! Tenancy: naming a tenant (`SchemaName`), finding the tenant of a request
//! (`TenantResolver`), provisioning tenants and domains. The door to tenant data
//! (`TenantTx`) is `crate::db`'s.

pub mod domain;
pub mod events;
pub mod provision;
pub mod resolver;

pub use domain::DomainName;
pub use resolver::{Tenant, TenantResolver};
// A schema's name is the database's notion; tenancy speaks it too.
pub use crate::db::{SchemaName, SchemaNameError};

use crate::db::DbError;
use crate::db::migrate::MigrateError;
use crate::error_kind::{Class, Classify, Kind};

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

impl Classify for TenancyError {
    fn kind(&self) -> Kind {
        match self {
            TenancyError::InvalidSchema(_)
            | TenancyError::InvalidDomain(_)
            | TenancyError::InvalidName => Kind::bad_input(),
            TenancyError::UnknownTenant(_) => Kind::new(Class::NotFound, "unknown_tenant"),
            TenancyError::UnknownDomain(_) => Kind::not_found(),
            TenancyError::TenantExists(_)
            | TenancyError::DomainTaken(_)
            | TenancyError::PublicTenant(_) => Kind::conflict(),
            TenancyError::Db(e) => e.kind(),
            TenancyError::Migrate(e) => e.kind(),
        }
    }
}
