//! The door to the database, in types. `Db` holds the pool privately and
//! hands out connections only in two shapes:
//!
//! - `TenantTx`: a transaction whose first statement points `search_path`
//!   at one tenant's schema alone, with `SET LOCAL`, so it ends with the
//!   transaction (commit, rollback, or a drop mid-way) and never leaks into
//!   the next request. It offers statements but no way to set
//!   `search_path` again.
//! - `Shared` / `SharedTx`: the `public` schema's tables (always written
//!   `public.x`), outside any tenant.
//!
//! - `TenantsTx`: one transaction writing rows of several tenants (the
//!   chat's group commit, `chat::writer`). Its `search_path` is
//!   `pg_catalog` alone, so no tenant table resolves unqualified; each
//!   statement is fixed text (`&'static str`) naming its tables as
//!   `{tenant}.table`, and the door puts the given tenant's checked,
//!   quoted schema name there.
//!
//! Each owns its pooled connection, so a caller cannot reach the raw client
//! or the pool. A transaction dropped before `commit` is rolled back before
//! its connection serves anyone else.

use deadpool_postgres::{Object, Pool};
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{Client, Row, RowStream, Statement, ToStatement};

use crate::db::{DbError, SchemaName};

/// The application's handle on the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

/// The pool's occupancy, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl Db {
    pub(crate) fn from_pool(pool: Pool) -> Self {
        Self { pool }
    }

    /// A transaction in `schema`: the only way to run tenant SQL.
    pub async fn tenant(&self, schema: &SchemaName) -> Result<TenantTx, DbError> {
        let client = self.pool.get().await?;
        Ok(TenantTx::begin_with(client, "BEGIN", schema).await?)
    }

    /// A read-only, repeatable-read transaction in `schema`: one consistent
    /// snapshot of the tenant (backups), while chats go on.
    pub async fn tenant_snapshot(&self, schema: &SchemaName) -> Result<TenantTx, DbError> {
        let client = self.pool.get().await?;
        Ok(TenantTx::begin_with(
            client,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            schema,
        )
        .await?)
    }

    /// A transaction whose statements each name their tenant (see
    /// `TenantsTx`): for writes of several tenants committed at once.
    pub async fn tenants(&self) -> Result<TenantsTx, DbError> {
        let client = self.pool.get().await?;
        Ok(TenantsTx(
            OpenTx::begin(client, "BEGIN; SET LOCAL search_path TO pg_catalog").await?,
        ))
    }

    /// A connection for the shared tables, outside any transaction.
    pub async fn shared(&self) -> Result<Shared, DbError> {
        Ok(Shared(self.pool.get().await?))
    }

    /// A transaction on the shared tables; `into_tenant` carries it into a
    /// tenant's schema (provisioning writes both in one transaction).
    pub async fn shared_tx(&self) -> Result<SharedTx, DbError> {
        let client = self.pool.get().await?;
        Ok(SharedTx(OpenTx::begin(client, "BEGIN").await?))
    }

    pub fn status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    pub fn close(&self) {
        self.pool.close();
    }
}

/// Statements on a connection of any shape, for code that runs the same
/// SQL in a tenant or a shared transaction or outside one (change
/// notifications, tokens). Inherent methods of the same names take
/// generic statements; these take SQL text.
pub trait Statements {
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send;

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send;

    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send;

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send;
}

/// The statements every shape offers, delegated to the connection.
macro_rules! statements {
    ($ty:ty) => {
        impl Statements for $ty {
            fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
                self.client().query(sql, params)
            }

            fn query_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
                self.client().query_opt(sql, params)
            }

            fn query_one(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, tokio_postgres::Error>> + Send {
                self.client().query_one(sql, params)
            }

            fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send {
                self.client().execute(sql, params)
            }
        }

        impl $ty {
            pub async fn query<T>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, tokio_postgres::Error>
            where
                T: ?Sized + ToStatement,
            {
                self.client().query(statement, params).await
            }

            pub async fn query_one<T>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, tokio_postgres::Error>
            where
                T: ?Sized + ToStatement,
            {
                self.client().query_one(statement, params).await
            }

            pub async fn query_opt<T>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, tokio_postgres::Error>
            where
                T: ?Sized + ToStatement,
            {
                self.client().query_opt(statement, params).await
            }

            pub async fn query_raw<T, P, I>(
                &self,
                statement: &T,
                params: I,
            ) -> Result<RowStream, tokio_postgres::Error>
            where
                T: ?Sized + ToStatement,
                P: BorrowToSql,
                I: IntoIterator<Item = P>,
                I::IntoIter: ExactSizeIterator,
            {
                self.client().query_raw(statement, params).await
            }

            pub async fn query_typed(
                &self,
                statement: &str,
                params: &[(&(dyn ToSql + Sync), Type)],
            ) -> Result<Vec<Row>, tokio_postgres::Error> {
                self.client().query_typed(statement, params).await
            }

            pub async fn execute<T>(
                &self,
                statement: &T,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, tokio_postgres::Error>
            where
                T: ?Sized + ToStatement,
            {
                self.client().execute(statement, params).await
            }

            pub async fn prepare(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
                self.client().prepare(query).await
            }
        }
    };
}

/// A pooled connection inside a transaction we opened. Dropped before
/// `finish`, it queues a ROLLBACK on the connection before the pool can
/// hand it out again (as `tokio_postgres::Transaction` does for a borrowed
/// client).
struct OpenTx {
    client: Option<Object>,
}

impl OpenTx {
    /// `opening` is `BEGIN` plus whatever must run first, in one round trip.
    async fn begin(client: Object, opening: &str) -> Result<Self, tokio_postgres::Error> {
        client.batch_execute(opening).await?;
        Ok(Self {
            client: Some(client),
        })
    }

    fn client(&self) -> &Client {
        self.object()
    }

    /// The pooled connection, with its statement cache.
    fn object(&self) -> &Object {
        // Only `finish` takes the client, and it consumes `self`.
        match &self.client {
            Some(client) => client,
            None => unreachable!("a finished transaction is consumed"),
        }
    }

    async fn finish(mut self, statement: &str) -> Result<(), tokio_postgres::Error> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        let result = client.batch_execute(statement).await;
        if result.is_err() {
            // Its state is unknown: never hand it out again.
            drop(Object::take(client));
        }
        result
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                // The connection goes back to the pool once rolled back.
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            // No runtime to roll back on: close the connection instead.
            Err(_) => drop(Object::take(client)),
        }
    }
}

/// A transaction in one tenant's schema. See the module header.
pub struct TenantTx {
    tx: OpenTx,
    schema: SchemaName,
}

impl TenantTx {
    async fn begin_with(
        client: Object,
        begin: &str,
        schema: &SchemaName,
    ) -> Result<Self, tokio_postgres::Error> {
        // SET LOCAL takes no bind parameter; the name is a checked, quoted identifier.
        let opening = format!("{begin}; SET LOCAL search_path TO {}", schema.quoted());
        Ok(Self {
            tx: OpenTx::begin(client, &opening).await?,
            schema: schema.clone(),
        })
    }

    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.tx.finish("COMMIT").await
    }

    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        self.tx.finish("ROLLBACK").await
    }

    /// A savepoint inside the tenant transaction. `SET LOCAL` belongs to the
    /// outer transaction, so rolling the savepoint back keeps the schema.
    pub async fn savepoint(&mut self, name: &str) -> Result<Savepoint<'_>, tokio_postgres::Error> {
        let name = savepoint_name(name);
        self.client()
            .batch_execute(&format!("SAVEPOINT {name}"))
            .await?;
        Ok(Savepoint { tx: self, name })
    }

    fn client(&self) -> &Client {
        self.tx.client()
    }

    /// The migrations' driver (refinery) runs its scripts through this.
    pub(in crate::db) fn raw(&self) -> &Client {
        self.client()
    }
}

statements!(TenantTx);

/// A savepoint's name as an identifier: letters, digits and `_` only.
fn savepoint_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("\"sp_{cleaned}\"")
}

/// A savepoint of a `TenantTx`: released or rolled back explicitly; a
/// savepoint dropped unfinished stays until the transaction ends.
pub struct Savepoint<'t> {
    tx: &'t mut TenantTx,
    name: String,
}

impl Savepoint<'_> {
    fn client(&self) -> &Client {
        self.tx.client()
    }

    pub async fn release(self) -> Result<(), tokio_postgres::Error> {
        self.client()
            .batch_execute(&format!("RELEASE SAVEPOINT {}", self.name))
            .await
    }

    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        self.client()
            .batch_execute(&format!("ROLLBACK TO SAVEPOINT {}", self.name))
            .await
    }
}

statements!(Savepoint<'_>);

/// A transaction over several tenants' tables. See the module header.
pub struct TenantsTx(OpenTx);

/// Where a `TenantsTx` statement names its tenant's schema.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

impl TenantsTx {
    /// Runs `sql` with every `{tenant}` replaced by `schema`, quoted: write
    /// `{tenant}.conversations`, never a bare table name (it would not
    /// resolve: the search path holds no tenant).
    pub async fn query_typed_in(
        &self,
        schema: &SchemaName,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let sql = sql.replace(TENANT_PLACEHOLDER, &schema.quoted());
        self.0.client().query_typed(&sql, params).await
    }

    /// The statement `sql` (as for [`query_typed_in`](Self::query_typed_in))
    /// for `schema`, prepared on this connection with `types`, for a
    /// statement run on every chat group: PostgreSQL then parses and plans
    /// it once per connection and tenant, not on every group (for a
    /// one-row UPDATE that costs about as much as running it). A
    /// connection keeps [`PREPARED_PER_CONNECTION`] such statements at
    /// most, then drops them all, so a backend's memory stays bounded
    /// with thousands of tenants. Run it with
    /// [`query_statement`](Self::query_statement).
    pub async fn prepared_in(
        &self,
        schema: &SchemaName,
        sql: &'static str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        let sql = sql.replace(TENANT_PLACEHOLDER, &schema.quoted());
        let connection = self.0.object();
        if connection.statement_cache.size() >= PREPARED_PER_CONNECTION {
            connection.statement_cache.clear();
        }
        connection.prepare_typed_cached(&sql, types).await
    }

    /// Runs a statement from [`prepared_in`](Self::prepared_in).
    pub async fn query_statement(
        &self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.0.client().query(statement, params).await
    }

    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.0.finish("COMMIT").await
    }
}

/// Statements a pooled connection keeps prepared (`TenantsTx::prepared_in`)
/// before it drops them all: a few KB of a backend's memory each.
pub const PREPARED_PER_CONNECTION: usize = 256;

/// A pooled connection for the shared tables, outside a transaction.
pub struct Shared(Object);

impl Shared {
    fn client(&self) -> &Client {
        &self.0
    }
}

statements!(Shared);

/// A transaction on the shared tables.
pub struct SharedTx(OpenTx);

impl SharedTx {
    fn client(&self) -> &Client {
        self.0.client()
    }

    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.0.finish("COMMIT").await
    }

    /// The migrations' driver (refinery) runs its scripts through this.
    pub(in crate::db) fn raw(&self) -> &Client {
        self.client()
    }

    /// Creates a tenant's (empty) schema inside this transaction.
    pub async fn create_schema(&self, schema: &SchemaName) -> Result<(), tokio_postgres::Error> {
        self.client()
            .batch_execute(&format!("CREATE SCHEMA {}", schema.quoted()))
            .await
    }

    /// Drops a tenant's schema and everything in it, inside this transaction.
    pub async fn drop_schema(&self, schema: &SchemaName) -> Result<(), tokio_postgres::Error> {
        self.client()
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                schema.quoted()
            ))
            .await
    }

    /// Carries this transaction into `schema`: what was written to shared
    /// tables commits or rolls back with the tenant's rows.
    pub async fn into_tenant(self, schema: &SchemaName) -> Result<TenantTx, tokio_postgres::Error> {
        self.client()
            .batch_execute(&format!("SET LOCAL search_path TO {}", schema.quoted()))
            .await?;
        Ok(TenantTx {
            tx: self.0,
            schema: schema.clone(),
        })
    }
}

statements!(SharedTx);
