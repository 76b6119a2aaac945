//! A bounded cache of question embeddings (issue 17): visitors ask a site's
//! top questions in the same words, and a repeated question should cost no
//! inference.
//!
//! - Keyed by tenant schema, model id and normalised text. The tenant is in
//!   the key so that nothing is shared between tenants: with a shared entry,
//!   one tenant's visitors could time a cache hit and learn what another
//!   tenant's visitors ask. The model id is in the key so that vectors of an
//!   old model are never compared with an index built by a new one.
//! - Capped in bytes (what an entry's text and vector take, plus a fixed
//!   overhead), not in entries: questions vary in length, and the operator
//!   budgets memory. The least recently used entries go first.
//! - Only the embedding is cached, never the answer: matching against the
//!   tenant's current FAQ index happens after, so an FAQ change reaches a
//!   cached question at once.
//! - Vectors are kept in half precision: twice the questions in the same
//!   bytes (a Zipf mix of 500 questions over 20 tenants is 10,000 keys),
//!   for a rounding (relative 2⁻¹¹ a component) far below the int8 index
//!   rows' it is compared with. The vector a miss is answered with is
//!   rounded the same way (`insert` returns it), so a question gets the
//!   same answer the first time as from the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use half::f16;

use crate::tenancy::SchemaName;

/// Bytes counted per entry on top of its text and vector: the two map
/// entries, the key's three strings' headers and the `Arc`s.
const ENTRY_OVERHEAD: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    schema: SchemaName,
    model_id: Arc<str>,
    text: String,
}

struct Entry {
    vector: Box<[f16]>,
    /// Position in the recency order (`Inner::order`).
    tick: u64,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Arc<Key>, Entry>,
    /// Entries by last use, oldest first.
    order: BTreeMap<u64, Arc<Key>>,
    next_tick: u64,
    bytes: usize,
}

/// How the question text is normalised before it becomes part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalise {
    /// Trim and collapse runs of whitespace: the tokenizer splits on
    /// whitespace, so this never changes the tokens, for any model.
    Whitespace,
    /// Also lowercase: only for models whose tokenizer lowercases itself
    /// (uncased BERT, such as all-MiniLM-L6-v2), where it cannot change the
    /// vector either.
    WhitespaceAndCase,
}

impl Normalise {
    pub fn apply(self, text: &str) -> String {
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            Normalise::Whitespace => collapsed,
            Normalise::WhitespaceAndCase => collapsed.to_lowercase(),
        }
    }
}

/// Question embeddings by (tenant, model, normalised text), least recently
/// used dropped beyond `capacity_bytes`. `Send + Sync`: share one behind an
/// `Arc`. A std `Mutex`: held for a map operation only, never across an
/// `.await`.
pub struct QuestionCache {
    inner: Mutex<Inner>,
    capacity_bytes: usize,
    normalise: Normalise,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl QuestionCache {
    /// A cache of at most `capacity_bytes` (0 turns it off).
    pub fn new(capacity_bytes: usize, normalise: Normalise) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity_bytes,
            normalise,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn key(&self, schema: &SchemaName, model_id: &str, text: &str) -> Key {
        Key {
            schema: schema.clone(),
            model_id: Arc::from(model_id),
            text: self.normalise.apply(text),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (every
        // change below is completed before anything that can panic), so a
        // poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached vector of `text` for this tenant and model, marking it
    /// recently used.
    pub fn get(&self, schema: &SchemaName, model_id: &str, text: &str) -> Option<Arc<[f32]>> {
        let key = self.key(schema, model_id, text);
        let mut inner = self.lock();
        let inner = &mut *inner;
        let tick = inner.next_tick;
        let Some((stored_key, entry)) = inner.entries.get_key_value(&key) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        let stored_key = Arc::clone(stored_key);
        let vector = widen(&entry.vector);
        let old = entry.tick;
        inner.order.remove(&old);
        inner.order.insert(tick, stored_key.clone());
        inner.next_tick += 1;
        if let Some(entry) = inner.entries.get_mut(&stored_key) {
            entry.tick = tick;
        }
        Some(vector)
    }

    /// Stores the vector of `text` for this tenant and model, then drops the
    /// least recently used entries until the cache fits its bound; returns
    /// the vector as `get` will give it back (rounded to half precision),
    /// for the caller to answer with. An entry larger than the whole bound
    /// is not stored.
    pub fn insert(
        &self,
        schema: &SchemaName,
        model_id: &str,
        text: &str,
        vector: &[f32],
    ) -> Arc<[f32]> {
        let vector: Box<[f16]> = vector.iter().map(|&x| f16::from_f32(x)).collect();
        let rounded = widen(&vector);
        let key = self.key(schema, model_id, text);
        let bytes = entry_bytes(&key, &vector);
        if bytes > self.capacity_bytes {
            return rounded;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        let key = Arc::new(key);
        if let Some(old) = inner.entries.remove(&key) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.capacity_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.bytes -= old.bytes;
            }
        }
        let tick = inner.next_tick;
        inner.next_tick += 1;
        inner.order.insert(tick, Arc::clone(&key));
        inner.entries.insert(
            key,
            Entry {
                vector,
                tick,
                bytes,
            },
        );
        inner.bytes += bytes;
        rounded
    }

    /// Drops every entry of one tenant (its schema was deleted or restored).
    pub fn remove_tenant(&self, schema: &SchemaName) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut freed = 0;
        let order = &mut inner.order;
        inner.entries.retain(|key, entry| {
            let keep = key.schema != *schema;
            if !keep {
                order.remove(&entry.tick);
                freed += entry.bytes;
            }
            keep
        });
        inner.bytes -= freed;
    }

    /// Forgets every tenant's questions (tenants were created or deleted:
    /// a re-created schema is another tenant).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.order.clear();
        inner.bytes = 0;
    }

    /// Bytes held, as counted against the bound.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found their question, and that did not, since start.
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }
}

fn widen(vector: &[f16]) -> Arc<[f32]> {
    vector.iter().map(|x| x.to_f32()).collect()
}

fn entry_bytes(key: &Key, vector: &[f16]) -> usize {
    ENTRY_OVERHEAD
        + key.schema.as_str().len()
        + key.model_id.len()
        + key.text.len()
        + std::mem::size_of_val(vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> SchemaName {
        SchemaName::parse(name).unwrap()
    }

    fn vector(x: f32) -> Vec<f32> {
        vec![x; 384]
    }

    /// What one entry of `text` in `schema` with model "m" counts.
    fn size(schema_name: &str, text: &str) -> usize {
        ENTRY_OVERHEAD + schema_name.len() + 1 + text.len() + 384 * 2
    }

    #[test]
    fn a_stored_question_comes_back_under_the_same_normalised_text() {
        let cache = QuestionCache::new(1 << 20, Normalise::WhitespaceAndCase);
        let shop = schema("shop");
        cache.insert(&shop, "m", "When do you  open?", &vector(1.0));
        let got = cache.get(&shop, "m", "  when do\tyou open? ").unwrap();
        assert_eq!(&*got, &*vector(1.0));
        assert!(cache.get(&shop, "m", "when do you open").is_none());
    }

    #[test]
    fn whitespace_normalisation_keeps_case() {
        let cache = QuestionCache::new(1 << 20, Normalise::Whitespace);
        let shop = schema("shop");
        cache.insert(&shop, "m", "When do you open?", &vector(1.0));
        assert!(cache.get(&shop, "m", "When  do you open?").is_some());
        assert!(cache.get(&shop, "m", "when do you open?").is_none());
    }

    #[test]
    fn never_shared_between_tenants_or_models() {
        let cache = QuestionCache::new(1 << 20, Normalise::WhitespaceAndCase);
        let (a, b) = (schema("tenant_a"), schema("tenant_b"));
        cache.insert(&a, "m", "do you ship abroad", &vector(1.0));
        assert!(cache.get(&b, "m", "do you ship abroad").is_none());
        assert!(cache.get(&a, "other-model", "do you ship abroad").is_none());
        cache.insert(&b, "m", "do you ship abroad", &vector(2.0));
        assert_eq!(cache.get(&a, "m", "do you ship abroad").unwrap()[0], 1.0);
        assert_eq!(cache.get(&b, "m", "do you ship abroad").unwrap()[0], 2.0);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn holds_no_more_than_its_bound_and_drops_the_least_recently_used() {
        let one = size("shop", "q0");
        let cache = QuestionCache::new(3 * one, Normalise::Whitespace);
        let shop = schema("shop");
        for i in 0..3 {
            cache.insert(&shop, "m", &format!("q{i}"), &vector(i as f32));
        }
        assert_eq!(cache.bytes(), 3 * one);
        // q0 used again: q1 is now the oldest and makes room for q3.
        assert!(cache.get(&shop, "m", "q0").is_some());
        cache.insert(&shop, "m", "q3", &vector(3.0));
        assert!(cache.get(&shop, "m", "q1").is_none());
        for q in ["q0", "q2", "q3"] {
            assert!(cache.get(&shop, "m", q).is_some(), "{q}");
        }
        for i in 0..100 {
            cache.insert(&shop, "m", &format!("question {i}"), &vector(0.0));
            assert!(cache.bytes() <= cache.capacity_bytes());
        }
        assert_eq!(cache.len(), 2, "two of the longer entries fit");
    }

    #[test]
    fn replacing_an_entry_counts_it_once() {
        let cache = QuestionCache::new(1 << 20, Normalise::Whitespace);
        let shop = schema("shop");
        cache.insert(&shop, "m", "q", &vector(1.0));
        cache.insert(&shop, "m", "q", &vector(2.0));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), size("shop", "q"));
        assert_eq!(cache.get(&shop, "m", "q").unwrap()[0], 2.0);
    }

    #[test]
    fn too_large_or_zero_capacity_stores_nothing() {
        let cache = QuestionCache::new(0, Normalise::Whitespace);
        let shop = schema("shop");
        cache.insert(&shop, "m", "q", &vector(1.0));
        assert!(cache.is_empty());
        assert!(cache.get(&shop, "m", "q").is_none());
    }

    #[test]
    fn removing_a_tenant_frees_only_its_entries() {
        let cache = QuestionCache::new(1 << 20, Normalise::Whitespace);
        let (a, b) = (schema("tenant_a"), schema("tenant_b"));
        cache.insert(&a, "m", "q1", &vector(1.0));
        cache.insert(&a, "m", "q2", &vector(1.0));
        cache.insert(&b, "m", "q1", &vector(2.0));
        cache.remove_tenant(&a);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), size("tenant_b", "q1"));
        assert!(cache.get(&a, "m", "q1").is_none());
        assert!(cache.get(&b, "m", "q1").is_some());
        // The recency order forgot them too: filling up evicts b's entry
        // without tripping over a's stale ones.
        let small = QuestionCache::new(size("tenant_b", "q1"), Normalise::Whitespace);
        small.insert(&a, "m", "q1", &vector(1.0));
        small.remove_tenant(&a);
        small.insert(&b, "m", "q1", &vector(2.0));
        assert_eq!(small.len(), 1);
    }

    #[test]
    fn a_miss_is_answered_with_the_vector_a_hit_gets_and_it_is_close() {
        let cache = QuestionCache::new(1 << 20, Normalise::Whitespace);
        let shop = schema("shop");
        // A unit vector of a model's kind: small components of both signs.
        let raw: Vec<f32> = (0..384).map(|i| ((i as f32) * 0.37).sin() / 13.9).collect();
        assert!(cache.get(&shop, "m", "q").is_none());
        let answered = cache.insert(&shop, "m", "q", &raw);
        let hit = cache.get(&shop, "m", "q").unwrap();
        assert_eq!(cache.lookups(), (1, 1));
        assert_eq!(&*answered, &*hit);
        let dot: f32 = raw.iter().zip(hit.iter()).map(|(a, b)| a * b).sum();
        let norms: f32 = raw.iter().map(|a| a * a).sum::<f32>().sqrt()
            * hit.iter().map(|b| b * b).sum::<f32>().sqrt();
        assert!((1.0 - dot / norms).abs() < 1e-5, "cosine {}", dot / norms);
        // Twice the entries of f32 in the same bytes.
        assert_eq!(cache.bytes(), size("shop", "q"));
        assert!(size("shop", "q") < ENTRY_OVERHEAD + 384 * 4);
    }
}
