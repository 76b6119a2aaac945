//! A tenant's numbers for the last N days: conversations, messages,
//! answered and fallback rates, a per-day series, the busiest hours of the
//! day, and the questions the bot could not answer, grouped by meaning, so
//! the client sees which FAQ to write next. Grouping reads the vectors the
//! chat kept with those questions; it embeds only the ones stored without
//! (older rows, another model), and keeps theirs.

use crate::db::Db;
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

use crate::db::DbError;
use crate::engine::packed;
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
    /// Visitors' questions in the period per hour of the day, 0 to 23, in
    /// UTC (tenants have no time zone setting yet).
    pub busiest_hours: Vec<i64>,
    pub top_unanswered: Vec<UnansweredGroup>,
}

/// Grouping by meaning: the model, and the permission to embed questions
/// whose vector was not kept (a rate limit's check; `Err` says how long
/// until it allows).
#[derive(Clone, Copy)]
pub struct Grouping<'a> {
    pub queue: &'a EmbeddingQueue,
    pub may_embed: &'a (dyn Fn() -> Result<(), Duration> + Send + Sync),
}

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// Questions need embedding and `may_embed` refused.
    #[error("too many summaries that embed questions; try again later")]
    TooMany(Duration),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(SummaryError);

/// A fallback question, with its kept vector and that vector's model.
struct Unanswered {
    id: i64,
    text: String,
    stored: Option<(Vec<u8>, String)>,
}

pub async fn summary(
    db: &Db,
    schema: &SchemaName,
    days: i64,
    grouping: Option<Grouping<'_>>,
) -> Result<Summary, SummaryError> {
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
    let unanswered = tx
        .query(
            &format!(
                "SELECT v.id, v.text, v.embedding, v.embedding_model FROM messages b \
                 CROSS JOIN LATERAL (SELECT id, text, embedding, embedding_model FROM messages v \
                   WHERE v.conversation_id = b.conversation_id \
                   AND v.id < b.id AND v.role = 'visitor' ORDER BY v.id DESC LIMIT 1) v \
                 WHERE b.role = 'bot' AND b.faq_id IS NULL AND b.created_at >= {since} \
                 ORDER BY b.id DESC LIMIT {MAX_UNANSWERED}"
            ),
            &[&days_param],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Unanswered {
                id: r.try_get(0)?,
                text: r.try_get(1)?,
                stored: r
                    .try_get::<_, Option<Vec<u8>>>(2)?
                    .zip(r.try_get::<_, Option<String>>(3)?),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let row = tx
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE helpful), count(*) FILTER (WHERE NOT helpful) \
                 FROM feedback WHERE updated_at >= {since}"
            ),
            &[&days_param],
        )
        .await?;
    let mut busiest_hours = vec![0i64; 24];
    for row in tx
        .query(
            &format!(
                "SELECT extract(hour FROM created_at AT TIME ZONE 'UTC')::int, count(*) \
                 FROM messages WHERE role = 'visitor' AND created_at >= ({since})::date GROUP BY 1"
            ),
            &[&days_param],
        )
        .await?
    {
        let (hour, n): (i32, i64) = (row.try_get(0)?, row.try_get(1)?);
        if let Some(slot) = usize::try_from(hour)
            .ok()
            .and_then(|h| busiest_hours.get_mut(h))
        {
            *slot = n;
        }
    }
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
        Some(grouping) => vectors_of(db, schema, grouping, &unanswered).await?,
        None => None,
    };
    let unanswered: Vec<String> = unanswered.into_iter().map(|u| u.text).collect();
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
        busiest_hours,
        top_unanswered: group_by_meaning(&unanswered, vectors.as_deref()),
    })
}

/// Texts per inference job when grouping unanswered questions. The worker
/// takes jobs in order and finishes one before the next, so 500 questions
/// as one job made every tenant's visitors wait for all of them (issue 16:
/// 27 s); as small jobs, a chat question queued meanwhile waits for one.
const EMBED_CHUNK: usize = 8;

/// The vectors of `questions`, in order: the kept ones (the chat path
/// stores the vector of every question it could not answer), and for rows
/// without one (older than the column, or of another model) embedded now,
/// a few at a time, each chunk kept at once. `None` when the model stops
/// meanwhile.
async fn vectors_of(
    db: &Db,
    schema: &SchemaName,
    grouping: Grouping<'_>,
    questions: &[Unanswered],
) -> Result<Option<Vec<Vec<f32>>>, SummaryError> {
    let (queue, dim) = (grouping.queue, grouping.queue.dim());
    let mut vectors: Vec<Option<Vec<f32>>> = questions
        .iter()
        .map(|q| match &q.stored {
            Some((bytes, model)) if model == queue.model_id() => packed::unpack(bytes, dim),
            _ => None,
        })
        .collect();
    // The same wording asked again is embedded once: its rows, by text.
    let mut missing: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (i, q) in questions.iter().enumerate() {
        if vectors[i].is_none() {
            let at = *position.entry(q.text.as_str()).or_insert_with(|| {
                missing.push((q.text.as_str(), Vec::new()));
                missing.len() - 1
            });
            missing[at].1.push(i);
        }
    }
    if !missing.is_empty() {
        (grouping.may_embed)().map_err(SummaryError::TooMany)?;
    }
    // A few at a time, each chunk kept as soon as it is made: a view cut
    // short (the request's deadline, a closed tab) still leaves its work
    // for the next one, so a slow machine gets there in a few views.
    for chunk in missing.chunks(EMBED_CHUNK) {
        let texts: Vec<String> = chunk.iter().map(|(text, _)| text.to_string()).collect();
        let Ok(made) = queue.embed(texts).await else {
            return Ok(None);
        };
        let mut ids = Vec::new();
        let mut bytes = Vec::new();
        let mut rows = Vec::new();
        for ((_, at), vector) in chunk.iter().zip(&made) {
            let packed = packed::pack(vector);
            for &i in at {
                ids.push(questions[i].id);
                bytes.push(packed.clone());
                rows.push(i);
            }
        }
        let tx = db.tenant(schema).await?;
        tx.execute(
            "UPDATE messages m SET embedding = u.embedding, embedding_model = $3 \
             FROM unnest($1::bigint[], $2::bytea[]) AS u(id, embedding) WHERE m.id = u.id",
            &[&ids, &bytes, &queue.model_id()],
        )
        .await?;
        tx.commit().await?;
        // Grouped with the vectors as stored, so a view now and a view
        // later (reading them back) group alike.
        for (i, v) in rows.into_iter().zip(&bytes) {
            vectors[i] = packed::unpack(v, dim);
        }
    }
    Ok(vectors.into_iter().collect())
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
