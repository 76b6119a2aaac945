//! A tenant's learned matcher kept in its schema (`matcher_weights`, tenant
//! migration V7), so that an index rebuilt after a restart or an eviction
//! from the index cache loads the head instead of training it again (up to
//! ~0.7 s for 500 FAQs, on a visitor's question).
//!
//! The row names the model that made the vectors and a fingerprint of what
//! the head was fitted on; weights are used only when both match today's
//! FAQs. The fingerprint hashes the texts rather than the vectors: for one
//! model the texts decide the vectors, and hashing 500 FAQs' texts costs
//! microseconds where their 2 million floats cost tens of milliseconds.
//!
//! Backups do not carry the row: weights follow from the FAQs, and a
//! restored tenant trains on its first question.

use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, SchemaName};
use crate::engine::matcher::MatcherSettings;
use crate::engine::packed;
use crate::tenancy::events::ChangeEvent;

/// Changes when the meaning of stored weights does (their layout, the
/// fit): older rows then stop matching and are trained again.
const FORMAT: &[u8] = b"chatter matcher weights v1";

/// What a head is fitted on: the model, the vectors' size, the fit's
/// settings, and each FAQ's id and phrasings in index order.
pub fn fingerprint<'a>(
    model_id: &str,
    dim: usize,
    settings: &MatcherSettings,
    faqs: impl IntoIterator<Item = (i64, &'a [String])>,
) -> Vec<u8> {
    let mut hash = Sha256::new();
    // Every variable-length part is preceded by its length, so that no two
    // different inputs run together into the same bytes.
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(FORMAT);
    part(model_id.as_bytes());
    part(&(dim as u64).to_le_bytes());
    part(&settings.ridge.to_bits().to_le_bytes());
    for (id, texts) in faqs {
        part(&id.to_le_bytes());
        part(&(texts.len() as u64).to_le_bytes());
        for text in texts {
            part(text.as_bytes());
        }
    }
    hash.finalize().to_vec()
}

/// The stored weights when they were fitted on exactly this (`model_id`,
/// `fingerprint`) and have `classes × (dim + 1)` values; else `None`.
pub async fn load(
    db: &Db,
    schema: &SchemaName,
    model_id: &str,
    fingerprint: &[u8],
    classes: usize,
    dim: usize,
) -> Result<Option<Vec<f32>>, DbError> {
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            "SELECT weights FROM matcher_weights WHERE model_id = $1 AND fingerprint = $2",
            &[&model_id, &fingerprint],
        )
        .await?;
    tx.commit().await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let bytes: Vec<u8> = row.try_get(0)?;
    Ok(packed::unpack(&bytes, classes * (dim + 1)))
}

/// Keeps `weights` (half precision) as the tenant's head, replacing the
/// one before, and tells every server to rebuild the tenant's index, which
/// then loads them.
pub async fn save(
    db: &Db,
    schema: &SchemaName,
    model_id: &str,
    fingerprint: &[u8],
    classes: usize,
    dim: usize,
    weights: &[f32],
) -> Result<(), DbError> {
    let bytes = packed::pack(weights);
    let classes = i32::try_from(classes).unwrap_or(i32::MAX);
    let dim = i32::try_from(dim).unwrap_or(i32::MAX);
    let tx = db.tenant(schema).await?;
    // `trained_at` takes its default through `excluded` (Citus refuses
    // now() in DO UPDATE SET).
    tx.execute(
        "INSERT INTO matcher_weights (id, model_id, fingerprint, classes, dim, weights) \
         VALUES (1, $1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET model_id = excluded.model_id, \
             fingerprint = excluded.fingerprint, classes = excluded.classes, \
             dim = excluded.dim, weights = excluded.weights, trained_at = excluded.trained_at",
        &[&model_id, &fingerprint, &classes, &dim, &bytes],
    )
    .await?;
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_the_texts_the_ids_the_model_and_the_fit() {
        let s = MatcherSettings::default();
        let a = vec!["How late are you open?".to_string(), "Till 9".to_string()];
        let b = vec!["How late are you open?".to_string(), "Till 10".to_string()];
        let base = fingerprint("m", 384, &s, [(1, a.as_slice())]);
        assert_eq!(base, fingerprint("m", 384, &s, [(1, a.as_slice())]));
        assert_eq!(base.len(), 32);
        for other in [
            fingerprint("m", 384, &s, [(1, b.as_slice())]),
            fingerprint("m", 384, &s, [(2, a.as_slice())]),
            fingerprint("n", 384, &s, [(1, a.as_slice())]),
            fingerprint("m", 768, &s, [(1, a.as_slice())]),
            fingerprint(
                "m",
                384,
                &MatcherSettings { ridge: 3.0, ..s },
                [(1, a.as_slice())],
            ),
        ] {
            assert_ne!(base, other);
        }
        // Texts do not run together: ["ab", "c"] is not ["a", "bc"].
        let x = vec!["ab".to_string(), "c".to_string()];
        let y = vec!["a".to_string(), "bc".to_string()];
        assert_ne!(
            fingerprint("m", 1, &s, [(1, x.as_slice())]),
            fingerprint("m", 1, &s, [(1, y.as_slice())])
        );
    }
}
