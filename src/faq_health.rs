//! FAQ health (issue 14): which of a tenant's FAQs the bot confuses with
//! each other, and which phrasings pull toward the wrong FAQ. What
//! `chatter faq doctor SCHEMA` prints and `GET /api/faqs/health` answers.
//!
//! Each phrasing (a FAQ's question or alternative) is asked as if a visitor
//! had typed it, against every other text of the index: it *pulls toward
//! the wrong FAQ* when another FAQ's text is closer to it than every other
//! text of its own FAQ, and it is *close* to another FAQ when that one
//! comes within [`CLOSE_MARGIN`]. Two FAQs are *confused* when one's
//! phrasings pull toward the other or come close to it; the pairs are
//! listed worst first with the phrasings in question. Leaving the phrasing
//! out of its own FAQ is what a visitor's new wording meets: a phrasing
//! always matches itself.
//!
//! Cost: every text against every text, by matrix products of
//! [`BLOCK_ROWS`] rows at a time (a bounded 6 MB at 500 FAQs × 12 texts,
//! about a second of CPU there). The route runs it off the runtime and
//! counts it against the member's chat fair use.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::engine::index::FaqVectors;

/// Another FAQ this close under a phrasing's own (cosine) counts as close.
pub const CLOSE_MARGIN: f32 = 0.05;
/// Rows compared per matrix product.
const BLOCK_ROWS: usize = 256;
/// Phrasings shown per pair, and pairs and pulls listed at most.
const EXAMPLES_PER_PAIR: usize = 3;
const MAX_PAIRS: usize = 50;
const MAX_PULLS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("the comparison failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The tenant's report: its FAQs' vectors (made now where missing, as the
/// index build does), compared off the async runtime.
pub async fn check(
    db: &crate::db::Db,
    schema: &crate::tenancy::SchemaName,
    queue: &crate::engine::worker::EmbeddingQueue,
) -> Result<Health, crate::faq::FaqError> {
    use crate::engine::EngineError;
    use crate::faq::FaqError;
    let entries = crate::faq::load_vectors(db, schema, queue).await?;
    let dim = queue.dim();
    tokio::task::spawn_blocking(move || diagnose(dim, &entries))
        .await
        .map_err(|e| FaqError::Engine(EngineError::Failed(format!("the FAQ check stopped: {e}"))))?
        .map_err(|e| FaqError::Engine(EngineError::Failed(e.to_string())))
}

/// A FAQ as the report names it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FaqRef {
    pub id: i64,
    pub question: String,
}

/// A phrasing whose nearest text belongs to another FAQ.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Pull {
    /// The FAQ the phrasing belongs to.
    pub faq: FaqRef,
    pub phrasing: String,
    /// The FAQ it is closer to.
    pub toward: FaqRef,
    /// Cosine to the nearest other text of its own FAQ.
    pub own_score: f32,
    /// Cosine to the nearest text of `toward`.
    pub toward_score: f32,
}

/// Two FAQs the bot mixes up, worst first.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ConfusedPair {
    pub a: FaqRef,
    pub b: FaqRef,
    /// Phrasings of either that are nearer the other FAQ than their own.
    pub pulls: usize,
    /// Phrasings of either that come within the margin of the other.
    pub close: usize,
    /// Some of those phrasings (of a or b).
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Health {
    pub faqs: usize,
    /// Phrasings checked (questions and alternatives; answers are texts
    /// to match, not phrasings to check).
    pub phrasings: usize,
    pub pairs: Vec<ConfusedPair>,
    pub pulls: Vec<Pull>,
}

/// One text of the index: its FAQ (position) and whether it is a phrasing.
struct Row {
    owner: usize,
    text: String,
    phrasing: bool,
}

/// The report for FAQs with their vectors and the texts they came from
/// (`faq::load_vectors`: question, alternatives, then the answer).
pub fn diagnose(dim: usize, entries: &[(FaqVectors, Vec<String>)]) -> Result<Health, HealthError> {
    let mut rows: Vec<Row> = Vec::new();
    let mut flat: Vec<f32> = Vec::new();
    for (owner, (entry, texts)) in entries.iter().enumerate() {
        let last = texts.len().saturating_sub(1);
        for (i, (vector, text)) in entry.vectors.iter().zip(texts).enumerate() {
            if vector.len() != dim {
                continue;
            }
            flat.extend_from_slice(vector);
            rows.push(Row {
                owner,
                text: text.clone(),
                phrasing: i < last,
            });
        }
    }
    let faq = |owner: usize| FaqRef {
        id: entries[owner].0.faq.id,
        question: entries[owner].0.faq.question.clone(),
    };
    let n = rows.len();
    let mut pulls: Vec<Pull> = Vec::new();
    // (low, high) owner → (pulls, close, examples)
    let mut pairs: HashMap<(usize, usize), (usize, usize, Vec<String>)> = HashMap::new();
    let phrasings = rows.iter().filter(|r| r.phrasing).count();
    if n > 0 {
        let all = Tensor::from_slice(&flat, (n, dim), &Device::Cpu)?;
        let all_t = all.t()?.contiguous()?;
        let mut start = 0;
        while start < n {
            let len = BLOCK_ROWS.min(n - start);
            let block = all.narrow(0, start, len)?;
            let scores: Vec<Vec<f32>> = block.matmul(&all_t)?.to_vec2()?;
            for (offset, row_scores) in scores.iter().enumerate() {
                let i = start + offset;
                let row = &rows[i];
                if !row.phrasing {
                    continue;
                }
                // Nearest other text of its own FAQ, nearest text of each other.
                let mut own = f32::NEG_INFINITY;
                let mut best_other: Option<(usize, f32)> = None;
                let mut other_best: HashMap<usize, f32> = HashMap::new();
                for (j, &s) in row_scores.iter().enumerate() {
                    if j == i {
                        continue;
                    }
                    let o = rows[j].owner;
                    if o == row.owner {
                        own = own.max(s);
                    } else {
                        let e = other_best.entry(o).or_insert(f32::NEG_INFINITY);
                        *e = e.max(s);
                        if best_other.is_none_or(|(_, b)| s > b) {
                            best_other = Some((o, s));
                        }
                    }
                }
                for (&o, &s) in &other_best {
                    if s < own - CLOSE_MARGIN {
                        continue;
                    }
                    let key = (row.owner.min(o), row.owner.max(o));
                    let entry = pairs.entry(key).or_default();
                    if s > own {
                        entry.0 += 1;
                    } else {
                        entry.1 += 1;
                    }
                    if entry.2.len() < EXAMPLES_PER_PAIR && !entry.2.contains(&row.text) {
                        entry.2.push(row.text.clone());
                    }
                }
                if let Some((o, s)) = best_other
                    && s > own
                {
                    pulls.push(Pull {
                        faq: faq(row.owner),
                        phrasing: row.text.clone(),
                        toward: faq(o),
                        own_score: if own.is_finite() { own } else { 0.0 },
                        toward_score: s,
                    });
                }
            }
            start += len;
        }
    }
    pulls.sort_by(|a, b| (b.toward_score - b.own_score).total_cmp(&(a.toward_score - a.own_score)));
    pulls.truncate(MAX_PULLS);
    let mut pairs: Vec<ConfusedPair> = pairs
        .into_iter()
        .map(|((a, b), (pulls, close, examples))| ConfusedPair {
            a: faq(a),
            b: faq(b),
            pulls,
            close,
            examples,
        })
        .collect();
    pairs.sort_by(|x, y| {
        (y.pulls, y.close, x.a.id, x.b.id).cmp(&(x.pulls, x.close, y.a.id, y.b.id))
    });
    pairs.truncate(MAX_PAIRS);
    Ok(Health {
        faqs: entries.len(),
        phrasings,
        pairs,
        pulls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::IndexedFaq;

    fn unit(v: [f32; 3]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn entry(id: i64, rows: &[(&str, [f32; 3])]) -> (FaqVectors, Vec<String>) {
        (
            FaqVectors {
                faq: IndexedFaq {
                    id,
                    question: rows[0].0.to_string(),
                    answer: rows[rows.len() - 1].0.to_string(),
                },
                vectors: rows.iter().map(|(_, v)| unit(*v)).collect(),
            },
            rows.iter().map(|(t, _)| t.to_string()).collect(),
        )
    }

    #[test]
    fn a_phrasing_nearer_another_faq_pulls_and_the_pair_is_confused() {
        let entries = vec![
            entry(
                1,
                &[
                    ("hours?", [1.0, 0.0, 0.0]),
                    ("open when?", [1.0, 0.1, 0.0]),
                    // Written under FAQ 1, but about shipping.
                    ("do you ship on sundays?", [0.1, 1.0, 0.0]),
                    ("9 to 5", [1.0, 0.0, 0.1]),
                ],
            ),
            entry(
                2,
                &[
                    ("do you ship?", [0.0, 1.0, 0.0]),
                    ("delivery?", [0.0, 1.0, 0.05]),
                    ("yes we ship", [0.0, 1.0, -0.1]),
                ],
            ),
            entry(
                3,
                &[
                    ("parking?", [0.0, 0.0, 1.0]),
                    ("where to park", [0.1, 0.0, 1.0]),
                    ("behind the shop", [0.0, 0.1, 1.0]),
                ],
            ),
        ];
        let health = diagnose(3, &entries).unwrap();
        assert_eq!((health.faqs, health.phrasings), (3, 7));
        assert_eq!(health.pulls.len(), 1, "{:?}", health.pulls);
        let pull = &health.pulls[0];
        assert_eq!(pull.phrasing, "do you ship on sundays?");
        assert_eq!((pull.faq.id, pull.toward.id), (1, 2));
        assert!(pull.toward_score > pull.own_score);
        assert_eq!(health.pairs.len(), 1, "{:?}", health.pairs);
        let pair = &health.pairs[0];
        assert_eq!((pair.a.id, pair.b.id, pair.pulls), (1, 2, 1));
        assert!(
            pair.examples
                .contains(&"do you ship on sundays?".to_string())
        );
        // Parking is confused with nothing.
        assert!(health.pairs.iter().all(|p| p.a.id != 3 && p.b.id != 3));
    }

    #[test]
    fn no_faqs_is_a_healthy_empty_report() {
        let health = diagnose(3, &[]).unwrap();
        assert_eq!(health.faqs, 0);
        assert!(health.pairs.is_empty() && health.pulls.is_empty());
    }
}
