//! A tenant's learned matcher (issue 14): a linear head over the frozen
//! MiniLM vectors, trained on the tenant's own phrasings, and a calibrated
//! probability that the best FAQ is the one meant.
//!
//! The head is a ridge-regression classifier: one weight vector per FAQ,
//! fitted in closed form to one-hot targets, `W = (XᵀX + λI)⁻¹ XᵀY`.
//! Closed form, because a tenant's FAQs change at any time and the head is
//! retrained after every change: one (d+1)² Gram matrix (a single matrix
//! product), one Cholesky factorisation of it, and one solve per FAQ;
//! 500 FAQs × 12 phrasings train in a fraction of a second on 2 cores,
//! where a softmax head needs hundreds of gradient passes over the same data.
//! The weights are kept in the tenant's schema in half precision
//! (`matcher_store`), so an index rebuilt after a restart or an eviction
//! loads them instead of training again; a head is always used as stored.
//!
//! A FAQ's score blends the head's output with its nearest-phrasing cosine
//! (what today's rule ranks by) and the cosine to its centroid (the mean of
//! its texts): the head separates FAQs that share words, the nearest
//! phrasing keeps a question that repeats one phrasing almost word for word
//! on its FAQ, and the centroid, which no single odd phrasing moves much,
//! steadies both (on CLINC150's held-out split it added 1.7 points of
//! top-1 and took wrong answers down; bench/README.md has the table). Scores become probabilities by a softmax over
//! the FAQs and one "none of them" outcome of fixed score, so a question
//! far from every FAQ gets a low probability even when one FAQ leads.
//! The constants were chosen on a held-out split of training utterances
//! (benches/quality.rs, `QUALITY_SPLIT=heldout`), never on the test set.

use candle_core::{Device, Tensor};

use crate::engine::packed;

/// Fixed choices of the head; [`MatcherSettings::default`] is what the
/// server uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatcherSettings {
    /// λ of the ridge: how strongly weights are pulled towards zero.
    pub ridge: f32,
    /// Weight of the nearest-phrasing cosine in a FAQ's score.
    pub nearest_weight: f32,
    /// Weight of the cosine to the FAQ's centroid (the normalised mean of
    /// its texts) in its score.
    pub centroid_weight: f32,
    /// Inverse temperature of the softmax over scores.
    pub sharpness: f32,
    /// The score of "none of these FAQs".
    pub none_score: f32,
    /// Fewer FAQs than this: keep today's rule (nearest phrasing).
    pub min_faqs: usize,
    /// Fewer matched texts per FAQ on average than this (question, answer
    /// and alternatives): today's rule. 4 asks for two alternatives a FAQ.
    pub min_rows_per_faq: f32,
}

impl Default for MatcherSettings {
    fn default() -> Self {
        Self {
            ridge: 2.0,
            nearest_weight: 1.0,
            centroid_weight: 1.0,
            sharpness: 16.0,
            none_score: 0.35,
            min_faqs: 3,
            min_rows_per_faq: 4.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("the Gram matrix is not positive definite")]
    NotPositiveDefinite,
    #[error("the weights do not fit the FAQs (count or value)")]
    WeightCount,
    #[error("matrix product failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// A trained head: `classes` rows of `dim + 1` weights (the last one the
/// bias), and each class's centroid (`dim` floats, unit length).
#[derive(Debug)]
pub struct Matcher {
    dim: usize,
    classes: usize,
    weights: Vec<f32>,
    centroids: Vec<f32>,
    settings: MatcherSettings,
}

impl Matcher {
    /// Whether a tenant has data enough for a head; else today's rule.
    pub fn worth_training(settings: &MatcherSettings, classes: usize, rows: usize) -> bool {
        classes >= settings.min_faqs.max(2)
            && rows as f32 >= settings.min_rows_per_faq * classes as f32
    }

    /// Fits the head to `matrix` (rows of `dim` floats) whose row `i`
    /// belongs to class `owner[i]` (< `classes`), its weights rounded to
    /// half precision as they are stored (`matcher_store`): a head trained
    /// just now and one loaded after a restart answer alike.
    pub fn train(
        dim: usize,
        matrix: &[f32],
        owner: &[usize],
        classes: usize,
        settings: MatcherSettings,
    ) -> Result<Self, MatcherError> {
        let weights = Self::fit(dim, matrix, owner, classes, &settings)?;
        let weights = packed::unpack(&packed::pack(&weights), weights.len())
            .ok_or(MatcherError::WeightCount)?;
        Self::with_weights(dim, matrix, owner, classes, weights, settings)
    }

    /// The head's weights alone: `classes` rows of `dim + 1` (the last one
    /// the bias), in f32. The costly part of `train`.
    pub fn fit(
        dim: usize,
        matrix: &[f32],
        owner: &[usize],
        classes: usize,
        settings: &MatcherSettings,
    ) -> Result<Vec<f32>, MatcherError> {
        let d1 = dim + 1;
        let rows = owner.len();
        // X with a constant column for the bias.
        let mut x = Vec::with_capacity(rows * d1);
        for row in matrix.chunks_exact(dim).take(rows) {
            x.extend_from_slice(row);
            x.push(1.0);
        }
        let xt = Tensor::from_vec(x.clone(), (rows, d1), &Device::Cpu)?;
        let gram = xt.t()?.contiguous()?.matmul(&xt)?;
        let mut a: Vec<f32> = gram.flatten_all()?.to_vec1()?;
        for i in 0..d1 {
            a[i * d1 + i] += settings.ridge;
        }
        // XᵀY: column c is the sum of class c's rows.
        let mut b = vec![0f32; classes * d1];
        for (row, &c) in x.chunks_exact(d1).zip(owner) {
            if c < classes {
                for (acc, v) in b[c * d1..(c + 1) * d1].iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        let l = cholesky(&a, d1)?;
        for c in 0..classes {
            solve_in_place(&l, d1, &mut b[c * d1..(c + 1) * d1]);
        }
        Ok(b)
    }

    /// A head from weights fitted before (`fit`, or stored), with each
    /// class's centroid made again from `matrix`: a few thousand additions,
    /// where the fit is a factorisation.
    pub fn with_weights(
        dim: usize,
        matrix: &[f32],
        owner: &[usize],
        classes: usize,
        weights: Vec<f32>,
        settings: MatcherSettings,
    ) -> Result<Self, MatcherError> {
        if weights.len() != classes * (dim + 1) || weights.iter().any(|w| !w.is_finite()) {
            return Err(MatcherError::WeightCount);
        }
        let mut centroids = vec![0f32; classes * dim];
        for (row, &c) in matrix.chunks_exact(dim).zip(owner) {
            if c < classes {
                for (acc, v) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        for centroid in centroids.chunks_exact_mut(dim) {
            let norm = centroid.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                centroid.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(Self {
            dim,
            classes,
            weights,
            centroids,
            settings,
        })
    }

    /// How many FAQs the head tells apart.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The head's weights (`classes` rows of `dim + 1`), as `fit` made them.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub fn settings(&self) -> &MatcherSettings {
        &self.settings
    }

    /// Bytes the weights and centroids take.
    pub fn weight_bytes(&self) -> usize {
        (self.weights.len() + self.centroids.len()) * std::mem::size_of::<f32>()
    }

    /// Each class's probability, given the query and each class's
    /// nearest-phrasing cosine; the rest (1 − sum) is "none of them".
    pub fn probabilities(&self, query: &[f32], nearest: &[f32]) -> Vec<f32> {
        let d1 = self.dim + 1;
        let s = &self.settings;
        let scores: Vec<f32> = (0..self.classes)
            .map(|c| {
                let w = &self.weights[c * d1..(c + 1) * d1];
                let head: f32 = w[..self.dim]
                    .iter()
                    .zip(query)
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    + w[self.dim];
                let near = nearest.get(c).copied().unwrap_or(0.0);
                let near = if near.is_finite() { near } else { 0.0 };
                let centroid: f32 = self.centroids[c * self.dim..(c + 1) * self.dim]
                    .iter()
                    .zip(query)
                    .map(|(a, b)| a * b)
                    .sum();
                (head + s.nearest_weight * near + s.centroid_weight * centroid)
                    / (1.0 + s.nearest_weight + s.centroid_weight)
            })
            .collect();
        let top = scores.iter().copied().fold(s.none_score, f32::max);
        let exps: Vec<f32> = scores
            .iter()
            .map(|v| (s.sharpness * (v - top)).exp())
            .collect();
        let none = (s.sharpness * (s.none_score - top)).exp();
        let total: f32 = exps.iter().sum::<f32>() + none;
        exps.into_iter().map(|e| e / total).collect()
    }
}

/// Lower-triangular L with L·Lᵀ = `a` (n × n, row-major, symmetric).
fn cholesky(a: &[f32], n: usize) -> Result<Vec<f32>, MatcherError> {
    // f64 for the factorisation: the Gram matrix of near-duplicate
    // phrasings is badly conditioned, and this part is cheap.
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = f64::from(a[i * n + j]);
            for k in 0..j {
                sum -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if sum <= 0.0 {
                    return Err(MatcherError::NotPositiveDefinite);
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Ok(l.into_iter().map(|v| v as f32).collect())
}

/// Solves L·Lᵀ·x = b, overwriting `b` with x.
fn solve_in_place(l: &[f32], n: usize, b: &mut [f32]) {
    for i in 0..n {
        let mut sum = b[i];
        for k in 0..i {
            sum -= l[i * n + k] * b[k];
        }
        b[i] = sum / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut sum = b[i];
        for k in i + 1..n {
            sum -= l[k * n + i] * b[k];
        }
        b[i] = sum / l[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: [f32; 3]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn the_head_learns_which_direction_tells_faqs_apart() {
        // Two FAQs whose phrasings share the first axis and differ in the
        // second: the head must rank by the second.
        let rows = [
            unit([1.0, 0.3, 0.0]),
            unit([1.0, 0.4, 0.1]),
            unit([1.0, 0.35, -0.1]),
            unit([1.0, -0.3, 0.0]),
            unit([1.0, -0.4, 0.1]),
            unit([1.0, -0.35, -0.1]),
        ];
        let matrix = rows.concat();
        let settings = MatcherSettings {
            ridge: 0.01,
            nearest_weight: 0.0,
            centroid_weight: 0.0,
            ..MatcherSettings::default()
        };
        let m = Matcher::train(3, &matrix, &[0, 0, 0, 1, 1, 1], 2, settings).unwrap();
        let p = m.probabilities(&unit([1.0, 0.2, 0.0]), &[0.0, 0.0]);
        assert!(p[0] > p[1], "{p:?}");
        let p = m.probabilities(&unit([1.0, -0.2, 0.0]), &[0.0, 0.0]);
        assert!(p[1] > p[0], "{p:?}");
        assert!(p.iter().sum::<f32>() <= 1.0 + 1e-6);
    }

    /// One odd phrasing near the other FAQ: the nearest-phrasing rule
    /// follows it, the centroid of the FAQ's texts does not.
    #[test]
    fn the_centroid_outweighs_one_odd_phrasing() {
        let rows = [
            unit([1.0, 0.0, 0.0]),
            unit([1.0, 0.1, 0.0]),
            unit([1.0, 0.0, 0.1]),
            unit([0.3, 1.0, 0.0]),
            unit([0.0, 1.0, 0.0]),
            unit([0.0, 1.0, 0.1]),
            // FAQ 1's odd phrasing, written in FAQ 0's words.
            unit([1.0, 0.3, 0.0]),
        ];
        let owner = [0, 0, 0, 1, 1, 1, 1];
        let query = unit([1.0, 0.25, 0.0]);
        let nearest = |q: &[f32]| -> Vec<f32> {
            let mut best = vec![f32::NEG_INFINITY; 2];
            for (row, &c) in rows.iter().zip(&owner) {
                let s: f32 = row.iter().zip(q).map(|(a, b)| a * b).sum();
                best[c] = best[c].max(s);
            }
            best
        };
        let only = |nearest_weight, centroid_weight| MatcherSettings {
            ridge: 1e6, // the head says nothing
            nearest_weight,
            centroid_weight,
            ..MatcherSettings::default()
        };
        let matrix = rows.concat();
        let near = Matcher::train(3, &matrix, &owner, 2, only(1.0, 0.0)).unwrap();
        let p = near.probabilities(&query, &nearest(&query));
        assert!(p[1] > p[0], "the odd phrasing wins by nearest: {p:?}");
        let both = Matcher::train(3, &matrix, &owner, 2, only(1.0, 1.0)).unwrap();
        let p = both.probabilities(&query, &nearest(&query));
        assert!(p[0] > p[1], "the centroids put it back: {p:?}");
    }

    /// Rows of `dim` pseudo-random unit vectors, `per` for each class,
    /// each class around its own direction.
    fn clusters(dim: usize, classes: usize, per: usize) -> (Vec<f32>, Vec<usize>) {
        let mut x = 0x9e37_79b9u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32) - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..classes)
            .map(|_| (0..dim).map(|_| next()).collect())
            .collect();
        let mut matrix = Vec::new();
        let mut owner = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..per {
                let v: Vec<f32> = centre.iter().map(|a| a + 0.6 * next()).collect();
                let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                matrix.extend(v.iter().map(|a| a / n));
                owner.push(c);
            }
        }
        (matrix, owner)
    }

    /// The stored (half-precision) weights rank and score as the exact
    /// ones: within 1e-3 of probability on every class.
    #[test]
    fn half_precision_weights_answer_as_the_exact_ones() {
        let (dim, classes) = (384, 30);
        let (matrix, owner) = clusters(dim, classes, 8);
        let s = MatcherSettings::default();
        let exact = Matcher::fit(dim, &matrix, &owner, classes, &s).unwrap();
        let exact = Matcher::with_weights(dim, &matrix, &owner, classes, exact, s).unwrap();
        let stored = Matcher::train(dim, &matrix, &owner, classes, s).unwrap();
        assert_eq!(stored.weights().len(), classes * (dim + 1));
        let mut worst = 0f32;
        for query in matrix.chunks_exact(dim).step_by(7) {
            let near = vec![0.5; classes];
            let a = exact.probabilities(query, &near);
            let b = stored.probabilities(query, &near);
            for (x, y) in a.iter().zip(&b) {
                worst = worst.max((x - y).abs());
            }
        }
        assert!(worst < 1e-3, "{worst}");
        // Weights of another shape, or not numbers, make no head.
        let short = vec![0.0; classes * dim];
        assert!(Matcher::with_weights(dim, &matrix, &owner, classes, short, s).is_err());
        let mut nan = stored.weights().to_vec();
        nan[3] = f32::NAN;
        assert!(Matcher::with_weights(dim, &matrix, &owner, classes, nan, s).is_err());
    }

    #[test]
    fn too_little_data_keeps_the_nearest_phrasing_rule() {
        let s = MatcherSettings::default();
        assert!(!Matcher::worth_training(&s, 2, 100));
        // Question, one alternative and answer: too few to learn from.
        assert!(!Matcher::worth_training(&s, 10, 30));
        assert!(Matcher::worth_training(&s, 10, 40));
    }
}
