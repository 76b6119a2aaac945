//! The commands and their arguments, as clap parses them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Measure answer quality on a labelled data set, storing nothing:
    /// right / wrong / clarify / fallback at each caution level, top-1 and
    /// top-3, out-of-scope questions answered, the worst confusions.
    Eval(EvalArgs),
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
    /// A tenant's plan, state and usage; grant a plan by hand.
    #[command(subcommand)]
    Billing(BillingCommand),
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
pub enum BillingCommand {
    /// A tenant's plan, state and this month's usage (JSON).
    Show { schema: String },
    /// Puts a tenant on a configured plan without Razorpay (`trial`: a new
    /// trial from now).
    Grant {
        schema: String,
        #[arg(long)]
        plan: String,
    },
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
    /// Set a user's password (the first line of stdin) and sign them out
    /// everywhere: the reset for a server without mail.
    ResetPassword { email: String },
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
    /// Which FAQs the bot confuses with each other, and which phrasings
    /// pull toward the wrong FAQ (loads the model).
    Doctor {
        schema: String,
        #[arg(long)]
        json: bool,
    },
}

/// `chatter eval`: see `crate::eval` for the data set's layout.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// With FILE after it: the tenant whose FAQs, matcher, threshold and
    /// caution answer FILE's questions (`chatter eval SCHEMA FILE`). Alone:
    /// a JSON data set in CLINC150's layout: `train` and `test` arrays of
    /// `[text, label]`, `oos_test` (and `oos_val`) arrays of out-of-scope
    /// `[text, "oos"]`; each label becomes a FAQ of K training texts.
    #[arg(value_name = "SCHEMA|DATASET")]
    pub first: String,
    /// The labelled questions for SCHEMA: CSV with a `question,expected`
    /// header or a JSON array of `{question, expected}`; `expected` is one
    /// of the tenant's FAQ ids, or `none`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Texts per FAQ (its question and K − 1 alternatives); a list runs each.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub k: Vec<usize>,
    /// Shuffle each label's training texts with this seed before taking K
    /// (default: the first K in file order); a list runs each.
    #[arg(long, value_delimiter = ',')]
    pub seed: Vec<u64>,
    /// Ask training texts 21–50 (never phrasings) and `oos_val` instead of
    /// the test sets: what settings are tuned on.
    #[arg(long)]
    pub heldout: bool,
    /// At most N in-scope and N out-of-scope questions (every n-th).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// The caution levels to report (the bot's setting, 0 to 1).
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.3,0.7,0.9")]
    pub caution: Vec<f32>,
    /// The bot's match threshold (0 to 1).
    #[arg(long, default_value_t = crate::bot_config::DEFAULT_MATCH_THRESHOLD)]
    pub threshold: f32,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the embeddings in this file: a later run with the same model
    /// embeds only texts it has not seen.
    #[arg(long, value_name = "FILE")]
    pub vectors: Option<PathBuf>,
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
    /// Online (the tenant's chats go on) when its node has
    /// wal_level = logical, else its writes wait during the copy.
    Move {
        schema: String,
        node: String,
        #[arg(long, value_enum, default_value_t)]
        mode: crate::citus::MoveMode,
    },
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
