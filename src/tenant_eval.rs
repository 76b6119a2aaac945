//! `chatter eval SCHEMA FILE`: an owner's labelled questions asked of a
//! live tenant, with its real FAQs, learned matcher, threshold and caution,
//! through the chat's own decision, storing no conversation. Right, wrong,
//! "did you mean" with the right FAQ among the choices, fallback, and the
//! worst confusions: what an owner checks before publishing a change.
//!
//! The file is CSV with a `question,expected` header, or a JSON array of
//! `{"question": "...", "expected": 12}`; `expected` is a FAQ id of the
//! tenant, or `none` (JSON: `"none"` or null) for a question the bot should
//! not answer. Every problem names its line.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde::Serialize;

use crate::chat::{Answer, Answerer, ChatError, check_message};
use crate::config::ChatSettings;
use crate::db::{Db, SchemaName};
use crate::error_kind::{Classify, Kind};
use crate::eval::{self, Tally, share};
use crate::faq::{self, FaqError};

/// Confusions reported at most.
/// Questions at most in one file: each is one embedding.
pub const MAX_QUESTIONS: usize = 20_000;
/// Questions asked at once: the worker batches them.
const AT_ONCE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TenantEvalError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Faq(#[from] FaqError),
}

impl Classify for TenantEvalError {
    fn kind(&self) -> Kind {
        match self {
            TenantEvalError::Line { .. } | TenantEvalError::File(_) => Kind::bad_input(),
            TenantEvalError::Chat(e) => e.kind(),
            TenantEvalError::Faq(e) => e.kind(),
        }
    }
}

/// One labelled question and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub line: usize,
    pub question: String,
    /// The FAQ meant; None: the bot should not answer.
    pub expected: Option<i64>,
}

fn at(line: usize, message: impl Into<String>) -> TenantEvalError {
    TenantEvalError::Line {
        line,
        message: message.into(),
    }
}

/// A FAQ id, or `none`.
fn expected_of(raw: &str, line: usize) -> Result<Option<i64>, TenantEvalError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    raw.parse::<i64>()
        .map(Some)
        .map_err(|_| at(line, format!("expected is {raw:?}: a FAQ id or \"none\"")))
}

/// The questions of a CSV or JSON file (JSON when it starts with `[`).
pub fn parse(bytes: &[u8]) -> Result<Vec<Labelled>, TenantEvalError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| TenantEvalError::File(format!("the file is not UTF-8: {e}")))?;
    let text = text.trim_start_matches('\u{FEFF}');
    let items = if text.trim_start().starts_with('[') {
        parse_json(text)?
    } else {
        parse_csv(text)?
    };
    if items.is_empty() {
        return Err(TenantEvalError::File("the file has no questions".into()));
    }
    if items.len() > MAX_QUESTIONS {
        return Err(TenantEvalError::File(format!(
            "the file has {} questions; at most {MAX_QUESTIONS}",
            items.len()
        )));
    }
    Ok(items)
}

fn parse_csv(text: &str) -> Result<Vec<Labelled>, TenantEvalError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| at(1, format!("not CSV: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(q), Some(e)) = (column("question"), column("expected")) else {
        return Err(at(
            1,
            "the header must name the columns question and expected",
        ));
    };
    let mut items = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            at(line, format!("not CSV: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let question = record.get(q).unwrap_or_default().to_string();
        let expected = expected_of(record.get(e).unwrap_or_default(), line)?;
        items.push(Labelled {
            line,
            question,
            expected,
        });
    }
    Ok(items)
}

/// The line of byte `offset` in `text` (1-based).
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A JSON array, element by element, so each problem names the line its
/// element starts on.
fn parse_json(text: &str) -> Result<Vec<Labelled>, TenantEvalError> {
    let bytes = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0) + 1; // past '['
    let mut items = Vec::new();
    loop {
        i = skip_ws(i);
        match bytes.get(i) {
            Some(b']') if items.is_empty() => break,
            None => return Err(at(line_of(text, i), "the array is not closed")),
            _ => {}
        }
        let line = line_of(text, i);
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[i..]).into_iter::<serde_json::Value>();
        let value = match stream.next() {
            Some(Ok(value)) => value,
            Some(Err(e)) => {
                return Err(at(
                    line + e.line().saturating_sub(1),
                    format!("not JSON: {e}"),
                ));
            }
            None => return Err(at(line, "a question is missing")),
        };
        i += stream.byte_offset();
        items.push(labelled_of(&value, line)?);
        i = skip_ws(i);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b']') => break,
            _ => return Err(at(line_of(text, i), "expected , or ] after a question")),
        }
    }
    i = skip_ws(i + 1);
    if i < bytes.len() {
        return Err(at(line_of(text, i), "text after the array"));
    }
    Ok(items)
}

fn labelled_of(value: &serde_json::Value, line: usize) -> Result<Labelled, TenantEvalError> {
    let object = value
        .as_object()
        .ok_or_else(|| at(line, "each question is an object {question, expected}"))?;
    if let Some(other) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "question" | "expected"))
    {
        return Err(at(line, format!("unknown field {other:?}")));
    }
    let question = object
        .get("question")
        .and_then(|q| q.as_str())
        .ok_or_else(|| at(line, "question is missing or not text"))?
        .to_string();
    let expected = match object.get("expected") {
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| at(line, format!("expected is {n}: a FAQ id")))?,
        ),
        Some(serde_json::Value::String(s)) => expected_of(s, line)?,
        Some(other) => {
            return Err(at(
                line,
                format!("expected is {other}: a FAQ id or \"none\""),
            ));
        }
        None => return Err(at(line, "expected is missing (a FAQ id or \"none\")")),
    };
    Ok(Labelled {
        line,
        question,
        expected,
    })
}

/// A wrong answer, by pair: what was meant (None: nothing) and what came.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Confusion {
    pub expected: Option<i64>,
    pub expected_question: Option<String>,
    pub answered: i64,
    pub answered_question: String,
    pub count: usize,
    /// One of the questions it happened to.
    pub example: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub schema: String,
    pub faqs: usize,
    /// Whether a learned matcher ranked (else the nearest phrasing).
    pub learned_matcher: bool,
    pub threshold: f32,
    pub caution: f32,
    /// Questions labelled with a FAQ, and labelled `none`.
    pub in_scope: Tally,
    pub out_of_scope: Tally,
    /// Shares of `in_scope`, in percent.
    pub right_percent: f64,
    pub resolved_percent: f64,
    pub wrong_percent: f64,
    /// Share of `out_of_scope` answered with some FAQ, in percent.
    pub out_of_scope_answered_percent: f64,
    pub confusions: Vec<Confusion>,
}

/// The tenant's FAQ questions by id, once every expected id is one of
/// them and every question one the chat accepts; else the line is named.
/// Before any model is loaded: a bad file fails at once.
pub async fn check(
    db: &Db,
    schema: &SchemaName,
    items: &[Labelled],
    chat: &ChatSettings,
) -> Result<HashMap<i64, String>, TenantEvalError> {
    let faqs: HashMap<i64, String> = faq::list(db, schema)
        .await?
        .into_iter()
        .map(|f| (f.id, f.question))
        .collect();
    for item in items {
        if let Some(id) = item.expected.filter(|id| !faqs.contains_key(id)) {
            return Err(at(item.line, format!("{schema} has no FAQ {id}")));
        }
        check_message(&item.question, chat)
            .map_err(|e| at(item.line, format!("the question cannot be asked: {e}")))?;
    }
    Ok(faqs)
}

/// Asks every question of `items` (checked by `check`, which gave `faqs`)
/// as a visitor would, storing nothing.
pub async fn run(
    answerer: &Answerer,
    schema: &SchemaName,
    items: &[Labelled],
    faqs: &HashMap<i64, String>,
) -> Result<TenantReport, TenantEvalError> {
    // The index (and its head, trained now if none fits) before the
    // questions, which would otherwise all wait on its build.
    let index = answerer.index(schema).await?;
    let bot = answerer.bot_config(schema).await?;
    let answers: Vec<Result<Answer, ChatError>> = futures_util::stream::iter(items)
        .map(|item| answerer.answer(schema, &item.question))
        .buffered(AT_ONCE)
        .collect()
        .await;
    let mut in_scope = Tally::default();
    let mut out_of_scope = Tally::default();
    let mut confusions: HashMap<(Option<i64>, i64), (usize, usize)> = HashMap::new();
    for (n, (item, answer)) in items.iter().zip(answers).enumerate() {
        let answer = answer?;
        match item.expected {
            Some(_) => in_scope.count(&answer, item.expected),
            None => out_of_scope.count(&answer, None),
        }
        if let Some(got) = answer
            .faq_id
            .filter(|got| answer.matched && Some(*got) != item.expected)
        {
            confusions.entry((item.expected, got)).or_insert((0, n)).0 += 1;
        }
    }
    let name = |id: i64| faqs.get(&id).cloned().unwrap_or_default();
    let mut confusions: Vec<Confusion> = confusions
        .into_iter()
        .map(|((expected, answered), (count, n))| Confusion {
            expected,
            expected_question: expected.map(name),
            answered,
            answered_question: name(answered),
            count,
            example: items[n].question.clone(),
        })
        .collect();
    eval::keep_worst(&mut confusions, |c| (c.count, (c.expected, c.answered)));
    let n = in_scope.total();
    Ok(TenantReport {
        schema: schema.to_string(),
        faqs: faqs.len(),
        learned_matcher: index.has_matcher(),
        threshold: bot.match_threshold,
        caution: bot.caution,
        right_percent: share(in_scope.right, n),
        resolved_percent: share(in_scope.resolved(), n),
        wrong_percent: share(in_scope.wrong, n),
        out_of_scope_answered_percent: share(out_of_scope.wrong, out_of_scope.total()),
        in_scope,
        out_of_scope,
        confusions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of_error(result: Result<Vec<Labelled>, TenantEvalError>) -> usize {
        match result {
            Err(TenantEvalError::Line { line, .. }) => line,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn csv_and_json_give_the_same_questions_with_their_lines() {
        let csv = "question,expected\nWhen are you open?,3\n\"Hi, there\", none\n";
        let json = "[\n  {\"question\": \"When are you open?\", \"expected\": 3},\n  {\"question\": \"Hi, there\", \"expected\": \"none\"}\n]";
        let want = vec![
            Labelled {
                line: 2,
                question: "When are you open?".into(),
                expected: Some(3),
            },
            Labelled {
                line: 3,
                question: "Hi, there".into(),
                expected: None,
            },
        ];
        assert_eq!(parse(csv.as_bytes()).unwrap(), want);
        assert_eq!(parse(json.as_bytes()).unwrap(), want);
        // null means none too; ids may be strings.
        let json = r#"[{"question": "a", "expected": null}, {"question": "b", "expected": "7"}]"#;
        let got = parse(json.as_bytes()).unwrap();
        assert_eq!((got[0].expected, got[1].expected), (None, Some(7)));
    }

    #[test]
    fn a_bad_file_names_the_line() {
        let csv = "question,expected\nok,1\nbad,seven\n";
        assert_eq!(line_of_error(parse(csv.as_bytes())), 3);
        let csv = "question,expected\nok,1\n\"unclosed,1\n";
        assert!(matches!(
            parse(csv.as_bytes()),
            Err(TenantEvalError::Line { .. })
        ));
        assert_eq!(line_of_error(parse(b"q,a\nx,1\n")), 1, "no expected column");
        let json = "[\n {\"question\": \"a\", \"expected\": 1},\n {\"question\": \"b\"}\n]";
        assert_eq!(line_of_error(parse(json.as_bytes())), 3);
        let json = "[\n {\"question\": \"a\", \"expected\": 1},\n\n {\"question\": \"b\", \"expected\": 2,}\n]";
        assert_eq!(line_of_error(parse(json.as_bytes())), 4);
        let json =
            "[\n {\"question\": \"a\", \"expected\": 1}\n {\"question\": \"b\", \"expected\": 2}]";
        assert_eq!(line_of_error(parse(json.as_bytes())), 3, "a missing comma");
        let json = "[\n {\"question\": \"a\", \"expected\": 1, \"faq\": 2}\n]";
        assert_eq!(line_of_error(parse(json.as_bytes())), 2, "unknown field");
        assert!(matches!(parse(b"[]"), Err(TenantEvalError::File(_))));
        assert!(matches!(
            parse(b"question,expected\n"),
            Err(TenantEvalError::File(_))
        ));
    }
}
