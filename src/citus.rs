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
use crate::db::{Db, DbError, During, SchemaName};
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
    #[error("{0} is not an active Citus worker (see `chatter citus nodes`)")]
    UnknownNode(String),
    #[error("cannot reach worker {node}: {message}")]
    NodeUnreachable { node: String, message: String },
    #[error("tenant {0} is not distributed (run `chatter citus distribute-existing`)")]
    NotDistributed(String),
    #[error("tenant {schema} is already on {node}")]
    AlreadyThere { schema: String, node: String },
    #[error(
        "an online move needs wal_level = logical on {node} (it is {level}): set it in its \
         postgresql.conf and restart it, or move with --mode block-writes"
    )]
    NotLogical { node: String, level: String },
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
            .await
            .during(format_args!("SELECT citus_schema_distribute('{schema}')"))?;
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

/// Where one tenant's schema lives ("host:port"); `None` off Citus or
/// when the schema is not distributed.
pub async fn placement(db: &Db, schema: &SchemaName) -> Result<Option<String>, CitusError> {
    if !is_citus(db).await? {
        return Ok(None);
    }
    let client = db.shared().await?;
    let row = client
        .query_opt(
            "SELECT s.nodename || ':' || s.nodeport \
             FROM citus_shards s \
             JOIN pg_class c ON c.oid = s.table_name \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE s.citus_table_type = 'schema' AND n.nspname = $1 \
             LIMIT 1",
            &[&schema.as_str()],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// How `chatter tenant move` copies a tenant's schema to its new node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MoveMode {
    /// Online when the node holding the tenant has `wal_level = logical`,
    /// else with writes blocked (and says so).
    #[default]
    Auto,
    /// Logical replication (Citus's `auto` transfer mode): the tenant's
    /// chats go on during the copy; its writes pause only while the last
    /// changes catch up. Needs `wal_level = logical` on the source node and
    /// a primary key on every table (Citus checks).
    Online,
    /// `block_writes`: the tenant's writes wait for the whole copy (reads
    /// go on). Works with any `wal_level`.
    BlockWrites,
}

/// What `move_tenant` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: String,
    pub to: String,
    /// Logical replication (writes went on), or `block_writes`.
    pub online: bool,
    /// Why the move was not online, when `Auto` chose `block_writes`.
    pub note: Option<String>,
}

/// Parses "host:port".
fn parse_node(node: &str) -> Result<(&str, i32), CitusError> {
    node.rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<i32>().ok()?)))
        .filter(|(h, p)| !h.is_empty() && (1..=65535).contains(p))
        .ok_or_else(|| CitusError::BadNode(node.to_string()))
}

/// `wal_level` on one worker, asked through the coordinator.
async fn wal_level(db: &Db, node: &str) -> Result<String, CitusError> {
    let (host, port) = parse_node(node)?;
    let client = db.shared().await?;
    let row = client
        .query_opt(
            "SELECT success, result FROM run_command_on_workers('SHOW wal_level') \
             WHERE nodename = $1 AND nodeport = $2",
            &[&host, &port],
        )
        .await
        .during(format_args!(
            "asking {node} for its wal_level (run_command_on_workers)"
        ))?;
    match row {
        Some(row) if row.try_get::<_, bool>(0)? => Ok(row.try_get(1)?),
        Some(row) => Err(CitusError::NodeUnreachable {
            node: node.to_string(),
            message: row.try_get(1)?,
        }),
        None => Err(CitusError::UnknownNode(node.to_string())),
    }
}

/// Moves a tenant's schema, all its tables together, to another worker
/// (`citus_schema_move`). Online (logical replication) when it can be;
/// see `MoveMode`. Other tenants are never affected.
pub async fn move_tenant(
    db: &Db,
    schema: &str,
    node: &str,
    mode: MoveMode,
) -> Result<Moved, CitusError> {
    if !is_citus(db).await? {
        return Err(CitusError::NotCitus);
    }
    let schema =
        SchemaName::parse(schema).map_err(|_| CitusError::UnknownTenant(schema.to_string()))?;
    if !provision::schemas(db, false).await?.contains(&schema) {
        return Err(CitusError::UnknownTenant(schema.to_string()));
    }
    let (host, port) = parse_node(node)?;
    let workers = worker_nodes(db).await?;
    if !workers.iter().any(|w| w == node) {
        return Err(CitusError::UnknownNode(node.to_string()));
    }
    let from = placement(db, &schema)
        .await?
        .ok_or_else(|| CitusError::NotDistributed(schema.to_string()))?;
    if from == node {
        return Err(CitusError::AlreadyThere {
            schema: schema.to_string(),
            node: node.to_string(),
        });
    }
    // Logical decoding runs on the node the tenant leaves.
    let level = match mode {
        MoveMode::BlockWrites => None,
        MoveMode::Auto | MoveMode::Online => Some(wal_level(db, &from).await?),
    };
    let logical = level.as_deref() == Some("logical");
    let (transfer, note) = match (mode, logical) {
        (MoveMode::BlockWrites, _) => ("block_writes", None),
        (_, true) => ("auto", None),
        (MoveMode::Online, false) => {
            return Err(CitusError::NotLogical {
                node: from,
                level: level.unwrap_or_default(),
            });
        }
        (MoveMode::Auto, false) => (
            "block_writes",
            Some(format!(
                "not online: {from} has wal_level = {}, logical replication needs \
                 wal_level = logical; {schema}'s writes waited during the copy",
                level.unwrap_or_default()
            )),
        ),
    };
    let client = db.shared().await?;
    client
        .execute(
            "SELECT citus_schema_move($1::text::regnamespace, $2, $3, \
             $4::text::citus.shard_transfer_mode)",
            &[&schema.quoted(), &host, &port, &transfer],
        )
        .await
        .during(format_args!(
            "SELECT citus_schema_move('{schema}', '{host}', {port}, '{transfer}')"
        ))?;
    Ok(Moved {
        from,
        to: node.to_string(),
        online: transfer == "auto",
        note,
    })
}

/// The active workers, "host:port".
async fn worker_nodes(db: &Db) -> Result<Vec<String>, CitusError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT node_name || ':' || node_port FROM citus_get_active_worker_nodes() \
             ORDER BY 1",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(CitusError::from))
        .collect()
}

/// The tables of a tenant schema that logical replication cannot copy
/// while they are written (no primary key and no replica identity): an
/// online `tenant move` needs every table to have one.
pub async fn tables_without_replica_identity(
    db: &Db,
    schema: &str,
) -> Result<Vec<String>, CitusError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
               AND c.relreplident <> 'f' \
               AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
                 AND CASE c.relreplident WHEN 'd' THEN i.indisprimary \
                                         WHEN 'i' THEN i.indisreplident ELSE false END) \
             ORDER BY 1",
            &[&schema],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(CitusError::from))
        .collect()
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
        if citus {
            for table in tables_without_replica_identity(db, schema.as_str()).await? {
                problems.push(format!(
                    "table {table} has no primary key: the tenant cannot move online"
                ));
            }
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
            for node in worker_nodes(db).await? {
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
