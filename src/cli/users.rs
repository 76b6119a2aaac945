//! `chatter user`: accounts, the password read from stdin.

use super::{CliError, UserCommand};
use crate::auth::{NewUser, Role, recovery, users};
use crate::db::Database;

pub(super) async fn user_command(db: &Database, cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Create {
            email,
            operator,
            tenant,
            role,
        } => {
            let membership = match (tenant.as_deref(), role.as_deref()) {
                (Some(tenant), Some(role)) => Some((tenant, role.parse::<Role>()?)),
                _ => None,
            };
            // Stdin may be a terminal waiting for a person: off the async workers.
            let password = tokio::task::spawn_blocking(read_password)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))??;
            users::create_user(
                db.db(),
                NewUser {
                    email: &email,
                    password: &password,
                    is_operator: operator,
                    membership,
                },
            )
            .await?;
            let email = users::normalize_email(&email)?;
            let mut what = vec![];
            if operator {
                what.push("operator".to_string());
            }
            if let Some((tenant, role)) = membership {
                what.push(format!("{role} of {tenant}"));
            }
            if what.is_empty() {
                println!("created user {email}");
            } else {
                println!("created user {email} ({})", what.join(", "));
            }
        }
        UserCommand::ResetPassword { email } => {
            let password = tokio::task::spawn_blocking(read_password)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))??;
            recovery::set_password(db.db(), &email, &password).await?;
            let email = users::normalize_email(&email)?;
            println!("set a new password for {email}; their sessions are signed out");
        }
    }
    Ok(())
}

/// The first line of stdin, without its line ending; an empty one is refused.
fn read_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Failed(format!("cannot read the password from stdin: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password: write it as the first line of stdin".into(),
        ));
    }
    Ok(password)
}
