//! Reading a sentence-transformers folder: config.json and friends checked
//! against what the forward pass supports, the tokenizer set up for packed
//! batches, and model.safetensors read into the [`WeightArena`] and the
//! small per-layer vectors.
//!
//! Loading holds no second copy of the model: model.safetensors is read a
//! tensor at a time, a few rows at a time, each row converted and written
//! straight into its final place (the linear layers transposed and fused into
//! the arena). Reading the whole file and then copying its tensors out held
//! the file, candle's tensors and the transposed copies at once: a start-up
//! peak of ~255 MB for a model that needs ~90 MB (issue 17).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
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
    let ffn = cfg.intermediate_size;
    // Q, K and V (h × 3h), the attention output (h × h), and the two
    // feed-forward matrices (h × ffn, ffn × h) of every layer.
    let per_layer = h * 3 * h + h * h + 2 * h * ffn;
    let mut arena = WeightArena::zeroed(cfg.num_hidden_layers * per_layer);
    let mut at = 0;
    let layers = (0..cfg.num_hidden_layers)
        .map(|i| {
            let prefix = format!("encoder.layer.{i}");
            load_layer(w, &mut arena, &mut at, &prefix, h, ffn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if at != arena.len {
        return Err(ModelError::Internal(format!(
            "{at} of {} weights in the arena filled",
            arena.len
        )));
    }
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
        weights: arena,
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

    /// `len` zeros, to be filled in place by the loader.
    fn zeroed(len: usize) -> Self {
        let per_page = Self::HUGE_PAGE / size_of::<f32>();
        // Zeroed memory this large comes fresh from mmap, untouched: it is
        // advised before the loader's writes fault its pages in.
        let mut buf = vec![0.0f32; len + per_page];
        let addr = buf.as_ptr() as usize;
        let start = (Self::HUGE_PAGE - addr % Self::HUGE_PAGE) % Self::HUGE_PAGE / size_of::<f32>();
        if let Some(region) = buf.get_mut(start..) {
            advise_huge_pages(region);
        }
        Self { buf, start, len }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        self.buf
            .get_mut(self.start..self.start + self.len)
            .unwrap_or(&mut [])
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

/// Where one tensor's bytes are in model.safetensors, from its header.
#[derive(Debug, Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    /// Relative to the first byte after the header.
    data_offsets: (u64, u64),
}

/// Rows converted per read: bounds the read buffer (a few hundred KB)
/// whatever the tensor's size.
const READ_BYTES: usize = 256 << 10;

/// Headers larger than this are refused (the safetensors crate's own limit):
/// a corrupt length must not make us allocate gigabytes.
const MAX_HEADER: u64 = 100 << 20;

/// model.safetensors with its header parsed; tensors are read from the file
/// on demand, so only the tensor being converted is ever in memory twice,
/// and then only a few rows of it.
struct Weights {
    path: PathBuf,
    file: File,
    /// File offset of the tensor data (8 + header length).
    data_start: u64,
    file_len: u64,
    tensors: HashMap<String, TensorInfo>,
}

impl Weights {
    fn open(path: &Path) -> Result<Self, ModelError> {
        let io = |source: std::io::Error| {
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
        };
        let mut file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|_| invalid(path, "shorter than a safetensors header"))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER || header_len > file_len.saturating_sub(8) {
            return Err(invalid(
                path,
                format!("header length {header_len} does not fit the file"),
            ));
        }
        let mut header = vec![0u8; usize::try_from(header_len).unwrap_or(0)];
        file.read_exact(&mut header).map_err(io)?;
        let mut entries: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| invalid(path, format!("header: {e}")))?;
        entries.remove("__metadata__");
        let tensors = entries
            .into_iter()
            .map(|(name, value)| {
                let info: TensorInfo = serde_json::from_value(value)
                    .map_err(|e| invalid(path, format!("header entry {name}: {e}")))?;
                Ok((name, info))
            })
            .collect::<Result<HashMap<_, _>, ModelError>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            data_start: 8 + header_len,
            file_len,
            tensors,
        })
    }

    /// The tensor `name` (also found with the `bert.` prefix that
    /// transformers' `BertForX` checkpoints use), checked against `shape`
    /// and against the file.
    fn info(&self, name: &str, shape: &[usize]) -> Result<&TensorInfo, ModelError> {
        let t = self
            .tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| invalid(&self.path, format!("tensor {name} is missing")))?;
        if t.shape != shape {
            return Err(invalid(
                &self.path,
                format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape),
            ));
        }
        let (begin, end) = t.data_offsets;
        let bytes = dtype_size(&t.dtype)
            .and_then(|size| shape.iter().try_fold(size, |n, d| n.checked_mul(*d)))
            .and_then(|n| u64::try_from(n).ok());
        let fits = end
            .checked_add(self.data_start)
            .is_some_and(|last| last <= self.file_len);
        if bytes.is_none() || begin > end || Some(end - begin) != bytes || !fits {
            return Err(invalid(
                &self.path,
                format!(
                    "tensor {name}: {} bytes of {} at {begin}..{end} do not match its shape or the file",
                    t.dtype,
                    bytes.map_or("?".to_string(), |b| b.to_string()),
                ),
            ));
        }
        Ok(t)
    }

    /// Calls `row(i, values)` for each row (the last dimension) of tensor
    /// `name`, in order, as f32. Reads the file a few rows at a time.
    fn rows(
        &self,
        name: &str,
        shape: &[usize],
        mut row: impl FnMut(usize, &[f32]),
    ) -> Result<(), ModelError> {
        let t = self.info(name, shape)?;
        let width = shape.last().copied().unwrap_or(1).max(1);
        let count: usize = shape.iter().product::<usize>() / width;
        let fail = |e: std::io::Error| ModelError::Io {
            path: self.path.clone(),
            source: e,
        };
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.data_start + t.data_offsets.0))
            .map_err(fail)?;
        if t.dtype != "F32" {
            // Rare (the published models are F32): convert the one tensor
            // through candle, which knows every float format.
            let values = self.convert(name, t, &mut file)?;
            values
                .chunks_exact(width)
                .enumerate()
                .for_each(|(i, r)| row(i, r));
            return Ok(());
        }
        let per_read = (READ_BYTES / (4 * width)).max(1);
        let mut bytes = vec![0u8; per_read.min(count) * width * 4];
        let mut values = vec![0f32; per_read.min(count) * width];
        let mut done = 0;
        while done < count {
            let n = per_read.min(count - done);
            let (bytes, values) = (&mut bytes[..n * width * 4], &mut values[..n * width]);
            file.read_exact(bytes).map_err(fail)?;
            for (v, b) in values.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            for (i, r) in values.chunks_exact(width).enumerate() {
                row(done + i, r);
            }
            done += n;
        }
        Ok(())
    }

    /// A whole tensor of another float type, as f32.
    fn convert(
        &self,
        name: &str,
        t: &TensorInfo,
        file: &mut &File,
    ) -> Result<Vec<f32>, ModelError> {
        let dtype = match t.dtype.as_str() {
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            other => {
                return Err(invalid(
                    &self.path,
                    format!("tensor {name} is {other}, not a float type"),
                ));
            }
        };
        let len = usize::try_from(t.data_offsets.1 - t.data_offsets.0).unwrap_or(0);
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes)
            .map_err(|source| ModelError::Io {
                path: self.path.clone(),
                source,
            })?;
        Tensor::from_raw_buffer(&bytes, dtype, &t.shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| invalid(&self.path, format!("{name}: {e}")))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let mut out = Vec::with_capacity(shape.iter().product());
        self.rows(name, shape, |_, r| out.extend_from_slice(r))?;
        Ok(out)
    }

    fn layer_norm(&self, prefix: &str, h: usize) -> Result<LayerNorm, ModelError> {
        Ok(LayerNorm {
            gamma: self.get(&format!("{prefix}.weight"), &[h])?,
            beta: self.get(&format!("{prefix}.bias"), &[h])?,
        })
    }

    /// PyTorch `nn.Linear` layers `[out, in]`, concatenated along their outputs
    /// and transposed to `in × out` row-major for the matmul, written
    /// straight into `arena` from `*at` on.
    fn linear(
        &self,
        arena: &mut WeightArena,
        at: &mut usize,
        prefixes: &[String],
        inputs: usize,
        outputs: usize,
    ) -> Result<Linear, ModelError> {
        let cols = outputs * prefixes.len();
        let range = *at..*at + inputs * cols;
        let dst = arena
            .as_mut_slice()
            .get_mut(range.clone())
            .ok_or_else(|| ModelError::Internal("weight arena too small".into()))?;
        let mut b = Vec::with_capacity(cols);
        for (j, p) in prefixes.iter().enumerate() {
            // Row `o` of the PyTorch matrix is column `j * outputs + o` here.
            self.rows(&format!("{p}.weight"), &[outputs, inputs], |o, row| {
                let col = j * outputs + o;
                for (v, cell) in row.iter().zip(dst.iter_mut().skip(col).step_by(cols)) {
                    *cell = *v;
                }
            })?;
            b.extend(self.get(&format!("{p}.bias"), &[outputs])?);
        }
        *at = range.end;
        Ok(Linear {
            w: range,
            b,
            inputs,
            outputs: cols,
        })
    }
}

/// Bytes per value of a safetensors dtype.
fn dtype_size(dtype: &str) -> Option<usize> {
    match dtype {
        "F64" | "I64" | "U64" => Some(8),
        "F32" | "I32" | "U32" => Some(4),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
        _ => None,
    }
}

fn load_layer(
    w: &Weights,
    arena: &mut WeightArena,
    at: &mut usize,
    p: &str,
    h: usize,
    ffn: usize,
) -> Result<EncoderLayer, ModelError> {
    let names = |parts: &[&str]| parts.iter().map(|s| format!("{p}.{s}")).collect::<Vec<_>>();
    Ok(EncoderLayer {
        qkv: w.linear(
            arena,
            at,
            &names(&[
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
            ]),
            h,
            h,
        )?,
        attn_out: w.linear(arena, at, &names(&["attention.output.dense"]), h, h)?,
        attn_norm: w.layer_norm(&format!("{p}.attention.output.LayerNorm"), h)?,
        ffn_in: w.linear(arena, at, &names(&["intermediate.dense"]), h, ffn)?,
        ffn_out: w.linear(arena, at, &names(&["output.dense"]), ffn, h)?,
        ffn_norm: w.layer_norm(&format!("{p}.output.LayerNorm"), h)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a safetensors file of `(name, dtype, shape, little-endian bytes)`.
    fn write_safetensors(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let begin = data.len();
            data.extend_from_slice(bytes);
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}),
            );
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header);
        file.extend(data);
        std::fs::write(path, file).unwrap();
    }

    fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
        values.into_iter().flat_map(f32::to_le_bytes).collect()
    }

    /// Weight `[out, in]` whose entry (o, i) is `tag * 1000 + o * 10 + i`.
    fn weight(tag: usize, out: usize, inp: usize) -> Vec<u8> {
        f32_bytes((0..out * inp).map(|k| (tag * 1000 + (k / inp) * 10 + k % inp) as f32))
    }

    #[test]
    fn linear_layers_are_fused_and_transposed_into_the_arena() {
        let (h, ffn) = (3, 5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let p = "encoder.layer.0";
        let mut tensors = Vec::new();
        let linears = [
            ("attention.self.query", 1, h, h),
            ("attention.self.key", 2, h, h),
            ("attention.self.value", 3, h, h),
            ("attention.output.dense", 4, h, h),
            ("intermediate.dense", 5, ffn, h),
            ("output.dense", 6, h, ffn),
        ];
        for (name, tag, out, inp) in linears {
            // The `bert.` prefix of BertForX checkpoints is found too.
            tensors.push((
                format!("bert.{p}.{name}.weight"),
                "F32",
                vec![out, inp],
                weight(tag, out, inp),
            ));
            tensors.push((
                format!("{p}.{name}.bias"),
                "F32",
                vec![out],
                f32_bytes((0..out).map(|o| (tag * 100 + o) as f32)),
            ));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            for part in ["weight", "bias"] {
                tensors.push((
                    format!("{p}.{norm}.{part}"),
                    "F32",
                    vec![h],
                    f32_bytes([1.0, 2.0, 3.0]),
                ));
            }
        }
        let named: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
            .collect();
        write_safetensors(&path, &named);

        let w = Weights::open(&path).unwrap();
        let mut arena = WeightArena::zeroed(h * 3 * h + h * h + 2 * h * ffn);
        let mut at = 0;
        let layer = load_layer(&w, &mut arena, &mut at, p, h, ffn).unwrap();
        assert_eq!(at, arena.len);
        let a = arena.as_slice();
        // Q, K, V side by side: arena row i (input), column j*h + o.
        assert_eq!((layer.qkv.inputs, layer.qkv.outputs), (h, 3 * h));
        for i in 0..h {
            for j in 0..3 {
                for o in 0..h {
                    let got = a[layer.qkv.w.start + i * 3 * h + j * h + o];
                    assert_eq!(
                        got,
                        ((j + 1) * 1000 + o * 10 + i) as f32,
                        "qkv i={i} j={j} o={o}"
                    );
                }
            }
        }
        assert_eq!(
            layer.qkv.b,
            vec![
                100.0, 101.0, 102.0, 200.0, 201.0, 202.0, 300.0, 301.0, 302.0
            ]
        );
        for (lin, tag, out, inp) in [(&layer.ffn_in, 5, ffn, h), (&layer.ffn_out, 6, h, ffn)] {
            assert_eq!((lin.inputs, lin.outputs), (inp, out));
            for i in 0..inp {
                for o in 0..out {
                    assert_eq!(
                        a[lin.w.start + i * out + o],
                        (tag * 1000 + o * 10 + i) as f32
                    );
                }
            }
        }
        assert_eq!(layer.attn_norm.beta, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn rows_cross_read_boundaries_and_half_floats_convert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        // More rows than one read holds.
        let rows = 2 * READ_BYTES / (4 * 7) + 3;
        let big: Vec<f32> = (0..rows * 7).map(|k| k as f32 * 0.5).collect();
        // 1.0, 2.0, -0.5 as IEEE half floats.
        let half = [0x3C00u16, 0x4000, 0xB800]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_safetensors(
            &path,
            &[
                ("big", "F32", vec![rows, 7], f32_bytes(big.iter().copied())),
                ("half", "F16", vec![3], half),
            ],
        );
        let w = Weights::open(&path).unwrap();
        assert_eq!(w.get("big", &[rows, 7]).unwrap(), big);
        assert_eq!(w.get("half", &[3]).unwrap(), vec![1.0, 2.0, -0.5]);
    }

    #[test]
    fn bad_files_are_invalid_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_safetensors(
            &path,
            &[("t", "F32", vec![2, 2], f32_bytes([1.0, 2.0, 3.0, 4.0]))],
        );
        let w = Weights::open(&path).unwrap();
        let err = w.get("t", &[4, 1]).unwrap_err();
        assert!(
            err.to_string()
                .contains("has shape [2, 2], expected [4, 1]"),
            "{err}"
        );
        let err = w.get("missing", &[1]).unwrap_err();
        assert!(
            err.to_string().contains("tensor missing is missing"),
            "{err}"
        );

        // The data cut short: the tensor no longer fits the file.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let w = Weights::open(&path).unwrap();
        assert!(matches!(
            w.get("t", &[2, 2]),
            Err(ModelError::InvalidFile { .. })
        ));

        // A header length larger than the file.
        std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
        assert!(matches!(
            Weights::open(&path),
            Err(ModelError::InvalidFile { .. })
        ));
        std::fs::write(&path, [1u8, 2]).unwrap();
        assert!(matches!(
            Weights::open(&path),
            Err(ModelError::InvalidFile { .. })
        ));
        assert!(matches!(
            Weights::open(&dir.path().join("nope.safetensors")),
            Err(ModelError::MissingFile { .. })
        ));
    }

    /// The real model, read tensor by tensor, gives exactly the weights the
    /// old loader made (candle's whole-file load, then cat, transpose and
    /// copy), so the embeddings are bit for bit the same.
    #[test]
    fn real_model_weights_match_the_whole_file_load_bit_for_bit() {
        let Some(dir) = std::env::var_os("CHATTER_TEST_MODEL_DIR") else {
            eprintln!("skipped: CHATTER_TEST_MODEL_DIR is not set");
            return;
        };
        let dir = PathBuf::from(dir);
        let model = load(&dir).unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let get = |n: &str| tensors[n].to_dtype(DType::F32).unwrap();
        let bits = |t: Tensor| -> Vec<u32> {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        let same = |v: &[f32]| -> Vec<u32> { v.iter().map(|x| x.to_bits()).collect() };
        assert_eq!(
            same(&model.word_emb),
            bits(get("embeddings.word_embeddings.weight"))
        );
        assert_eq!(
            same(&model.pos_emb),
            bits(get("embeddings.position_embeddings.weight"))
        );
        let arena = model.weights.as_slice();
        for (i, layer) in model.layers.iter().enumerate() {
            let p = format!("encoder.layer.{i}");
            let linears: [(&Linear, &[&str]); 4] = [
                (
                    &layer.qkv,
                    &[
                        "attention.self.query",
                        "attention.self.key",
                        "attention.self.value",
                    ],
                ),
                (&layer.attn_out, &["attention.output.dense"]),
                (&layer.ffn_in, &["intermediate.dense"]),
                (&layer.ffn_out, &["output.dense"]),
            ];
            for (lin, parts) in linears {
                let ws: Vec<_> = parts
                    .iter()
                    .map(|s| get(&format!("{p}.{s}.weight")))
                    .collect();
                let old = Tensor::cat(&ws, 0)
                    .unwrap()
                    .t()
                    .unwrap()
                    .contiguous()
                    .unwrap();
                assert_eq!(same(&arena[lin.w.clone()]), bits(old), "{p} {parts:?}");
                let biases: Vec<_> = parts
                    .iter()
                    .map(|s| get(&format!("{p}.{s}.bias")))
                    .collect();
                assert_eq!(same(&lin.b), bits(Tensor::cat(&biases, 0).unwrap()));
            }
        }
    }
}
