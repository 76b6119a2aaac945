//! What the console asks of the service layer (`Request`) and what comes
//! back (`Response`): plain values, so the state in `app` can be driven in
//! tests without a database. `service` turns a request into its response.

use chrono::{DateTime, NaiveDate, Utc};

use crate::analytics::UnansweredGroup;
use crate::billing::Status;
use crate::bot_config::BotConfig;
use crate::conversations::{Message, TenantConversation};
use crate::tenancy::provision::{DomainRow, TenantSummary};

/// Work for a tokio task; the UI goes on drawing meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Tenants,
    CreateTenant {
        schema: String,
        name: String,
    },
    DeleteTenant(String),
    SetActive {
        schema: String,
        active: bool,
    },
    TenantPage(String),
    Domains,
    AddDomain {
        domain: String,
        tenant: String,
    },
    RemoveDomain(String),
    MakePrimary(String),
    Conversations(ConversationQuery),
    Transcript {
        tenant: String,
        id: i64,
    },
    /// Loads the model in the background (once), for grouping by meaning.
    LoadModel,
    Unanswered(String),
    CreateFaq {
        tenant: String,
        question: String,
        answer: String,
    },
    /// "This question belongs to FAQ `faq_id`": one more phrasing of it.
    FileQuestion {
        tenant: String,
        faq_id: i64,
        question: String,
    },
}

/// The Conversations screen's filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationQuery {
    /// Tenants whose schema or name contains this (all when empty).
    pub tenant: String,
    /// Words the conversation's messages contain (full-text search).
    pub text: String,
    pub unanswered_only: bool,
}

/// A step of a longer job, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateStep {
    Checking,
    Migrating,
}

/// A service call's result; errors arrive as the message to show.
#[derive(Debug)]
pub enum Response {
    Tenants(Result<Vec<TenantRow>, String>),
    CreateProgress(CreateStep),
    TenantCreated(Result<String, String>),
    TenantDeleted(Result<String, String>),
    ActiveSet(Result<(String, bool), String>),
    /// Boxed: the page is far larger than the other answers.
    TenantPage(Result<Box<TenantPage>, String>),
    Domains(Result<Vec<DomainRow>, String>),
    DomainChanged(Result<String, String>),
    /// With the filter it answers.
    Conversations(ConversationQuery, Result<Vec<TenantConversation>, String>),
    Transcript(Result<Transcript, String>),
    Model(Result<(), String>),
    Unanswered(Result<Unanswered, String>),
    FaqCreated(Result<(String, String), String>),
    /// What to tell the operator.
    QuestionFiled(Result<String, String>),
}

/// A line of the Tenants screen.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub tenant: TenantSummary,
    pub conversations: i64,
}

/// A tenant's own page.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantPage {
    pub tenant: TenantSummary,
    pub faqs: i64,
    pub bot: BotConfig,
    /// Conversations started per day, oldest first, the last 30 days.
    pub per_day: Vec<(NaiveDate, u64)>,
    pub conversations: i64,
    pub answered: i64,
    pub fallback: i64,
    pub answered_rate: f64,
    /// On Citus, the worker that holds the tenant's schema ("host:port");
    /// `None` on a single PostgreSQL server.
    pub node: Option<String>,
    /// Plan, billing state and this month's conversations (unlimited,
    /// counted all the same, without Razorpay keys).
    pub billing: Status,
}

#[derive(Debug)]
pub struct Transcript {
    pub tenant: String,
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub origin: Option<String>,
    pub messages: Vec<Message>,
}

/// How the unanswered questions were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Meaning,
    /// The model is not (yet) there: identical wordings only.
    Wording,
}

#[derive(Debug)]
pub struct Unanswered {
    pub tenant: String,
    pub days: i64,
    pub groups: Vec<UnansweredGroup>,
    pub grouping: Grouping,
}
