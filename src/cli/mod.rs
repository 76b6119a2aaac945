//! The command line: `chatter <command>`. Every command takes `--config FILE`
//! and reads the same settings as the server. This file dispatches; the
//! arguments are in `args`, the handlers in one file per command group,
//! the printing in `output`.

mod args;
mod ask;
mod billing;
mod domains;
mod eval;
mod faqs;
mod migrations;
mod model;
mod output;
mod tenants;
mod users;

use std::process::ExitCode;

pub use args::{
    BillingCommand, Cli, Command, DomainCommand, EvalArgs, FaqCommand, MigrateArgs, ModelCommand,
    TenantCommand, UserCommand,
};

use crate::app::{Application, StartupError};
use crate::config::Settings;
use crate::db::Database;
use crate::db::migrate;

use ask::ask;
use billing::billing_command;
use domains::domain_command;
use faqs::faq_command;
use migrations::migrate_command;
use model::{embed, model_fetch};
use tenants::tenant_command;
use users::user_command;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error(transparent)]
    Tenancy(#[from] crate::tenancy::TenancyError),
    #[error(transparent)]
    Faq(#[from] crate::faq::FaqError),
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    #[error(transparent)]
    Load(#[from] crate::engine::loader::LoadError),
    #[error(transparent)]
    Files(#[from] crate::engine::model_files::ModelFilesError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Chat(#[from] crate::chat::ChatError),
    #[error(transparent)]
    Citus(#[from] crate::citus::CitusError),
    #[error(transparent)]
    Billing(#[from] crate::billing::BillingError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

/// Runs the command; errors are printed as one clear line.
pub async fn run(cli: Cli, settings: Settings) -> ExitCode {
    match dispatch(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, settings: Settings) -> Result<(), CliError> {
    match command {
        Command::Serve => return serve(settings).await,
        Command::Embed { texts } => return embed(&settings, texts).await,
        Command::Model(ModelCommand::Fetch) => return model_fetch(&settings).await,
        Command::Openapi => return print_openapi(&settings),
        // No database: the FAQs of a data set's evaluation live in memory.
        Command::Eval(args) if args.file.is_none() => {
            return eval::eval_command(&settings, args).await;
        }
        _ => {}
    }
    // Joins (or starts, then stops) the embedded cluster when there is no
    // DATABASE_URL.
    let database = Database::open(&settings.database).await?;
    let result = with_database(&database, &settings, command).await;
    database.close().await;
    result
}

async fn with_database(
    db: &Database,
    settings: &Settings,
    command: Command,
) -> Result<(), CliError> {
    // Every command needs the shared tables; on an up-to-date database
    // this is one quick transaction.
    migrate::migrate_shared(db.db()).await?;
    match command {
        Command::Serve | Command::Embed { .. } | Command::Model(_) | Command::Openapi => Ok(()),
        Command::Eval(args) => eval::tenant_eval_command(db, settings, args).await,
        Command::Faq(cmd) => faq_command(db, settings, cmd).await,
        Command::Ask { schema, question } => ask(db, settings, &schema, &question).await,
        Command::Migrate(args) => migrate_command(db, settings, args).await,
        Command::Tenant(cmd) => {
            let limits = crate::backup::ImportLimits {
                max_message_chars: settings.chat.max_message_chars,
            };
            tenant_command(db, cmd, limits).await
        }
        Command::Domain(cmd) => domain_command(db, cmd).await,
        Command::User(cmd) => user_command(db, cmd).await,
        Command::Billing(cmd) => billing_command(db, settings, cmd).await,
        Command::Console => Ok(crate::console::run(db.db().clone(), settings).await?),
        Command::Citus(cmd) => Ok(crate::citus::run_command(db.db(), cmd).await?),
        Command::Doctor => Ok(crate::citus::run_doctor(db.db()).await?),
    }
}

fn print_openapi(settings: &Settings) -> Result<(), CliError> {
    let json = crate::http::openapi_document(&settings.chat)
        .to_pretty_json()
        .map_err(|e| CliError::Failed(format!("cannot render the OpenAPI document: {e}")))?;
    println!("{json}");
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), CliError> {
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr(), "listening on http://{}", app.local_addr());
    app.run(shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM (Render, systemd) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
