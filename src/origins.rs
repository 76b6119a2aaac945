//! Which web origins may talk to the visitor routes. Each tenant lists its
//! own in `bot_config.allowed_origins` (empty: any origin), and a real
//! request is held to its tenant's list. A CORS preflight carries no
//! `X-Client-ID` (browsers send no header values in it), so it is answered
//! from the union over all active tenants, kept here and dropped by the
//! same change events that drop the bot settings.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::bot_config::parse_origin;
use crate::cache::InvalidatingCache;
use crate::db::DbError;
use crate::tenancy::SchemaName;

/// Schemas read in one `UNION ALL` (cross-tenant work goes through
/// `UNION ALL`, never a join between tenant schemas: DESIGN.md, Scale).
const SCHEMAS_PER_QUERY: usize = 200;

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
    pool: Pool,
    entry: InvalidatingCache<(), Arc<OriginUnion>>,
}

impl OriginUnionCache {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            entry: InvalidatingCache::new(1),
        }
    }

    pub async fn get(&self) -> Result<Arc<OriginUnion>, DbError> {
        if let Some(hit) = self.entry.get(&()) {
            return Ok(hit);
        }
        let ticket = self.entry.ticket();
        let union = Arc::new(self.load().await?);
        self.entry.insert(ticket, (), Arc::clone(&union));
        Ok(union)
    }

    /// A tenant, a domain or a bot's settings changed.
    pub fn invalidate(&self) {
        self.entry.clear();
    }

    async fn load(&self) -> Result<OriginUnion, DbError> {
        let client = self.pool.get().await?;
        let schemas: Vec<SchemaName> = client
            .query(
                "SELECT schema_name FROM public.tenants WHERE is_active ORDER BY schema_name",
                &[],
            )
            .await?
            .iter()
            .filter_map(|row| row.try_get::<_, String>(0).ok())
            .filter_map(|name| SchemaName::parse(&name).ok())
            .collect();
        let mut union = OriginUnion::default();
        for chunk in schemas.chunks(SCHEMAS_PER_QUERY) {
            let sql = chunk
                .iter()
                .map(|s| format!("SELECT allowed_origins FROM {}.bot_config", s.quoted()))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            match client.query(&sql, &[]).await {
                Ok(rows) => {
                    for row in rows {
                        union.add(row.try_get(0)?);
                    }
                }
                // One broken tenant (a failed migration) must not close
                // every site's widget: read this chunk schema by schema.
                Err(_) => {
                    for schema in chunk {
                        let sql =
                            format!("SELECT allowed_origins FROM {}.bot_config", schema.quoted());
                        match client.query(&sql, &[]).await {
                            Ok(rows) => {
                                for row in rows {
                                    union.add(row.try_get(0)?);
                                }
                            }
                            Err(e) => tracing::warn!(
                                %schema, error = %e,
                                "cannot read the allowed origins of a tenant; leaving it out"
                            ),
                        }
                    }
                }
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
