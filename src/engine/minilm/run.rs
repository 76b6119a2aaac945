//! Running the model: tokenizing a batch, packing its texts into token
//! runs of bounded size, the embedding layer, the encoder (`forward.rs`) and
//! mean pooling with L2 normalisation.

use super::{MiniLm, ModelError, forward, kernels, pool};

/// Most tokens run through the network in one pass. Bounds the working memory
/// (the feed-forward buffer is `tokens × 1536` floats, 25 MB here) however
/// many texts `embed` is given; larger batches gain no speed anyway.
const MAX_TOKENS_PER_PASS: usize = 4096;

impl MiniLm {
    pub(super) fn tokenize_and_run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
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
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) len: usize,
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
}
