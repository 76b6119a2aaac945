//! Embedded migrations: `migrations/public` once, `migrations/tenant` in
//! every tenant schema, each schema keeping its own refinery history table.
//!
//! refinery's own PostgreSQL driver commits a transaction of its own; we
//! drive it through `InTransaction` instead, so that the migrations run
//! inside a transaction we own: the one that sets the tenant's search_path,
//! takes the migration lock and, for a new tenant, creates the schema and
//! seeds it — all or nothing.

use async_trait::async_trait;
use futures_util::StreamExt;
use refinery::Migration;
use refinery::{AsyncMigrate, Runner};
use refinery_core::traits::r#async::{AsyncQuery, AsyncTransaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::Client;

use crate::db::{Db, DbError, SchemaName, TenantTx};
use crate::error_kind::{Classify, Kind};

mod public_migrations {
    refinery::embed_migrations!("migrations/public");
}
mod tenant_migrations {
    refinery::embed_migrations!("migrations/tenant");
}

/// Serialises migrators of the shared schema across processes.
const SHARED_LOCK_KEY: i64 = 0x6368_6174_7465_7201;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("migration failed: {0}")]
    Refinery(#[from] refinery::Error),
}

crate::db::db_error_conversions!(MigrateError);

impl Classify for MigrateError {
    fn kind(&self) -> Kind {
        match self {
            MigrateError::Db(e) => e.kind(),
            MigrateError::Refinery(_) => Kind::internal(),
        }
    }
}

/// The result of migrating one tenant schema.
#[derive(Debug)]
pub struct TenantOutcome {
    pub schema: SchemaName,
    pub result: Result<usize, MigrateError>,
}

fn runner(migrations: Runner) -> Runner {
    migrations
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true)
}

/// Applies the shared migrations to `public`. Returns how many were applied.
pub async fn migrate_shared(db: &Db) -> Result<usize, MigrateError> {
    let tx = db.shared_tx().await?;
    tx.raw()
        .batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({SHARED_LOCK_KEY}); SET LOCAL search_path TO public"
        ))
        .await?;
    let report = runner(public_migrations::migrations::runner())
        .run_async(&mut InTransaction(tx.raw()))
        .await?;
    tx.commit().await?;
    Ok(report.applied_migrations().len())
}

/// Applies the tenant migrations inside an open tenant transaction (its
/// search_path already set). Returns how many were applied.
pub async fn migrate_tenant_in(tx: &TenantTx) -> Result<usize, MigrateError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('chatter.migrate.' || $1::text))",
        &[&tx.schema().as_str()],
    )
    .await?;
    let report = runner(tenant_migrations::migrations::runner())
        .run_async(&mut InTransaction(tx.raw()))
        .await?;
    Ok(report.applied_migrations().len())
}

/// Migrates one tenant schema in its own transaction.
pub async fn migrate_tenant(db: &Db, schema: &SchemaName) -> Result<usize, MigrateError> {
    let tx = db.tenant(schema).await?;
    let applied = migrate_tenant_in(&tx).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Migrates the tenant schemas (`tenancy::provision::schemas` lists them),
/// `parallelism` at a time, one transaction each. A tenant that fails does
/// not stop the others.
pub async fn migrate_tenants(
    db: &Db,
    schemas: Vec<SchemaName>,
    parallelism: usize,
) -> Vec<TenantOutcome> {
    let mut outcomes = Vec::with_capacity(schemas.len());
    let mut stream = futures_util::stream::iter(schemas.into_iter().map(|schema| {
        let db = db.clone();
        async move {
            let result = migrate_tenant(&db, &schema).await;
            TenantOutcome { schema, result }
        }
    }))
    .buffer_unordered(parallelism.max(1));
    while let Some(outcome) = stream.next().await {
        outcomes.push(outcome);
    }
    outcomes.sort_by(|a, b| a.schema.cmp(&b.schema));
    outcomes
}

/// The newest tenant migration version compiled into this binary.
pub fn latest_tenant_version() -> i32 {
    tenant_migrations::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// refinery's driver interface over a transaction we own: statements run in
/// it, and nothing here commits.
struct InTransaction<'a>(&'a Client);

#[derive(Debug, thiserror::Error)]
enum InTransactionError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the migration history table holds an unreadable row: {0}")]
    History(String),
}

#[async_trait]
impl AsyncTransaction for InTransaction<'_> {
    type Error = InTransactionError;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut count = 0;
        for query in queries {
            self.0.batch_execute(query).await?;
            count += 1;
        }
        Ok(count)
    }
}

#[async_trait]
impl AsyncQuery<Vec<Migration>> for InTransaction<'_> {
    async fn query(&mut self, query: &str) -> Result<Vec<Migration>, Self::Error> {
        let rows = self.0.query(query, &[]).await?;
        rows.into_iter()
            .map(|row| {
                let version: i32 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let applied_on: String = row.try_get(2)?;
                let checksum: String = row.try_get(3)?;
                let applied_on = OffsetDateTime::parse(&applied_on, &Rfc3339)
                    .map_err(|e| InTransactionError::History(format!("version {version}: {e}")))?;
                let checksum = checksum
                    .parse::<u64>()
                    .map_err(|e| InTransactionError::History(format!("version {version}: {e}")))?;
                Ok(Migration::applied(version, name, applied_on, checksum))
            })
            .collect()
    }
}

impl AsyncMigrate for InTransaction<'_> {}
