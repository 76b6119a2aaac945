//! Which tenant a request is for: by client id (`X-Client-ID`, the schema
//! name) or by host (`domains`). Answers come from memory after the first
//! look-up, including "no such tenant", and are dropped on every tenancy
//! change event (see `events`).

use std::sync::Arc;

use crate::db::Db;
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::cache::InvalidatingCache;
use crate::db::DbError;
use crate::tenancy::SchemaName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: i64,
    pub schema: SchemaName,
    pub name: String,
    pub is_active: bool,
}

impl Tenant {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        let raw: String = row.try_get("schema_name")?;
        let schema = SchemaName::parse(&raw)
            .map_err(|e| DbError::Unreachable(format!("corrupt tenant row: {e}")))?;
        Ok(Self {
            id: row.try_get("id")?,
            schema,
            name: row.try_get("name")?,
            is_active: row.try_get("is_active")?,
        })
    }
}

type Entry = Option<Arc<Tenant>>;

/// The longest key cached: a DNS name's 253 characters.
const MAX_CACHED_KEY_LEN: usize = 253;

pub struct TenantResolver {
    db: Db,
    by_client_id: InvalidatingCache<String, Entry>,
    by_host: InvalidatingCache<String, Entry>,
}

impl TenantResolver {
    pub fn new(db: Db, capacity: usize) -> Self {
        Self {
            db,
            by_client_id: InvalidatingCache::new(capacity),
            by_host: InvalidatingCache::new(capacity),
        }
    }

    /// The tenant whose schema is `client_id`, active or not; None when
    /// there is none (or the id could not be a schema name).
    pub async fn by_client_id(&self, client_id: &str) -> Result<Entry, DbError> {
        if let Some(hit) = self.by_client_id.get(client_id) {
            return Ok(hit);
        }
        let Ok(schema) = SchemaName::parse(client_id) else {
            return Ok(None);
        };
        self.look_up(
            &self.by_client_id,
            client_id,
            "SELECT id, schema_name, name, is_active FROM public.tenants WHERE schema_name = $1",
            schema.as_str(),
        )
        .await
    }

    /// The tenant that owns the domain `host` (already without port).
    pub async fn by_host(&self, host: &str) -> Result<Entry, DbError> {
        if let Some(hit) = self.by_host.get(host) {
            return Ok(hit);
        }
        self.look_up(
            &self.by_host,
            host,
            "SELECT t.id, t.schema_name, t.name, t.is_active \
             FROM public.domains d JOIN public.tenants t ON t.id = d.tenant_id \
             WHERE d.domain = $1",
            host,
        )
        .await
    }

    /// Runs `sql` (one text parameter, at most one tenant row) and caches
    /// the answer under `key`, found or not.
    async fn look_up(
        &self,
        cache: &InvalidatingCache<String, Entry>,
        key: &str,
        sql: &str,
        param: &str,
    ) -> Result<Entry, DbError> {
        let ticket = cache.ticket(key);
        let client = self.db.shared().await?;
        let row = client
            .query_typed(sql, &[(&param, Type::TEXT)])
            .await?
            .into_iter()
            .next();
        let entry = row
            .as_ref()
            .map(Tenant::from_row)
            .transpose()?
            .map(Arc::new);
        // Only keys a real name could be are remembered: a client choosing
        // unique, long keys must not grow the cache (issue 16).
        if key.len() <= MAX_CACHED_KEY_LEN {
            cache.insert(ticket, key.to_string(), entry.clone());
        }
        Ok(entry)
    }

    /// Forget everything: tenants or domains changed somewhere.
    pub fn invalidate(&self) {
        self.by_client_id.clear();
        self.by_host.clear();
    }

    pub fn cached_entries(&self) -> usize {
        self.by_client_id.len() + self.by_host.len()
    }
}
