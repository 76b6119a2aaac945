//! `chatter faq`: import and list a tenant's FAQs.

use super::ask::ready_engine;
use super::output::{one_line, print_json, print_table};
use super::{CliError, FaqCommand};
use crate::config::Settings;
use crate::db::Database;
use crate::faq;
use crate::faq_health::{self, Health};
use crate::tenancy::provision;

pub(super) async fn faq_command(
    db: &Database,
    settings: &Settings,
    cmd: FaqCommand,
) -> Result<(), CliError> {
    match cmd {
        FaqCommand::Import { schema, file } => {
            let schema = provision::existing_tenant(db.db(), &schema).await?;
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
            let faqs = faq::parse_import(&bytes)?;
            // An operator's import, like an operator's grant, is not held
            // to the tenant's plan.
            let count = faq::import(db.db(), &schema, &faqs, None).await?;
            println!("imported {count} FAQ(s) into {schema}");
        }
        FaqCommand::Doctor { schema, json } => {
            let schema = provision::existing_tenant(db.db(), &schema).await?;
            let engine = ready_engine(settings).await?;
            let health = faq_health::check(db.db(), &schema, &engine.queue()?).await?;
            if json {
                print_json(&health)?;
            } else {
                print_health(&health);
            }
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

fn print_health(h: &Health) {
    println!(
        "{} FAQs, {} phrasings checked: {} confused pair(s), {} phrasing(s) nearer another FAQ",
        h.faqs,
        h.phrasings,
        h.pairs.len(),
        h.pulls.len()
    );
    if !h.pairs.is_empty() {
        println!("\nFAQs the bot confuses (worst first):");
        for p in &h.pairs {
            println!(
                "  #{} {}  <->  #{} {}",
                p.a.id,
                one_line(&p.a.question, 40),
                p.b.id,
                one_line(&p.b.question, 40)
            );
            println!(
                "      {} phrasing(s) nearer the other FAQ, {} close to it; e.g. {}",
                p.pulls,
                p.close,
                p.examples
                    .iter()
                    .map(|e| format!("\"{}\"", one_line(e, 50)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if !h.pulls.is_empty() {
        println!("\nPhrasings that pull toward the wrong FAQ:");
        for p in &h.pulls {
            println!(
                "  \"{}\" (FAQ #{}) is nearer #{} {} ({:.2} against {:.2})",
                one_line(&p.phrasing, 50),
                p.faq.id,
                p.toward.id,
                one_line(&p.toward.question, 40),
                p.toward_score,
                p.own_score
            );
        }
    }
}
