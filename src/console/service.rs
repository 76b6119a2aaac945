//! Runs a `Request` against the service layer the HTTP API uses
//! (`tenancy::provision`, `conversations`, `analytics`, `faq`,
//! `bot_config`, `billing`) and sends back its `Response`. Every request runs in a
//! tokio task of its own: the screen never waits on the database.

use std::sync::Arc;

use crate::db::Db;
use tokio::sync::mpsc::UnboundedSender;

use crate::analytics;
use crate::billing::Billing;
use crate::bot_config;
use crate::config::Settings;
use crate::conversations::{self, Filter};
use crate::engine::model_files::Progress;
use crate::engine::{Engine, loader};
use crate::faq::{self, NewFaq};
use crate::metrics::Metrics;
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::{SchemaName, TenancyError};

use super::app::LATEST;
use super::data::{
    ConversationQuery, CreateStep, Grouping, Request, Response, TenantPage, TenantRow, Transcript,
    Unanswered,
};

/// The days the tenant page and the Unanswered screen look back.
pub const DAYS: i64 = 30;

/// What every request needs: cheap handles, cloned into each task.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub engine: Arc<Engine>,
}

impl Services {
    /// Starts `request` in a task of its own; its response (and progress)
    /// arrive on `replies`.
    pub fn spawn(&self, request: Request, replies: UnboundedSender<Response>) {
        let services = self.clone();
        tokio::spawn(async move {
            tracing::debug!(?request, "console request");
            let response = services.perform(request, &replies).await;
            // The loop has stopped (the console quit): nobody to tell.
            let _ = replies.send(response);
        });
    }

    async fn perform(&self, request: Request, replies: &UnboundedSender<Response>) -> Response {
        let db = &self.db;
        match request {
            Request::Tenants => Response::Tenants(self.tenants().await),
            Request::CreateTenant { schema, name } => {
                let _ = replies.send(Response::CreateProgress(CreateStep::Checking));
                let new = NewTenant {
                    schema: &schema,
                    name: &name,
                    domain: None,
                    is_public: false,
                };
                let result = match new.checked() {
                    Err(e) => Err(e),
                    Ok(_) => {
                        let _ = replies.send(Response::CreateProgress(CreateStep::Migrating));
                        provision::create_tenant(db, new).await
                    }
                };
                Response::TenantCreated(result.map(|t| t.schema).map_err(message))
            }
            Request::DeleteTenant(schema) => Response::TenantDeleted(
                provision::delete_tenant(db, &schema)
                    .await
                    .map(|()| schema)
                    .map_err(message),
            ),
            Request::SetActive { schema, active } => Response::ActiveSet(
                provision::set_active(db, &schema, active)
                    .await
                    .map(|()| (schema, active))
                    .map_err(message),
            ),
            Request::TenantPage(schema) => {
                Response::TenantPage(self.tenant_page(&schema).await.map(Box::new))
            }
            Request::Domains => {
                Response::Domains(provision::list_domains(db).await.map_err(message))
            }
            Request::AddDomain { domain, tenant } => Response::DomainChanged(
                provision::add_domain(db, &domain, &tenant, false)
                    .await
                    .map(|d| format!("{} now routes to {}", d.domain, d.tenant))
                    .map_err(message),
            ),
            Request::RemoveDomain(domain) => Response::DomainChanged(
                provision::remove_domain(db, &domain)
                    .await
                    .map(|()| format!("removed {domain}"))
                    .map_err(message),
            ),
            Request::MakePrimary(domain) => Response::DomainChanged(
                provision::make_primary(db, &domain)
                    .await
                    .map(|d| format!("{} is now {}'s primary domain", d.domain, d.tenant))
                    .map_err(message),
            ),
            Request::Conversations(query) => {
                let found = self.conversations(&query).await;
                Response::Conversations(query, found)
            }
            Request::Transcript { tenant, id } => {
                Response::Transcript(self.transcript(&tenant, id).await)
            }
            Request::LoadModel => Response::Model(self.load_model().await),
            Request::Unanswered(tenant) => Response::Unanswered(self.unanswered(&tenant).await),
            Request::CreateFaq {
                tenant,
                question,
                answer,
            } => Response::FaqCreated(self.create_faq(tenant, question, answer).await),
            Request::FileQuestion {
                tenant,
                faq_id,
                question,
            } => Response::QuestionFiled(self.file_question(&tenant, faq_id, &question).await),
        }
    }

    async fn tenants(&self) -> Result<Vec<TenantRow>, String> {
        let tenants = provision::list_tenants(&self.db).await.map_err(message)?;
        let mut rows = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let schema = SchemaName::parse(&tenant.schema).map_err(message)?;
            let conversations = conversations::count(&self.db, &schema, &Filter::default())
                .await
                .map_err(message)?;
            rows.push(TenantRow {
                tenant,
                conversations,
            });
        }
        Ok(rows)
    }

    async fn tenant_page(&self, schema: &str) -> Result<TenantPage, String> {
        let tenant = provision::list_tenants(&self.db)
            .await
            .map_err(message)?
            .into_iter()
            .find(|t| t.schema == schema)
            .ok_or_else(|| message(TenancyError::UnknownTenant(schema.to_string())))?;
        let schema = SchemaName::parse(schema).map_err(message)?;
        let faqs = faq::count(&self.db, &schema).await.map_err(message)?;
        let bot = bot_config::get(&self.db, &schema).await.map_err(message)?;
        // Numbers only: the unanswered grouping is the Unanswered screen's.
        let summary = analytics::summary(&self.db, &schema, DAYS, None)
            .await
            .map_err(message)?;
        let node = crate::citus::placement(&self.db, &schema)
            .await
            .map_err(message)?;
        // What the operator API shows: one read of the tenant's standing
        // and one of its month (no cache to keep: the page is read once).
        let billing = Billing::new(self.db.clone(), self.settings.billing.clone(), 1)
            .status(&schema)
            .await
            .map_err(message)?;
        Ok(TenantPage {
            tenant,
            faqs,
            bot,
            per_day: summary
                .per_day
                .iter()
                .map(|d| (d.date, u64::try_from(d.conversations).unwrap_or(0)))
                .collect(),
            conversations: summary.conversations,
            answered: summary.answered,
            fallback: summary.fallback,
            answered_rate: summary.answered_rate,
            node,
            billing,
        })
    }

    async fn conversations(
        &self,
        query: &ConversationQuery,
    ) -> Result<Vec<conversations::TenantConversation>, String> {
        let wanted = query.tenant.trim().to_lowercase();
        let tenants: Vec<SchemaName> = provision::list_tenants(&self.db)
            .await
            .map_err(message)?
            .into_iter()
            .filter(|t| {
                wanted.is_empty()
                    || t.schema.contains(&wanted)
                    || t.name.to_lowercase().contains(&wanted)
            })
            .map(|t| SchemaName::parse(&t.schema))
            .collect::<Result<_, _>>()
            .map_err(message)?;
        let filter = Filter {
            q: Some(query.text.clone()).filter(|q| !q.trim().is_empty()),
            answered: query.unanswered_only.then_some(false),
            ..Filter::default()
        };
        conversations::latest_across(&self.db, &tenants, &filter, LATEST)
            .await
            .map_err(message)
    }

    async fn transcript(&self, tenant: &str, id: i64) -> Result<Transcript, String> {
        let schema = SchemaName::parse(tenant).map_err(message)?;
        let found = conversations::transcript(&self.db, &schema, id)
            .await
            .map_err(message)?;
        Ok(Transcript {
            tenant: tenant.to_string(),
            id,
            started_at: found.conversation.started_at,
            origin: found.conversation.origin,
            messages: found.transcript,
        })
    }

    /// The model, loaded like the server loads it, with log lines (to the
    /// console's log file) instead of a progress bar on the screen.
    async fn load_model(&self) -> Result<(), String> {
        let loading = loader::spawn_loading(
            Arc::clone(&self.engine),
            self.settings.model.clone(),
            Arc::new(Metrics::new()),
            Progress::Log,
        );
        loading.await.map_err(message)?;
        self.engine.queue().map(|_| ()).map_err(message)
    }

    async fn unanswered(&self, tenant: &str) -> Result<Unanswered, String> {
        let schema = SchemaName::parse(tenant).map_err(message)?;
        let queue = self.engine.queue().ok();
        // The operator's console is not rate limited: one operator, one key.
        let always = || Ok(());
        let grouping = queue.as_ref().map(|queue| analytics::Grouping {
            queue,
            may_embed: &always,
        });
        let summary = analytics::summary(&self.db, &schema, DAYS, grouping)
            .await
            .map_err(message)?;
        Ok(Unanswered {
            tenant: tenant.to_string(),
            days: DAYS,
            groups: summary.top_unanswered,
            grouping: match queue {
                Some(_) => Grouping::Meaning,
                None => Grouping::Wording,
            },
        })
    }

    /// The same call as `POST /api/faqs`: its change event makes running
    /// servers rebuild the tenant's index, so the bot answers it at once.
    async fn create_faq(
        &self,
        tenant: String,
        question: String,
        answer: String,
    ) -> Result<(String, String), String> {
        let schema = provision::existing_tenant(&self.db, &tenant)
            .await
            .map_err(message)?;
        let faq = faq::create(
            &self.db,
            &schema,
            NewFaq {
                question,
                answer,
                alternatives: Vec::new(),
            },
            // The operator's hand is not held to the tenant's plan.
            None,
        )
        .await
        .map_err(message)?;
        Ok((tenant, faq.question))
    }
}

impl Services {
    /// The same correction as `POST /api/faqs/{id}/phrasings`.
    async fn file_question(
        &self,
        tenant: &str,
        faq_id: i64,
        question: &str,
    ) -> Result<String, String> {
        let schema = provision::existing_tenant(&self.db, tenant)
            .await
            .map_err(message)?;
        let assigned = faq::assign(&self.db, &schema, faq_id, question)
            .await
            .map_err(message)?;
        Ok(if assigned.added {
            format!(
                "filed under FAQ {faq_id} ({}): the bot matches it from now on",
                assigned.faq.question
            )
        } else {
            format!("FAQ {faq_id} already had that wording")
        })
    }
}

fn message(error: impl std::fmt::Display) -> String {
    error.to_string()
}
