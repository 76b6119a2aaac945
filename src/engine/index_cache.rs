//! Built FAQ indexes by tenant, bounded by a memory budget in bytes
//! (issue 17). An entry bound would let 10,000 tenants that each chatted
//! once hold 10,000 indexes; the budget keeps the least recently used
//! tenants' indexes out instead. A dropped index is rebuilt on the tenant's
//! next question from the vectors stored with its FAQs (no inference), and
//! a FAQ change drops the tenant's index at once.
//!
//! Counted: each index's own heap (`FaqIndex::heap_bytes`) and a fixed
//! overhead per entry. An index still in use by a chat when it is dropped
//! lives until that chat ends; the cache never holds more than the budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::engine::index::FaqIndex;
use crate::tenancy::SchemaName;

/// Bytes counted per entry beyond the index's heap: the map entries, the
/// recency entry, the schema name's two copies and the `Arc`'s header.
const ENTRY_OVERHEAD: usize = 256;

struct Slot {
    index: Arc<FaqIndex>,
    bytes: usize,
    /// Position in the recency order (`Inner::order`).
    tick: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SchemaName, Slot>,
    /// Tenants by last use, oldest first.
    order: BTreeMap<u64, SchemaName>,
    next_tick: u64,
    bytes: usize,
    /// Bumped when every tenant is invalidated: a build that started
    /// before is not stored (it may have read a schema since re-created).
    generation: u64,
}

/// A tenant's build in progress: one at a time, and whether the tenant's
/// FAQs changed while it ran (then it may have read them before the
/// change, and is not stored). Lives while a build of its tenant runs or
/// waits.
#[derive(Default)]
struct Build {
    lock: tokio::sync::Mutex<()>,
    stale: AtomicBool,
}

/// What the cache did since start (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCacheStats {
    pub bytes: usize,
    pub entries: usize,
    /// Indexes dropped to stay within the budget.
    pub evictions: u64,
    /// Indexes built (first use, after a change, after an eviction).
    pub builds: u64,
}

pub struct IndexCache {
    budget: usize,
    // A std lock: held for a map operation only, never across an await.
    inner: Mutex<Inner>,
    evictions: AtomicU64,
    builds: AtomicU64,
    /// One build at a time per tenant: a burst of first questions builds
    /// once, and one tenant's slow build (many phrasings, a locked table)
    /// never makes another tenant wait (issue 16).
    building: Mutex<HashMap<SchemaName, Arc<Build>>>,
}

impl IndexCache {
    /// A cache holding at most `budget` bytes of indexes (0: none kept,
    /// every question rebuilds its tenant's index).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
            evictions: AtomicU64::new(0),
            builds: AtomicU64::new(0),
            building: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change below completes before anything that could panic,
        // so a poisoned lock still guards consistent maps.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant's index, marking it recently used.
    pub fn get(&self, schema: &SchemaName) -> Option<Arc<FaqIndex>> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let tick = inner.next_tick;
        let slot = inner.entries.get_mut(schema)?;
        let old = std::mem::replace(&mut slot.tick, tick);
        let index = Arc::clone(&slot.index);
        inner.next_tick += 1;
        if let Some(name) = inner.order.remove(&old) {
            inner.order.insert(tick, name);
        }
        Some(index)
    }

    /// The cached index, or `build`'s result (stored unless invalidated
    /// meanwhile, or larger than the whole budget).
    pub async fn get_or_build<F, Fut, E>(
        &self,
        schema: &SchemaName,
        build: F,
    ) -> Result<Arc<FaqIndex>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FaqIndex, E>>,
    {
        if let Some(hit) = self.get(schema) {
            return Ok(hit);
        }
        let slot = self.build_slot(schema);
        let result = async {
            let _guard = slot.lock.lock().await;
            if let Some(hit) = self.get(schema) {
                return Ok(hit);
            }
            // From here on, a change of this tenant's FAQs marks the build.
            slot.stale.store(false, Ordering::SeqCst);
            let generation = self.lock().generation;
            let index = Arc::new(build().await?);
            self.builds.fetch_add(1, Ordering::Relaxed);
            self.insert(generation, &slot, schema, Arc::clone(&index));
            Ok(index)
        }
        .await;
        self.release_build_slot(schema, slot);
        result
    }

    /// Stores `index` as the tenant's, then drops the least recently used
    /// indexes until the cache fits its budget.
    fn insert(&self, generation: u64, build: &Build, schema: &SchemaName, index: Arc<FaqIndex>) {
        let bytes = index
            .heap_bytes()
            .saturating_add(ENTRY_OVERHEAD + 2 * schema.as_str().len());
        let mut inner = self.lock();
        let inner = &mut *inner;
        // Checked under the lock `invalidate` marks builds under.
        let stale = inner.generation != generation || build.stale.load(Ordering::SeqCst);
        if stale || bytes > self.budget {
            return;
        }
        if let Some(old) = inner.entries.remove(schema) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
        let mut evicted = 0;
        while inner.bytes + bytes > self.budget {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.bytes -= old.bytes;
                evicted += 1;
            }
        }
        let tick = inner.next_tick;
        inner.next_tick += 1;
        inner.order.insert(tick, schema.clone());
        inner
            .entries
            .insert(schema.clone(), Slot { index, bytes, tick });
        inner.bytes += bytes;
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    fn build_slot(&self, schema: &SchemaName) -> Arc<Build> {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(building.entry(schema.clone()).or_default())
    }

    /// Forgets the tenant's build slot once no build holds or awaits it.
    fn release_build_slot(&self, schema: &SchemaName, slot: Arc<Build>) {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and ours.
        if Arc::strong_count(&slot) <= 2 {
            building.remove(schema);
        }
    }

    /// The tenant's FAQs changed: its index is rebuilt on next use, and a
    /// build of it running now is not kept. Other tenants' builds are.
    pub fn invalidate(&self, schema: &SchemaName) {
        let mut inner = self.lock();
        if let Some(build) = self
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(schema)
        {
            build.stale.store(true, Ordering::SeqCst);
        }
        if let Some(old) = inner.entries.remove(schema) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
    }

    /// Tenants came or went: every index is rebuilt on next use.
    pub fn invalidate_all(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
        inner.order.clear();
        inner.bytes = 0;
    }

    /// Whether the tenant's index is held (tests).
    pub fn contains(&self, schema: &SchemaName) -> bool {
        self.lock().entries.contains_key(schema)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn stats(&self) -> IndexCacheStats {
        let inner = self.lock();
        IndexCacheStats {
            bytes: inner.bytes,
            entries: inner.entries.len(),
            evictions: self.evictions.load(Ordering::Relaxed),
            builds: self.builds.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::{FaqVectors, IndexedFaq};

    /// `t0` is tenant `tenant_t0`.
    fn schema(name: &str) -> SchemaName {
        SchemaName::parse(&format!("tenant_{name}")).unwrap()
    }

    /// An index of `faqs` FAQs of one 8-dimensional vector each.
    fn index(faqs: i64) -> FaqIndex {
        let entries = (0..faqs)
            .map(|id| FaqVectors {
                faq: IndexedFaq {
                    id,
                    question: format!("q{id}"),
                    answer: format!("a{id}"),
                },
                vectors: vec![vec![0.5; 8]],
            })
            .collect();
        FaqIndex::build(8, entries)
    }

    async fn build(cache: &IndexCache, name: &str, faqs: i64) -> Arc<FaqIndex> {
        cache
            .get_or_build(&schema(name), || async move { Ok::<_, ()>(index(faqs)) })
            .await
            .unwrap()
    }

    /// What one tenant named like `t0` with an index of `faqs` FAQs counts.
    fn size(faqs: i64) -> usize {
        index(faqs).heap_bytes() + ENTRY_OVERHEAD + 2 * "tenant_t0".len()
    }

    #[tokio::test]
    async fn holds_no_more_than_its_budget_and_drops_the_least_recently_used() {
        let cache = IndexCache::new(3 * size(5));
        for t in ["t0", "t1", "t2"] {
            build(&cache, t, 5).await;
        }
        assert_eq!(cache.stats().bytes, 3 * size(5));
        assert_eq!(cache.stats().evictions, 0);
        // t0 used again: t1 is now the oldest and makes room for t3.
        assert!(cache.get(&schema("t0")).is_some());
        build(&cache, "t3", 5).await;
        assert!(cache.get(&schema("t1")).is_none());
        for t in ["t0", "t2", "t3"] {
            assert!(cache.get(&schema(t)).is_some(), "{t}");
        }
        assert_eq!(cache.stats().evictions, 1);
        for i in 0..50 {
            build(&cache, &format!("t{}", i % 10), 1 + i % 7).await;
            let stats = cache.stats();
            assert!(stats.bytes <= cache.budget(), "{stats:?}");
        }
        let stats = cache.stats();
        assert!(stats.entries >= 3, "{stats:?}");
    }

    #[tokio::test]
    async fn an_evicted_tenant_is_built_again_and_a_too_large_index_is_not_kept() {
        let cache = IndexCache::new(size(5));
        build(&cache, "t0", 5).await;
        build(&cache, "t1", 5).await;
        assert!(cache.get(&schema("t0")).is_none());
        let again = build(&cache, "t0", 5).await;
        assert_eq!(again.len(), 5);
        assert_eq!(cache.stats().builds, 3);
        // Larger than the whole budget: answered, not stored, and nothing
        // else is dropped for it.
        let big = build(&cache, "t2", 50).await;
        assert_eq!(big.len(), 50);
        assert!(cache.get(&schema("t2")).is_none());
        assert!(cache.get(&schema("t0")).is_some());
    }

    #[tokio::test]
    async fn a_build_that_straddles_an_invalidation_is_not_stored() {
        let cache = IndexCache::new(1 << 20);
        let t0 = schema("t0");
        let built = cache
            .get_or_build(&t0, || async {
                // The FAQs change while this build reads them.
                cache.invalidate(&t0);
                Ok::<_, ()>(index(2))
            })
            .await
            .unwrap();
        assert_eq!(built.len(), 2);
        assert!(cache.get(&t0).is_none());
        // Another tenant's change does not cost this build its place.
        let t1 = schema("t1");
        cache
            .get_or_build(&t1, || async {
                cache.invalidate(&t0);
                Ok::<_, ()>(index(2))
            })
            .await
            .unwrap();
        assert!(cache.contains(&t1));
        build(&cache, "t0", 3).await;
        assert_eq!(cache.get(&t0).map(|i| i.len()), Some(3));
        cache.invalidate(&t0);
        assert!(cache.get(&t0).is_none());
        assert_eq!(cache.stats().bytes, size(2), "t1's alone");
        cache.invalidate_all();
        assert_eq!((cache.stats().entries, cache.stats().bytes), (0, 0));
    }

    /// A build of one tenant that never ends leaves another tenant's build
    /// free to run (issue 16: one global lock made every tenant wait).
    #[tokio::test]
    async fn one_tenants_slow_build_does_not_block_another_tenant() {
        let cache = Arc::new(IndexCache::new(1 << 20));
        let slow = schema("slow");
        let fast = schema("fast");
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let stuck = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get_or_build(&slow, || async move {
                        let _ = started_tx.send(());
                        std::future::pending::<Result<FaqIndex, ()>>().await
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        let built = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            cache.get_or_build(&fast, || async { Ok::<_, ()>(FaqIndex::build(2, vec![])) }),
        )
        .await;
        assert!(built.is_ok(), "the other tenant waited for the slow build");
        stuck.abort();
    }
}
