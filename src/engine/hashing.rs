//! `HashingEmbedder`: a deterministic bag-of-words embedder. Texts that
//! share words get similar vectors, so API tests can exercise matching,
//! storage and isolation in milliseconds without the real model.

use crate::engine::{EmbedError, Embedder};

pub struct HashingEmbedder {
    dim: usize,
}

impl HashingEmbedder {
    pub fn new(dim: usize) -> Self {
        Self { dim: dim.max(8) }
    }

    fn bucket(&self, word: &str) -> usize {
        // FNV-1a: stable across runs and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % self.dim as u64) as usize
    }
}

impl Default for HashingEmbedder {
    fn default() -> Self {
        Self::new(384)
    }
}

impl Embedder for HashingEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|text| {
                let mut v = vec![0f32; self.dim];
                for word in text
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    v[self.bucket(word)] += 1.0;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn model_id(&self) -> &str {
        "test/hashing-bag-of-words"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_words_mean_similar_vectors() {
        let e = HashingEmbedder::default();
        let v = e
            .embed(&[
                "opening hours",
                "what are your opening hours",
                "refund policy",
                "",
            ])
            .unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!(dot(&v[0], &v[1]) > 0.5);
        assert!(dot(&v[0], &v[2]) < 0.1);
        assert!(v[3].iter().all(|x| *x == 0.0));
    }
}
