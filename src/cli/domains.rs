//! `chatter domain`: the domains that route to tenants.

use super::output::{print_json, print_table};
use super::{CliError, DomainCommand};
use crate::db::Database;
use crate::tenancy::provision;

pub(super) async fn domain_command(db: &Database, cmd: DomainCommand) -> Result<(), CliError> {
    match cmd {
        DomainCommand::Add {
            domain,
            tenant,
            primary,
        } => {
            let row = provision::add_domain(db.db(), &domain, &tenant, primary).await?;
            println!(
                "{} -> {}{}",
                row.domain,
                row.tenant,
                if row.is_primary { " (primary)" } else { "" }
            );
        }
        DomainCommand::List { json } => {
            let domains = provision::list_domains(db.db()).await?;
            if json {
                print_json(&domains)?;
            } else {
                let rows: Vec<Vec<String>> = domains
                    .iter()
                    .map(|d| {
                        vec![
                            d.domain.clone(),
                            d.tenant.clone(),
                            if d.is_primary { "yes" } else { "" }.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["DOMAIN", "TENANT", "PRIMARY"], &rows);
            }
        }
        DomainCommand::Remove { domain } => {
            provision::remove_domain(db.db(), &domain).await?;
            println!("removed {domain}");
        }
    }
    Ok(())
}
