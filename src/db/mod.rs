//! The database: a connection pool on `DATABASE_URL` or on the embedded
//! cluster, and the embedded migrations.

pub mod embedded;
pub mod migrate;
pub mod pool;

pub use pool::{Database, DbError};
