//! `chatter migrate`: the shared schema, the tenant schemas, or one tenant.

use super::{CliError, MigrateArgs};
use crate::config::Settings;
use crate::db::Database;
use crate::db::migrate;
use crate::tenancy::provision;

pub(super) async fn migrate_command(
    db: &Database,
    settings: &Settings,
    args: MigrateArgs,
) -> Result<(), CliError> {
    if let Some(schema) = args.tenant {
        let schema = crate::tenancy::SchemaName::parse(&schema)
            .map_err(crate::tenancy::TenancyError::from)?;
        let applied = migrate::migrate_tenant(db.db(), &schema).await?;
        println!("{schema}: {applied} migration(s) applied");
        return Ok(());
    }
    // `migrate_shared` already ran in `with_database`.
    if !args.tenants {
        println!("shared schema: up to date");
    }
    if args.shared {
        return Ok(());
    }
    let outcomes = provision::migrate_all(db.db(), settings.database.migrate_parallelism).await?;
    let mut failed = Vec::new();
    let mut applied_total = 0;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(applied) => applied_total += applied,
            Err(e) => {
                eprintln!("{}: FAILED: {e}", outcome.schema);
                failed.push(outcome.schema.to_string());
            }
        }
    }
    println!(
        "tenants: {} migrated, {} migration(s) applied, {} failed",
        outcomes.len() - failed.len(),
        applied_total,
        failed.len()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "migration failed for: {}",
            failed.join(", ")
        )))
    }
}
