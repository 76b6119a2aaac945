//! Answer quality on a labelled data set (issue 14): what `chatter eval`
//! measures, with the chat's own decision (`chat::decide`) on an index
//! built by the server's own code (`FaqIndex::build` over
//! `faq::phrasings`). Nothing is stored: the FAQs live in memory only.
//!
//! A data set is a JSON object in CLINC150's layout: `train` (and `test`)
//! are arrays of `[text, label]` pairs, `oos_test` and `oos_val` arrays of
//! out-of-scope texts (`[text, "oos"]`); every other key is ignored. Each
//! label of `train` becomes one FAQ: its question the first of K training
//! texts, its alternative phrasings the next K − 1, its answer the label in
//! words. The `test` texts are the visitors' in-scope questions; a `test`
//! item labelled `oos` counts as out-of-scope, like `oos_test`.
//!
//! With a seed, each label's training texts are shuffled before the K are
//! taken (several seeds show how much the figures owe to the choice of
//! phrasings); without one, the first K in file order. `heldout` asks
//! training texts that no FAQ was built from (numbers 21 to 50 after the
//! shuffle) and `oos_val`, so settings are chosen without seeing the test
//! set.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::bot_config::BotConfig;
use crate::chat::{self, Answer};
use crate::config::ChatSettings;
use crate::engine::index::FaqIndex;
use crate::faq::NewFaq;

/// The label of an out-of-scope question.
pub const OUT_OF_SCOPE: &str = "oos";
/// `heldout` asks training texts from this position on (after the K
/// phrasings, which must come before it)...
const HELDOUT_FROM: usize = 20;
/// ...at most this many per label.
const HELDOUT_COUNT: usize = 30;
/// Confusions listed in a report, most frequent first.
const WORST_CONFUSIONS: usize = 10;

/// Keeps the `WORST_CONFUSIONS` most frequent confusions: by count, most
/// first, ties by `key`'s (expected, answered) in ascending order. What
/// both `chatter eval` reports (a data set's, a tenant's) list.
pub(crate) fn keep_worst<T, K: Ord>(confusions: &mut Vec<T>, key: impl Fn(&T) -> (usize, K)) {
    confusions.sort_by_cached_key(|c| {
        let (count, pair) = key(c);
        (std::cmp::Reverse(count), pair)
    });
    confusions.truncate(WORST_CONFUSIONS);
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("the data set is not valid JSON in CLINC150's layout: {0}")]
    Format(#[from] serde_json::Error),
    #[error("the data set has no `train` items")]
    NoTraining,
    #[error("K must be 1 to {HELDOUT_FROM} with --heldout, at least 1 otherwise (got {0})")]
    BadK(usize),
    #[error("test item {index} has the label {label:?}, which no `train` item has")]
    UnknownLabel { index: usize, label: String },
    #[error("the data set asks nothing: no `test` (or held-out) and no out-of-scope items")]
    NothingToAsk,
}

/// A data set as read from its file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Dataset {
    pub train: Vec<(String, String)>,
    #[serde(default)]
    pub test: Vec<(String, String)>,
    #[serde(default)]
    pub oos_test: Vec<(String, String)>,
    #[serde(default)]
    pub oos_val: Vec<(String, String)>,
}

impl Dataset {
    pub fn from_json(bytes: &[u8]) -> Result<Self, EvalError> {
        let data: Dataset = serde_json::from_slice(bytes)?;
        if data.train.is_empty() {
            return Err(EvalError::NoTraining);
        }
        Ok(data)
    }
}

/// How FAQs are made from a data set and which questions are asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Texts per FAQ: its question and K − 1 alternatives.
    pub k: usize,
    /// Shuffles each label's training texts; None: file order.
    pub seed: Option<u64>,
    /// Ask unused training texts and `oos_val` instead of the test sets.
    pub heldout: bool,
    /// At most this many in-scope and this many out-of-scope questions
    /// (every n-th), for a quick look.
    pub limit: Option<usize>,
}

/// The FAQs and the questions of one plan. FAQ `i` is `faqs[i]`, made from
/// `labels[i]`; a question's `expected` is that position.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub labels: Vec<String>,
    pub faqs: Vec<NewFaq>,
    pub in_scope: Vec<(String, usize)>,
    pub out_of_scope: Vec<String>,
}

impl Prepared {
    /// Every text to embed, FAQs' phrasings aside: in-scope questions
    /// first, then out-of-scope ones.
    pub fn questions(&self) -> impl Iterator<Item = &str> {
        self.in_scope
            .iter()
            .map(|(q, _)| q.as_str())
            .chain(self.out_of_scope.iter().map(String::as_str))
    }
}

/// Builds the FAQs and picks the questions.
pub fn prepare(data: &Dataset, plan: &Plan) -> Result<Prepared, EvalError> {
    if plan.k == 0 || (plan.heldout && plan.k > HELDOUT_FROM) {
        return Err(EvalError::BadK(plan.k));
    }
    let mut labels: Vec<String> = Vec::new();
    let mut texts: HashMap<&str, Vec<&str>> = HashMap::new();
    for (text, label) in &data.train {
        if label == OUT_OF_SCOPE {
            continue;
        }
        texts
            .entry(label.as_str())
            .or_insert_with(|| {
                labels.push(label.clone());
                Vec::new()
            })
            .push(text.as_str());
    }
    if labels.is_empty() {
        return Err(EvalError::NoTraining);
    }
    if let Some(seed) = plan.seed {
        // One generator for all labels, in label order: the same seed gives
        // the same FAQs.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for label in &labels {
            if let Some(list) = texts.get_mut(label.as_str()) {
                list.shuffle(&mut rng);
            }
        }
    }
    let position: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let faqs: Vec<NewFaq> = labels
        .iter()
        .map(|label| {
            let list = &texts[label.as_str()];
            NewFaq {
                question: list[0].to_string(),
                answer: label.replace('_', " "),
                alternatives: list
                    .iter()
                    .skip(1)
                    .take(plan.k - 1)
                    .map(|t| t.to_string())
                    .collect(),
            }
        })
        .collect();

    let (in_scope, out_of_scope) = if plan.heldout {
        let asked: Vec<(String, usize)> = labels
            .iter()
            .enumerate()
            .flat_map(|(i, label)| {
                texts[label.as_str()]
                    .iter()
                    .skip(HELDOUT_FROM)
                    .take(HELDOUT_COUNT)
                    .map(move |t| (t.to_string(), i))
            })
            .collect();
        let oos = data.oos_val.iter().map(|(t, _)| t.clone()).collect();
        (asked, oos)
    } else {
        let mut asked = Vec::new();
        let mut oos: Vec<String> = Vec::new();
        for (index, (text, label)) in data.test.iter().enumerate() {
            if label == OUT_OF_SCOPE {
                oos.push(text.clone());
                continue;
            }
            let at = *position
                .get(label.as_str())
                .ok_or_else(|| EvalError::UnknownLabel {
                    index: index + 1,
                    label: label.clone(),
                })?;
            asked.push((text.clone(), at));
        }
        oos.extend(data.oos_test.iter().map(|(t, _)| t.clone()));
        (asked, oos)
    };
    if in_scope.is_empty() && out_of_scope.is_empty() {
        return Err(EvalError::NothingToAsk);
    }
    Ok(Prepared {
        labels,
        faqs,
        in_scope: every_nth(&in_scope, plan.limit),
        out_of_scope: every_nth(&out_of_scope, plan.limit),
    })
}

/// Every n-th item, so that at most `limit` remain.
fn every_nth<T: Clone>(items: &[T], limit: Option<usize>) -> Vec<T> {
    match limit {
        Some(limit) if limit < items.len() => {
            let step = items.len() as f64 / limit.max(1) as f64;
            (0..limit)
                .map(|i| items[(i as f64 * step) as usize].clone())
                .collect()
        }
        _ => items.to_vec(),
    }
}

/// What happened to a set of questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Answered with the expected FAQ.
    pub right: usize,
    /// Answered with another FAQ (any answer, for out-of-scope questions).
    pub wrong: usize,
    /// Asked "did you mean", the expected FAQ among the choices.
    pub clarify_right: usize,
    /// Asked "did you mean" without it (any choices, out of scope).
    pub clarify_other: usize,
    /// The fallback reply and no choices.
    pub fallback: usize,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.right + self.wrong + self.clarify_right + self.clarify_other + self.fallback
    }

    /// Answered right, or the right FAQ offered: one step to the answer.
    pub fn resolved(&self) -> usize {
        self.right + self.clarify_right
    }

    /// Counts one answer to a question meant for `expected` (None: out of
    /// scope).
    pub fn count(&mut self, answer: &Answer, expected: Option<i64>) {
        let offered = || answer.choices.iter().map(|c| c.faq_id);
        match answer.faq_id {
            Some(id) if answer.matched && Some(id) == expected => self.right += 1,
            Some(_) if answer.matched => self.wrong += 1,
            _ if answer.choices.is_empty() => self.fallback += 1,
            _ if expected.is_some_and(|e| offered().any(|id| id == e)) => self.clarify_right += 1,
            _ => self.clarify_other += 1,
        }
    }
}

/// The figures at one caution level.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub caution: f32,
    pub in_scope: Tally,
    pub out_of_scope: Tally,
}

/// An in-scope question answered with the wrong FAQ, by pair.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Confusion {
    pub expected: String,
    pub answered: String,
    pub count: usize,
    /// One of the questions it happened to.
    pub example: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub k: usize,
    pub seed: Option<u64>,
    pub heldout: bool,
    pub faqs: usize,
    pub threshold: f32,
    /// Whether the tenant would have a learned matcher with these FAQs.
    pub learned_matcher: bool,
    pub in_scope_questions: usize,
    pub out_of_scope_questions: usize,
    /// Share of in-scope questions whose best-ranked FAQ is the right one.
    pub top1: f64,
    /// ...whose right FAQ is among the three best ranked.
    pub top3: f64,
    pub levels: Vec<Level>,
    /// At the first caution level: the most frequent wrong answers.
    pub confusions: Vec<Confusion>,
}

/// Vectors of the asked questions, in `Prepared::questions` order.
pub struct Asked<'a> {
    pub prepared: &'a Prepared,
    pub in_scope: &'a [Vec<f32>],
    pub out_of_scope: &'a [Vec<f32>],
}

/// FAQ ids in an evaluation index: position + 1.
pub fn faq_id(position: usize) -> i64 {
    position as i64 + 1
}

/// Asks every question of `asked` against `index` (whose FAQ ids are
/// [`faq_id`]s) at each caution level, with `bot`'s other settings.
pub fn evaluate(
    index: &FaqIndex,
    asked: &Asked<'_>,
    bot: &BotConfig,
    chat: &ChatSettings,
    plan: &Plan,
    cautions: &[f32],
) -> Report {
    let prepared = asked.prepared;
    let expected: Vec<i64> = prepared.in_scope.iter().map(|(_, i)| faq_id(*i)).collect();
    let n = expected.len();
    let (mut top1, mut top3) = (0usize, 0usize);
    for (vector, want) in asked.in_scope.iter().zip(&expected) {
        let ranked = index.rank(vector, 3);
        if ranked.first().is_some_and(|r| r.faq.id == *want) {
            top1 += 1;
        }
        if ranked.iter().any(|r| r.faq.id == *want) {
            top3 += 1;
        }
    }
    let label = |id: i64| {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| prepared.labels.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let mut levels = Vec::with_capacity(cautions.len());
    let mut confusions: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
    for (level, &caution) in cautions.iter().enumerate() {
        let mut at = bot.clone();
        at.caution = caution;
        let mut in_scope = Tally::default();
        for (q, (vector, want)) in asked.in_scope.iter().zip(&expected).enumerate() {
            let answer = chat::decide(index, vector, &at, chat);
            in_scope.count(&answer, Some(*want));
            if level == 0
                && answer.matched
                && let Some(got) = answer.faq_id.filter(|got| got != want)
            {
                confusions.entry((*want, got)).or_insert((0, q)).0 += 1;
            }
        }
        let mut out_of_scope = Tally::default();
        for vector in asked.out_of_scope {
            out_of_scope.count(&chat::decide(index, vector, &at, chat), None);
        }
        levels.push(Level {
            caution,
            in_scope,
            out_of_scope,
        });
    }
    let mut confusions: Vec<Confusion> = confusions
        .into_iter()
        .map(|((want, got), (count, q))| Confusion {
            expected: label(want),
            answered: label(got),
            count,
            example: prepared.in_scope[q].0.clone(),
        })
        .collect();
    keep_worst(&mut confusions, |c| {
        (c.count, (c.expected.clone(), c.answered.clone()))
    });
    Report {
        k: plan.k,
        seed: plan.seed,
        heldout: plan.heldout,
        faqs: prepared.faqs.len(),
        threshold: bot.match_threshold,
        learned_matcher: index.has_matcher(),
        in_scope_questions: n,
        out_of_scope_questions: asked.out_of_scope.len(),
        top1: share(top1, n),
        top3: share(top3, n),
        levels,
        confusions,
    }
}

/// Percent, 0 for an empty set.
pub fn share(count: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * count as f64 / of as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::{FaqVectors, IndexedFaq};

    fn data() -> Dataset {
        let pair = |t: &str, l: &str| (t.to_string(), l.to_string());
        Dataset {
            train: (0..25)
                .flat_map(|i| {
                    [
                        pair(&format!("hours {i}"), "opening_hours"),
                        pair(&format!("ship {i}"), "shipping"),
                    ]
                })
                .collect(),
            test: vec![
                pair("when open", "opening_hours"),
                pair("abroad?", "shipping"),
                pair("weather?", "oos"),
            ],
            oos_test: vec![pair("tell me a joke", "oos")],
            oos_val: vec![pair("sing", "oos")],
        }
    }

    fn plan(k: usize) -> Plan {
        Plan {
            k,
            seed: None,
            heldout: false,
            limit: None,
        }
    }

    #[test]
    fn each_label_is_a_faq_of_k_texts_and_the_test_set_is_asked() {
        let p = prepare(&data(), &plan(3)).unwrap();
        assert_eq!(p.labels, vec!["opening_hours", "shipping"]);
        assert_eq!(p.faqs[0].question, "hours 0");
        assert_eq!(p.faqs[0].alternatives, vec!["hours 1", "hours 2"]);
        assert_eq!(p.faqs[1].answer, "shipping");
        assert_eq!(p.faqs[0].answer, "opening hours");
        assert_eq!(
            p.in_scope,
            vec![("when open".to_string(), 0), ("abroad?".to_string(), 1)]
        );
        assert_eq!(p.out_of_scope, vec!["weather?", "tell me a joke"]);
    }

    #[test]
    fn a_seed_picks_other_phrasings_the_same_way_every_time() {
        let seeded = Plan {
            seed: Some(7),
            ..plan(5)
        };
        let a = prepare(&data(), &seeded).unwrap();
        let b = prepare(&data(), &seeded).unwrap();
        let other = prepare(
            &data(),
            &Plan {
                seed: Some(8),
                ..seeded
            },
        )
        .unwrap();
        let first = prepare(&data(), &plan(5)).unwrap();
        assert_eq!(a.faqs, b.faqs);
        assert_ne!(a.faqs, first.faqs);
        assert_ne!(a.faqs, other.faqs);
    }

    #[test]
    fn heldout_asks_unused_training_texts_and_oos_val() {
        let heldout = Plan {
            heldout: true,
            ..plan(10)
        };
        let p = prepare(&data(), &heldout).unwrap();
        assert_eq!(p.in_scope.len(), 10, "texts 21 to 25 of both labels");
        assert_eq!(p.in_scope[0], ("hours 20".to_string(), 0));
        assert_eq!(p.out_of_scope, vec!["sing"]);
        assert!(matches!(
            prepare(&data(), &Plan { k: 21, ..heldout }),
            Err(EvalError::BadK(21))
        ));
        assert!(matches!(
            prepare(&data(), &plan(0)),
            Err(EvalError::BadK(0))
        ));
    }

    #[test]
    fn a_test_label_without_training_is_named() {
        let mut d = data();
        d.test.push(("refund?".into(), "refunds".into()));
        let err = prepare(&d, &plan(2)).unwrap_err().to_string();
        assert!(err.contains("refunds") && err.contains("item 4"), "{err}");
        assert!(matches!(
            Dataset::from_json(br#"{"train": []}"#),
            Err(EvalError::NoTraining)
        ));
        assert!(Dataset::from_json(b"[1, 2]").is_err());
    }

    #[test]
    fn limit_keeps_every_nth() {
        let p = prepare(
            &data(),
            &Plan {
                limit: Some(1),
                ..plan(2)
            },
        )
        .unwrap();
        assert_eq!(p.in_scope.len(), 1);
        assert_eq!(p.out_of_scope.len(), 1);
    }

    /// Two FAQs on two axes; questions right, wrong, halfway and far.
    #[test]
    fn answers_are_counted_as_right_wrong_clarify_or_fallback() {
        let p = prepare(&data(), &plan(1)).unwrap();
        let index = FaqIndex::build(
            3,
            (0..2)
                .map(|i| {
                    let mut v = vec![0.0f32; 3];
                    v[i] = 1.0;
                    FaqVectors {
                        faq: IndexedFaq {
                            id: faq_id(i),
                            question: format!("q{i}"),
                            answer: format!("a{i}"),
                        },
                        vectors: vec![v],
                    }
                })
                .collect(),
        );
        let h = std::f32::consts::FRAC_1_SQRT_2;
        // "when open" (FAQ 0) asked as FAQ 1's vector: wrong; "abroad?"
        // (FAQ 1) right; out of scope: one far, one close to FAQ 0.
        let in_scope = vec![vec![0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0]];
        let out_of_scope = vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]];
        let asked = Asked {
            prepared: &p,
            in_scope: &in_scope,
            out_of_scope: &out_of_scope,
        };
        let bot = BotConfig {
            bot_name: "b".into(),
            greeting: "g".into(),
            fallback_reply: "f".into(),
            match_threshold: 0.8,
            caution: 0.5,
            theme: serde_json::json!({}),
            allowed_origins: vec![],
            unavailable_reply: String::new(),
            show_branding: true,
        };
        let chat = ChatSettings::default();
        let report = evaluate(&index, &asked, &bot, &chat, &plan(1), &[0.5]);
        let t = report.levels[0].in_scope;
        assert_eq!((t.right, t.wrong, t.total()), (1, 1, 2));
        let o = report.levels[0].out_of_scope;
        assert_eq!((o.wrong, o.fallback), (1, 1));
        assert_eq!((report.top1, report.top3), (50.0, 100.0));
        assert_eq!(
            report.confusions,
            vec![Confusion {
                expected: "opening_hours".into(),
                answered: "shipping".into(),
                count: 1,
                example: "when open".into(),
            }]
        );

        // Halfway between the two, just under the threshold: both offered.
        let halfway = vec![vec![h, h, 0.0], vec![h, h, 0.0]];
        let asked = Asked {
            in_scope: &halfway,
            ..asked
        };
        let report = evaluate(&index, &asked, &bot, &chat, &plan(1), &[0.5]);
        assert_eq!(report.levels[0].in_scope.clarify_right, 2);
    }
}
