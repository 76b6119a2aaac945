//! Which web origins may talk to the visitor routes. Each tenant lists its
//! own in `bot_config.allowed_origins` (empty: any origin), and a real
//! request is held to its tenant's list. A CORS preflight carries no
//! `X-Client-ID` (browsers send no header values in it), so it is answered
//! from the union over all active tenants, kept here and dropped by the
//! same change events that drop the bot settings.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::bot_config::{self, parse_origin};
use crate::cache::InvalidatingCache;
use crate::db::{Db, DbError};
use crate::tenancy::provision;

/// Tenants whose settings are read at once when the union is rebuilt.
const READ_CONCURRENCY: usize = 8;

/// An origin as it is compared: what `Origin` says, normalised; None for
/// `null` (sandboxed frames, files) and anything malformed, which no list
/// can allow.
pub fn normalise(origin: &str) -> Option<String> {
    if origin.trim() == "null" || origin.len() > MAX_ORIGIN_LEN {
        return None;
    }
    parse_origin(origin).ok()
}

/// The longest `Origin` taken: browsers send scheme, host and port, far
/// below this; a longer one is refused before it is stored or echoed
/// (issue 16: a 200 KB origin was kept on every conversation).
pub const MAX_ORIGIN_LEN: usize = 2_048;

/// Whether a tenant whose list is `allowed` takes requests from `origin`
/// (already normalised).
pub fn tenant_allows(allowed: &[String], origin: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a == origin)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct OriginUnion {
    /// Some active tenant keeps the default open list.
    pub any: bool,
    pub origins: HashSet<String>,
}

impl OriginUnion {
    pub fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.contains(origin)
    }

    fn add(&mut self, list: Vec<String>) {
        if list.is_empty() {
            self.any = true;
        }
        self.origins.extend(list);
    }
}

pub struct OriginUnionCache {
    db: Db,
    entry: InvalidatingCache<(), Arc<OriginUnion>>,
}

impl OriginUnionCache {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            entry: InvalidatingCache::new(1),
        }
    }

    pub async fn get(&self) -> Result<Arc<OriginUnion>, DbError> {
        if let Some(hit) = self.entry.get(&()) {
            return Ok(hit);
        }
        let ticket = self.entry.ticket(&());
        let union = Arc::new(self.load().await?);
        self.entry.insert(ticket, (), Arc::clone(&union));
        Ok(union)
    }

    /// A tenant, a domain or a bot's settings changed.
    pub fn invalidate(&self) {
        self.entry.clear();
    }

    /// Each tenant's list through the door, one tenant per transaction, a
    /// few at a time (never a query across tenant schemas: DESIGN.md, Scale).
    async fn load(&self) -> Result<OriginUnion, DbError> {
        let schemas = provision::active_schemas(&self.db).await?;
        let mut lists = futures_util::stream::iter(schemas.into_iter().map(|schema| {
            let db = self.db.clone();
            async move {
                let config = bot_config::get(&db, &schema).await;
                (schema, config)
            }
        }))
        .buffer_unordered(READ_CONCURRENCY);
        let mut union = OriginUnion::default();
        while let Some((schema, config)) = lists.next().await {
            match config {
                Ok(config) => union.add(config.allowed_origins),
                // One broken tenant (a failed migration) must not close
                // every site's widget.
                Err(e) => tracing::warn!(
                    %schema, error = %e,
                    "cannot read the allowed origins of a tenant; leaving it out"
                ),
            }
            if union.any {
                // Every origin passes the preflight already.
                break;
            }
        }
        Ok(union)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_normalised_and_null_never_passes() {
        assert_eq!(
            normalise("https://Shop.Example.com:443").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(normalise("null"), None);
        assert_eq!(normalise("not an origin"), None);
        assert!(tenant_allows(&[], "https://a.test"));
        assert!(tenant_allows(&["https://a.test".into()], "https://a.test"));
        assert!(!tenant_allows(&["https://a.test".into()], "https://b.test"));
        let mut union = OriginUnion::default();
        union.add(vec!["https://a.test".into()]);
        assert!(union.allows("https://a.test") && !union.allows("https://b.test"));
        union.add(vec![]);
        assert!(union.allows("https://b.test"));
    }
}
