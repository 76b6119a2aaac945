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
use crate::db::{DbError, TenantTx};
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
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(BackupError::NotJson)?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(BackupError::NotAnArchive);
        }
        match value.get("version") {
            Some(v)
                if v.as_u64().is_some_and(|v| {
                    (u64::from(OLDEST_READABLE_VERSION)..=u64::from(FORMAT_VERSION)).contains(&v)
                }) => {}
            Some(v) => return Err(BackupError::UnsupportedVersion(v.to_string())),
            None => return Err(BackupError::UnsupportedVersion("(none)".into())),
        }
        serde_json::from_value(value).map_err(BackupError::Malformed)
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
    write_data(&tx, archive).await?;
    ChangeEvent::BotConfig(new.schema.clone())
        .notify(&tx)
        .await?;
    ChangeEvent::Faqs(new.schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(new.schema)
}

/// Writes the archive's rows into the freshly created tenant of `tx`.
async fn write_data(tx: &TenantTx, archive: &TenantArchive) -> Result<(), BackupError> {
    bot_config::restore_in(tx, &archive.bot_config).await?;
    faq::restore_in(tx, &archive.faqs).await?;
    conversations::restore_in(tx, &archive.conversations).await?;
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
