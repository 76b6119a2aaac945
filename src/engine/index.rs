//! One tenant's FAQ index: every FAQ vector (its question, then its
//! alternative phrasings) as rows of one contiguous matrix, so a query is a
//! single pass of dot products. Vectors are L2-normalised, so a dot product
//! is the cosine. Built lazily per tenant, dropped when its FAQs change.
//! With data enough, the build also trains the tenant's learned matcher
//! (`matcher`), whose calibrated probabilities rank the FAQs instead.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::cache::InvalidatingCache;
use crate::engine::matcher::{Matcher, MatcherSettings};
use crate::tenancy::SchemaName;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndexedFaq {
    pub id: i64,
    pub question: String,
    pub answer: String,
}

/// A FAQ with its vectors (at least one), as the store hands them over.
pub struct FaqVectors {
    pub faq: IndexedFaq,
    pub vectors: Vec<Vec<f32>>,
}

#[derive(Debug)]
pub struct FaqIndex {
    dim: usize,
    matrix: Vec<f32>,
    /// For each matrix row, the position of its FAQ in `faqs`.
    row_owner: Vec<usize>,
    /// For each matrix row, its position among its FAQ's vectors (as
    /// `FaqVectors` gave them): which phrasing it is.
    row_slot: Vec<u32>,
    faqs: Vec<IndexedFaq>,
    /// None: too little data (or a failed fit); the nearest phrasing ranks.
    matcher: Option<Matcher>,
}

/// A FAQ as the chat ranks it: its nearest-phrasing cosine and, when the
/// tenant has a learned matcher, the calibrated probability that it is the
/// FAQ meant.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<'a> {
    pub faq: &'a IndexedFaq,
    pub score: f32,
    pub confidence: Option<f32>,
}

/// A FAQ and how close the query came to it (its best row).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub faq: &'a IndexedFaq,
    pub score: f32,
    /// The best row's position among the FAQ's vectors: which phrasing
    /// matched.
    pub phrasing: usize,
}

impl FaqIndex {
    /// Builds the index and trains the matcher with the default settings.
    /// CPU-bound (up to a fraction of a second for 500 FAQs): call it off
    /// the async runtime.
    pub fn build(dim: usize, entries: Vec<FaqVectors>) -> Self {
        Self::build_with(dim, entries, MatcherSettings::default())
    }

    pub fn build_with(dim: usize, entries: Vec<FaqVectors>, settings: MatcherSettings) -> Self {
        let rows: usize = entries.iter().map(|e| e.vectors.len()).sum();
        let mut matrix = Vec::with_capacity(rows * dim);
        let mut row_owner = Vec::with_capacity(rows);
        let mut row_slot = Vec::with_capacity(rows);
        let mut faqs = Vec::with_capacity(entries.len());
        for entry in entries {
            for (slot, vector) in entry.vectors.iter().enumerate() {
                if vector.len() != dim {
                    continue;
                }
                matrix.extend_from_slice(vector);
                row_owner.push(faqs.len());
                row_slot.push(u32::try_from(slot).unwrap_or(u32::MAX));
            }
            faqs.push(entry.faq);
        }
        let matcher = if Matcher::worth_training(&settings, faqs.len(), row_owner.len()) {
            Matcher::train(dim, &matrix, &row_owner, faqs.len(), settings)
                .inspect_err(|e| tracing::warn!(error = %e, "the matcher could not be trained"))
                .ok()
        } else {
            None
        };
        Self {
            dim,
            matrix,
            row_owner,
            row_slot,
            faqs,
            matcher,
        }
    }

    /// The FAQ with this id, if the index holds it.
    pub fn faq(&self, id: i64) -> Option<&IndexedFaq> {
        self.faqs.iter().find(|f| f.id == id)
    }

    /// Whether a learned matcher ranks this tenant's FAQs.
    pub fn has_matcher(&self) -> bool {
        self.matcher.is_some()
    }

    /// Each FAQ's closest row, or -inf for a FAQ without vectors.
    fn best_rows(&self, query: &[f32]) -> Vec<f32> {
        let mut best = vec![f32::NEG_INFINITY; self.faqs.len()];
        for (row, owner) in self.matrix.chunks_exact(self.dim).zip(&self.row_owner) {
            let score: f32 = row.iter().zip(query).map(|(a, b)| a * b).sum();
            if score > best[*owner] {
                best[*owner] = score;
            }
        }
        best
    }

    /// The `k` likeliest FAQs, best first: by the matcher's probability
    /// when there is one, else by nearest phrasing (as `nearest`).
    pub fn rank(&self, query: &[f32], k: usize) -> Vec<Ranked<'_>> {
        if query.len() != self.dim || self.faqs.is_empty() {
            return Vec::new();
        }
        let best = self.best_rows(query);
        let confidence = self.matcher.as_ref().map(|m| m.probabilities(query, &best));
        let key = |i: usize| confidence.as_ref().map_or(best[i], |p| p[i]);
        let mut order: Vec<usize> = (0..self.faqs.len())
            .filter(|&i| best[i].is_finite())
            .collect();
        order.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
        order
            .into_iter()
            .take(k)
            .map(|i| Ranked {
                faq: &self.faqs[i],
                score: best[i],
                confidence: confidence.as_ref().map(|p| p[i]),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.faqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faqs.is_empty()
    }

    /// The `k` nearest FAQs, best first, each scored by its closest row.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<Hit<'_>> {
        if query.len() != self.dim || self.faqs.is_empty() {
            return Vec::new();
        }
        let mut best = vec![(f32::NEG_INFINITY, 0usize); self.faqs.len()];
        let rows = self.matrix.chunks_exact(self.dim).zip(&self.row_owner);
        for ((row, owner), slot) in rows.zip(&self.row_slot) {
            let score: f32 = row.iter().zip(query).map(|(a, b)| a * b).sum();
            if score > best[*owner].0 {
                best[*owner] = (score, *slot as usize);
            }
        }
        let mut order: Vec<usize> = (0..self.faqs.len())
            .filter(|&i| best[i].0.is_finite())
            .collect();
        order.sort_by(|&a, &b| best[b].0.total_cmp(&best[a].0));
        order
            .into_iter()
            .take(k)
            .map(|i| Hit {
                faq: &self.faqs[i],
                score: best[i].0,
                phrasing: best[i].1,
            })
            .collect()
    }
}

/// Built indexes by tenant; invalidated by FAQ change events.
pub struct IndexCache {
    entries: InvalidatingCache<SchemaName, Arc<FaqIndex>>,
    /// One build at a time per tenant: a burst of first questions builds
    /// once, and one tenant's slow build (many phrasings, a locked table)
    /// never makes another tenant wait (issue 16). An entry lives while a
    /// build of its tenant runs or waits.
    building: std::sync::Mutex<HashMap<SchemaName, Arc<tokio::sync::Mutex<()>>>>,
}

impl IndexCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: InvalidatingCache::new(capacity),
            building: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The cached index, or `build`'s result (stored unless invalidated
    /// meanwhile).
    pub async fn get_or_build<F, Fut, E>(
        &self,
        schema: &SchemaName,
        build: F,
    ) -> Result<Arc<FaqIndex>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FaqIndex, E>>,
    {
        if let Some(hit) = self.entries.get(schema) {
            return Ok(hit);
        }
        let lock = self.build_lock(schema);
        let result = async {
            let _guard = lock.lock().await;
            if let Some(hit) = self.entries.get(schema) {
                return Ok(hit);
            }
            let ticket = self.entries.ticket(schema);
            let index = Arc::new(build().await?);
            self.entries
                .insert(ticket, schema.clone(), Arc::clone(&index));
            Ok(index)
        }
        .await;
        self.release_build_lock(schema, lock);
        result
    }

    fn build_lock(&self, schema: &SchemaName) -> Arc<tokio::sync::Mutex<()>> {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(building.entry(schema.clone()).or_default())
    }

    /// Forgets the tenant's lock once no build holds or awaits it.
    fn release_build_lock(&self, schema: &SchemaName, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and ours.
        if Arc::strong_count(&lock) <= 2 {
            building.remove(schema);
        }
    }

    pub fn invalidate(&self, schema: &SchemaName) {
        self.entries.remove(schema);
    }

    pub fn invalidate_all(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faq(id: i64) -> IndexedFaq {
        IndexedFaq {
            id,
            question: format!("q{id}"),
            answer: format!("a{id}"),
        }
    }

    /// A build of one tenant that never ends leaves another tenant's build
    /// free to run (issue 16: one global lock made every tenant wait).
    #[tokio::test]
    async fn one_tenants_slow_build_does_not_block_another_tenant() {
        let cache = Arc::new(IndexCache::new(10));
        let slow = SchemaName::parse("slow").unwrap();
        let fast = SchemaName::parse("fast").unwrap();
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

    #[test]
    fn a_faq_scores_by_its_closest_phrasing() {
        let index = FaqIndex::build(
            2,
            vec![
                FaqVectors {
                    faq: faq(1),
                    vectors: vec![vec![1.0, 0.0]],
                },
                FaqVectors {
                    faq: faq(2),
                    vectors: vec![vec![0.0, 1.0], vec![0.8, 0.6]],
                },
                FaqVectors {
                    faq: faq(3),
                    // A vector of the wrong size is skipped, and the
                    // phrasings after it keep their own positions.
                    vectors: vec![vec![1.0], vec![-1.0, 0.0]],
                },
            ],
        );
        let hits = index.nearest(&[0.6, 0.8], 3);
        assert_eq!(hits[0].faq.id, 2);
        assert!((hits[0].score - 0.96).abs() < 1e-6);
        assert_eq!(hits[0].phrasing, 1, "the second phrasing matched");
        assert_eq!(hits[1].faq.id, 1);
        assert!((hits[1].score - 0.6).abs() < 1e-6);
        assert_eq!(hits[1].phrasing, 0);
        assert_eq!((hits[2].faq.id, hits[2].phrasing), (3, 1));
        assert!(index.nearest(&[1.0], 2).is_empty(), "wrong dimension");
    }
}
