//! `chatter eval FILE`: answer quality on a labelled data set (`eval`),
//! with the real model and the chat's own decision, storing nothing. Every
//! text is embedded once for all the K and seeds asked for; `--vectors`
//! keeps the embeddings in a file so that a second run needs no inference.
//! `chatter eval SCHEMA FILE`: an owner's labelled questions asked of a
//! live tenant (`tenant_eval`), storing no conversation.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CliError;
use super::args::EvalArgs;
use super::ask::{one_off_answerer, ready_engine};
use super::output::{one_line, print_json};
use crate::bot_config::{BotConfig, DEFAULT_CAUTION, DEFAULT_MATCH_THRESHOLD};
use crate::config::Settings;
use crate::db::Database;
use crate::engine::index::{FaqIndex, FaqVectors, IndexedFaq};
use crate::engine::worker::EmbeddingQueue;
use crate::eval::{self, Asked, Dataset, Plan, Report, share};
use crate::faq;
use crate::tenancy::provision;
use crate::tenant_eval::{self, TenantEvalError, TenantReport};

/// `--caution`'s default list (tenant mode refuses any other).
const DEFAULT_CAUTIONS: [f32; 4] = [0.5, 0.3, 0.7, 0.9];

/// Embeddings saved by an earlier run, for one model.
#[derive(Default, Serialize, Deserialize)]
struct VectorFile {
    model_id: String,
    vectors: HashMap<String, Vec<f32>>,
}

pub(super) async fn eval_command(settings: &Settings, args: EvalArgs) -> Result<(), CliError> {
    let bad = |what: &str| CliError::Usage(format!("{what} must be between 0 and 1"));
    if args.caution.iter().any(|c| !(0.0..=1.0).contains(c)) {
        return Err(bad("--caution"));
    }
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err(bad("--threshold"));
    }
    let file = Path::new(&args.first);
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
    let data = Dataset::from_json(&bytes).map_err(|e| CliError::Usage(e.to_string()))?;
    let seeds: Vec<Option<u64>> = if args.seed.is_empty() {
        vec![None]
    } else {
        args.seed.iter().copied().map(Some).collect()
    };
    let mut plans = Vec::new();
    for &k in &args.k {
        for &seed in &seeds {
            let plan = Plan {
                k,
                seed,
                heldout: args.heldout,
                limit: args.limit,
            };
            let prepared =
                eval::prepare(&data, &plan).map_err(|e| CliError::Usage(e.to_string()))?;
            plans.push((plan, prepared));
        }
    }

    // Checked before the model loads: a bad file fails at once.
    let engine = ready_engine(settings).await?;
    let queue = engine.queue()?;
    let mut texts: Vec<&str> = Vec::new();
    let mut phrasings: Vec<Vec<Vec<String>>> = Vec::new();
    for (_, prepared) in &plans {
        let of_plan: Vec<Vec<String>> = prepared
            .faqs
            .iter()
            .map(|f| faq::phrasings(&f.question, &f.alternatives, &f.answer))
            .collect();
        phrasings.push(of_plan);
        texts.extend(prepared.questions());
    }
    let all: Vec<&str> = texts
        .into_iter()
        .chain(phrasings.iter().flatten().flatten().map(String::as_str))
        .collect();
    let vectors = embed_cached(&queue, &all, args.vectors.as_deref()).await?;

    let bot = BotConfig {
        bot_name: String::new(),
        greeting: String::new(),
        fallback_reply: String::new(),
        match_threshold: args.threshold,
        caution: DEFAULT_CAUTION,
        theme: serde_json::json!({}),
        allowed_origins: Vec::new(),
        unavailable_reply: String::new(),
        show_branding: true,
    };
    let mut reports = Vec::with_capacity(plans.len());
    for ((plan, prepared), phrasings) in plans.iter().zip(&phrasings) {
        let entries: Vec<FaqVectors> = prepared
            .faqs
            .iter()
            .zip(phrasings)
            .enumerate()
            .map(|(i, (f, texts))| FaqVectors {
                faq: IndexedFaq {
                    id: eval::faq_id(i),
                    question: f.question.clone(),
                    answer: f.answer.clone(),
                },
                vectors: texts.iter().map(|t| vectors[t.as_str()].clone()).collect(),
            })
            .collect();
        let dim = queue.dim();
        let index = tokio::task::spawn_blocking(move || FaqIndex::build(dim, entries))
            .await
            .map_err(|e| CliError::Failed(format!("the index build stopped: {e}")))?;
        let lookup = |q: &str| vectors[q].clone();
        let in_scope: Vec<Vec<f32>> = prepared.in_scope.iter().map(|(q, _)| lookup(q)).collect();
        let out_of_scope: Vec<Vec<f32>> = prepared.out_of_scope.iter().map(|q| lookup(q)).collect();
        let asked = Asked {
            prepared,
            in_scope: &in_scope,
            out_of_scope: &out_of_scope,
        };
        reports.push(eval::evaluate(
            &index,
            &asked,
            &bot,
            &settings.chat,
            plan,
            &args.caution,
        ));
    }
    if args.json {
        print_json(&reports)
    } else {
        for report in &reports {
            print_report(report);
        }
        Ok(())
    }
}

/// `chatter eval SCHEMA FILE`: the tenant's own settings answer, so the
/// data set's options are refused rather than ignored.
pub(super) async fn tenant_eval_command(
    db: &Database,
    settings: &Settings,
    args: EvalArgs,
) -> Result<(), CliError> {
    let Some(file) = args.file.as_deref() else {
        return Err(CliError::Usage(
            "chatter eval SCHEMA FILE needs a FILE".into(),
        ));
    };
    let dataset_only = [
        ("--k", args.k != [10]),
        ("--seed", !args.seed.is_empty()),
        ("--heldout", args.heldout),
        ("--limit", args.limit.is_some()),
        ("--caution", args.caution != DEFAULT_CAUTIONS),
        ("--threshold", args.threshold != DEFAULT_MATCH_THRESHOLD),
        ("--vectors", args.vectors.is_some()),
    ];
    if let Some((flag, _)) = dataset_only.iter().find(|(_, given)| *given) {
        return Err(CliError::Usage(format!(
            "{flag} is for a data set (chatter eval FILE); a tenant is asked with its own settings"
        )));
    }
    let schema = provision::existing_tenant(db.db(), &args.first).await?;
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
    let bad = |e: TenantEvalError| CliError::Usage(format!("{}: {e}", file.display()));
    let items = tenant_eval::parse(&bytes).map_err(bad)?;
    let known = match tenant_eval::check(db.db(), &schema, &items, &settings.chat).await {
        Ok(known) => known,
        Err(TenantEvalError::Faq(e)) => return Err(e.into()),
        Err(e) => return Err(bad(e)),
    };
    let answerer = one_off_answerer(db, settings).await?;
    let report = match tenant_eval::run(&answerer, &schema, &items, &known).await {
        Ok(report) => report,
        Err(e @ (TenantEvalError::Line { .. } | TenantEvalError::File(_))) => return Err(bad(e)),
        Err(TenantEvalError::Chat(e)) => return Err(e.into()),
        Err(TenantEvalError::Faq(e)) => return Err(e.into()),
    };
    if args.json {
        print_json(&report)
    } else {
        print_tenant_report(&report);
        Ok(())
    }
}

fn print_tenant_report(r: &TenantReport) {
    let (t, o) = (&r.in_scope, &r.out_of_scope);
    println!(
        "{}: {} FAQs (learned matcher: {}), threshold {:.2}, caution {:.2}",
        r.schema,
        r.faqs,
        if r.learned_matcher { "yes" } else { "no" },
        r.threshold,
        r.caution
    );
    println!(
        "  {} questions with a FAQ: right {} ({:.1}%), wrong {} ({:.1}%), \
         did-you-mean with the right one {}, without it {}, fallback {}; resolved in one step {:.1}%",
        t.total(),
        t.right,
        r.right_percent,
        t.wrong,
        r.wrong_percent,
        t.clarify_right,
        t.clarify_other,
        t.fallback,
        r.resolved_percent
    );
    println!(
        "  {} questions labelled none: answered {} ({:.1}%), did-you-mean {}, fallback {}",
        o.total(),
        o.wrong,
        r.out_of_scope_answered_percent,
        o.clarify_other,
        o.fallback
    );
    if !r.confusions.is_empty() {
        println!("  worst confusions (meant → answered):");
        for c in &r.confusions {
            let meant = match (c.expected, &c.expected_question) {
                (Some(id), Some(q)) => format!("#{id} {}", one_line(q, 40)),
                _ => "none".to_string(),
            };
            println!(
                "    {:>3} × {meant} → #{} {}   e.g. \"{}\"",
                c.count,
                c.answered,
                one_line(&c.answered_question, 40),
                one_line(&c.example, 60)
            );
        }
    }
}

/// The vector of every text, from `cache` when it has it (same model),
/// the rest embedded now in full batches and saved back to `cache`.
async fn embed_cached<'t>(
    queue: &EmbeddingQueue,
    texts: &[&'t str],
    cache: Option<&Path>,
) -> Result<HashMap<&'t str, Vec<f32>>, CliError> {
    let mut saved: VectorFile = match cache {
        Some(path) if path.exists() => {
            let bytes = std::fs::read(path)
                .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))?;
            serde_json::from_slice(&bytes).map_err(|e| {
                CliError::Failed(format!("{} is not a vectors file: {e}", path.display()))
            })?
        }
        _ => VectorFile::default(),
    };
    if saved.model_id != queue.model_id() {
        saved = VectorFile {
            model_id: queue.model_id().to_string(),
            vectors: HashMap::new(),
        };
    }
    let mut out: HashMap<&'t str, Vec<f32>> = HashMap::with_capacity(texts.len());
    let mut missing: Vec<&'t str> = Vec::new();
    for &text in texts {
        if out.contains_key(text) || missing.contains(&text) {
            continue;
        }
        match saved.vectors.get(text) {
            Some(v) if v.len() == queue.dim() => {
                out.insert(text, v.clone());
            }
            _ => missing.push(text),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    eprintln!("embedding {} texts…", missing.len());
    for chunk in missing.chunks(queue.max_batch()) {
        let made = queue
            .embed(chunk.iter().map(|t| t.to_string()).collect())
            .await?;
        for (text, vector) in chunk.iter().zip(made) {
            saved.vectors.insert(text.to_string(), vector.clone());
            out.insert(text, vector);
        }
    }
    if let Some(path) = cache {
        let bytes = serde_json::to_vec(&saved).map_err(|e| CliError::Failed(e.to_string()))?;
        std::fs::write(path, bytes)
            .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(out)
}

fn print_report(r: &Report) {
    let seed = r
        .seed
        .map_or("file order".to_string(), |s| format!("seed {s}"));
    println!(
        "K = {}, {seed}{}: {} FAQs (learned matcher: {}), {} in-scope and {} out-of-scope questions, threshold {:.2}",
        r.k,
        if r.heldout {
            ", held-out questions"
        } else {
            ""
        },
        r.faqs,
        if r.learned_matcher { "yes" } else { "no" },
        r.in_scope_questions,
        r.out_of_scope_questions,
        r.threshold,
    );
    println!(
        "  top-1 {:.1}%  top-3 {:.1}%  (threshold off)",
        r.top1, r.top3
    );
    println!(
        "  {:>7} | {:>6} {:>6} {:>9} {:>9} {:>8} {:>8} | {:>8} {:>7} {:>8}",
        "caution",
        "right",
        "wrong",
        "clarify+",
        "clarify-",
        "fallback",
        "resolved",
        "OOS ans",
        "OOS clr",
        "OOS fb",
    );
    for level in &r.levels {
        let (t, o) = (&level.in_scope, &level.out_of_scope);
        let (n, m) = (t.total(), o.total());
        println!(
            "  {:>7} | {:>5.1}% {:>5.1}% {:>8.1}% {:>8.1}% {:>7.1}% {:>7.1}% | {:>7.1}% {:>6.1}% {:>7.1}%",
            format!(
                "{:.2}{}",
                level.caution,
                if level.caution == DEFAULT_CAUTION {
                    "*"
                } else {
                    ""
                }
            ),
            share(t.right, n),
            share(t.wrong, n),
            share(t.clarify_right, n),
            share(t.clarify_other, n),
            share(t.fallback, n),
            share(t.resolved(), n),
            share(o.wrong, m),
            share(o.clarify_other, m),
            share(o.fallback, m),
        );
    }
    println!(
        "  (* the default caution; clarify+: the right FAQ among the choices; threshold {} by default)",
        DEFAULT_MATCH_THRESHOLD
    );
    if !r.confusions.is_empty() {
        println!("  most frequent wrong answers (first caution level):");
        for c in &r.confusions {
            println!(
                "    {:>3} × {} → {}   e.g. \"{}\"",
                c.count,
                c.expected,
                c.answered,
                one_line(&c.example, 60)
            );
        }
    }
    println!();
}
