//! `InvalidatingCache`: a map that a change notification can empty at any
//! moment without a concurrent look-up writing a stale value back. Every
//! invalidation bumps a generation; a look-up stores its result only if the
//! generations it started under are still current.
//!
//! Two kinds of generation: one for the whole cache (`clear`), and one per
//! key (`remove`), so that invalidating one tenant does not throw away
//! another tenant's look-up in flight (issue 16, item 13: with one shared
//! generation, every FAQ edit anywhere made every index being built
//! elsewhere be built again at the next request). Per-key generations live
//! in a fixed number of stripes chosen by the key's hash: memory stays
//! fixed whatever keys clients choose; two keys sharing a stripe only
//! cost each other a store now and then, never a stale value.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-key generation stripes.
const STRIPES: usize = 64;

pub struct InvalidatingCache<K, V> {
    generation: AtomicU64,
    stripes: [AtomicU64; STRIPES],
    hasher: RandomState,
    capacity: usize,
    // A std lock: held for a map operation only, never across an await.
    entries: RwLock<HashMap<K, V>>,
}

/// The generations a look-up of one key started under.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    whole: u64,
    stripe: usize,
    key: u64,
}

impl<K: Eq + Hash, V: Clone> InvalidatingCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            generation: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            hasher: RandomState::new(),
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

    fn stripe<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The remainder is below STRIPES, so it fits a usize.
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// Take before reading the source of truth for `key`.
    pub fn ticket<Q>(&self, key: &Q) -> Ticket
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + ?Sized,
    {
        let stripe = self.stripe(key);
        Ticket {
            whole: self.generation.load(Ordering::SeqCst),
            stripe,
            key: self.stripes[stripe].load(Ordering::SeqCst),
        }
    }

    /// Stores `value` unless the cache, or `key`, was invalidated since
    /// `ticket` (which must be `key`'s).
    pub fn insert(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let stripe = self.stripe(&key);
        if self.generation.load(Ordering::SeqCst) != ticket.whole
            || stripe != ticket.stripe
            || self.stripes[stripe].load(Ordering::SeqCst) != ticket.key
        {
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

    /// Forgets `key` and spoils the look-ups of `key` in flight (and, now
    /// and then, of a key sharing its stripe), not the others'.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.stripes[self.stripe(key)].fetch_add(1, Ordering::SeqCst);
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
        let ticket = cache.ticket("acme");
        cache.clear();
        cache.insert(ticket, "acme", 1);
        assert_eq!(cache.get("acme"), None);
        let ticket = cache.ticket("acme");
        cache.insert(ticket, "acme", 2);
        assert_eq!(cache.get("acme"), Some(2));
        let ticket = cache.ticket("acme");
        cache.remove("acme");
        cache.insert(ticket, "acme", 3);
        assert_eq!(cache.get("acme"), None);
    }

    #[test]
    fn removing_one_key_keeps_other_keys_lookups_in_flight() {
        let cache: InvalidatingCache<String, i32> = InvalidatingCache::new(1_000);
        // Other tenants' builds in flight while "acme" is invalidated: each
        // is still stored, unless it shares acme's stripe.
        let others: Vec<String> = (0..200).map(|i| format!("tenant{i}")).collect();
        let tickets: Vec<Ticket> = others.iter().map(|k| cache.ticket(k.as_str())).collect();
        let acme = cache.ticket("acme");
        cache.remove("acme");
        for (key, ticket) in others.iter().zip(tickets) {
            cache.insert(ticket, key.clone(), 1);
        }
        cache.insert(acme, "acme".to_string(), 1);
        assert_eq!(cache.get("acme"), None, "acme's own look-up is spoiled");
        let stored = others
            .iter()
            .filter(|k| cache.get(k.as_str()).is_some())
            .count();
        let apart = others
            .iter()
            .filter(|k| cache.stripe(k.as_str()) != acme.stripe)
            .count();
        assert!(apart > 150, "{apart} of 200 keys outside acme's stripe");
        assert_eq!(
            stored, apart,
            "every look-up outside acme's stripe is stored"
        );
    }

    #[test]
    fn a_ticket_is_for_its_own_key() {
        let cache: InvalidatingCache<String, i32> = InvalidatingCache::new(10);
        let ticket = cache.ticket("acme");
        // Same generations, other key: refused unless it shares the stripe.
        let other = (0..1_000)
            .map(|i| format!("k{i}"))
            .find(|k| cache.stripe(k.as_str()) != ticket.stripe)
            .expect("some key lands in another stripe");
        cache.insert(ticket, other.clone(), 1);
        assert_eq!(cache.get(other.as_str()), None);
    }

    #[test]
    fn stays_within_capacity() {
        let cache = InvalidatingCache::new(3);
        for i in 0..10 {
            cache.insert(cache.ticket(&i), i, i);
            assert!(cache.len() <= 3);
        }
    }
}
