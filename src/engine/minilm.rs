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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use kernels::ShapeError;

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

/// Most tokens run through the network in one pass. Bounds the working memory
/// (the feed-forward buffer is `tokens × 1536` floats, 25 MB here) however
/// many texts `embed` is given; larger batches gain no speed anyway.
const MAX_TOKENS_PER_PASS: usize = 4096;

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

/// The fields of config.json the forward pass depends on.
#[derive(Debug, Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_position_type")]
    position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_position_type() -> String {
    "absolute".into()
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
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

/// The weight matrices of all layers in one allocation, backed by 2 MiB pages
/// where the kernel allows it. The matmuls step through a weight matrix a row
/// (kilobytes) at a time; with 4 KiB pages nearly every step missed the TLB.
struct WeightArena {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl WeightArena {
    const HUGE_PAGE: usize = 2 << 20;

    fn new(data: &[f32]) -> Self {
        let per_page = Self::HUGE_PAGE / size_of::<f32>();
        // Zeroed memory this large comes fresh from mmap, untouched: it is
        // advised before the copy below faults its pages in.
        let mut buf = vec![0.0f32; data.len() + per_page];
        let addr = buf.as_ptr() as usize;
        let start = (Self::HUGE_PAGE - addr % Self::HUGE_PAGE) % Self::HUGE_PAGE / size_of::<f32>();
        if let Some(region) = buf.get_mut(start..) {
            advise_huge_pages(region);
        }
        if let Some(dst) = buf.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
        Self {
            buf,
            start,
            len: data.len(),
        }
    }

    fn as_slice(&self) -> &[f32] {
        self.buf
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(region: &mut [f32]) {
    // SAFETY: only changes how the kernel backs memory this slice owns
    // (2 MiB-aligned by the caller); never its contents. Failure is harmless.
    unsafe {
        libc::madvise(
            region.as_mut_ptr().cast(),
            std::mem::size_of_val(region),
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_region: &mut [f32]) {}

impl MiniLm {
    /// Loads config.json, tokenizer.json, model.safetensors and
    /// sentence_bert_config.json (max_seq_length) from a sentence-transformers folder.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let cfg: BertConfig = read_json(&dir.join("config.json"))?;
        let st_path = dir.join("sentence_bert_config.json");
        let st: SentenceBertConfig = read_json(&st_path)?;
        check_config(&cfg, &dir.join("config.json"))?;
        check_pooling(dir)?;
        if st.max_seq_length == 0 {
            return Err(invalid(&st_path, "max_seq_length is 0"));
        }
        let max_seq_len = st.max_seq_length.min(cfg.max_position_embeddings);
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"), max_seq_len)?;
        let weights = Weights::open(&dir.join("model.safetensors"))?;
        Self::from_weights(&cfg, &weights, tokenizer, max_seq_len)
    }

    fn from_weights(
        cfg: &BertConfig,
        w: &Weights,
        tokenizer: Tokenizer,
        max_seq_len: usize,
    ) -> Result<Self, ModelError> {
        let h = cfg.hidden_size;
        let mut staging = Vec::new();
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let prefix = format!("encoder.layer.{i}");
                load_layer(w, &mut staging, &prefix, h, cfg.intermediate_size)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tokenizer,
            hidden: h,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps as f32,
            max_seq_len,
            word_emb: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            pos_emb: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            type_emb: w.get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, h],
            )?,
            type_vocab: cfg.type_vocab_size,
            vocab: cfg.vocab_size,
            emb_norm: w.layer_norm("embeddings.LayerNorm", h)?,
            layers,
            weights: WeightArena::new(&staging),
        })
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

    fn tokenize_and_run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let tokenize_error = |e: tokenizers::Error| ModelError::Tokenize(e.to_string());
        let encodings = match texts {
            [text] => vec![self.tokenizer.encode(*text, true).map_err(tokenize_error)?],
            _ => self
                .tokenizer
                .encode_batch(texts.to_vec(), true)
                .map_err(tokenize_error)?,
        };
        let seqs: Vec<Sequence> = encodings
            .iter()
            .map(|e| Sequence {
                ids: e.get_ids().to_vec(),
                types: e.get_type_ids().to_vec(),
            })
            .collect();
        if seqs.len() != texts.len() {
            return Err(ModelError::Tokenize(format!(
                "{} encodings for {} texts",
                seqs.len(),
                texts.len()
            )));
        }
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in token_chunks(&seqs, MAX_TOKENS_PER_PASS) {
            out.extend(self.forward(chunk)?);
        }
        Ok(out)
    }

    /// Runs the encoder on packed sequences and returns their pooled,
    /// normalised embeddings.
    fn forward(&self, seqs: &[Sequence]) -> Result<Vec<Vec<f32>>, ModelError> {
        let spans = spans(seqs);
        let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
        let mut x = self.embeddings(seqs, tokens)?;
        let encoder = forward::Encoder {
            layers: &self.layers,
            hidden: self.hidden,
            heads: self.heads,
            eps: self.eps,
            weights: self.weights.as_slice(),
        };
        forward::run(&encoder, &mut x, &spans, pool())?;
        Ok(spans
            .iter()
            .map(|s| mean_pool_normalise(&x, s, self.hidden))
            .collect())
    }

    /// Word + token type + position embeddings, then layer norm: `[tokens, hidden]`.
    fn embeddings(&self, seqs: &[Sequence], tokens: usize) -> Result<Vec<f32>, ModelError> {
        let h = self.hidden;
        let mut x = vec![0.0f32; tokens * h];
        let mut rows = x.chunks_exact_mut(h);
        for seq in seqs {
            for (pos, (&id, &ty)) in seq.ids.iter().zip(&seq.types).enumerate() {
                let (id, ty) = (id as usize, ty as usize);
                if id >= self.vocab || ty >= self.type_vocab || pos * h >= self.pos_emb.len() {
                    return Err(ModelError::Internal(format!(
                        "token {id} / type {ty} / position {pos} outside the embedding tables"
                    )));
                }
                let Some(row) = rows.next() else {
                    return Err(ModelError::Internal("token count mismatch".into()));
                };
                let word = &self.word_emb[id * h..(id + 1) * h];
                let typ = &self.type_emb[ty * h..(ty + 1) * h];
                let posv = &self.pos_emb[pos * h..(pos + 1) * h];
                for (((r, w), t), p) in row.iter_mut().zip(word).zip(typ).zip(posv) {
                    // Same summation order as transformers' BertEmbeddings.
                    *r = (w + t) + p;
                }
            }
        }
        kernels::layer_norm(&mut x, &self.emb_norm.gamma, &self.emb_norm.beta, self.eps);
        Ok(x)
    }
}

/// Token ids of one text.
struct Sequence {
    ids: Vec<u32>,
    types: Vec<u32>,
}

/// Where a text's tokens sit in the packed `[tokens, …]` matrices.
struct Span {
    start: usize,
    len: usize,
}

fn spans(seqs: &[Sequence]) -> Vec<Span> {
    let mut start = 0;
    seqs.iter()
        .map(|s| {
            let span = Span {
                start,
                len: s.ids.len(),
            };
            start += s.ids.len();
            span
        })
        .collect()
}

/// Splits the batch into runs of consecutive texts of at most `max_tokens`
/// tokens in total (a run holds at least one text).
fn token_chunks(seqs: &[Sequence], max_tokens: usize) -> Vec<&[Sequence]> {
    let mut chunks = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, s) in seqs.iter().enumerate() {
        if i > start && tokens + s.ids.len() > max_tokens {
            chunks.push(&seqs[start..i]);
            (start, tokens) = (i, 0);
        }
        tokens += s.ids.len();
    }
    if start < seqs.len() {
        chunks.push(&seqs[start..]);
    }
    chunks
}

/// Mean of the span's token vectors, divided by its L2 norm (as
/// sentence-transformers' Pooling + Normalize, eps 1e-12).
fn mean_pool_normalise(x: &[f32], span: &Span, h: usize) -> Vec<f32> {
    let mut acc = vec![0.0f32; h];
    let rows = x
        .get(span.start * h..(span.start + span.len) * h)
        .unwrap_or(&[]);
    for row in rows.chunks_exact(h) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    let inv_len = 1.0 / (span.len.max(1) as f32);
    acc.iter_mut().for_each(|a| *a *= inv_len);
    let norm = acc.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    acc.iter_mut().for_each(|a| *a /= norm);
    acc
}

// ---------------------------------------------------------------- loading

fn invalid(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(path, e.to_string()))
}

fn check_config(cfg: &BertConfig, path: &Path) -> Result<(), ModelError> {
    if cfg.hidden_act != "gelu" {
        return Err(invalid(
            path,
            format!("hidden_act {:?} (only \"gelu\")", cfg.hidden_act),
        ));
    }
    if cfg.position_embedding_type != "absolute" {
        return Err(invalid(
            path,
            "only absolute position embeddings are supported",
        ));
    }
    let sizes = [
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.intermediate_size,
    ];
    if sizes.contains(&0) || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
        return Err(invalid(
            path,
            "hidden_size must be a non-zero multiple of num_attention_heads",
        ));
    }
    if cfg.type_vocab_size == 0 || cfg.vocab_size == 0 || cfg.max_position_embeddings == 0 {
        return Err(invalid(path, "empty vocabulary or embedding tables"));
    }
    Ok(())
}

/// The pooling module, when present, must be mean pooling (what `embed` does).
fn check_pooling(dir: &Path) -> Result<(), ModelError> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.exists() {
        return Ok(());
    }
    let pooling: PoolingConfig = read_json(&path)?;
    if !pooling.pooling_mode_mean_tokens {
        return Err(invalid(&path, "only mean pooling is supported"));
    }
    Ok(())
}

/// The shipped tokenizer.json pads every text to 128 tokens and truncates at
/// 128: padding is switched off (texts are packed, see the module doc) and
/// truncation set to the model's max_seq_length, as sentence-transformers does.
fn load_tokenizer(path: &Path, max_len: usize) -> Result<Tokenizer, ModelError> {
    let bytes = read_file(path)?;
    let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| invalid(path, e.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| invalid(path, e.to_string()))?;
    Ok(tokenizer)
}

/// The tensors of model.safetensors, read through candle.
struct Weights {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    fn open(path: &Path) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| invalid(path, e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// The tensor `name` (also found with the `bert.` prefix that
    /// transformers' `BertForX` checkpoints use), checked against `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self
            .tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| invalid(&self.path, format!("tensor {name} is missing")))?;
        if t.dims() != shape {
            return Err(invalid(
                &self.path,
                format!("tensor {name} has shape {:?}, expected {shape:?}", t.dims()),
            ));
        }
        t.to_dtype(DType::F32)
            .map_err(|e| invalid(&self.path, format!("{name}: {e}")))
    }

    fn to_vec(&self, name: &str, t: &Tensor) -> Result<Vec<f32>, ModelError> {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| invalid(&self.path, format!("{name}: {e}")))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let t = self.tensor(name, shape)?;
        self.to_vec(name, &t)
    }

    fn layer_norm(&self, prefix: &str, h: usize) -> Result<LayerNorm, ModelError> {
        Ok(LayerNorm {
            gamma: self.get(&format!("{prefix}.weight"), &[h])?,
            beta: self.get(&format!("{prefix}.bias"), &[h])?,
        })
    }

    /// PyTorch `nn.Linear` layers `[out, in]`, concatenated along their outputs
    /// and transposed once to `in × out` row-major for the matmul.
    fn linear(
        &self,
        staging: &mut Vec<f32>,
        prefixes: &[String],
        inputs: usize,
        outputs: usize,
    ) -> Result<Linear, ModelError> {
        let mut ws = Vec::new();
        let mut b = Vec::new();
        for p in prefixes {
            ws.push(self.tensor(&format!("{p}.weight"), &[outputs, inputs])?);
            b.extend(self.get(&format!("{p}.bias"), &[outputs])?);
        }
        let name = prefixes.join("+");
        let w = Tensor::cat(&ws, 0)
            .and_then(|w| w.t())
            .and_then(|w| w.contiguous())
            .map_err(|e| invalid(&self.path, format!("{name}: {e}")))?;
        let w = self.to_vec(&name, &w)?;
        let range = staging.len()..staging.len() + w.len();
        staging.extend(w);
        Ok(Linear {
            w: range,
            b,
            inputs,
            outputs: outputs * prefixes.len(),
        })
    }
}

fn load_layer(
    w: &Weights,
    staging: &mut Vec<f32>,
    p: &str,
    h: usize,
    ffn: usize,
) -> Result<EncoderLayer, ModelError> {
    let names = |parts: &[&str]| parts.iter().map(|s| format!("{p}.{s}")).collect::<Vec<_>>();
    Ok(EncoderLayer {
        qkv: w.linear(
            staging,
            &names(&[
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
            ]),
            h,
            h,
        )?,
        attn_out: w.linear(staging, &names(&["attention.output.dense"]), h, h)?,
        attn_norm: w.layer_norm(&format!("{p}.attention.output.LayerNorm"), h)?,
        ffn_in: w.linear(staging, &names(&["intermediate.dense"]), h, ffn)?,
        ffn_out: w.linear(staging, &names(&["output.dense"]), ffn, h)?,
        ffn_norm: w.layer_norm(&format!("{p}.output.LayerNorm"), h)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize) -> Sequence {
        Sequence {
            ids: vec![0; n],
            types: vec![0; n],
        }
    }

    #[test]
    fn token_chunks_bound_tokens_and_keep_order() {
        let seqs: Vec<_> = [3, 4, 5, 10, 1].into_iter().map(seq).collect();
        let chunks = token_chunks(&seqs, 8);
        let lens: Vec<Vec<usize>> = chunks
            .iter()
            .map(|c| c.iter().map(|s| s.ids.len()).collect())
            .collect();
        assert_eq!(lens, vec![vec![3, 4], vec![5], vec![10], vec![1]]);
    }

    #[test]
    fn minilm_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MiniLm>();
    }
}
