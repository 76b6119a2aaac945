//! Citus (distributed PostgreSQL), as the database layer meets it: whether
//! our database is a coordinator, distributing a new tenant schema as it
//! is created, and the public tables as reference tables after the shared
//! migrations. The operator's commands on top are `crate::citus`.

// The shared migrations' lock: migrators and this wait for each other.
use crate::db::{Db, DbError, During, SHARED_MIGRATION_LOCK};

/// Run in a tenant-creating transaction before `CREATE SCHEMA`: on Citus,
/// the schema (and every table later created in it) is distributed; on
/// plain PostgreSQL the query selects no row and sets nothing.
pub const DISTRIBUTE_NEW_SCHEMAS: &str = "SELECT set_config('citus.enable_schema_based_sharding', \
     'on', true) FROM pg_extension WHERE extname = 'citus'";

/// Whether the database is a Citus coordinator (the extension is there).
pub async fn is_citus(db: &Db) -> Result<bool, DbError> {
    let client = db.shared().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// On Citus, makes every public table that is not yet distributed a
/// reference table (in creation order, so a table is made one after those
/// its foreign keys point to). refinery's history table stays on the
/// coordinator: only the migrator reads it. Returns the tables it made.
///
/// Tried a second time if the first fails: once in three CI runs of the
/// Citus suite (a new database each test), Citus 13 failed converting the
/// tables that reference `tenants` ("column \"objoid\" of relation
/// \"users\" does not exist", from its sequence ownership code), and the
/// same steps succeeded on the next database. Each try is one transaction
/// and skips the tables already distributed, so a second try is safe; an
/// error that is not transient fails it too, and is returned.
pub async fn make_reference_tables(db: &Db) -> Result<Vec<String>, DbError> {
    if !is_citus(db).await? {
        return Ok(Vec::new());
    }
    match make_reference_tables_once(db).await {
        Ok(made) => Ok(made),
        Err(e) => {
            tracing::warn!(error = %e, "making the public tables reference tables failed; trying once more");
            make_reference_tables_once(db).await
        }
    }
}

async fn make_reference_tables_once(db: &Db) -> Result<Vec<String>, DbError> {
    let tx = db.shared_tx().await?;
    // As in migrate_shared: waiting for another migrator is no failure.
    tx.execute("SET LOCAL lock_timeout TO 0", &[])
        .await
        .during("making reference tables: SET LOCAL lock_timeout")?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&SHARED_MIGRATION_LOCK],
    )
    .await
    .during("making reference tables: taking the shared migration lock")?;
    let rows = tx
        .query(
            "SELECT c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
               AND c.relname <> 'refinery_schema_history' \
               AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid) \
             ORDER BY c.oid",
            &[],
        )
        .await?;
    let mut made = Vec::new();
    for row in rows {
        let table: String = row.try_get(0)?;
        let qualified = format!("public.{}", quote_ident(&table));
        tx.execute(
            "SELECT create_reference_table($1::text::regclass)",
            &[&qualified],
        )
        .await
        .during(format_args!("SELECT create_reference_table('{qualified}')"))?;
        made.push(table);
    }
    tx.commit()
        .await
        .during("making reference tables: COMMIT")?;
    Ok(made)
}

/// A PostgreSQL identifier in double quotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
