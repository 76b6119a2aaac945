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

use crate::db::{Db, DbError, During, SHARED_MIGRATION_LOCK, SchemaName, TenantTx};
use crate::error_kind::{Classify, Kind};

mod public_migrations {
    refinery::embed_migrations!("migrations/public");
}
mod tenant_migrations {
    refinery::embed_migrations!("migrations/tenant");
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("migration failed: {}", describe(.0))]
    Refinery(#[from] refinery::Error),
    #[error("making the public tables Citus reference tables: {0}")]
    Citus(DbError),
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
            MigrateError::Refinery(_) | MigrateError::Citus(_) => Kind::internal(),
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
    // Waiting for another process's migration is expected (every CLI
    // command migrates first): not a lock_timeout failure, only
    // statement_timeout bounds it.
    tx.raw()
        .batch_execute(&format!(
            "SET LOCAL lock_timeout TO 0; SELECT pg_advisory_xact_lock({SHARED_MIGRATION_LOCK}); \
             SET LOCAL search_path TO public"
        ))
        .await
        .during("migrating public: taking the shared migration lock")?;
    let migrations = public_migrations::migrations::runner()
        .get_migrations()
        .to_vec();
    let report = runner(public_migrations::migrations::runner())
        .run_async(&mut InTransaction(tx.raw(), &migrations))
        .await?;
    tx.commit().await.during("migrating public: COMMIT")?;
    // On Citus, the public tables (new ones included) become reference
    // tables; elsewhere this is one query that finds no extension.
    crate::db::citus::make_reference_tables(db)
        .await
        .map_err(MigrateError::Citus)?;
    Ok(report.applied_migrations().len())
}

/// Applies the tenant migrations inside an open tenant transaction (its
/// search_path already set). Returns how many were applied.
pub async fn migrate_tenant_in(tx: &TenantTx) -> Result<usize, MigrateError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('chatter.migrate.' || $1::text))",
        &[&tx.schema().as_str()],
    )
    .await
    .during(format_args!(
        "migrating tenant {}: taking its migration lock",
        tx.schema()
    ))?;
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
    tx.commit()
        .await
        .during(format_args!("migrating tenant {schema}: COMMIT"))?;
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
    /// migration, or refinery's own bookkeeping) and which statement in it.
    fn what_failed(&self, script: &str, statement: &str) -> String {
        match self.1.iter().find(|m| m.sql() == Some(script)) {
            Some(m) => format!("migration {m}, statement `{}`", one_line(statement)),
            None => format!("statement `{}`", one_line(statement)),
        }
    }
}

/// The statements of a SQL script, split on the semicolons that end them
/// (not those in quotes, quoted names, dollar quotes or comments); empty
/// and comment-only pieces are left out.
fn statements(script: &str) -> Vec<&str> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    fn push<'s>(piece: &'s str, out: &mut Vec<&'s str>) {
        if !one_line(piece).is_empty() {
            out.push(piece.trim());
        }
    }
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = script[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 1);
            }
            b'$' => {
                // $tag$ ... $tag$ (tag: letters, digits, underscores).
                let tag_end = script[i + 1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map(|n| i + 1 + n);
                if let Some(end) = tag_end.filter(|&e| bytes[e] == b'$') {
                    let tag = &script[i..=end];
                    i = script[end + 1..]
                        .find(tag)
                        .map_or(bytes.len(), |n| end + n + tag.len());
                }
            }
            b';' => {
                push(&script[start..i], &mut out);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(&script[start..], &mut out);
    out
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
            // One statement per simple query: Citus hands a DDL statement's
            // query text on to the workers as a prepared statement, and a
            // whole script there is "multiple commands in a prepared
            // statement". One at a time also names the one that failed.
            for statement in statements(query) {
                if let Err(source) = self.0.batch_execute(statement).await {
                    let what = self.what_failed(query, statement);
                    return Err(InTransactionError::Script { what, source });
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements_but_not_inside_quotes_or_comments() {
        let script = "-- a comment; not a statement\nCREATE TABLE a (x text DEFAULT ';');\n\
                      CREATE TABLE \"b;c\" (y int); /* ; */\nDO $f$ BEGIN PERFORM 1; END $f$;\n\
                      SELECT $$;$$\n-- trailing comment\n";
        assert_eq!(
            statements(script),
            vec![
                "-- a comment; not a statement\nCREATE TABLE a (x text DEFAULT ';')",
                "CREATE TABLE \"b;c\" (y int)",
                "/* ; */\nDO $f$ BEGIN PERFORM 1; END $f$",
                "SELECT $$;$$\n-- trailing comment",
            ]
        );
    }

    #[test]
    fn the_embedded_migrations_split_into_their_statements() {
        let count = |runner: Runner| -> usize {
            runner
                .get_migrations()
                .iter()
                .map(|m| statements(m.sql().unwrap_or_default()).len())
                .sum()
        };
        // One CREATE per semicolon-terminated line: no statement lost or cut.
        let expected = |dir: &str| -> usize {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .map(|s| s.lines().filter(|l| l.trim_end().ends_with(';')).count())
                .sum()
        };
        assert_eq!(
            count(tenant_migrations::migrations::runner()),
            expected("migrations/tenant")
        );
        assert_eq!(
            count(public_migrations::migrations::runner()),
            expected("migrations/public")
        );
    }
}
