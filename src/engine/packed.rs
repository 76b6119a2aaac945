//! Vectors stored in the database compactly: half-precision floats,
//! little-endian, two bytes a dimension (768 bytes for MiniLM). Precise
//! to about 1e-3 per component, so a cosine between two unit vectors moves
//! by well under 1e-3: grouping by meaning gives the same groups.

use half::f16;

/// `vector` as f16 bytes.
pub fn pack(vector: &[f32]) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect()
}

/// The vector of `bytes` when it has `dim` dimensions; `None` for bytes of
/// another length (another model, a damaged row), which are re-made.
pub fn unpack(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    if bytes.len() != dim * 2 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_round_trips_within_half_precision() {
        let n = 384;
        let raw: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = raw.iter().map(|x| x / norm).collect();
        let bytes = pack(&v);
        assert_eq!(bytes.len(), 2 * n);
        let back = unpack(&bytes, n).unwrap();
        let cos: f32 = v.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((cos - 1.0).abs() < 1e-3, "{cos}");
        assert!(unpack(&bytes, n - 1).is_none());
        assert!(unpack(&bytes[1..], n).is_none());
    }
}
