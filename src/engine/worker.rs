//! The inference worker: a dedicated thread fed by a bounded queue. Each job
//! carries its own reply channel. Jobs that are waiting when the thread comes
//! back for more are embedded together as one padded batch, so concurrent
//! requests share the model's work instead of queueing behind each other.
//! A full queue refuses at once (the caller answers 503), it never blocks
//! the async runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::engine::{EmbedError, Embedder, EngineError};
use crate::metrics::Metrics;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

struct Job {
    texts: Vec<String>,
    reply: Reply,
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Texts in one forward pass at most.
    pub max_batch: usize,
    /// How long a batch that is not full waits for company.
    pub batch_wait: Duration,
    /// Jobs waiting at most; beyond that `embed` answers `Busy`.
    pub queue_capacity: usize,
}

/// The sending side; cheap to clone. The thread ends when every clone is gone.
#[derive(Clone)]
pub struct EmbeddingQueue {
    sender: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    dim: usize,
    max_batch: usize,
    model_id: Arc<str>,
}

impl EmbeddingQueue {
    /// Starts the inference thread; it records each batch's size in `metrics`.
    pub fn start(
        embedder: Arc<dyn Embedder>,
        settings: WorkerSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let (sender, receiver) = sync_channel(settings.queue_capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let queue = Self {
            sender,
            depth: Arc::clone(&depth),
            dim: embedder.dim(),
            max_batch: settings.max_batch.max(1),
            model_id: Arc::from(embedder.model_id()),
        };
        std::thread::Builder::new()
            .name("chatter-inference".into())
            .spawn(move || run(embedder.as_ref(), &receiver, &depth, settings, &metrics))
            .map_err(|e| EngineError::Failed(format!("cannot start the inference thread: {e}")))?;
        Ok(queue)
    }

    /// Embeds `texts` (one job, possibly batched with others).
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EngineError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(Job { texts, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                return Err(EngineError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                return Err(EngineError::Stopped);
            }
        }
        answer
            .await
            .map_err(|_| EngineError::Stopped)?
            .map_err(EngineError::from)
    }

    /// Jobs queued or being embedded right now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Texts the worker embeds in one pass at most.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }
}

fn run(
    embedder: &dyn Embedder,
    receiver: &Receiver<Job>,
    depth: &AtomicUsize,
    settings: WorkerSettings,
    metrics: &Metrics,
) {
    let max_batch = settings.max_batch.max(1);
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        let mut texts = jobs[0].texts.len();
        let deadline = Instant::now() + settings.batch_wait;
        while texts < max_batch {
            // Take what is already waiting at once; wait briefly only while
            // the batch is not full.
            let next = match receiver.try_recv() {
                Ok(job) => Ok(job),
                Err(_) => receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(job) => {
                    texts += job.texts.len();
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let handled = jobs.len();
        embed_jobs(embedder, jobs, max_batch, metrics);
        depth.fetch_sub(handled, Ordering::SeqCst);
    }
}

/// A panic in the model (a bug, an input it chokes on) fails this batch's
/// jobs, not the inference thread: without this the thread died and every
/// tenant's chat answered 503 until a restart (issue 16, item 11).
fn embed_catching_panics(
    embedder: &dyn Embedder,
    texts: &[&str],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| embedder.embed(texts))).unwrap_or_else(
        |_| {
            tracing::error!(texts = texts.len(), "the model panicked; the batch failed");
            Err(EmbedError::Model("the model panicked".into()))
        },
    )
}

/// Embeds the jobs' texts in chunks of at most `max_batch` and answers each
/// job with its own slice of the result.
fn embed_jobs(embedder: &dyn Embedder, jobs: Vec<Job>, max_batch: usize, metrics: &Metrics) {
    let all: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.texts.iter().map(String::as_str))
        .collect();
    let mut vectors = Vec::with_capacity(all.len());
    let mut failure = None;
    for chunk in all.chunks(max_batch) {
        metrics.record_batch(chunk.len());
        match embed_catching_panics(embedder, chunk) {
            Ok(mut batch) if batch.len() == chunk.len() => vectors.append(&mut batch),
            Ok(batch) => {
                failure = Some(EmbedError::Model(format!(
                    "the model returned {} vectors for {} texts",
                    batch.len(),
                    chunk.len()
                )));
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let mut vectors = vectors.into_iter();
    for job in jobs {
        let result = match &failure {
            Some(e) => Err(e.clone()),
            None => Ok(vectors.by_ref().take(job.texts.len()).collect()),
        };
        // The asker may have gone away (request cancelled): nothing to do.
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::engine::hashing::HashingEmbedder;

    /// Records batch sizes and is slow enough for jobs to pile up.
    struct Recording {
        inner: HashingEmbedder,
        batches: Mutex<Vec<usize>>,
        delay: Duration,
    }

    impl Embedder for Recording {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            std::thread::sleep(self.delay);
            self.batches.lock().unwrap().push(texts.len());
            self.inner.embed(texts)
        }
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn model_id(&self) -> &str {
            "test/recording"
        }
    }

    fn settings(max_batch: usize, queue_capacity: usize) -> WorkerSettings {
        WorkerSettings {
            max_batch,
            batch_wait: Duration::from_millis(5),
            queue_capacity,
        }
    }

    #[tokio::test]
    async fn concurrent_jobs_are_batched_and_each_gets_its_own_answer() {
        let embedder = Arc::new(Recording {
            inner: HashingEmbedder::default(),
            batches: Mutex::new(Vec::new()),
            delay: Duration::from_millis(20),
        });
        let queue =
            EmbeddingQueue::start(embedder.clone(), settings(8, 64), Arc::default()).unwrap();
        let reference = HashingEmbedder::default();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(
                    async move { (i, queue.embed(vec![format!("question number {i}")]).await) },
                )
            })
            .collect();
        for task in tasks {
            let (i, result) = task.await.unwrap();
            let expected = reference.embed(&[&format!("question number {i}")]).unwrap();
            assert_eq!(
                result.unwrap(),
                expected,
                "job {i} got someone else's vector"
            );
        }
        let batches = embedder.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 20);
        assert!(batches.iter().all(|&b| b <= 8), "{batches:?}");
        assert!(batches.len() < 20, "nothing was batched: {batches:?}");
    }

    /// Panics on the text "boom".
    struct Fragile(HashingEmbedder);

    impl Embedder for Fragile {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            assert!(!texts.contains(&"boom"), "the model chokes");
            self.0.embed(texts)
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn model_id(&self) -> &str {
            "test/fragile"
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_model_fails_its_batch_and_the_worker_goes_on() {
        let queue = EmbeddingQueue::start(
            Arc::new(Fragile(HashingEmbedder::default())),
            settings(8, 8),
            Arc::default(),
        )
        .unwrap();
        let failed = queue.embed(vec!["boom".into()]).await;
        assert!(matches!(failed, Err(EngineError::Embed(_))), "{failed:?}");
        let vectors = queue.embed(vec!["fine".into()]).await.unwrap();
        assert_eq!(vectors.len(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let embedder = Arc::new(Recording {
            inner: HashingEmbedder::default(),
            batches: Mutex::new(Vec::new()),
            delay: Duration::from_millis(300),
        });
        let queue = EmbeddingQueue::start(embedder, settings(1, 1), Arc::default()).unwrap();
        let mut pending = Vec::new();
        for _ in 0..4 {
            let queue = queue.clone();
            pending.push(tokio::spawn(
                async move { queue.embed(vec!["x".into()]).await },
            ));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let results: Vec<_> = futures_util::future::join_all(pending).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r.as_ref().unwrap(), Err(EngineError::Busy)))
            .count();
        assert!(busy >= 1, "no job was refused");
        assert!(results.iter().any(|r| r.as_ref().unwrap().is_ok()));
    }
}
