//! Reading a sentence-transformers folder: config.json and friends checked
//! against what the forward pass supports, the tokenizer set up for packed
//! batches, and model.safetensors read into the [`WeightArena`] and the
//! small per-layer vectors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::{EncoderLayer, LayerNorm, Linear, MiniLm, ModelError};

/// Loads config.json, tokenizer.json, model.safetensors and
/// sentence_bert_config.json (max_seq_length) from a sentence-transformers folder.
pub(super) fn load(dir: &Path) -> Result<MiniLm, ModelError> {
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
    from_weights(&cfg, &weights, tokenizer, max_seq_len)
}

fn from_weights(
    cfg: &BertConfig,
    w: &Weights,
    tokenizer: Tokenizer,
    max_seq_len: usize,
) -> Result<MiniLm, ModelError> {
    let h = cfg.hidden_size;
    let mut staging = Vec::new();
    let layers = (0..cfg.num_hidden_layers)
        .map(|i| {
            let prefix = format!("encoder.layer.{i}");
            load_layer(w, &mut staging, &prefix, h, cfg.intermediate_size)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MiniLm {
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

/// The weight matrices of all layers in one allocation, backed by 2 MiB pages
/// where the kernel allows it. The matmuls step through a weight matrix a row
/// (kilobytes) at a time; with 4 KiB pages nearly every step missed the TLB.
pub(super) struct WeightArena {
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

    pub(super) fn as_slice(&self) -> &[f32] {
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
