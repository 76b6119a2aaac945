//! `chatter tenant`: create, list, export, import, delete.

use super::output::{print_json, print_table, write_archive};
use super::{CliError, TenantCommand};
use crate::backup::{self, TenantArchive};
use crate::db::Database;
use crate::tenancy::provision::{self, NewTenant};

/// A line of `tenant list --json`: the tenant, and on Citus the worker
/// node that holds its schema (`-` when it is not distributed).
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    tenant: &'a provision::TenantSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
}

pub(super) async fn tenant_command(
    db: &Database,
    cmd: TenantCommand,
    limits: backup::ImportLimits,
) -> Result<(), CliError> {
    match cmd {
        TenantCommand::Create {
            schema,
            name,
            domain,
        } => {
            let tenant = provision::create_tenant(
                db.db(),
                NewTenant {
                    schema: &schema,
                    name: &name,
                    domain: domain.as_deref(),
                    is_public: false,
                },
            )
            .await?;
            println!("created tenant {} ({})", tenant.schema, tenant.name);
        }
        TenantCommand::Move { schema, node, mode } => {
            let started = std::time::Instant::now();
            let moved = crate::citus::move_tenant(db.db(), &schema, &node, mode).await?;
            println!(
                "moved tenant {schema} from {} to {} in {:.1} s ({})",
                moved.from,
                moved.to,
                started.elapsed().as_secs_f64(),
                if moved.online {
                    "online: logical replication"
                } else {
                    "block_writes"
                }
            );
            if let Some(note) = moved.note {
                eprintln!("{note}");
            }
        }
        TenantCommand::List { json } => {
            let tenants = provision::list_tenants(db.db()).await?;
            // On Citus, a NODE column: where each tenant's schema lives.
            let placements = crate::citus::placements(db.db()).await?;
            if json {
                let listed: Vec<Listed> = tenants
                    .iter()
                    .map(|tenant| Listed {
                        tenant,
                        node: placements
                            .as_ref()
                            .map(|p| p.get(&tenant.schema).map_or("-", String::as_str)),
                    })
                    .collect();
                print_json(&listed)?;
            } else {
                let rows: Vec<Vec<String>> = tenants
                    .iter()
                    .map(|t| {
                        vec![
                            t.schema.clone(),
                            t.name.clone(),
                            if t.is_active { "active" } else { "suspended" }.to_string(),
                            t.domains.join(","),
                            t.created_at.format("%Y-%m-%d %H:%M").to_string(),
                        ]
                        .into_iter()
                        .chain(
                            placements
                                .as_ref()
                                .map(|p| p.get(&t.schema).cloned().unwrap_or_else(|| "-".into())),
                        )
                        .collect()
                    })
                    .collect();
                let mut headers = vec!["SCHEMA", "NAME", "STATUS", "DOMAINS", "CREATED"];
                headers.extend(placements.as_ref().map(|_| "NODE"));
                print_table(&headers, &rows);
            }
        }
        TenantCommand::Export { schema } => {
            let schema = crate::tenancy::SchemaName::parse(&schema)
                .map_err(crate::tenancy::TenancyError::from)?;
            let archive = backup::export(db.db(), &schema).await?;
            write_archive(&archive)?;
            eprintln!(
                "exported tenant {schema}: {} FAQ(s), {} conversation(s), {} message(s)",
                archive.faqs.len(),
                archive.conversations.len(),
                archive.message_count()
            );
        }
        TenantCommand::Import { file, as_schema } => {
            let archive = TenantArchive::from_file(&file)?.validated(limits)?;
            let schema = backup::import(db.db(), &archive, as_schema.as_deref()).await?;
            println!(
                "imported tenant {schema} ({}): {} FAQ(s), {} conversation(s), {} message(s)",
                archive.name,
                archive.faqs.len(),
                archive.conversations.len(),
                archive.message_count()
            );
            if archive.domains.is_empty() {
                println!(
                    "no domain attached; add one with `chatter domain add DOMAIN --tenant {schema}`"
                );
            } else {
                println!(
                    "domains NOT re-attached (they belonged to {}): {}; add them with `chatter domain add DOMAIN --tenant {schema}`",
                    archive.schema,
                    archive.domains.join(", ")
                );
            }
        }
        TenantCommand::Delete { schema, yes } => {
            if !yes {
                return Err(CliError::Usage(format!(
                    "deleting {schema} drops its schema and all its data; add --yes to confirm"
                )));
            }
            provision::delete_tenant(db.db(), &schema).await?;
            println!("deleted tenant {schema}");
        }
    }
    Ok(())
}
