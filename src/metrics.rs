//! Prometheus metrics: one registry per `AppState` (no globals), recorded
//! where things happen and rendered by `GET /metrics`.
//!
//! Labels are bounded on purpose: route *patterns* and status codes, never
//! raw paths, tenants or visitors' text, so the series count stays fixed
//! however many tenants sign up. Gauges that mirror someone else's state
//! (queue depth, pool) are read at scrape time rather than kept in step.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// "answered" (an FAQ matched) or "fallback".
    outcome: &'static str,
}

/// Builds each route's latency histogram with the same buckets.
#[derive(Clone)]
struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        // 5 ms to ~10 s: a cached answer to a slow model under load.
        Histogram::new(exponential_buckets(0.005, 2.0, 12))
    }
}

/// The gauges read at scrape time from state this module does not own: the
/// caller reads the engine and the pool and passes plain numbers, so metrics
/// depends on nothing (the worker records into `Metrics`, not the reverse).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeGauges {
    /// Embedding jobs queued or being embedded (0 while the model loads).
    pub queue_depth: usize,
    /// Database connections open, lent out or free.
    pub pool_size: usize,
    /// Database connections open and free.
    pub pool_available: usize,
    /// Tasks waiting for a database connection.
    pub pool_waiting: usize,
    /// Bytes of FAQ indexes held against `chat.index_cache_bytes`.
    pub index_cache_bytes: usize,
    /// Tenants whose FAQ index is held.
    pub index_cache_tenants: usize,
    /// FAQ indexes built, and dropped for the budget, since start.
    pub index_builds: u64,
    pub index_evictions: u64,
    /// Bytes of question embeddings held against `chat.question_cache_bytes`.
    pub question_cache_bytes: usize,
    /// Questions found in that cache, and not found (embedded), since start.
    pub question_cache_hits: u64,
    pub question_cache_misses: u64,
    /// Learned matchers trained, and loaded from their stored weights
    /// instead, since start.
    pub matcher_trainings: u64,
    pub matcher_loads: u64,
    /// The exchange writer since start: transactions of one group each,
    /// exchanges stored in them, groups rolled back (a failed statement,
    /// or a billed tenant's share of the month used up), and exchanges
    /// of those groups stored again one at a time.
    pub exchange_groups: u64,
    pub exchanges_grouped: u64,
    pub exchange_groups_failed: u64,
    pub exchanges_stored_alone: u64,
}

/// Every metric the server keeps; share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, LatencyBuckets>,
    chat_answers: Family<OutcomeLabels, Counter>,
    batch_sizes: Histogram,
    queue_depth: Gauge,
    model_load: Gauge<f64, AtomicU64>,
    pool_in_use: Gauge,
    pool_idle: Gauge,
    pool_waiting: Gauge,
    index_cache_bytes: Gauge,
    index_cache_tenants: Gauge,
    index_builds: Gauge,
    index_evictions: Gauge,
    question_cache_bytes: Gauge,
    question_cache_hits: Gauge,
    question_cache_misses: Gauge,
    matcher_trainings: Gauge,
    matcher_loads: Gauge,
    exchange_groups: Gauge,
    exchanges_grouped: Gauge,
    exchange_groups_failed: Gauge,
    exchanges_stored_alone: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chatter");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern and status code",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(LatencyBuckets);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by route pattern",
            Unit::Seconds,
            latency.clone(),
        );
        let chat_answers = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "chat_answers",
            "Chat replies given: an FAQ's answer, or the fallback reply",
            chat_answers.clone(),
        );
        // Powers of two up to 128: max_batch is a few dozen texts.
        let batch_sizes = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "embedding_batch_size",
            "Texts per forward pass of the embedding model",
            batch_sizes.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "embedding_queue_depth",
            "Embedding jobs queued or being embedded",
            queue_depth.clone(),
        );
        let model_load = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "model_load",
            "How long the model took to load and warm up (0 until it is ready)",
            Unit::Seconds,
            model_load.clone(),
        );
        let pool_in_use = Gauge::default();
        registry.register(
            "db_pool_in_use",
            "Database connections lent out",
            pool_in_use.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle",
            "Database connections open and free",
            pool_idle.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "db_pool_waiting",
            "Tasks waiting for a database connection",
            pool_waiting.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let index_cache_bytes = gauge(
            &mut registry,
            "index_cache_bytes",
            "Bytes of FAQ indexes held (bounded by chat.index_cache_bytes)",
        );
        let index_cache_tenants = gauge(
            &mut registry,
            "index_cache_tenants",
            "Tenants whose FAQ index is held",
        );
        let index_builds = gauge(
            &mut registry,
            "index_builds",
            "FAQ indexes built since start (first use, FAQ change, after eviction)",
        );
        let index_evictions = gauge(
            &mut registry,
            "index_evictions",
            "FAQ indexes dropped since start to stay within chat.index_cache_bytes",
        );
        let question_cache_bytes = gauge(
            &mut registry,
            "question_cache_bytes",
            "Bytes of question embeddings held (bounded by chat.question_cache_bytes)",
        );
        let question_cache_hits = gauge(
            &mut registry,
            "question_cache_hits",
            "Chat questions since start whose embedding was in the question cache",
        );
        let question_cache_misses = gauge(
            &mut registry,
            "question_cache_misses",
            "Chat questions since start that were embedded (not in the question cache)",
        );
        let matcher_trainings = gauge(
            &mut registry,
            "matcher_trainings",
            "Learned matchers trained since start (first use, FAQ change, another model)",
        );
        let matcher_loads = gauge(
            &mut registry,
            "matcher_loads",
            "FAQ indexes that loaded the tenant's stored matcher instead of training one, since start",
        );
        let exchange_groups = gauge(
            &mut registry,
            "exchange_groups",
            "Transactions that stored a group of chat exchanges, since start",
        );
        let exchanges_grouped = gauge(
            &mut registry,
            "exchanges_grouped",
            "Chat exchanges stored in those groups, since start",
        );
        let exchange_groups_failed = gauge(
            &mut registry,
            "exchange_groups_failed",
            "Groups of chat exchanges rolled back (a failed statement, or a billed tenant's share of the month used up), since start",
        );
        let exchanges_stored_alone = gauge(
            &mut registry,
            "exchanges_stored_alone",
            "Chat exchanges of failed groups stored again one at a time, since start",
        );
        Self {
            exchange_groups,
            exchanges_grouped,
            exchange_groups_failed,
            exchanges_stored_alone,
            matcher_trainings,
            matcher_loads,
            index_cache_bytes,
            index_cache_tenants,
            index_builds,
            index_evictions,
            question_cache_bytes,
            question_cache_hits,
            question_cache_misses,
            registry,
            requests,
            latency,
            chat_answers,
            batch_sizes,
            queue_depth,
            model_load,
            pool_in_use,
            pool_idle,
            pool_waiting,
        }
    }

    /// One finished request; `route` is the matched pattern.
    pub fn record_request(&self, route: &str, status: u16, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    /// One chat reply given: `matched` is an FAQ's answer, else the fallback.
    pub fn record_chat_answer(&self, matched: bool) {
        let outcome = if matched { "answered" } else { "fallback" };
        self.chat_answers
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// One forward pass of `texts` texts.
    pub fn record_batch(&self, texts: usize) {
        self.batch_sizes.observe(texts as f64);
    }

    pub fn set_model_load_time(&self, took: Duration) {
        self.model_load.set(took.as_secs_f64());
    }

    /// The text exposition (OpenMetrics), with the scrape-time gauges set
    /// from `gauges` first.
    pub fn render(&self, gauges: ScrapeGauges) -> Result<String, MetricsError> {
        self.queue_depth.set(saturating_i64(gauges.queue_depth));
        self.pool_in_use.set(saturating_i64(
            gauges.pool_size.saturating_sub(gauges.pool_available),
        ));
        self.pool_idle.set(saturating_i64(gauges.pool_available));
        self.pool_waiting.set(saturating_i64(gauges.pool_waiting));
        self.index_cache_bytes
            .set(saturating_i64(gauges.index_cache_bytes));
        self.index_cache_tenants
            .set(saturating_i64(gauges.index_cache_tenants));
        self.index_builds
            .set(i64::try_from(gauges.index_builds).unwrap_or(i64::MAX));
        self.index_evictions
            .set(i64::try_from(gauges.index_evictions).unwrap_or(i64::MAX));
        self.question_cache_bytes
            .set(saturating_i64(gauges.question_cache_bytes));
        self.question_cache_hits
            .set(i64::try_from(gauges.question_cache_hits).unwrap_or(i64::MAX));
        self.question_cache_misses
            .set(i64::try_from(gauges.question_cache_misses).unwrap_or(i64::MAX));
        self.matcher_trainings
            .set(i64::try_from(gauges.matcher_trainings).unwrap_or(i64::MAX));
        self.matcher_loads
            .set(i64::try_from(gauges.matcher_loads).unwrap_or(i64::MAX));
        for (gauge, n) in [
            (&self.exchange_groups, gauges.exchange_groups),
            (&self.exchanges_grouped, gauges.exchanges_grouped),
            (&self.exchange_groups_failed, gauges.exchange_groups_failed),
            (&self.exchanges_stored_alone, gauges.exchanges_stored_alone),
        ] {
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What `GET /metrics` answers with (prometheus-client writes OpenMetrics).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_show_up_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.record_request("/api/chat", 200, Duration::from_millis(12));
        metrics.record_request("/api/chat", 200, Duration::from_millis(30));
        metrics.record_chat_answer(true);
        metrics.record_chat_answer(false);
        metrics.record_batch(3);
        let mut out = String::new();
        text::encode(&mut out, &metrics.registry).unwrap();
        assert!(
            out.contains(r#"chatter_http_requests_total{route="/api/chat",status="200"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"chatter_http_request_duration_seconds_count{route="/api/chat"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"chatter_chat_answers_total{outcome="answered"} 1"#),
            "{out}"
        );
        assert!(
            out.contains("chatter_embedding_batch_size_sum 3.0"),
            "{out}"
        );
    }

    #[test]
    fn render_shows_the_scrape_time_gauges_it_is_given() {
        let metrics = Metrics::new();
        let out = metrics
            .render(ScrapeGauges {
                queue_depth: 7,
                pool_size: 10,
                pool_available: 4,
                pool_waiting: 2,
                index_cache_bytes: 4096,
                index_cache_tenants: 3,
                index_builds: 5,
                index_evictions: 1,
                question_cache_bytes: 1536,
                question_cache_hits: 40,
                question_cache_misses: 11,
                matcher_trainings: 2,
                matcher_loads: 9,
                exchange_groups: 12,
                exchanges_grouped: 80,
                exchange_groups_failed: 3,
                exchanges_stored_alone: 17,
            })
            .unwrap();
        assert!(out.contains("chatter_index_cache_bytes 4096"), "{out}");
        assert!(out.contains("chatter_index_cache_tenants 3"), "{out}");
        assert!(out.contains("chatter_index_builds 5"), "{out}");
        assert!(out.contains("chatter_index_evictions 1"), "{out}");
        assert!(out.contains("chatter_question_cache_bytes 1536"), "{out}");
        assert!(out.contains("chatter_question_cache_hits 40"), "{out}");
        assert!(out.contains("chatter_question_cache_misses 11"), "{out}");
        assert!(out.contains("chatter_matcher_trainings 2"), "{out}");
        assert!(out.contains("chatter_matcher_loads 9"), "{out}");
        assert!(out.contains("chatter_exchange_groups 12"), "{out}");
        assert!(out.contains("chatter_exchanges_grouped 80"), "{out}");
        assert!(out.contains("chatter_exchange_groups_failed 3"), "{out}");
        assert!(out.contains("chatter_exchanges_stored_alone 17"), "{out}");
        assert!(out.contains("chatter_embedding_queue_depth 7"), "{out}");
        assert!(out.contains("chatter_db_pool_in_use 6"), "{out}");
        assert!(out.contains("chatter_db_pool_idle 4"), "{out}");
        assert!(out.contains("chatter_db_pool_waiting 2"), "{out}");
    }
}
