//! `InvalidatingCache`: a map that a change notification can empty at any
//! moment without a concurrent look-up writing a stale value back. Every
//! invalidation bumps a generation; a look-up stores its result only if the
//! generation it started under is still current.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct InvalidatingCache<K, V> {
    generation: AtomicU64,
    capacity: usize,
    // A std lock: held for a map operation only, never across an await.
    entries: RwLock<HashMap<K, V>>,
}

/// The generation a look-up started under.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl<K: Eq + Hash, V: Clone> InvalidatingCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            generation: AtomicU64::new(0),
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(key).cloned()
    }

    /// Take before reading the source of truth.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Stores `value` unless the cache was invalidated since `ticket`.
    pub fn insert(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        // Bounded: unknown keys (random client ids) are cached too.
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_straddles_an_invalidation_is_not_stored() {
        let cache = InvalidatingCache::new(10);
        let ticket = cache.ticket();
        cache.clear();
        cache.insert(ticket, "acme", 1);
        assert_eq!(cache.get("acme"), None);
        let ticket = cache.ticket();
        cache.insert(ticket, "acme", 2);
        assert_eq!(cache.get("acme"), Some(2));
        cache.remove("acme");
        assert_eq!(cache.get("acme"), None);
    }

    #[test]
    fn stays_within_capacity() {
        let cache = InvalidatingCache::new(3);
        for i in 0..10 {
            cache.insert(cache.ticket(), i, i);
            assert!(cache.len() <= 3);
        }
    }
}
