//! One tenant's FAQ index: every FAQ vector (its question, then its
//! alternative phrasings) as rows of one contiguous matrix, so a query is a
//! single pass of dot products. Vectors are L2-normalised, so a dot product
//! is the cosine. Built lazily per tenant, dropped when its FAQs change or
//! when the tenant has not chatted for a while (`index_cache`).
//! With data enough, the tenant's learned matcher (`matcher`), whose
//! calibrated probabilities rank the FAQs instead, is trained by the build
//! or made from weights trained before (`Learning`); the server trains in
//! the background and keeps the weights (`matcher_store`).
//!
//! Rows are kept as int8 with one scale per row (issue 17): a quarter of
//! the memory of f32, so four times as many tenants stay warm in the same
//! budget. A component's rounding error is at most half a step (the row's
//! largest component / 254), which moves a cosine by about 1e-3; the
//! matcher is trained on the exact f32 vectors before they are rounded.
//! The quality figures with and without are in bench/README.md.

use serde::Serialize;

use crate::engine::matcher::{Matcher, MatcherError, MatcherSettings};
use crate::engine::packed;

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
    /// Rows of `dim` int8 components; row `r` stands for `matrix[r] * scales[r]`.
    matrix: Vec<i8>,
    scales: Vec<f32>,
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

/// What a build does about the learned matcher.
#[derive(Debug)]
pub enum Learning {
    /// Fit it now, on the build's thread.
    Train,
    /// Use these weights (trained before on the same FAQs) when they fit;
    /// without them, or when they do not, leave the head out and hand back
    /// what to train it on (`TrainingSet`).
    Stored(Option<Vec<f32>>),
}

/// The exact vectors a tenant's head is to be fitted on, in the index's
/// FAQ order: what a build without fitting weights hands back.
#[derive(Debug)]
pub struct TrainingSet {
    pub dim: usize,
    matrix: Vec<f32>,
    owner: Vec<usize>,
    pub classes: usize,
    pub settings: MatcherSettings,
}

impl TrainingSet {
    /// The head made from `weights` (from `fit`), rounded to half precision
    /// as they are stored, so it answers as the head loaded later will.
    pub fn into_matcher(self, weights: &[f32]) -> Result<Matcher, MatcherError> {
        let weights = packed::unpack(&packed::pack(weights), weights.len())
            .ok_or(MatcherError::WeightCount)?;
        Matcher::with_weights(
            self.dim,
            &self.matrix,
            &self.owner,
            self.classes,
            weights,
            self.settings,
        )
    }

    /// The head's weights. CPU-bound (up to ~0.7 s for 500 FAQs): call it
    /// off the async runtime.
    pub fn fit(&self) -> Result<Vec<f32>, MatcherError> {
        Matcher::fit(
            self.dim,
            &self.matrix,
            &self.owner,
            self.classes,
            &self.settings,
        )
    }
}

impl FaqIndex {
    /// Builds the index and trains the matcher with the default settings.
    /// CPU-bound (up to a fraction of a second for 500 FAQs): call it off
    /// the async runtime.
    pub fn build(dim: usize, entries: Vec<FaqVectors>) -> Self {
        Self::build_with(dim, entries, MatcherSettings::default())
    }

    pub fn build_with(dim: usize, entries: Vec<FaqVectors>, settings: MatcherSettings) -> Self {
        Self::build_learning(dim, entries, settings, Learning::Train).0
    }

    /// Builds the index, its matcher as `learning` says; with
    /// `Learning::Stored` and no fitting weights for a tenant with data
    /// enough, the index ranks by nearest phrasing and the set to train on
    /// comes back with it.
    pub fn build_learning(
        dim: usize,
        entries: Vec<FaqVectors>,
        settings: MatcherSettings,
        learning: Learning,
    ) -> (Self, Option<TrainingSet>) {
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
        let classes = faqs.len();
        let worth = Matcher::worth_training(&settings, classes, row_owner.len());
        // Some(weights): a head to make from them; None: fit one now.
        let (matcher, wants_training) = match learning {
            _ if !worth => (None, false),
            Learning::Train => (
                Matcher::train(dim, &matrix, &row_owner, classes, settings)
                    .inspect_err(|e| tracing::warn!(error = %e, "the matcher could not be trained"))
                    .ok(),
                // A fit that failed now would fail again: no retry.
                false,
            ),
            Learning::Stored(Some(weights)) => {
                match Matcher::with_weights(dim, &matrix, &row_owner, classes, weights, settings) {
                    Ok(matcher) => (Some(matcher), false),
                    Err(e) => {
                        tracing::warn!(error = %e, "stored matcher weights unusable");
                        (None, true)
                    }
                }
            }
            Learning::Stored(None) => (None, true),
        };
        let (matrix_i8, scales) = quantise(dim, &matrix);
        let pending = wants_training.then(|| TrainingSet {
            dim,
            matrix,
            owner: row_owner.clone(),
            classes,
            settings,
        });
        faqs.shrink_to_fit();
        let index = Self {
            dim,
            matrix: matrix_i8,
            scales,
            row_owner,
            row_slot,
            faqs,
            matcher,
        };
        (index, pending)
    }

    /// Heap bytes the index holds: what the index cache counts against
    /// its budget.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let texts: usize = self
            .faqs
            .iter()
            .map(|f| f.question.capacity() + f.answer.capacity())
            .sum();
        self.matrix.capacity()
            + self.scales.capacity() * size_of::<f32>()
            + self.row_owner.capacity() * size_of::<usize>()
            + self.faqs.capacity() * size_of::<IndexedFaq>()
            + texts
            + self.matcher.as_ref().map_or(0, Matcher::weight_bytes)
    }

    /// The FAQ with this id, if the index holds it.
    pub fn faq(&self, id: i64) -> Option<&IndexedFaq> {
        self.faqs.iter().find(|f| f.id == id)
    }

    /// Gives the index its learned matcher (trained after the build); one
    /// for another number of FAQs is refused.
    pub fn attach(&mut self, matcher: Matcher) -> Result<(), MatcherError> {
        if matcher.classes() != self.faqs.len() {
            return Err(MatcherError::WeightCount);
        }
        self.matcher = Some(matcher);
        Ok(())
    }

    /// Whether a learned matcher ranks this tenant's FAQs.
    pub fn has_matcher(&self) -> bool {
        self.matcher.is_some()
    }

    /// Each FAQ's closest row, or -inf for a FAQ without vectors.
    fn best_rows(&self, query: &[f32]) -> Vec<f32> {
        let mut best = vec![f32::NEG_INFINITY; self.faqs.len()];
        let rows = self.matrix.chunks_exact(self.dim).zip(&self.scales);
        for ((row, scale), owner) in rows.zip(&self.row_owner) {
            let score = dot_i8(row, query) * scale;
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
        let rows = self.matrix.chunks_exact(self.dim).zip(&self.scales);
        for (((row, scale), owner), slot) in rows.zip(&self.row_owner).zip(&self.row_slot) {
            let score = dot_i8(row, query) * scale;
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

/// Each row of `dim` floats as int8 and its scale (the largest magnitude
/// over 127), so that `q * scale` is within half a step of the float.
fn quantise(dim: usize, matrix: &[f32]) -> (Vec<i8>, Vec<f32>) {
    let mut out = Vec::with_capacity(matrix.len());
    let mut scales = Vec::with_capacity(matrix.len() / dim.max(1));
    for row in matrix.chunks_exact(dim.max(1)) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 && max.is_finite() {
            max / 127.0
        } else {
            0.0
        };
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        // In range by construction: |v| ≤ max, so |v / scale| ≤ 127.
        out.extend(
            row.iter()
                .map(|v| (v * inverse).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (out, scales)
}

/// Σ row[i]·query[i], with eight running sums so the compiler can use
/// vector instructions (a single float sum must keep its order).
fn dot_i8(row: &[i8], query: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut row_chunks = row.chunks_exact(8);
    let mut query_chunks = query.chunks_exact(8);
    for (r, q) in (&mut row_chunks).zip(&mut query_chunks) {
        for i in 0..8 {
            lanes[i] += f32::from(r[i]) * q[i];
        }
    }
    let tail: f32 = row_chunks
        .remainder()
        .iter()
        .zip(query_chunks.remainder())
        .map(|(r, q)| f32::from(*r) * q)
        .sum();
    lanes.iter().sum::<f32>() + tail
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
        // Rows are int8: within a hundredth of the exact cosine.
        assert!((hits[0].score - 0.96).abs() < 0.01, "{}", hits[0].score);
        assert_eq!(hits[0].phrasing, 1, "the second phrasing matched");
        assert_eq!(hits[1].faq.id, 1);
        assert!((hits[1].score - 0.6).abs() < 0.01, "{}", hits[1].score);
        assert_eq!(hits[1].phrasing, 0);
        assert_eq!((hits[2].faq.id, hits[2].phrasing), (3, 1));
        assert!(index.nearest(&[1.0], 2).is_empty(), "wrong dimension");
    }

    /// A deterministic unit vector of `dim` floats.
    fn unit(dim: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) - 0.5
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / n).collect()
    }

    /// int8 rows score within 0.01 of the exact cosine, on vectors of the
    /// model's size, and take a quarter of the floats' bytes.
    #[test]
    fn compact_rows_keep_scores_within_a_hundredth() {
        let dim = 384;
        let entries = (0..20)
            .map(|i| FaqVectors {
                faq: faq(i),
                vectors: vec![unit(dim, i as u32)],
            })
            .collect();
        let index = FaqIndex::build(dim, entries);
        for seed in 100..120 {
            let query = unit(dim, seed);
            for hit in index.nearest(&query, 20) {
                let exact: f32 = unit(dim, hit.faq.id as u32)
                    .iter()
                    .zip(&query)
                    .map(|(a, b)| a * b)
                    .sum();
                assert!((hit.score - exact).abs() < 0.01, "{} vs {exact}", hit.score);
            }
        }
        // The same vector as the query scores (almost) 1.
        let hits = index.nearest(&unit(dim, 3), 1);
        assert_eq!(hits[0].faq.id, 3);
        assert!((hits[0].score - 1.0).abs() < 0.01, "{}", hits[0].score);
        assert!(
            index.heap_bytes() < 20 * dim * 4 / 2,
            "{}",
            index.heap_bytes()
        );
    }

    /// Without stored weights a build ranks by nearest phrasing and hands
    /// back what to train; the weights fitted on it make the same head as
    /// a build that trains, whether given to the index or to a new build.
    #[test]
    fn a_build_without_weights_hands_back_its_training_set() {
        let dim = 32;
        let entries = || {
            (0..6)
                .map(|i| FaqVectors {
                    faq: faq(i),
                    vectors: (0..4).map(|j| unit(dim, (i * 10 + j) as u32)).collect(),
                })
                .collect::<Vec<_>>()
        };
        let settings = MatcherSettings::default();
        let (mut index, set) =
            FaqIndex::build_learning(dim, entries(), settings, Learning::Stored(None));
        assert!(!index.has_matcher());
        let set = set.expect("data enough: a set to train");
        assert_eq!((set.dim, set.classes), (dim, 6));
        let weights = set.fit().unwrap();
        let trained = FaqIndex::build(dim, entries());
        let (loaded, none) = FaqIndex::build_learning(
            dim,
            entries(),
            settings,
            Learning::Stored(Some(
                packed::unpack(&packed::pack(&weights), weights.len()).unwrap(),
            )),
        );
        assert!(none.is_none() && loaded.has_matcher());
        index.attach(set.into_matcher(&weights).unwrap()).unwrap();
        let query = unit(dim, 7);
        let ranks = |i: &FaqIndex| -> Vec<(i64, Option<f32>)> {
            i.rank(&query, 6)
                .iter()
                .map(|r| (r.faq.id, r.confidence))
                .collect()
        };
        assert_eq!(ranks(&index), ranks(&trained));
        assert_eq!(ranks(&loaded), ranks(&trained));
        // Weights of another shape: no head, and a set to train again.
        let (index, set) = FaqIndex::build_learning(
            dim,
            entries(),
            settings,
            Learning::Stored(Some(vec![0.0; 5])),
        );
        assert!(!index.has_matcher() && set.is_some());
        // Too little data: neither a head nor a set.
        let few = vec![FaqVectors {
            faq: faq(1),
            vectors: vec![unit(dim, 1)],
        }];
        let (index, set) = FaqIndex::build_learning(dim, few, settings, Learning::Stored(None));
        assert!(!index.has_matcher() && set.is_none());
    }

    #[test]
    fn dot_handles_lengths_that_are_not_a_multiple_of_eight() {
        let row: Vec<i8> = (0..11).map(|i| i as i8 - 5).collect();
        let query: Vec<f32> = (0..11).map(|i| i as f32 * 0.5).collect();
        let exact: f32 = row.iter().zip(&query).map(|(r, q)| f32::from(*r) * q).sum();
        assert!((dot_i8(&row, &query) - exact).abs() < 1e-4);
        assert_eq!(quantise(3, &[0.0, 0.0, 0.0]), (vec![0, 0, 0], vec![0.0]));
    }
}
