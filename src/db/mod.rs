//! The database: a connection pool on `DATABASE_URL` or on the embedded
//! cluster, the embedded migrations, and the one door to the data (`door`:
//! `Db`, `TenantTx`, `Shared`). Nothing outside this module touches the pool.

pub mod citus;
pub mod door;
pub mod embedded;
pub mod migrate;
pub mod pool;
pub mod schema_name;
pub mod tls;

pub use door::{Db, PoolStatus, Savepoint, Shared, SharedTx, Statements, TenantTx, TenantsTx};
pub use pool::{Database, DbError, During};
pub use schema_name::{SchemaName, SchemaNameError};

/// Serialises migrators of the shared schema (and the making of Citus
/// reference tables after them) across processes.
pub(crate) const SHARED_MIGRATION_LOCK: i64 = 0x6368_6174_7465_7201;

/// `?` on a PostgreSQL or pool error in a module whose error type has a
/// `Db(DbError)` variant: the two conversions every such module needs,
/// written once.
macro_rules! db_error_conversions {
    ($($error:ty),+ $(,)?) => {$(
        impl From<tokio_postgres::Error> for $error {
            fn from(e: tokio_postgres::Error) -> Self {
                Self::Db($crate::db::DbError::Postgres(e))
            }
        }

        impl From<deadpool_postgres::PoolError> for $error {
            fn from(e: deadpool_postgres::PoolError) -> Self {
                Self::Db($crate::db::DbError::from(e))
            }
        }
    )+};
}
pub(crate) use db_error_conversions;
