//! `chatter billing`: a tenant's plan, state and usage, and an operator's
//! grant of a plan by hand.

use super::output::print_json;
use super::{BillingCommand, CliError};
use crate::billing::Billing;
use crate::config::Settings;
use crate::db::{Database, SchemaName};

pub(super) async fn billing_command(
    db: &Database,
    settings: &Settings,
    cmd: BillingCommand,
) -> Result<(), CliError> {
    let billing = Billing::new(db.db().clone(), settings.billing.clone(), 1);
    let parse = |raw: &str| SchemaName::parse(raw).map_err(|e| CliError::Usage(e.to_string()));
    match cmd {
        BillingCommand::Show { schema } => {
            print_json(&billing.status(&parse(&schema)?).await?)?;
        }
        BillingCommand::Grant { schema, plan } => {
            let status = billing.grant(&parse(&schema)?, &plan).await?;
            println!("{schema} is on {} ({})", status.plan, status.state);
        }
    }
    Ok(())
}
