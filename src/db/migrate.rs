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
    #[error("migration failed: {}", describe(.0))]
    Refinery(#[from] refinery::Error),
}

/// refinery's message ("error applying migrations") with what our driver
/// knows under it: the migration, the statement and the server's words.
fn describe(err: &refinery::Error) -> String {
    match err.kind() {
        refinery::error::Kind::Connection(context, source) => {
            match source.downcast_ref::<InTransactionError>() {
                Some(inner) => inner.to_string(),
                None => format!("{context}: {source}"),
            }
        }
        other => other.to_string(),
    }
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
    let migrations = public_migrations::migrations::runner()
        .get_migrations()
        .to_vec();
    let report = runner(public_migrations::migrations::runner())
        .run_async(&mut InTransaction(tx.raw(), &migrations))
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
    let migrations = tenant_migrations::migrations::runner()
        .get_migrations()
        .to_vec();
    let report = runner(tenant_migrations::migrations::runner())
        .run_async(&mut InTransaction(tx.raw(), &migrations))
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
/// it, and nothing here commits. It knows the embedded migrations so that a
/// failing script can be named.
struct InTransaction<'a>(&'a Client, &'a [Migration]);

#[derive(Debug, thiserror::Error)]
enum InTransactionError {
    #[error("{}", crate::db::pool::describe_postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{what}: {}", crate::db::pool::describe_postgres(.source))]
    Script {
        what: String,
        source: tokio_postgres::Error,
    },
    #[error("the migration history table holds an unreadable row: {0}")]
    History(String),
}

impl InTransaction<'_> {
    /// "migration V3__x, statement `...`": which script (an embedded
    /// migration, or refinery's own bookkeeping) and, when the server says
    /// where in it, which statement.
    fn what_failed(&self, script: &str, err: &tokio_postgres::Error) -> String {
        let name = self
            .1
            .iter()
            .find(|m| m.sql() == Some(script))
            .map(|m| format!("migration {m}"))
            .unwrap_or_else(|| format!("statement `{}`", one_line(script)));
        let position = err.as_db_error().and_then(|e| match e.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(at)) => Some(*at as usize),
            _ => None,
        });
        match position.and_then(|at| statement_at(script, at)) {
            Some(statement) if name.starts_with("migration") => {
                format!("{name}, statement `{}`", one_line(statement))
            }
            _ => name,
        }
    }
}

/// The statement of `script` around character `at` (1-based, as the server
/// counts), split on semicolons: good enough to point at it.
fn statement_at(script: &str, at: usize) -> Option<&str> {
    let byte = script.char_indices().nth(at.saturating_sub(1))?.0;
    let start = script[..byte].rfind(';').map_or(0, |i| i + 1);
    let end = script[byte..].find(';').map_or(script.len(), |i| byte + i);
    Some(script[start..end].trim())
}

/// SQL on one line, cut short for a message.
fn one_line(sql: &str) -> String {
    let flat = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match flat.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
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
            if let Err(source) = self.0.batch_execute(query).await {
                let what = self.what_failed(query, &source);
                return Err(InTransactionError::Script { what, source });
            }
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
