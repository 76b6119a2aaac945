//! Creating, listing, suspending and deleting tenants and their domains:
//! the service layer that the CLI, the HTTP API and the console share.
//! Every change sends a tenancy event in its own transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::error::SqlState;

use crate::config::TenancySettings;
use crate::db::migrate::{TenantOutcome, migrate_tenant_in, migrate_tenants};
use crate::db::{Db, DbError, During, SharedTx, TenantTx};
use crate::tenancy::events::ChangeEvent;
use crate::tenancy::{DomainName, SchemaName, TenancyError};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TenantSummary {
    pub schema: String,
    pub name: String,
    pub is_active: bool,
    pub is_public: bool,
    pub created_at: DateTime<Utc>,
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DomainRow {
    pub domain: String,
    pub tenant: String,
    pub is_primary: bool,
}

#[derive(Debug, Clone)]
pub struct NewTenant<'a> {
    pub schema: &'a str,
    pub name: &'a str,
    pub domain: Option<&'a str>,
    pub is_public: bool,
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn check_name(name: &str) -> Result<&str, TenancyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(TenancyError::InvalidName);
    }
    Ok(name)
}

/// A `NewTenant` whose names passed their checks.
#[derive(Debug, Clone)]
pub struct CheckedTenant {
    pub schema: SchemaName,
    pub name: String,
    pub domain: Option<DomainName>,
    pub is_public: bool,
}

impl NewTenant<'_> {
    /// Checks every name before any SQL runs.
    pub fn checked(&self) -> Result<CheckedTenant, TenancyError> {
        Ok(CheckedTenant {
            schema: SchemaName::parse(self.schema)?,
            name: check_name(self.name)?.to_string(),
            domain: self
                .domain
                .map(DomainName::parse)
                .transpose()
                .map_err(TenancyError::InvalidDomain)?,
            is_public: self.is_public,
        })
    }
}

/// Creates the tenant row, its schema with every tenant migration, its
/// `bot_config` (bot name = tenant name) and its domain, in one
/// transaction: all of it, or nothing. Names are checked before any SQL.
pub async fn create_tenant(db: &Db, new: NewTenant<'_>) -> Result<TenantSummary, TenancyError> {
    let new = new.checked()?;
    let tx = db.shared_tx().await?;
    let (summary, tenant_tx) = create_tenant_in(tx, &new).await?;
    // On Citus the commit is a two-phase commit across nodes: it can fail.
    tenant_tx
        .commit()
        .await
        .during(format_args!("creating tenant {}: COMMIT", new.schema))?;
    Ok(summary)
}

/// The body of `create_tenant`, in the caller's transaction, which it
/// hands back as the new tenant's `TenantTx` uncommitted: a caller can go
/// on writing the tenant's data (a backup import) before the one commit.
pub async fn create_tenant_in(
    tx: SharedTx,
    new: &CheckedTenant,
) -> Result<(TenantSummary, TenantTx), TenancyError> {
    let CheckedTenant {
        schema,
        name,
        domain,
        is_public,
    } = new;
    let row = tx
        .query_one(
            "INSERT INTO public.tenants (schema_name, name, is_public) VALUES ($1, $2, $3) \
             RETURNING id, created_at",
            &[&schema.as_str(), name, is_public],
        )
        .await
        .map_err(|e| match is_unique_violation(&e) {
            true => TenancyError::TenantExists(schema.to_string()),
            false => during(e, schema, "INSERT INTO public.tenants"),
        })?;
    let tenant_id: i64 = row.try_get(0)?;
    let created_at: DateTime<Utc> = row.try_get(1)?;
    if let Some(domain) = domain {
        tx.execute(
            "INSERT INTO public.domains (domain, tenant_id, is_primary) VALUES ($1, $2, true)",
            &[&domain.as_str(), &tenant_id],
        )
        .await
        .map_err(|e| match is_unique_violation(&e) {
            true => TenancyError::DomainTaken(domain.to_string()),
            false => during(e, schema, "INSERT INTO public.domains"),
        })?;
    }
    // On Citus: distributed as it is made (see crate::citus).
    tx.execute(crate::db::citus::DISTRIBUTE_NEW_SCHEMAS, &[])
        .await
        .map_err(|e| during(e, schema, "SET citus.enable_schema_based_sharding"))?;
    tx.create_schema(schema).await.map_err(|e| {
        match e.code() == Some(&SqlState::DUPLICATE_SCHEMA) {
            true => TenancyError::TenantExists(schema.to_string()),
            false => during(e, schema, &format!("CREATE SCHEMA {}", schema.quoted())),
        }
    })?;
    ChangeEvent::Tenancy
        .notify(&tx)
        .await
        .map_err(|e| during(e, schema, "pg_notify"))?;

    let tenant_tx = tx
        .into_tenant(schema)
        .await
        .map_err(|e| during(e, schema, "SET LOCAL search_path"))?;
    migrate_tenant_in(&tenant_tx).await?;
    tenant_tx
        .execute("INSERT INTO bot_config (bot_name) VALUES ($1)", &[name])
        .await
        .map_err(|e| during(e, schema, "INSERT INTO bot_config"))?;

    let summary = TenantSummary {
        schema: schema.to_string(),
        name: name.clone(),
        is_active: true,
        is_public: *is_public,
        created_at,
        domains: domain.iter().map(|d| d.to_string()).collect(),
    };
    Ok((summary, tenant_tx))
}

/// Drops the tenant's schema and every row that refers to it.
pub async fn delete_tenant(db: &Db, schema: &str) -> Result<(), TenancyError> {
    let schema = SchemaName::parse(schema)?;
    let tx = db.shared_tx().await?;
    let row = tx
        .query_opt(
            "SELECT id, is_public FROM public.tenants WHERE schema_name = $1 FOR UPDATE",
            &[&schema.as_str()],
        )
        .await?
        .ok_or_else(|| TenancyError::UnknownTenant(schema.to_string()))?;
    let (id, is_public): (i64, bool) = (row.try_get(0)?, row.try_get(1)?);
    if is_public {
        return Err(TenancyError::PublicTenant(schema.to_string()));
    }
    let step = |what: &str| format!("deleting tenant {schema}: {what}");
    tx.execute("DELETE FROM public.tenants WHERE id = $1", &[&id])
        .await
        .during(step("DELETE FROM public.tenants"))?;
    tx.drop_schema(&schema)
        .await
        .during(step(&format!("DROP SCHEMA {} CASCADE", schema.quoted())))?;
    ChangeEvent::Tenancy
        .notify(&tx)
        .await
        .during(step("pg_notify"))?;
    tx.commit().await.during(step("COMMIT"))?;
    Ok(())
}

/// A failed step of creating tenant `schema`, named.
fn during(e: tokio_postgres::Error, schema: &SchemaName, what: &str) -> TenancyError {
    TenancyError::Db(DbError::Statement {
        what: format!("creating tenant {schema}: {what}"),
        source: e,
    })
}

/// Suspends (false) or resumes (true) a tenant: a suspended tenant's routes
/// answer 404, its data stays.
pub async fn set_active(db: &Db, schema: &str, active: bool) -> Result<(), TenancyError> {
    let schema = SchemaName::parse(schema)?;
    let tx = db.shared_tx().await?;
    let changed = tx
        .execute(
            "UPDATE public.tenants SET is_active = $2 WHERE schema_name = $1",
            &[&schema.as_str(), &active],
        )
        .await?;
    if changed == 0 {
        return Err(TenancyError::UnknownTenant(schema.to_string()));
    }
    ChangeEvent::Tenancy.notify(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The schema of an existing tenant, or a clear "no tenant" error.
pub async fn existing_tenant(db: &Db, schema: &str) -> Result<SchemaName, TenancyError> {
    let schema = SchemaName::parse(schema)?;
    let client = db.shared().await?;
    client
        .query_opt(
            "SELECT 1 FROM public.tenants WHERE schema_name = $1",
            &[&schema.as_str()],
        )
        .await?
        .ok_or_else(|| TenancyError::UnknownTenant(schema.to_string()))?;
    Ok(schema)
}

/// Every tenant's schema in name order (only the active ones with
/// `active_only`). A row whose name could not be a schema is logged and
/// left out.
pub async fn schemas(db: &Db, active_only: bool) -> Result<Vec<SchemaName>, DbError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT schema_name FROM public.tenants WHERE is_active OR NOT $1 ORDER BY schema_name",
            &[&active_only],
        )
        .await?;
    let mut schemas = Vec::with_capacity(rows.len());
    for row in rows {
        let raw: String = row.try_get(0)?;
        match SchemaName::parse(&raw) {
            Ok(schema) => schemas.push(schema),
            Err(e) => {
                tracing::error!(schema = %raw, error = %e, "skipping a tenant with an invalid schema name")
            }
        }
    }
    Ok(schemas)
}

/// Migrates every tenant's schema, `parallelism` at a time; a tenant that
/// fails does not stop the others.
pub async fn migrate_all(db: &Db, parallelism: usize) -> Result<Vec<TenantOutcome>, DbError> {
    let schemas = schemas(db, false).await?;
    Ok(migrate_tenants(db, schemas, parallelism).await)
}

pub async fn active_schemas(db: &Db) -> Result<Vec<SchemaName>, DbError> {
    schemas(db, true).await
}

/// A tenant's name and domains (primary first), read inside the caller's
/// transaction in that tenant (a backup's snapshot).
pub async fn name_and_domains_in(
    tx: &TenantTx,
) -> Result<Option<(String, Vec<String>)>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT t.name, coalesce(array_agg(d.domain ORDER BY d.is_primary DESC, d.domain) \
                             FILTER (WHERE d.domain IS NOT NULL), '{}') \
             FROM public.tenants t LEFT JOIN public.domains d ON d.tenant_id = t.id \
             WHERE t.schema_name = $1 GROUP BY t.id",
            &[&tx.schema().as_str()],
        )
        .await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}

pub async fn list_tenants(db: &Db) -> Result<Vec<TenantSummary>, TenancyError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT t.schema_name, t.name, t.is_active, t.is_public, t.created_at, \
                    coalesce(array_agg(d.domain ORDER BY d.is_primary DESC, d.domain) \
                             FILTER (WHERE d.domain IS NOT NULL), '{}') \
             FROM public.tenants t LEFT JOIN public.domains d ON d.tenant_id = t.id \
             GROUP BY t.id ORDER BY t.schema_name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(TenantSummary {
                schema: row.try_get(0)?,
                name: row.try_get(1)?,
                is_active: row.try_get(2)?,
                is_public: row.try_get(3)?,
                created_at: row.try_get(4)?,
                domains: row.try_get(5)?,
            })
        })
        .collect()
}

/// Adds `domain` to a tenant; `primary` makes it the tenant's primary
/// domain (the previous one stays, no longer primary).
pub async fn add_domain(
    db: &Db,
    domain: &str,
    schema: &str,
    primary: bool,
) -> Result<DomainRow, TenancyError> {
    let domain = DomainName::parse(domain).map_err(TenancyError::InvalidDomain)?;
    let schema = SchemaName::parse(schema)?;
    let tx = db.shared_tx().await?;
    let tenant_id: i64 = tx
        .query_opt(
            "SELECT id FROM public.tenants WHERE schema_name = $1",
            &[&schema.as_str()],
        )
        .await?
        .ok_or_else(|| TenancyError::UnknownTenant(schema.to_string()))?
        .try_get(0)?;
    tx.execute(
        "INSERT INTO public.domains (domain, tenant_id, is_primary) VALUES ($1, $2, false)",
        &[&domain.as_str(), &tenant_id],
    )
    .await
    .map_err(|e| match is_unique_violation(&e) {
        true => TenancyError::DomainTaken(domain.to_string()),
        false => e.into(),
    })?;
    if primary {
        set_primary_in(&tx, tenant_id, &domain).await?;
    }
    ChangeEvent::Tenancy.notify(&tx).await?;
    tx.commit().await?;
    Ok(DomainRow {
        domain: domain.to_string(),
        tenant: schema.to_string(),
        is_primary: primary,
    })
}

/// Makes `domain` its tenant's primary domain; the tenant's other domains
/// stay, no longer primary.
pub async fn make_primary(db: &Db, domain: &str) -> Result<DomainRow, TenancyError> {
    let domain = DomainName::parse(domain).map_err(TenancyError::InvalidDomain)?;
    let tx = db.shared_tx().await?;
    let row = tx
        .query_opt(
            "SELECT d.tenant_id, t.schema_name FROM public.domains d \
             JOIN public.tenants t ON t.id = d.tenant_id WHERE d.domain = $1 FOR UPDATE",
            &[&domain.as_str()],
        )
        .await?
        .ok_or_else(|| TenancyError::UnknownDomain(domain.to_string()))?;
    let (tenant_id, schema): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
    set_primary_in(&tx, tenant_id, &domain).await?;
    ChangeEvent::Tenancy.notify(&tx).await?;
    tx.commit().await?;
    Ok(DomainRow {
        domain: domain.to_string(),
        tenant: schema,
        is_primary: true,
    })
}

/// One primary domain per tenant: `domain` (already the tenant's) becomes
/// it, every other one of the tenant's domains stops being it.
async fn set_primary_in(
    tx: &SharedTx,
    tenant_id: i64,
    domain: &DomainName,
) -> Result<(), TenancyError> {
    // Two statements: the unique index on a tenant's primary is checked row
    // by row, so the old primary must be cleared before the new one is set.
    tx.execute(
        "UPDATE public.domains SET is_primary = false \
         WHERE tenant_id = $1 AND is_primary AND domain <> $2",
        &[&tenant_id, &domain.as_str()],
    )
    .await?;
    tx.execute(
        "UPDATE public.domains SET is_primary = true WHERE tenant_id = $1 AND domain = $2",
        &[&tenant_id, &domain.as_str()],
    )
    .await?;
    Ok(())
}

pub async fn remove_domain(db: &Db, domain: &str) -> Result<(), TenancyError> {
    let domain = DomainName::parse(domain).map_err(TenancyError::InvalidDomain)?;
    let tx = db.shared_tx().await?;
    let removed = tx
        .execute(
            "DELETE FROM public.domains WHERE domain = $1",
            &[&domain.as_str()],
        )
        .await?;
    if removed == 0 {
        return Err(TenancyError::UnknownDomain(domain.to_string()));
    }
    ChangeEvent::Tenancy.notify(&tx).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_domains(db: &Db) -> Result<Vec<DomainRow>, TenancyError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT d.domain, t.schema_name, d.is_primary \
             FROM public.domains d JOIN public.tenants t ON t.id = d.tenant_id \
             ORDER BY d.domain",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DomainRow {
                domain: row.try_get(0)?,
                tenant: row.try_get(1)?,
                is_primary: row.try_get(2)?,
            })
        })
        .collect()
}

/// On every start: the public tenant exists, and the public domain (Render's
/// external host name) is its primary domain. Replicas starting together
/// may race; the loser's unique violation means the work is done.
pub async fn bootstrap_public_tenant(
    db: &Db,
    tenancy: &TenancySettings,
) -> Result<String, TenancyError> {
    let client = db.shared().await?;
    let existing: Option<String> = client
        .query_opt(
            "SELECT schema_name FROM public.tenants WHERE is_public",
            &[],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    drop(client);
    let schema = match existing {
        Some(schema) => schema,
        None => {
            let new = NewTenant {
                schema: &tenancy.public_schema,
                name: &tenancy.public_name,
                domain: None,
                is_public: true,
            };
            match create_tenant(db, new).await {
                Ok(_) => {
                    tracing::info!(schema = %tenancy.public_schema, "created the public tenant")
                }
                Err(TenancyError::TenantExists(_)) => {}
                Err(e) => return Err(e),
            }
            tenancy.public_schema.clone()
        }
    };
    if let Some(domain) = &tenancy.public_domain {
        let client = db.shared().await?;
        let owner: Option<String> = client
            .query_opt(
                "SELECT t.schema_name FROM public.domains d JOIN public.tenants t ON t.id = d.tenant_id \
                 WHERE d.domain = $1",
                &[&domain.as_str()],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        drop(client);
        match owner {
            None => match add_domain(db, domain, &schema, true).await {
                Ok(_) => {
                    tracing::info!(%domain, "the public domain now points at the public tenant")
                }
                Err(TenancyError::DomainTaken(_)) => {}
                Err(e) => return Err(e),
            },
            Some(owner) if owner != schema => {
                tracing::warn!(%domain, %owner, "the public domain belongs to another tenant; leaving it")
            }
            Some(_) => {}
        }
    }
    Ok(schema)
}
