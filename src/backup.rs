//! Backup and offboarding: one tenant as one portable JSON file
//! (`TenantArchive`), and back. An export reads everything in one
//! repeatable-read transaction, so the file is one consistent snapshot; an
//! import creates the tenant exactly as `provision::create_tenant` does and
//! writes all its data in that same transaction: the whole tenant, or
//! nothing. Ids are kept as they were, so the links from messages to FAQs
//! survive, and the sequences are moved past them.

use crate::db::Db;
use serde::{Deserialize, Serialize};

pub use crate::bot_config::BotConfigRow;
pub use crate::conversations::{ConversationRow, FeedbackRow, MessageRow};
use crate::db::{DbError, During, TenantTx};
pub use crate::faq::FaqRow;
use crate::tenancy::events::ChangeEvent;
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::{SchemaName, TenancyError};
use crate::{bot_config, conversations, faq};

/// What `format` says in every archive, so a stray JSON file is named as
/// such rather than failing on some missing field.
pub const FORMAT: &str = "chatter-tenant";
/// Bumped whenever an older reader could not restore a newer file exactly.
/// Version 2 added the visitors' feedback, version 3 the bot's caution
/// (older files restore with the default caution); version 1 files (none)
/// still load.
pub const FORMAT_VERSION: u32 = 3;
const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the file is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the file is not a chatter tenant archive (no \"format\": \"{FORMAT}\")")]
    NotAnArchive,
    #[error(
        "the archive has format version {0}; this chatter reads versions \
         {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}"
    )]
    UnsupportedVersion(String),
    #[error("the archive is malformed: {0}")]
    Malformed(serde_json::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// What the API would refuse, named by where it is in the file.
    #[error("the archive is not valid; nothing was imported:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(BackupError);

/// One tenant, everything needed to bring it back. No field is optional
/// (apart from nullable columns): a file missing one is refused, not
/// restored with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantArchive {
    pub format: String,
    pub version: u32,
    pub schema: String,
    pub name: String,
    /// Where the tenant was reachable; informational, never re-attached.
    pub domains: Vec<String>,
    pub bot_config: BotConfigRow,
    pub faqs: Vec<FaqRow>,
    pub conversations: Vec<ConversationRow>,
}

impl TenantArchive {
    pub fn message_count(&self) -> usize {
        self.conversations.iter().map(|c| c.messages.len()).sum()
    }

    /// Parses a file, naming the problem: not JSON (a truncated file), not
    /// an archive, another format version, or a malformed archive.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BackupError> {
        check_header(serde_json::from_slice(bytes))?;
        serde_json::from_slice(bytes).map_err(malformed)
    }

    /// Parses the file at `path` as `from_json` does, streaming: the file is
    /// read twice (the header, then the rows) and never held whole, nor as a
    /// JSON tree, so the memory peak is the rows themselves (issue 16, item
    /// 12: an 80 MB file peaked at 305 MB when read whole, parsed to a
    /// `serde_json::Value`, then converted).
    pub fn from_file(path: &std::path::Path) -> Result<Self, BackupError> {
        let open = || {
            std::fs::File::open(path)
                .map(std::io::BufReader::new)
                .map_err(|source| BackupError::Read {
                    path: path.display().to_string(),
                    source,
                })
        };
        check_header(serde_json::from_reader(open()?))?;
        serde_json::from_reader(open()?).map_err(malformed)
    }
}

/// `format` and `version` only; every other field is skipped unread.
#[derive(Deserialize)]
struct Header {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

fn check_header(parsed: Result<Header, serde_json::Error>) -> Result<(), BackupError> {
    let header = match parsed {
        Ok(header) => header,
        // Valid JSON of another shape (an array, a string): not an archive.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(BackupError::NotAnArchive);
        }
        Err(e) => return Err(BackupError::NotJson(e)),
    };
    if header.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(BackupError::NotAnArchive);
    }
    match header.version {
        Some(v)
            if v.as_u64().is_some_and(|v| {
                (u64::from(OLDEST_READABLE_VERSION)..=u64::from(FORMAT_VERSION)).contains(&v)
            }) =>
        {
            Ok(())
        }
        Some(v) => Err(BackupError::UnsupportedVersion(v.to_string())),
        None => Err(BackupError::UnsupportedVersion("(none)".into())),
    }
}

fn malformed(e: serde_json::Error) -> BackupError {
    match e.classify() {
        serde_json::error::Category::Data => BackupError::Malformed(e),
        _ => BackupError::NotJson(e),
    }
}

/// What an import accepts beyond the file's shape: the API's own limits.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// The longest visitor message (`chat.max_message_chars`).
    pub max_message_chars: usize,
}

/// Problems listed at most; the count says how many there were.
const MAX_PROBLEMS_SHOWN: usize = 20;
/// An FAQ vector longer than any model we run is not one of ours.
const MAX_EMBEDDING_DIM: usize = 4_096;
const MAX_MODEL_ID_CHARS: usize = 200;

impl TenantArchive {
    /// Checks every row as the API would check it when written there, and
    /// normalises as the API does (trimmed texts, origins as browsers send
    /// them). Without this, `tenant import` stored what no API call could
    /// (`javascript:` origins, an array as the theme, 500 phrasings, made-up
    /// session ids), and a broken link between rows failed at the database
    /// as a bare error (issue 16, item 12). Every problem is named by its
    /// place in the file.
    pub fn validated(mut self, limits: ImportLimits) -> Result<Self, BackupError> {
        let mut problems: Vec<String> = Vec::new();
        let mut problem = |at: String, what: String| problems.push(format!("{at}: {what}"));

        if let Err(e) = (NewTenant {
            schema: &self.schema,
            name: &self.name,
            domain: None,
            is_public: false,
        })
        .checked()
        {
            problem("schema/name".into(), e.to_string());
        }
        for (i, domain) in self.domains.iter().enumerate() {
            if let Err(e) = crate::tenancy::DomainName::parse(domain) {
                problem(format!("domains[{i}]"), e);
            }
        }

        let bot = &self.bot_config;
        match (bot_config::BotConfigUpdate {
            bot_name: Some(bot.bot_name.clone()),
            greeting: Some(bot.greeting.clone()),
            fallback_reply: Some(bot.fallback_reply.clone()),
            match_threshold: Some(bot.match_threshold),
            caution: Some(bot.caution),
            unavailable_reply: bot.unavailable_reply.clone(),
            show_branding: bot.show_branding,
            theme: Some(bot.theme.clone()),
            allowed_origins: Some(bot.allowed_origins.clone()),
        })
        .validated()
        {
            Ok(checked) => {
                let bot = &mut self.bot_config;
                bot.bot_name = checked.bot_name.unwrap_or_default();
                bot.greeting = checked.greeting.unwrap_or_default();
                bot.fallback_reply = checked.fallback_reply.unwrap_or_default();
                bot.allowed_origins = checked.allowed_origins.unwrap_or_default();
                bot.unavailable_reply = checked.unavailable_reply;
            }
            Err(e) => problem("bot_config".into(), e.to_string()),
        }

        let mut faq_ids = std::collections::HashSet::new();
        for (i, row) in self.faqs.iter_mut().enumerate() {
            let at = format!("faqs[{i}] (id {})", row.id);
            if row.id <= 0 || !faq_ids.insert(row.id) {
                problem(at.clone(), "id must be positive and unique".into());
            }
            let texts = std::iter::once(&row.question)
                .chain(std::iter::once(&row.answer))
                .chain(&row.alternatives);
            if texts.into_iter().any(|t| t.contains('\0')) {
                problem(at.clone(), "text may not contain NUL (\\u0000)".into());
            }
            match (faq::NewFaq {
                question: std::mem::take(&mut row.question),
                answer: std::mem::take(&mut row.answer),
                alternatives: std::mem::take(&mut row.alternatives),
            })
            .validated()
            {
                Ok(checked) => {
                    row.question = checked.question;
                    row.answer = checked.answer;
                    row.alternatives = checked.alternatives;
                }
                Err(e) => problem(at.clone(), e),
            }
            if let Some(vector) = &row.embedding
                && (vector.is_empty()
                    || vector.len() > MAX_EMBEDDING_DIM
                    || vector.iter().any(|x| !x.is_finite()))
            {
                problem(
                    at.clone(),
                    format!("embedding must be 1 to {MAX_EMBEDDING_DIM} finite numbers"),
                );
            }
            if row
                .model_id
                .as_ref()
                .is_some_and(|m| m.chars().count() > MAX_MODEL_ID_CHARS || m.contains('\0'))
            {
                problem(
                    at,
                    format!("model_id must be at most {MAX_MODEL_ID_CHARS} characters"),
                );
            }
        }

        let mut conversation_ids = std::collections::HashSet::new();
        let mut message_ids = std::collections::HashSet::new();
        for (c, conversation) in self.conversations.iter().enumerate() {
            let at = format!("conversations[{c}] (id {})", conversation.id);
            if conversation.id <= 0 || !conversation_ids.insert(conversation.id) {
                problem(at.clone(), "id must be positive and unique".into());
            }
            if !crate::chat::is_session_id(&conversation.session_id) {
                problem(
                    at.clone(),
                    "session_id must be 32 lowercase hex digits, as the chat makes them".into(),
                );
            }
            if conversation
                .origin
                .as_ref()
                .is_some_and(|o| o.len() > crate::origins::MAX_ORIGIN_LEN || o.contains('\0'))
            {
                problem(
                    at.clone(),
                    format!(
                        "origin must be at most {} characters",
                        crate::origins::MAX_ORIGIN_LEN
                    ),
                );
            }
            for (m, message) in conversation.messages.iter().enumerate() {
                let at = format!("{at}.messages[{m}] (id {})", message.id);
                if message.id <= 0 || !message_ids.insert(message.id) {
                    problem(at.clone(), "id must be positive and unique".into());
                }
                let longest = match message.role.as_str() {
                    "visitor" => limits.max_message_chars,
                    "bot" => faq::MAX_ANSWER_CHARS,
                    other => {
                        problem(
                            at.clone(),
                            format!("role must be \"visitor\" or \"bot\", not {other:?}"),
                        );
                        continue;
                    }
                };
                if message.text.trim().is_empty() || message.text.chars().count() > longest {
                    problem(
                        at.clone(),
                        format!(
                            "a {} message must be 1 to {longest} characters",
                            message.role
                        ),
                    );
                }
                if message.text.contains('\0') {
                    problem(at.clone(), "text may not contain NUL (\\u0000)".into());
                }
                if let Some(faq_id) = message.faq_id
                    && !faq_ids.contains(&faq_id)
                {
                    problem(
                        at.clone(),
                        format!("faq_id {faq_id} is not an FAQ of this file"),
                    );
                }
                if message
                    .score
                    .is_some_and(|s| !(s.is_finite() && (-1.001..=1.001).contains(&s)))
                {
                    problem(
                        at.clone(),
                        "score must be a cosine, between -1 and 1".into(),
                    );
                }
                if message.role == "visitor"
                    && (message.faq_id.is_some() || message.feedback.is_some())
                {
                    problem(
                        at,
                        "only the bot's answers have an faq_id or feedback".into(),
                    );
                }
            }
        }
        if problems.is_empty() {
            return Ok(self);
        }
        let total = problems.len();
        problems.truncate(MAX_PROBLEMS_SHOWN);
        if total > MAX_PROBLEMS_SHOWN {
            problems.push(format!("... and {} more", total - MAX_PROBLEMS_SHOWN));
        }
        Err(BackupError::Invalid(problems))
    }
}

/// Reads the tenant `schema` whole, in one read-only repeatable-read
/// transaction: chats going on meanwhile land wholly before or after it.
pub async fn export(db: &Db, schema: &SchemaName) -> Result<TenantArchive, BackupError> {
    let tx = db.tenant_snapshot(schema).await?;

    let (name, domains) = provision::name_and_domains_in(&tx)
        .await?
        .ok_or_else(|| TenancyError::UnknownTenant(schema.to_string()))?;

    let bot_config = bot_config::export_in(&tx).await?;
    let faqs = faq::export_in(&tx).await?;
    let conversations = conversations::export_in(&tx).await?;
    tx.commit().await?;

    Ok(TenantArchive {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        schema: schema.to_string(),
        name,
        domains,
        bot_config,
        faqs,
        conversations,
    })
}

/// Creates a tenant from `archive` under `as_schema` (default: the
/// archive's own schema), with no domain, and writes all its data, in one
/// transaction. A schema that exists already is refused untouched.
pub async fn import(
    db: &Db,
    archive: &TenantArchive,
    as_schema: Option<&str>,
) -> Result<SchemaName, BackupError> {
    let new = NewTenant {
        schema: as_schema.unwrap_or(&archive.schema),
        name: &archive.name,
        // The archive's domains may still route to the old tenant.
        domain: None,
        is_public: false,
    }
    .checked()?;
    let tx = db.shared_tx().await?;
    let (_, tx) = provision::create_tenant_in(tx, &new).await?;
    let step = |what: &str| format!("importing tenant {}: {what}", new.schema);
    write_data(&tx, archive, &step).await?;
    ChangeEvent::BotConfig(new.schema.clone())
        .notify(&tx)
        .await
        .during(step("pg_notify"))?;
    ChangeEvent::Faqs(new.schema.clone())
        .notify(&tx)
        .await
        .during(step("pg_notify"))?;
    tx.commit().await.during(step("COMMIT"))?;
    Ok(new.schema)
}

/// Writes the archive's rows into the freshly created tenant of `tx`;
/// a failure names the table being restored.
async fn write_data(
    tx: &TenantTx,
    archive: &TenantArchive,
    step: &impl Fn(&str) -> String,
) -> Result<(), BackupError> {
    bot_config::restore_in(tx, &archive.bot_config)
        .await
        .during(step("restoring bot_config"))?;
    faq::restore_in(tx, &archive.faqs)
        .await
        .during(step("restoring faqs"))?;
    conversations::restore_in(tx, &archive.conversations)
        .await
        .during(step("restoring conversations and messages"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_json() -> serde_json::Value {
        serde_json::json!({
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "schema": "acme",
            "name": "Acme",
            "domains": ["acme.test"],
            "bot_config": {
                "bot_name": "Ace",
                "greeting": "Hi",
                "fallback_reply": "Sorry",
                "match_threshold": 0.55,
                "theme": {"color": "#000"},
                "allowed_origins": [],
                "updated_at": "2024-05-01T10:00:00.123456Z"
            },
            "faqs": [],
            "conversations": []
        })
    }

    #[test]
    fn an_archive_round_trips_through_json() {
        let bytes = serde_json::to_vec(&archive_json()).unwrap();
        let archive = TenantArchive::from_json(&bytes).unwrap();
        assert_eq!(archive.bot_config.match_threshold, 0.55);
        let again = serde_json::to_vec(&archive).unwrap();
        assert_eq!(TenantArchive::from_json(&again).unwrap(), archive);
    }

    #[test]
    fn a_version_1_file_loads_with_no_feedback() {
        let mut v1 = archive_json();
        v1["version"] = serde_json::json!(1);
        v1["conversations"] = serde_json::json!([{
            "id": 1, "session_id": "s", "origin": null,
            "started_at": "2024-05-01T10:00:00Z", "last_message_at": "2024-05-01T10:00:00Z",
            "messages": [{"id": 1, "role": "bot", "text": "Hi", "faq_id": null, "score": null,
                          "created_at": "2024-05-01T10:00:00Z"}]
        }]);
        let archive = TenantArchive::from_json(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(archive.conversations[0].messages[0].feedback, None);
    }

    #[test]
    fn bad_files_are_named() {
        let bytes = serde_json::to_vec(&archive_json()).unwrap();
        let err = TenantArchive::from_json(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, BackupError::NotJson(_)), "{err}");
        assert!(err.to_string().contains("not valid JSON"), "{err}");

        let err = TenantArchive::from_json(b"[1, 2]").unwrap_err();
        assert!(matches!(err, BackupError::NotAnArchive), "{err}");

        let mut newer = archive_json();
        newer["version"] = serde_json::json!(FORMAT_VERSION + 1);
        let err = TenantArchive::from_json(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("format version {}", FORMAT_VERSION + 1)),
            "{err}"
        );

        let mut missing = archive_json();
        missing.as_object_mut().unwrap().remove("faqs");
        let err = TenantArchive::from_json(&serde_json::to_vec(&missing).unwrap()).unwrap_err();
        assert!(err.to_string().contains("faqs"), "{err}");
    }
}
