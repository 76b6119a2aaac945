//! A tenant's numbers for the last N days: conversations, messages,
//! answered and fallback rates, a per-day series, and the questions the bot
//! could not answer, grouped by meaning, so the client sees which FAQ to
//! write next.

use crate::db::Db;
use chrono::NaiveDate;
use serde::Serialize;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::db::DbError;
use crate::engine::question_cache::{Normalise, QuestionCache};
use crate::engine::worker::EmbeddingQueue;
use crate::tenancy::SchemaName;

/// Unanswered questions looked at, newest first.
const MAX_UNANSWERED: i64 = 500;
/// Questions this close (cosine) ask the same thing.
const SAME_MEANING: f32 = 0.75;
const TOP_GROUPS: usize = 10;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Day {
    pub date: NaiveDate,
    pub conversations: i64,
    pub messages: i64,
    pub answered: i64,
    pub fallback: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct UnansweredGroup {
    /// The group's most recent wording.
    pub question: String,
    pub count: usize,
    /// Up to three other wordings.
    pub examples: Vec<String>,
}

/// Visitors' thumbs on the bot's answers (the widget's 👍/👎), given in the
/// period.
#[derive(Debug, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Feedback {
    pub thumbs_up: i64,
    pub thumbs_down: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AnalyticsSummary)]
pub struct Summary {
    pub days: i64,
    pub conversations: i64,
    pub messages: i64,
    pub answered: i64,
    pub fallback: i64,
    pub answered_rate: f64,
    pub fallback_rate: f64,
    pub per_day: Vec<Day>,
    pub feedback: Feedback,
    pub top_unanswered: Vec<UnansweredGroup>,
}

/// The embeddings of the unanswered questions grouped before, per tenant,
/// bounded in bytes (`chat.summary_cache_bytes`). A summary reads its
/// numbers and questions fresh every time, and embeds only the questions
/// this cache does not hold: a repeated view, or another range over the
/// same questions, costs no inference, and a new fallback costs one text
/// (issue 16, item 4: every view embedded up to 500 questions again).
pub struct SummaryVectors(QuestionCache);

impl SummaryVectors {
    pub fn new(capacity_bytes: usize) -> Self {
        Self(QuestionCache::new(capacity_bytes, Normalise::Whitespace))
    }

    /// Tenants changed (one may be gone): start over.
    pub fn clear(&self) {
        self.0.clear();
    }

    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }
}

/// What grouping by meaning needs: the model's queue and the vectors
/// embedded before.
#[derive(Clone, Copy)]
pub struct Grouping<'a> {
    pub queue: &'a EmbeddingQueue,
    pub vectors: &'a SummaryVectors,
}

pub async fn summary(
    db: &Db,
    schema: &SchemaName,
    days: i64,
    grouping: Option<Grouping<'_>>,
) -> Result<Summary, DbError> {
    let tx = db.tenant(schema).await?;
    let since = "now() - make_interval(days => $1::int)";
    let days_param = i32::try_from(days).unwrap_or(i32::MAX);
    let rows = tx
        .query(
            &format!(
                // One pass over each table, grouped by day: counting per
                // day with a subquery scanned the messages once per day and
                // column (55 s for a year of 100,000 messages).
                "WITH c AS (SELECT started_at::date AS day, count(*) AS n FROM conversations \
                   WHERE started_at >= ({since})::date GROUP BY 1), \
                 m AS (SELECT created_at::date AS day, count(*) AS n, \
                   count(*) FILTER (WHERE role = 'bot' AND faq_id IS NOT NULL) AS answered, \
                   count(*) FILTER (WHERE role = 'bot' AND faq_id IS NULL) AS fallback \
                   FROM messages WHERE created_at >= ({since})::date GROUP BY 1) \
                 SELECT d::date, coalesce(c.n, 0), coalesce(m.n, 0), coalesce(m.answered, 0), \
                   coalesce(m.fallback, 0) \
                 FROM generate_series(({since})::date, now()::date, interval '1 day') d \
                 LEFT JOIN c ON c.day = d::date LEFT JOIN m ON m.day = d::date ORDER BY 1"
            ),
            &[&days_param],
        )
        .await?;
    let per_day: Vec<Day> = rows
        .iter()
        .map(|r| {
            Ok(Day {
                date: r.try_get(0)?,
                conversations: r.try_get(1)?,
                messages: r.try_get(2)?,
                answered: r.try_get(3)?,
                fallback: r.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let unanswered: Vec<String> = tx
        .query(
            &format!(
                "SELECT v.text FROM messages b \
                 CROSS JOIN LATERAL (SELECT text FROM messages v WHERE v.conversation_id = b.conversation_id \
                   AND v.id < b.id AND v.role = 'visitor' ORDER BY v.id DESC LIMIT 1) v \
                 WHERE b.role = 'bot' AND b.faq_id IS NULL AND b.created_at >= {since} \
                 ORDER BY b.id DESC LIMIT {MAX_UNANSWERED}"
            ),
            &[&days_param],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let row = tx
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE helpful), count(*) FILTER (WHERE NOT helpful) \
                 FROM feedback WHERE updated_at >= {since}"
            ),
            &[&days_param],
        )
        .await?;
    let feedback = Feedback {
        thumbs_up: row.try_get(0)?,
        thumbs_down: row.try_get(1)?,
    };
    tx.commit().await?;

    let sum = |f: fn(&Day) -> i64| per_day.iter().map(f).sum::<i64>();
    let (answered, fallback) = (sum(|d| d.answered), sum(|d| d.fallback));
    let replies = (answered + fallback).max(1) as f64;
    // Without the model (still loading), group identical wordings only.
    let vectors = match grouping {
        Some(grouping) => embed_missing(grouping, schema, &unanswered).await,
        None => None,
    };
    Ok(Summary {
        days,
        conversations: sum(|d| d.conversations),
        messages: sum(|d| d.messages),
        answered,
        fallback,
        answered_rate: answered as f64 / replies,
        fallback_rate: fallback as f64 / replies,
        per_day,
        feedback,
        top_unanswered: group_by_meaning(&unanswered, vectors.as_deref()),
    })
}

/// Texts per inference job when grouping unanswered questions.
const EMBED_CHUNK: usize = 8;

/// The vectors of `texts`: from the cache when it holds them, the rest
/// embedded a few at a time, one job after another (each distinct text
/// once). The worker takes jobs in order and finishes one before the next,
/// so 500 questions as one job made every tenant's visitors wait for all
/// of them (issue 16: 27 s); as small jobs, a chat question queued
/// meanwhile waits for one chunk.
async fn embed_missing(
    grouping: Grouping<'_>,
    schema: &SchemaName,
    texts: &[String],
) -> Option<Vec<Vec<f32>>> {
    let Grouping { queue, vectors } = grouping;
    let model_id = queue.model_id();
    let mut known: HashMap<&str, Arc<[f32]>> = HashMap::new();
    let mut missing: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for text in texts {
        if !seen.insert(text.as_str()) {
            continue;
        }
        match vectors.0.get(schema, model_id, text) {
            Some(vector) => {
                known.insert(text, vector);
            }
            None => missing.push(text),
        }
    }
    for chunk in missing.chunks(EMBED_CHUNK) {
        let embedded = queue
            .embed(chunk.iter().map(|t| t.to_string()).collect())
            .await
            .ok()?;
        for (text, vector) in chunk.iter().zip(embedded) {
            let vector: Arc<[f32]> = Arc::from(vector);
            vectors
                .0
                .insert(schema, model_id, text, Arc::clone(&vector));
            known.insert(text, vector);
        }
    }
    texts
        .iter()
        .map(|t| known.get(t.as_str()).map(|v| v.to_vec()))
        .collect()
}

/// Greedy grouping, newest question first: each joins the first group whose
/// first question is at least `SAME_MEANING` close, else starts its own.
pub fn group_by_meaning(
    questions: &[String],
    vectors: Option<&[Vec<f32>]>,
) -> Vec<UnansweredGroup> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, question) in questions.iter().enumerate() {
        let same = |head: usize| match vectors {
            Some(v) => v[head].iter().zip(&v[i]).map(|(a, b)| a * b).sum::<f32>() >= SAME_MEANING,
            None => questions[head].trim().eq_ignore_ascii_case(question.trim()),
        };
        match groups.iter_mut().find(|(head, _)| same(*head)) {
            Some((_, members)) => members.push(i),
            None => groups.push((i, vec![i])),
        }
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    groups
        .into_iter()
        .take(TOP_GROUPS)
        .map(|(head, members)| {
            let mut examples: Vec<String> = Vec::new();
            for &m in &members[1..] {
                if examples.len() < 3
                    && questions[m] != questions[head]
                    && !examples.contains(&questions[m])
                {
                    examples.push(questions[m].clone());
                }
            }
            UnansweredGroup {
                question: questions[head].clone(),
                count: members.len(),
                examples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_questions_group_and_the_biggest_group_comes_first() {
        let q: Vec<String> = ["bikes?", "tents?", "bicycles?", "cycles?"]
            .map(String::from)
            .to_vec();
        let v = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![0.9, 0.436],
            vec![0.8, 0.6],
        ];
        let groups = group_by_meaning(&q, Some(&v));
        assert_eq!(groups[0].question, "bikes?");
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].examples, vec!["bicycles?", "cycles?"]);
        assert_eq!(
            groups[1],
            UnansweredGroup {
                question: "tents?".into(),
                count: 1,
                examples: vec![]
            }
        );
        let same_text = group_by_meaning(&["Hi".into(), "hi ".into()], None);
        assert_eq!(same_text[0].count, 2);
    }
}
