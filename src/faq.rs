//! A tenant's knowledge base: FAQs with their vectors, through the tenant
//! door. Shared by the CLI, the HTTP API and the console. Every change sends
//! a FAQ change event, so every process rebuilds that tenant's index.

use crate::db::Db;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::billing::{BillingError, Cap};
use crate::db::DbError;
use crate::db::TenantTx;
use crate::engine::EngineError;
use crate::engine::index::{FaqIndex, FaqVectors, IndexedFaq, Learning, TrainingSet};
use crate::engine::matcher::{MatcherError, MatcherSettings};
use crate::engine::worker::EmbeddingQueue;
use crate::error_kind::{Classify, Kind};
use crate::matcher_store;
use crate::tenancy::SchemaName;
use crate::tenancy::events::ChangeEvent;

pub const MAX_QUESTION_CHARS: usize = 2_000;
pub const MAX_ANSWER_CHARS: usize = 10_000;
pub const MAX_ALTERNATIVES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    #[error("{0}")]
    Invalid(String),
    #[error("no FAQ {0}")]
    NotFound(i64),
    #[error("the file has {} bad row(s): {}", .0.len(), .0.join("; "))]
    BadRows(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The plan's FAQs are used up.
    #[error(transparent)]
    Plan(#[from] BillingError),
}

crate::db::db_error_conversions!(FaqError);

impl Classify for FaqError {
    fn kind(&self) -> Kind {
        match self {
            FaqError::Invalid(_) | FaqError::BadRows(_) => Kind::bad_input(),
            FaqError::NotFound(_) => Kind::not_found(),
            FaqError::Db(e) => e.kind(),
            FaqError::Engine(e) => e.kind(),
            FaqError::Plan(e) => e.kind(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Faq {
    pub id: i64,
    pub question: String,
    pub answer: String,
    pub alternatives: Vec<String>,
    pub embedded: bool,
    pub updated_at: DateTime<Utc>,
}

/// A FAQ as a client writes it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFaq {
    #[schema(min_length = 1, max_length = 2000)]
    pub question: String,
    #[schema(min_length = 1, max_length = 10000)]
    pub answer: String,
    /// Other wordings of the question, matched like it.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub alternatives: Vec<String>,
}

impl NewFaq {
    /// Trims, then checks lengths; the message says what is wrong.
    pub fn validated(self) -> Result<Self, String> {
        let question = self.question.trim().to_string();
        let answer = self.answer.trim().to_string();
        if question.is_empty() {
            return Err("question is empty".into());
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(format!(
                "question is longer than {MAX_QUESTION_CHARS} characters"
            ));
        }
        if answer.is_empty() {
            return Err("answer is empty".into());
        }
        if answer.chars().count() > MAX_ANSWER_CHARS {
            return Err(format!(
                "answer is longer than {MAX_ANSWER_CHARS} characters"
            ));
        }
        let alternatives: Vec<String> = self
            .alternatives
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if alternatives.len() > MAX_ALTERNATIVES {
            return Err(format!(
                "more than {MAX_ALTERNATIVES} alternative phrasings"
            ));
        }
        if alternatives
            .iter()
            .any(|a| a.chars().count() > MAX_QUESTION_CHARS)
        {
            return Err(format!(
                "an alternative phrasing is longer than {MAX_QUESTION_CHARS} characters"
            ));
        }
        Ok(Self {
            question,
            answer,
            alternatives,
        })
    }
}

/// Parses an import file: a JSON array of `{question, answer,
/// alternatives?}`, or CSV with a header naming `question` and `answer`
/// (and optionally `alternatives`, separated by `|`). Every bad row is
/// named; one bad row refuses the whole file.
pub fn parse_import(bytes: &[u8]) -> Result<Vec<NewFaq>, FaqError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| FaqError::Invalid("the file is not UTF-8 text".into()))?;
    let text = text.trim_start_matches('\u{feff}');
    let rows = if text.trim_start().starts_with('[') {
        parse_json(text)?
    } else {
        parse_csv(text)?
    };
    let mut bad = Vec::new();
    let mut faqs = Vec::with_capacity(rows.len());
    for (label, row) in rows {
        match row.and_then(NewFaq::validated) {
            Ok(faq) => faqs.push(faq),
            Err(reason) => bad.push(format!("{label}: {reason}")),
        }
    }
    if !bad.is_empty() {
        return Err(FaqError::BadRows(bad));
    }
    if faqs.is_empty() {
        return Err(FaqError::Invalid("the file holds no FAQ".into()));
    }
    Ok(faqs)
}

type Row = (String, Result<NewFaq, String>);

/// Every row of an import file, labelled as [`parse_import`] names it, each
/// validated or with its reason: what the dashboard previews before writing.
pub fn preview_import(bytes: &[u8]) -> Result<Vec<Row>, FaqError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| FaqError::Invalid("the file is not UTF-8 text".into()))?;
    let text = text.trim_start_matches('\u{feff}');
    let rows = if text.trim_start().starts_with('[') {
        parse_json(text)?
    } else {
        parse_csv(text)?
    };
    Ok(rows
        .into_iter()
        .map(|(label, row)| (label, row.and_then(NewFaq::validated)))
        .collect())
}

fn parse_json(text: &str) -> Result<Vec<Row>, FaqError> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| FaqError::Invalid(format!("the JSON is not valid: {e}")))?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let row = serde_json::from_value::<NewFaq>(item).map_err(|e| e.to_string());
            (format!("item {}", i + 1), row)
        })
        .collect())
}

fn parse_csv(text: &str) -> Result<Vec<Row>, FaqError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| FaqError::Invalid(format!("the CSV header cannot be read: {e}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(q), Some(a)) = (column("question"), column("answer")) else {
        return Err(FaqError::Invalid(
            "the CSV header must name the columns `question` and `answer`".into(),
        ));
    };
    let alt = column("alternatives");
    Ok(reader
        .records()
        .enumerate()
        .map(|(i, record)| {
            // Line numbers as a spreadsheet shows them: the header is line 1.
            let label = format!("line {}", i + 2);
            let row = record.map_err(|e| e.to_string()).map(|r| {
                let field = |i: usize| r.get(i).unwrap_or_default().to_string();
                NewFaq {
                    question: field(q),
                    answer: field(a),
                    alternatives: alt
                        .map(|i| field(i).split('|').map(str::to_string).collect())
                        .unwrap_or_default(),
                }
            });
            (label, row)
        })
        .collect())
}

/// Adds `faqs` in one transaction: all of them or none, and none past
/// the plan's `cap`.
pub async fn import(
    db: &Db,
    schema: &SchemaName,
    faqs: &[NewFaq],
    cap: Option<&Cap>,
) -> Result<usize, FaqError> {
    let tx = db.tenant(schema).await?;
    hold_room(&tx, schema, cap, faqs.len()).await?;
    let statement = tx
        .prepare("INSERT INTO faqs (question, answer, alternatives) VALUES ($1, $2, $3)")
        .await?;
    for faq in faqs {
        tx.execute(&statement, &[&faq.question, &faq.answer, &faq.alternatives])
            .await?;
    }
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(faqs.len())
}

const FAQ_COLUMNS: &str = "id, question, answer, alternatives, embedding IS NOT NULL, updated_at";

fn faq_from_row(row: &tokio_postgres::Row) -> Result<Faq, tokio_postgres::Error> {
    Ok(Faq {
        id: row.try_get(0)?,
        question: row.try_get(1)?,
        answer: row.try_get(2)?,
        alternatives: row.try_get(3)?,
        embedded: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

pub async fn get(db: &Db, schema: &SchemaName, id: i64) -> Result<Faq, FaqError> {
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {FAQ_COLUMNS} FROM faqs WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or(FaqError::NotFound(id))?;
    tx.commit().await?;
    Ok(faq_from_row(&row)?)
}

/// Room for `adding` more FAQs under the plan's `cap`, held until the
/// transaction ends.
async fn hold_room(
    tx: &TenantTx,
    schema: &SchemaName,
    cap: Option<&Cap>,
    adding: usize,
) -> Result<(), FaqError> {
    match cap {
        Some(cap) => Ok(cap
            .hold(
                tx,
                schema.as_str(),
                "SELECT count(*) FROM faqs",
                &[],
                adding,
            )
            .await?),
        None => Ok(()),
    }
}

/// Adds one FAQ (validated), unless the plan's `cap` is reached; its
/// vectors are made when the index is next built.
pub async fn create(
    db: &Db,
    schema: &SchemaName,
    faq: NewFaq,
    cap: Option<&Cap>,
) -> Result<Faq, FaqError> {
    let faq = faq.validated().map_err(FaqError::Invalid)?;
    let tx = db.tenant(schema).await?;
    hold_room(&tx, schema, cap, 1).await?;
    let row = tx
        .query_one(
            &format!("INSERT INTO faqs (question, answer, alternatives) VALUES ($1, $2, $3) RETURNING {FAQ_COLUMNS}"),
            &[&faq.question, &faq.answer, &faq.alternatives],
        )
        .await?;
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(faq_from_row(&row)?)
}

/// Replaces a FAQ's texts; its old vectors are dropped with them.
pub async fn update(db: &Db, schema: &SchemaName, id: i64, faq: NewFaq) -> Result<Faq, FaqError> {
    let faq = faq.validated().map_err(FaqError::Invalid)?;
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE faqs SET question = $2, answer = $3, alternatives = $4, embedding = NULL, \
                 model_id = NULL, updated_at = now() WHERE id = $1 RETURNING {FAQ_COLUMNS}"
            ),
            &[&id, &faq.question, &faq.answer, &faq.alternatives],
        )
        .await?
        .ok_or(FaqError::NotFound(id))?;
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(faq_from_row(&row)?)
}

/// Keeps a visitor's question as one more phrasing of FAQ `id` (a clarify
/// pick): unless the FAQ already has it or `MAX_ALTERNATIVES`. Its vectors
/// are remade and the index (and matcher) rebuilt on the change event.
/// Returns whether it was added.
pub async fn add_phrasing(
    db: &Db,
    schema: &SchemaName,
    id: i64,
    text: &str,
) -> Result<bool, FaqError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_QUESTION_CHARS {
        return Ok(false);
    }
    let limit = MAX_ALTERNATIVES as i32;
    let tx = db.tenant(schema).await?;
    let added = tx
        .execute(
            "UPDATE faqs SET alternatives = array_append(alternatives, $2), embedding = NULL, \
             model_id = NULL, updated_at = now() \
             WHERE id = $1 AND cardinality(alternatives) < $3 AND lower(question) <> lower($2) \
             AND NOT lower($2) = ANY (SELECT lower(a) FROM unnest(alternatives) a)",
            &[&id, &text, &limit],
        )
        .await?
        > 0;
    if added {
        ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    }
    tx.commit().await?;
    Ok(added)
}

/// A question a member filed under a FAQ (`assign`), and the FAQ after.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Assigned {
    /// False when the FAQ already had this wording (any case).
    pub added: bool,
    pub faq: Faq,
}

/// A wording checked as a phrasing: trimmed, 1 to `MAX_QUESTION_CHARS`.
fn phrasing_text(text: &str) -> Result<&str, FaqError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FaqError::Invalid("text is empty".into()));
    }
    if text.chars().count() > MAX_QUESTION_CHARS {
        return Err(FaqError::Invalid(format!(
            "text is longer than {MAX_QUESTION_CHARS} characters"
        )));
    }
    if text.contains('\0') {
        return Err(FaqError::Invalid(
            "text may not contain NUL characters".into(),
        ));
    }
    Ok(text)
}

/// "This question belongs to FAQ `id`": a member's correction. The
/// question becomes one more alternative phrasing of the FAQ (the owner
/// sees it there, and removes it with [`remove_phrasing`] or an edit);
/// its vectors are remade and the matcher retrained on the change event.
pub async fn assign(
    db: &Db,
    schema: &SchemaName,
    id: i64,
    text: &str,
) -> Result<Assigned, FaqError> {
    let text = phrasing_text(text)?;
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {FAQ_COLUMNS} FROM faqs WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await?
        .ok_or(FaqError::NotFound(id))?;
    let faq = faq_from_row(&row)?;
    let lower = text.to_lowercase();
    if faq.question.to_lowercase() == lower
        || faq.alternatives.iter().any(|a| a.to_lowercase() == lower)
    {
        tx.commit().await?;
        return Ok(Assigned { added: false, faq });
    }
    if faq.alternatives.len() >= MAX_ALTERNATIVES {
        return Err(FaqError::Invalid(format!(
            "FAQ {id} already has {MAX_ALTERNATIVES} alternative phrasings; remove one first"
        )));
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE faqs SET alternatives = array_append(alternatives, $2), embedding = NULL, \
                 model_id = NULL, updated_at = now() WHERE id = $1 RETURNING {FAQ_COLUMNS}"
            ),
            &[&id, &text],
        )
        .await?;
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(Assigned {
        added: true,
        faq: faq_from_row(&row)?,
    })
}

/// Takes a wording off FAQ `id`'s alternatives (any case): the owner's
/// undo of a learned or assigned phrasing. A wording the FAQ does not
/// have leaves its texts as they were.
pub async fn remove_phrasing(
    db: &Db,
    schema: &SchemaName,
    id: i64,
    text: &str,
) -> Result<Faq, FaqError> {
    let text = phrasing_text(text)?;
    let tx = db.tenant(schema).await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE faqs SET alternatives = ARRAY(SELECT a FROM unnest(alternatives) \
                 WITH ORDINALITY AS t(a, n) WHERE lower(a) <> lower($2) ORDER BY n), embedding = NULL, model_id = NULL, updated_at = now() \
                 WHERE id = $1 RETURNING {FAQ_COLUMNS}"
            ),
            &[&id, &text],
        )
        .await?
        .ok_or(FaqError::NotFound(id))?;
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(faq_from_row(&row)?)
}

/// Deletes a FAQ; messages that it answered keep their text, without the link.
pub async fn delete(db: &Db, schema: &SchemaName, id: i64) -> Result<(), FaqError> {
    let tx = db.tenant(schema).await?;
    if tx.execute("DELETE FROM faqs WHERE id = $1", &[&id]).await? == 0 {
        return Err(FaqError::NotFound(id));
    }
    ChangeEvent::Faqs(schema.clone()).notify(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// How many FAQs the tenant has.
pub async fn count(db: &Db, schema: &SchemaName) -> Result<i64, FaqError> {
    let tx = db.tenant(schema).await?;
    let count: i64 = tx
        .query_one("SELECT count(*) FROM faqs", &[])
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(count)
}

pub async fn list(db: &Db, schema: &SchemaName) -> Result<Vec<Faq>, FaqError> {
    let tx = db.tenant(schema).await?;
    let rows = tx
        .query(&format!("SELECT {FAQ_COLUMNS} FROM faqs ORDER BY id"), &[])
        .await?;
    tx.commit().await?;
    Ok(rows.iter().map(faq_from_row).collect::<Result<_, _>>()?)
}

/// The texts a FAQ is matched by: its question, its alternative phrasings,
/// and its answer. Measured on tests/fixtures/faq_eval.json (benches/
/// threshold.rs): the answer row lifts paraphrases of the answer's words
/// above the threshold (35/40 answered right at 0.40, against 33/40 with
/// the question alone) and no off-topic question comes near.
pub fn phrasings(question: &str, alternatives: &[String], answer: &str) -> Vec<String> {
    std::iter::once(question.to_string())
        .chain(alternatives.iter().cloned())
        .chain(std::iter::once(answer.to_string()))
        .collect()
}

/// Which of a FAQ's texts matched a question: one of `phrasings`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhrasingKind {
    Question,
    Alternative,
    Answer,
}

/// The text at `position` of the FAQ's `phrasings` (the index's vector
/// order), and which kind it is; None past the end.
pub fn phrasing_at(faq: &Faq, position: usize) -> Option<(PhrasingKind, &str)> {
    match position {
        0 => Some((PhrasingKind::Question, faq.question.as_str())),
        n if n <= faq.alternatives.len() => faq
            .alternatives
            .get(n - 1)
            .map(|a| (PhrasingKind::Alternative, a.as_str())),
        n if n == faq.alternatives.len() + 1 => Some((PhrasingKind::Answer, faq.answer.as_str())),
        _ => None,
    }
}

/// Reads the tenant's FAQs and their vectors, embeds those that have none
/// or were made by another model, writes those back, and builds the index
/// with the tenant's learned matcher: the stored one when it was trained on
/// these FAQs, else one trained now (off the async runtime) and stored.
/// The server does not wait for the training: `load_index_deferred`.
pub async fn load_index(
    db: &Db,
    schema: &SchemaName,
    queue: &EmbeddingQueue,
) -> Result<FaqIndex, FaqError> {
    load_index_with(db, schema, queue, MatcherSettings::default()).await
}

/// `load_index` with other matcher settings (benches/quality.rs tunes them).
pub async fn load_index_with(
    db: &Db,
    schema: &SchemaName,
    queue: &EmbeddingQueue,
    settings: MatcherSettings,
) -> Result<FaqIndex, FaqError> {
    let loaded = load_index_learning(db, schema, queue, settings).await?;
    let mut index = loaded.index;
    if let MatcherSource::Pending(pending) = loaded.matcher {
        train_into(db, &mut index, pending).await?;
    }
    Ok(index)
}

/// Trains and stores the pending head, and gives it to `index` (built
/// from the same FAQs) at once.
pub async fn train_into(db: &Db, index: &mut FaqIndex, pending: Pending) -> Result<(), FaqError> {
    let (weights, pending) = train(db, pending).await?;
    let matcher = pending.set.into_matcher(&weights).map_err(matcher_failed)?;
    index.attach(matcher).map_err(matcher_failed)
}

/// Where an index's learned matcher came from.
#[derive(Debug)]
pub enum MatcherSource {
    /// Too little data for one: the nearest phrasing ranks.
    Rule,
    /// Weights stored before, trained on these same FAQs.
    Stored,
    /// None fits yet: the nearest phrasing ranks until `train` has made
    /// and stored one and the index is built again.
    Pending(Pending),
}

/// A head to train for a tenant: what on, and what it will be known by.
#[derive(Debug)]
pub struct Pending {
    pub schema: SchemaName,
    pub model_id: String,
    pub fingerprint: Vec<u8>,
    pub set: TrainingSet,
}

/// A tenant's index and how it got its matcher.
#[derive(Debug)]
pub struct LoadedIndex {
    pub index: FaqIndex,
    pub matcher: MatcherSource,
}

/// The index with the stored matcher if it fits these FAQs, else without
/// one and what to train (the server's way: the chat never waits for a fit).
pub async fn load_index_deferred(
    db: &Db,
    schema: &SchemaName,
    queue: &EmbeddingQueue,
) -> Result<LoadedIndex, FaqError> {
    load_index_learning(db, schema, queue, MatcherSettings::default()).await
}

async fn load_index_learning(
    db: &Db,
    schema: &SchemaName,
    queue: &EmbeddingQueue,
    settings: MatcherSettings,
) -> Result<LoadedIndex, FaqError> {
    let dim = queue.dim();
    let model_id = queue.model_id().to_string();
    let loaded = load_vectors(db, schema, queue).await?;
    let fingerprint = matcher_store::fingerprint(
        &model_id,
        dim,
        &settings,
        loaded
            .iter()
            .map(|(entry, texts)| (entry.faq.id, texts.as_slice())),
    );
    let entries: Vec<FaqVectors> = loaded.into_iter().map(|(entry, _)| entry).collect();
    let classes = entries.len();
    let stored = if classes > 0 {
        matcher_store::load(db, schema, &model_id, &fingerprint, classes, dim).await?
    } else {
        None
    };
    let had_weights = stored.is_some();
    // Building (and making the head from weights) is CPU work: keep it off
    // the runtime's threads.
    let (index, set) = tokio::task::spawn_blocking(move || {
        FaqIndex::build_learning(dim, entries, settings, Learning::Stored(stored))
    })
    .await
    .map_err(|e| FaqError::Engine(EngineError::Failed(format!("the index build stopped: {e}"))))?;
    let matcher = match set {
        Some(set) => MatcherSource::Pending(Pending {
            schema: schema.clone(),
            model_id,
            fingerprint,
            set,
        }),
        None if had_weights && index.has_matcher() => MatcherSource::Stored,
        None => MatcherSource::Rule,
    };
    Ok(LoadedIndex { index, matcher })
}

/// Fits the pending head (off the async runtime) and stores its weights,
/// which tells every server to build the tenant's index again; returns the
/// weights and the pending head back.
pub async fn train(db: &Db, pending: Pending) -> Result<(Vec<f32>, Pending), FaqError> {
    let started = std::time::Instant::now();
    let (weights, pending) = tokio::task::spawn_blocking(move || (pending.set.fit(), pending))
        .await
        .map_err(|e| FaqError::Engine(EngineError::Failed(format!("the fit stopped: {e}"))))?;
    let weights = weights.map_err(matcher_failed)?;
    matcher_store::save(
        db,
        &pending.schema,
        &pending.model_id,
        &pending.fingerprint,
        pending.set.classes,
        pending.set.dim,
        &weights,
    )
    .await?;
    tracing::info!(
        schema = %pending.schema,
        faqs = pending.set.classes,
        took_ms = started.elapsed().as_millis() as u64,
        "trained and stored the matcher"
    );
    Ok((weights, pending))
}

fn matcher_failed(e: MatcherError) -> FaqError {
    FaqError::Engine(EngineError::Failed(format!(
        "the matcher could not be trained: {e}"
    )))
}

/// Every FAQ with its vectors, one per text of [`phrasings`] (the texts
/// beside them, in the same order): the stored ones when the current model
/// made them, the others embedded now and written back.
pub async fn load_vectors(
    db: &Db,
    schema: &SchemaName,
    queue: &EmbeddingQueue,
) -> Result<Vec<(FaqVectors, Vec<String>)>, FaqError> {
    struct Stored {
        faq: IndexedFaq,
        alternatives: Vec<String>,
        embedding: Option<Vec<f32>>,
        model_id: Option<String>,
        updated_at: DateTime<Utc>,
    }
    let dim = queue.dim();
    let stored: Vec<Stored> = {
        let tx = db.tenant(schema).await?;
        let rows = tx
            .query(
                "SELECT id, question, answer, alternatives, embedding, model_id, updated_at FROM faqs ORDER BY id",
                &[],
            )
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(Stored {
                    faq: IndexedFaq {
                        id: row.try_get(0)?,
                        question: row.try_get(1)?,
                        answer: row.try_get(2)?,
                    },
                    alternatives: row.try_get(3)?,
                    embedding: row.try_get(4)?,
                    model_id: row.try_get(5)?,
                    updated_at: row.try_get(6)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()?
    };

    let mut entries = Vec::with_capacity(stored.len());
    // FAQs whose vectors must be made: (position in entries, id, updated_at, texts).
    let mut stale: Vec<(usize, i64, DateTime<Utc>, usize)> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for faq in stored {
        let phrasings = phrasings(&faq.faq.question, &faq.alternatives, &faq.faq.answer);
        let usable = faq.model_id.as_deref() == Some(queue.model_id())
            && faq
                .embedding
                .as_ref()
                .is_some_and(|e| e.len() == phrasings.len() * dim);
        let vectors: Vec<Vec<f32>> = match (usable, faq.embedding) {
            (true, Some(flat)) => flat.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
            _ => {
                stale.push((entries.len(), faq.faq.id, faq.updated_at, phrasings.len()));
                texts.extend(phrasings.iter().cloned());
                Vec::new()
            }
        };
        entries.push((
            FaqVectors {
                faq: faq.faq,
                vectors,
            },
            phrasings,
        ));
    }

    if !stale.is_empty() {
        // Full batches, one job each: the model works at batch speed, and
        // visitors' questions still get in between two jobs.
        let mut made = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(queue.max_batch()) {
            made.extend(queue.embed(chunk.to_vec()).await?);
        }
        let mut made = made.into_iter();
        let mut fresh = Vec::with_capacity(stale.len());
        for (at, id, updated_at, count) in stale {
            let vectors: Vec<Vec<f32>> = made.by_ref().take(count).collect();
            fresh.push((id, updated_at, vectors.concat()));
            entries[at].0.vectors = vectors;
        }
        store_vectors(db, schema, queue.model_id(), &fresh).await?;
    }
    Ok(entries)
}

/// Saves freshly made vectors, unless the FAQ changed meanwhile (then its
/// change event rebuilds the index anyway).
async fn store_vectors(
    db: &Db,
    schema: &SchemaName,
    model_id: &str,
    fresh: &[(i64, DateTime<Utc>, Vec<f32>)],
) -> Result<(), FaqError> {
    let tx = db.tenant(schema).await?;
    let statement = tx
        .prepare("UPDATE faqs SET embedding = $2, model_id = $3 WHERE id = $1 AND updated_at = $4")
        .await?;
    for (id, updated_at, flat) in fresh {
        tx.execute(&statement, &[id, flat, &model_id, updated_at])
            .await?;
    }
    tx.commit().await?;
    tracing::info!(schema = %schema, count = fresh.len(), model_id, "embedded FAQs");
    Ok(())
}

// --- The rows whole, as a backup carries them ---

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqRow {
    pub id: i64,
    pub question: String,
    pub answer: String,
    pub alternatives: Vec<String>,
    pub embedding: Option<Vec<f32>>,
    pub model_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every FAQ row, read inside a tenant's (snapshot) transaction.
pub async fn export_in(tx: &TenantTx) -> Result<Vec<FaqRow>, tokio_postgres::Error> {
    tx.query(
        "SELECT id, question, answer, alternatives, embedding, model_id, created_at, \
                    updated_at FROM faqs ORDER BY id",
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(FaqRow {
            id: row.try_get(0)?,
            question: row.try_get(1)?,
            answer: row.try_get(2)?,
            alternatives: row.try_get(3)?,
            embedding: row.try_get(4)?,
            model_id: row.try_get(5)?,
            created_at: row.try_get(6)?,
            updated_at: row.try_get(7)?,
        })
    })
    .collect()
}

/// Writes restored FAQ rows, ids and all, into a new tenant.
pub async fn restore_in(tx: &TenantTx, faqs: &[FaqRow]) -> Result<(), tokio_postgres::Error> {
    let insert_faq = tx
        .prepare(
            "INSERT INTO faqs (id, question, answer, alternatives, embedding, model_id, \
                               created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    for faq in faqs {
        tx.execute(
            &insert_faq,
            &[
                &faq.id,
                &faq.question,
                &faq.answer,
                &faq.alternatives,
                &faq.embedding,
                &faq.model_id,
                &faq.created_at,
                &faq.updated_at,
            ],
        )
        .await?;
    }

    // The rows came with their ids, so the sequence never moved: the next
    // FAQ written by the app must come after the largest restored id.
    // Two queries, not one: on Citus a query that reads a tenant table runs
    // on its worker, where the sequence is not the coordinator's.
    let next: i64 = tx
        .query_one("SELECT coalesce(max(id), 0) + 1 FROM faqs", &[])
        .await?
        .try_get(0)?;
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('faqs', 'id'), $1, false)",
        &[&next],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_csv_imports_parse() {
        let json = br#"[{"question": " Hours? ", "answer": "9 to 5"}, {"question": "Where?", "answer": "Here", "alternatives": ["Location?"]}]"#;
        let faqs = parse_import(json).unwrap();
        assert_eq!(faqs[0].question, "Hours?");
        assert_eq!(faqs[1].alternatives, vec!["Location?"]);

        let csv = "Question,Answer,alternatives\n\"Hours, please?\",9 to 5,When are you open?|Opening times\nWhere?,Here,\n";
        let faqs = parse_import(csv.as_bytes()).unwrap();
        assert_eq!(faqs.len(), 2);
        assert_eq!(faqs[0].question, "Hours, please?");
        assert_eq!(faqs[0].alternatives.len(), 2);
        assert!(faqs[1].alternatives.is_empty());
    }

    #[test]
    fn every_bad_row_is_named() {
        let csv = "question,answer\nok?,fine\n,no question\nno answer,\n";
        let err = parse_import(csv.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("line 4") && !err.contains("line 2"),
            "{err}"
        );
        let json = br#"[{"question": "a", "answer": "b"}, {"question": "a"}, {"question": "a", "answer": "b", "extra": 1}]"#;
        let err = parse_import(json).unwrap_err().to_string();
        assert!(
            err.contains("item 2") && err.contains("item 3") && err.contains("extra"),
            "{err}"
        );
        assert!(parse_import(b"question,answer\n").is_err(), "no rows");
        assert!(
            parse_import(b"q,a\nx,y\n")
                .unwrap_err()
                .to_string()
                .contains("`question`")
        );
        assert!(parse_import(b"[{").is_err());
        assert!(parse_import(&[0xff, 0xfe]).is_err());
    }
}
