//! `chatter faq`: import and list a tenant's FAQs.

use super::output::{one_line, print_json, print_table};
use super::{CliError, FaqCommand};
use crate::db::Database;
use crate::faq;
use crate::tenancy::provision;

pub(super) async fn faq_command(db: &Database, cmd: FaqCommand) -> Result<(), CliError> {
    match cmd {
        FaqCommand::Import { schema, file } => {
            let schema = provision::existing_tenant(db.db(), &schema).await?;
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
            let faqs = faq::parse_import(&bytes)?;
            let count = faq::import(db.db(), &schema, &faqs).await?;
            println!("imported {count} FAQ(s) into {schema}");
        }
        FaqCommand::List { schema, json } => {
            let schema = provision::existing_tenant(db.db(), &schema).await?;
            let faqs = faq::list(db.db(), &schema).await?;
            if json {
                print_json(&faqs)?;
            } else {
                let rows: Vec<Vec<String>> = faqs
                    .iter()
                    .map(|f| {
                        vec![
                            f.id.to_string(),
                            f.question.clone(),
                            one_line(&f.answer, 60),
                        ]
                    })
                    .collect();
                print_table(&["ID", "QUESTION", "ANSWER"], &rows);
            }
        }
    }
    Ok(())
}
