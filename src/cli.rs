//! The command line: `chatter <command>`. Every command takes `--config FILE`
//! and reads the same settings as the server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::app::{Application, StartupError};
use crate::auth::{NewUser, Role, users};
use crate::backup::{self, TenantArchive};
use crate::bot_config::BotConfigCache;
use crate::chat::{self, Answerer};
use crate::config::Settings;
use crate::db::Database;
use crate::db::migrate;
use crate::engine::worker::EmbeddingQueue;
use crate::engine::{Engine, loader, model_files};
use crate::faq;
use crate::tenancy::provision::{self, NewTenant};

#[derive(Debug, Parser)]
#[command(name = "chatter", version, about = "Multi-tenant FAQ chatbot platform")]
pub struct Cli {
    /// Configuration file (default: ./config.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, create the public tenant, and serve HTTP.
    Serve,
    /// Apply the embedded migrations (all of them by default).
    Migrate(MigrateArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the domains that route to tenants.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Manage a tenant's FAQs.
    #[command(subcommand)]
    Faq(FaqCommand),
    /// Answer a question as the widget would (JSON out; nothing is stored).
    Ask { schema: String, question: String },
    /// Print the embedding of each text as a JSON array, one per line.
    Embed {
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Manage the embedding model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the HTTP API's OpenAPI 3.1 document (as `/api/schema.json`).
    Openapi,
    /// The operator console: tenants, domains, conversations and unanswered
    /// questions in the terminal (logs go to console.log in the data dir).
    Console,
    /// Citus (distributed PostgreSQL): distribute tenants, list nodes.
    #[command(subcommand)]
    Citus(crate::citus::CitusCommand),
    /// Check every tenant schema: at the latest migration, and on Citus
    /// distributed (and the public tables reference tables).
    Doctor,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is the first line of stdin (so it stays
    /// out of the shell history and the process list).
    Create {
        email: String,
        /// May manage every tenant and the platform.
        #[arg(long)]
        operator: bool,
        /// A tenant (schema name) the user joins.
        #[arg(long, value_name = "SCHEMA", requires = "role")]
        tenant: Option<String>,
        /// The user's role in --tenant.
        #[arg(long, value_parser = ["owner", "agent"], requires = "tenant")]
        role: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FaqCommand {
    /// Add FAQs from a JSON array of {question, answer} or a CSV with a
    /// `question,answer` header; all rows or none.
    Import { schema: String, file: PathBuf },
    /// List a tenant's FAQs.
    List {
        schema: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download the model into the hub cache now (or check the local folder).
    Fetch,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct MigrateArgs {
    /// Only the shared (public) schema.
    #[arg(long)]
    pub shared: bool,
    /// Only the tenant schemas.
    #[arg(long)]
    pub tenants: bool,
    /// Only this tenant's schema.
    #[arg(long, value_name = "SCHEMA")]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant: its schema, tables and bot settings.
    Create {
        schema: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        domain: Option<String>,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Write a tenant, all its data, as one JSON file to stdout.
    Export { schema: String },
    /// Create a tenant from an exported file: all of it, or nothing.
    /// Domains are not re-attached.
    Import {
        file: PathBuf,
        /// The new tenant's schema (default: the one in the file).
        #[arg(long = "as", value_name = "SCHEMA")]
        as_schema: Option<String>,
    },
    /// Move a tenant's schema to another Citus worker NODE (host:port).
    Move { schema: String, node: String },
    /// Delete a tenant and all its data.
    Delete {
        schema: String,
        /// Confirm: the schema and every row in it are dropped.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Route a domain to a tenant.
    Add {
        domain: String,
        #[arg(long, value_name = "SCHEMA")]
        tenant: String,
        #[arg(long)]
        primary: bool,
    },
    /// List domains.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop routing a domain.
    Remove { domain: String },
}

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
        Command::Faq(cmd) => faq_command(db, cmd).await,
        Command::Ask { schema, question } => ask(db, settings, &schema, &question).await,
        Command::Migrate(args) => migrate_command(db, settings, args).await,
        Command::Tenant(cmd) => tenant_command(db, cmd).await,
        Command::Domain(cmd) => domain_command(db, cmd).await,
        Command::User(cmd) => user_command(db, cmd).await,
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

async fn migrate_command(
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

async fn tenant_command(db: &Database, cmd: TenantCommand) -> Result<(), CliError> {
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
        TenantCommand::Move { schema, node } => {
            crate::citus::move_tenant(db.db(), &schema, &node).await?;
            println!("moved tenant {schema} to {node}");
        }
        TenantCommand::List { json } => {
            let tenants = provision::list_tenants(db.db()).await?;
            // On Citus, a NODE column: where each tenant's schema lives.
            let placements = crate::citus::placements(db.db()).await?;
            if json {
                print_json(&tenants)?;
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
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
            let archive = TenantArchive::from_json(&bytes)?;
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

async fn domain_command(db: &Database, cmd: DomainCommand) -> Result<(), CliError> {
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

async fn user_command(db: &Database, cmd: UserCommand) -> Result<(), CliError> {
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

async fn faq_command(db: &Database, cmd: FaqCommand) -> Result<(), CliError> {
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

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    }
}

/// The model, loaded in this process, behind a worker of its own.
async fn ready_engine(settings: &Settings) -> Result<Arc<Engine>, CliError> {
    let embedder = loader::load(&settings.model, loader::progress()).await?;
    // A one-off command: its metrics are never scraped.
    let queue = EmbeddingQueue::start(
        embedder,
        loader::worker_settings(&settings.model),
        Arc::default(),
    )?;
    Ok(Arc::new(Engine::ready(queue)))
}

async fn ask(
    db: &Database,
    settings: &Settings,
    schema: &str,
    question: &str,
) -> Result<(), CliError> {
    let schema = provision::existing_tenant(db.db(), schema).await?;
    // Checked before the model loads: a bad question fails at once.
    let question = chat::check_message(question, &settings.chat)
        .map_err(|e| CliError::Usage(format!("the question cannot be asked: {e}")))?;
    let engine = ready_engine(settings).await?;
    let db = db.db().clone();
    let bot_configs = Arc::new(BotConfigCache::new(db.clone(), 1));
    let answerer = Answerer::new(db, engine, bot_configs, settings.chat.clone(), 1);
    let answer = answerer.answer(&schema, question).await?;
    print_json(&answer)
}

async fn embed(settings: &Settings, texts: Vec<String>) -> Result<(), CliError> {
    let embedder = loader::load(&settings.model, loader::progress()).await?;
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed(&refs)
    })
    .await
    .map_err(|e| CliError::Failed(e.to_string()))?
    .map_err(crate::engine::EngineError::from)?;
    for vector in vectors {
        let line = serde_json::to_string(&vector).map_err(|e| CliError::Failed(e.to_string()))?;
        println!("{line}");
    }
    Ok(())
}

async fn model_fetch(settings: &Settings) -> Result<(), CliError> {
    let files = model_files::resolve(&loader::source(&settings.model), loader::progress()).await?;
    println!("{} in {}", files.model_id, files.dir.display());
    Ok(())
}

/// Compact JSON on stdout (the vectors make a pretty file long, not
/// readable), through a buffer: a closed pipe is an error, not a panic.
fn write_archive(archive: &TenantArchive) -> Result<(), CliError> {
    use std::io::Write;
    let failed = |e: String| CliError::Failed(format!("cannot write the archive: {e}"));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, archive).map_err(|e| failed(e.to_string()))?;
    out.write_all(b"\n").map_err(|e| failed(e.to_string()))?;
    out.flush().map_err(|e| failed(e.to_string()))
}

fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
