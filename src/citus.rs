//! Running on Citus (distributed PostgreSQL) with schema-based sharding:
//! each tenant schema lives whole on one worker, the public tables are
//! reference tables copied to every node, and the coordinator (the
//! `DATABASE_URL`) routes each transaction; LISTEN/NOTIFY stays on it.
//!
//! Citus is detected by its extension in our database; without it every
//! function here is a no-op or says so, and nothing changes for a single
//! PostgreSQL server.
//!
//! New tenant schemas are distributed as they are created: the creating
//! transaction turns on `citus.enable_schema_based_sharding` for itself
//! (`DISTRIBUTE_NEW_SCHEMAS`), so an operator need not set it cluster-wide
//! and the schema, its tables and the tenant's row commit together.
//! Schemas made before Citus (or with the setting off) are distributed by
//! `chatter citus distribute-existing` (`citus_schema_distribute`).

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;

use crate::db::citus::is_citus;
use crate::db::migrate::latest_tenant_version;
use crate::db::{Db, DbError, SchemaName};
use crate::tenancy::provision;

#[derive(Debug, thiserror::Error)]
pub enum CitusError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("this database is not a Citus coordinator (no citus extension)")]
    NotCitus,
    #[error("no tenant {0}")]
    UnknownTenant(String),
    #[error("NODE must be host:port (as in citus_get_active_worker_nodes()), not {0}")]
    BadNode(String),
    #[error("doctor found {0} problem(s)")]
    Unhealthy(usize),
}

crate::db::db_error_conversions!(CitusError);

#[derive(Debug, Subcommand)]
pub enum CitusCommand {
    /// Distribute every tenant schema that is not yet (made before Citus,
    /// or while schema-based sharding was off).
    DistributeExisting,
    /// The worker nodes and how many tenant schemas each holds.
    Nodes,
}

/// The tenant schemas Citus has distributed.
async fn distributed_schemas(db: &Db) -> Result<BTreeSet<String>, CitusError> {
    let client = db.shared().await?;
    let rows = client
        .query("SELECT schema_name::text FROM citus_schemas", &[])
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(CitusError::from))
        .collect()
}

/// Distributes the tenant schemas that are not yet; returns them.
pub async fn distribute_existing(db: &Db) -> Result<Vec<String>, CitusError> {
    if !is_citus(db).await? {
        return Err(CitusError::NotCitus);
    }
    let done = distributed_schemas(db).await?;
    let mut distributed = Vec::new();
    for schema in provision::schemas(db, false).await? {
        if done.contains(schema.as_str()) {
            continue;
        }
        let client = db.shared().await?;
        client
            .execute(
                "SELECT citus_schema_distribute($1::text::regnamespace)",
                &[&schema.quoted()],
            )
            .await?;
        distributed.push(schema.to_string());
    }
    Ok(distributed)
}

/// Where each distributed tenant schema lives ("host:port"); `None` when
/// the database is not Citus.
pub async fn placements(db: &Db) -> Result<Option<BTreeMap<String, String>>, CitusError> {
    if !is_citus(db).await? {
        return Ok(None);
    }
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT DISTINCT n.nspname::text, s.nodename || ':' || s.nodeport \
             FROM citus_shards s \
             JOIN pg_class c ON c.oid = s.table_name \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE s.citus_table_type = 'schema'",
            &[],
        )
        .await?;
    let mut map = BTreeMap::new();
    for row in rows {
        map.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(Some(map))
}

/// Moves a tenant's schema, all its tables together, to another worker
/// (`citus_schema_move`). Writes to that tenant wait during the copy
/// (`block_writes`: no need for `wal_level = logical` on the nodes).
pub async fn move_tenant(db: &Db, schema: &str, node: &str) -> Result<(), CitusError> {
    if !is_citus(db).await? {
        return Err(CitusError::NotCitus);
    }
    let schema =
        SchemaName::parse(schema).map_err(|_| CitusError::UnknownTenant(schema.to_string()))?;
    if !provision::schemas(db, false).await?.contains(&schema) {
        return Err(CitusError::UnknownTenant(schema.to_string()));
    }
    let (host, port) = node
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<i32>().ok()?)))
        .ok_or_else(|| CitusError::BadNode(node.to_string()))?;
    let client = db.shared().await?;
    client
        .execute(
            "SELECT citus_schema_move($1::text::regnamespace, $2, $3, 'block_writes')",
            &[&schema.quoted(), &host, &port],
        )
        .await?;
    Ok(())
}

/// One tenant schema's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkup {
    pub schema: String,
    /// `None` off Citus.
    pub distributed: Option<bool>,
    /// The newest migration applied, if the history could be read.
    pub version: Option<i32>,
    pub problems: Vec<String>,
}

/// Checks every tenant schema: at the latest migration and, on Citus,
/// distributed; and on Citus that the public tables are reference tables.
/// Returns the tenants' checkups and the problems that are not a tenant's.
pub async fn doctor(db: &Db) -> Result<(Vec<Checkup>, Vec<String>), CitusError> {
    let citus = is_citus(db).await?;
    let distributed = match citus {
        true => Some(distributed_schemas(db).await?),
        false => None,
    };
    let latest = latest_tenant_version();
    let client = db.shared().await?;
    let mut checkups = Vec::new();
    for schema in provision::schemas(db, false).await? {
        let mut problems = Vec::new();
        let version = match client
            .query_one(
                &format!(
                    "SELECT coalesce(max(version), 0) FROM {}.refinery_schema_history",
                    schema.quoted()
                ),
                &[],
            )
            .await
        {
            Ok(row) => Some(row.try_get::<_, i32>(0)?),
            Err(e) => {
                problems.push(format!(
                    "cannot read its migration history: {}",
                    crate::db::pool::describe_postgres(&e)
                ));
                None
            }
        };
        if let Some(v) = version.filter(|v| *v != latest) {
            problems.push(format!(
                "at migration {v}, this binary's latest is {latest} (run `chatter migrate`)"
            ));
        }
        let is_distributed = distributed.as_ref().map(|d| d.contains(schema.as_str()));
        if is_distributed == Some(false) {
            problems.push("not distributed (run `chatter citus distribute-existing`)".into());
        }
        checkups.push(Checkup {
            schema: schema.to_string(),
            distributed: is_distributed,
            version,
            problems,
        });
    }
    let mut general = Vec::new();
    if citus {
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
                   AND c.relname <> 'refinery_schema_history' \
                   AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p \
                                   WHERE p.logicalrelid = c.oid AND p.partmethod = 'n' \
                                     AND p.repmodel = 't') \
                 ORDER BY 1",
                &[],
            )
            .await?;
        for row in rows {
            let table: String = row.try_get(0)?;
            general.push(format!("public.{table} is not a reference table"));
        }
    }
    Ok((checkups, general))
}

/// `chatter citus ...`.
pub async fn run_command(db: &Db, cmd: CitusCommand) -> Result<(), CitusError> {
    match cmd {
        CitusCommand::DistributeExisting => {
            let done = distribute_existing(db).await?;
            println!("distributed {} tenant schema(s)", done.len());
            for schema in done {
                println!("  {schema}");
            }
        }
        CitusCommand::Nodes => {
            let Some(placements) = placements(db).await? else {
                return Err(CitusError::NotCitus);
            };
            let client = db.shared().await?;
            let rows = client
                .query(
                    "SELECT node_name || ':' || node_port FROM citus_get_active_worker_nodes() \
                     ORDER BY 1",
                    &[],
                )
                .await?;
            for row in rows {
                let node: String = row.try_get(0)?;
                let count = placements.values().filter(|n| **n == node).count();
                println!("{node}\t{count} tenant schema(s)");
            }
        }
    }
    Ok(())
}

/// `chatter doctor`: prints the problems; fails when there are some.
pub async fn run_doctor(db: &Db) -> Result<(), CitusError> {
    let (checkups, general) = doctor(db).await?;
    let mut count = general.len();
    for problem in &general {
        println!("{problem}");
    }
    for checkup in &checkups {
        for problem in &checkup.problems {
            println!("{}: {problem}", checkup.schema);
            count += 1;
        }
    }
    let on = match checkups.first().and_then(|c| c.distributed) {
        Some(_) => " on Citus",
        None => "",
    };
    println!(
        "{} tenant(s){on}, latest migration {}: {}",
        checkups.len(),
        latest_tenant_version(),
        if count == 0 {
            "all well"
        } else {
            "problems above"
        }
    );
    match count {
        0 => Ok(()),
        n => Err(CitusError::Unhealthy(n)),
    }
}
