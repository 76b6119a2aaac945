//! Sentence embeddings with all-MiniLM-L6-v2 on the CPU, giving the same
//! vectors as sentence-transformers (mean pooling over the tokens, then L2
//! normalisation), about twice as fast as candle's stock `BertModel`.
//!
//! Why an own forward pass instead of `candle_transformers::models::bert`:
//! * candle's `Linear` multiplies by a transposed view of the weight, so gemm
//!   re-packs every weight matrix on every call. Here the weights are
//!   transposed once at load (Q, K and V fused into one matrix) and the matrix
//!   products call `gemm` directly on contiguous slices (`kernels.rs`).
//! * No padding at all: the tokens of all texts of a batch are packed into one
//!   `[tokens, 384]` matrix for the linear layers, and attention runs per text
//!   at its own length. A batch therefore does no wasted work on padding and
//!   gives the same result for a text as embedding it alone.
//! * GELU, softmax and layer norm are vectorised loops with polynomial
//!   `erf`/`exp` (see `kernels.rs`).
//! * The threads enter the pool once per pass and split every step between
//!   them, meeting at spinning barriers (`forward.rs`), instead of a rayon
//!   fork-join per matmul.
//!
//! candle is only used to read `model.safetensors`; the matrix products use
//! the `gemm` crate that candle itself uses.
//!
//! `embed` is CPU-bound for milliseconds: from async code call it through
//! `tokio::task::spawn_blocking`.

mod forward;
mod kernels;
mod load;
mod run;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokenizers::Tokenizer;

use kernels::ShapeError;
use load::WeightArena;

/// Errors from loading the model folder or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model file {path} is missing: expected a sentence-transformers folder with config.json, \
         tokenizer.json, model.safetensors and sentence_bert_config.json"
    )]
    MissingFile { path: PathBuf },
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {path} is corrupt or unsupported: {reason}")]
    InvalidFile { path: PathBuf, reason: String },
    #[error("tokenizer failed: {0}")]
    Tokenize(String),
    #[error("internal error in the MiniLM forward pass: {0}")]
    Internal(String),
}

impl From<ShapeError> for ModelError {
    fn from(e: ShapeError) -> Self {
        ModelError::Internal(e.0)
    }
}

/// Thread pool of the forward pass, see [`init_threads`].
static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

/// Sets the number of threads the model computes with. Call once, before the
/// first `embed`; later calls have no effect. Without a call, the first `embed`
/// uses the number of CPUs.
///
/// The count is set explicitly, in a pool of its own, because:
/// * this process also runs tokio workers and the web server, so the
///   operator should decide how many cores embedding may take;
/// * the forward pass splits every step in exactly one share per thread and
///   the threads wait for each other, so the count must be known and the
///   threads must not be shared with other work (a rayon pool left to its
///   default, like candle's, also re-reads /proc/cpuinfo for the count on
///   every operation: dozens of times per pass, ~6%).
///
/// On a machine shared with the web server and database, leave a core free
/// for them if latency of those matters more than embedding throughput.
pub fn init_threads(n: usize) {
    let _ = POOL.set(build_pool(n));
}

fn build_pool(n: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .thread_name(|i| format!("minilm-{i}"))
        .build()
        .ok()
}

fn pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        build_pool(n)
    })
    .as_ref()
}

/// A linear layer `y = x · w + b`, `w` stored `in × out` row-major at
/// `w` in the model's [`WeightArena`].
struct Linear {
    w: std::ops::Range<usize>,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct EncoderLayer {
    /// Q, K and V side by side: output columns `[q | k | v]`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: LayerNorm,
}

/// all-MiniLM-L6-v2 (or any BERT sentence-transformers model with mean
/// pooling), ready to embed. `Send + Sync`: share one behind an `Arc`.
pub struct MiniLm {
    tokenizer: Tokenizer,
    hidden: usize,
    heads: usize,
    eps: f32,
    max_seq_len: usize,
    word_emb: Vec<f32>,
    pos_emb: Vec<f32>,
    type_emb: Vec<f32>,
    type_vocab: usize,
    vocab: usize,
    emb_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    weights: WeightArena,
}

impl MiniLm {
    /// Loads config.json, tokenizer.json, model.safetensors and
    /// sentence_bert_config.json (max_seq_length) from a sentence-transformers folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        load::load(dir)
    }

    /// Embeds a batch: mean pooling over the attention mask, L2 normalised.
    /// One `Vec<f32>` (len [`Self::dim`]) per text, same order. Texts longer
    /// than [`Self::max_seq_len`] tokens are truncated, as sentence-transformers does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.tokenize_and_run(texts)
    }

    pub fn dim(&self) -> usize {
        self.hidden
    }

    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minilm_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MiniLm>();
    }
}
