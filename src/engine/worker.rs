//! The inference worker: a dedicated thread fed by a bounded queue. Each job
//! carries its own reply channel. Jobs that are waiting when the thread comes
//! back for more are embedded together as one padded batch, so concurrent
//! requests share the model's work instead of queueing behind each other.
//! A full queue refuses at once (the caller answers 503), it never blocks
//! the async runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    heartbeat: Arc<Heartbeat>,
}

/// What the inference thread is doing, for `/readyz`: a thread that died,
/// or that has been on one batch far longer than a batch takes (a model
/// stuck in a loop, a wedged BLAS call), cannot answer chat, and the load
/// balancer should send visitors elsewhere (issue 16, item 11).
#[derive(Debug)]
struct Heartbeat {
    started: Instant,
    alive: AtomicBool,
    /// Milliseconds after `started` at which the current batch was taken,
    /// plus one; 0 while idle.
    busy_since: AtomicU64,
    restarts: AtomicU64,
}

impl Heartbeat {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            alive: AtomicBool::new(true),
            busy_since: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn busy(&self) {
        self.busy_since
            .store(self.now_ms().saturating_add(1), Ordering::SeqCst);
    }

    fn idle(&self) {
        self.busy_since.store(0, Ordering::SeqCst);
    }
}

/// Marks the thread dead however it ends, unwinding included.
struct AliveGuard(Arc<Heartbeat>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

/// The inference thread's state as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerHealth {
    /// Waiting for work, or on a batch for less than the limit.
    Working,
    /// On one batch for longer than the limit.
    Wedged,
    /// The thread has ended: nothing will answer.
    Stopped,
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
        let heartbeat = Arc::new(Heartbeat::new());
        let queue = Self {
            sender,
            depth: Arc::clone(&depth),
            dim: embedder.dim(),
            max_batch: settings.max_batch.max(1),
            model_id: Arc::from(embedder.model_id()),
            heartbeat: Arc::clone(&heartbeat),
        };
        std::thread::Builder::new()
            .name("chatter-inference".into())
            .spawn(move || {
                let guard = AliveGuard(Arc::clone(&heartbeat));
                supervise(&heartbeat, || {
                    run(
                        embedder.as_ref(),
                        &receiver,
                        &depth,
                        settings,
                        &metrics,
                        &heartbeat,
                    )
                });
                drop(guard);
            })
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

    /// Whether the inference thread can answer: alive, and not on one
    /// batch for longer than `wedged_after`.
    pub fn health(&self, wedged_after: Duration) -> WorkerHealth {
        self.heartbeat.health(wedged_after)
    }

    /// Times the inference loop was restarted after a panic.
    pub fn restarts(&self) -> u64 {
        self.heartbeat.restarts.load(Ordering::SeqCst)
    }
}

impl Heartbeat {
    fn health(&self, wedged_after: Duration) -> WorkerHealth {
        if !self.alive.load(Ordering::SeqCst) {
            return WorkerHealth::Stopped;
        }
        let since = self.busy_since.load(Ordering::SeqCst);
        let limit = u64::try_from(wedged_after.as_millis()).unwrap_or(u64::MAX);
        if since != 0 && self.now_ms().saturating_sub(since - 1) > limit {
            WorkerHealth::Wedged
        } else {
            WorkerHealth::Working
        }
    }
}

/// Runs the inference loop `body` again whenever it panics, until it
/// returns (every sender gone). A panic in the model itself only fails its
/// batch (`embed_catching_panics`); this catches the rest of the loop, so
/// no bug there leaves every tenant's chat answering 503 until a restart.
/// Jobs taken by the panicked round are answered `Stopped` (503) as their
/// reply channels drop.
fn supervise(heartbeat: &Heartbeat, mut body: impl FnMut()) {
    while std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut body)).is_err() {
        heartbeat.idle();
        let restarts = heartbeat.restarts.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::error!(restarts, "the inference loop panicked; restarting it");
    }
}

fn run(
    embedder: &dyn Embedder,
    receiver: &Receiver<Job>,
    depth: &AtomicUsize,
    settings: WorkerSettings,
    metrics: &Metrics,
    heartbeat: &Heartbeat,
) {
    let max_batch = settings.max_batch.max(1);
    while let Ok(first) = receiver.recv() {
        heartbeat.busy();
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
        // Counted down even if embedding panics: the jobs are answered
        // (their reply channels drop) either way.
        let _done = DepthGuard { depth, handled };
        embed_jobs(embedder, jobs, max_batch, metrics);
        heartbeat.idle();
    }
}

struct DepthGuard<'a> {
    depth: &'a AtomicUsize,
    handled: usize,
}

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.depth.fetch_sub(self.handled, Ordering::SeqCst);
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

    #[test]
    fn a_panicking_loop_is_restarted_and_a_finished_one_is_not() {
        let heartbeat = Heartbeat::new();
        let mut rounds = 0;
        supervise(&heartbeat, || {
            rounds += 1;
            assert!(rounds > 2, "a bug in the loop");
        });
        assert_eq!(rounds, 3);
        assert_eq!(heartbeat.restarts.load(Ordering::SeqCst), 2);
    }

    /// Blocks every batch until the test lets it go.
    struct Stuck {
        inner: HashingEmbedder,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Embedder for Stuck {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            let _ = self.release.lock().unwrap().recv();
            self.inner.embed(texts)
        }
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn model_id(&self) -> &str {
            "test/stuck"
        }
    }

    #[tokio::test]
    async fn health_tells_a_wedged_batch_and_a_stopped_thread() {
        let (release, released) = std::sync::mpsc::channel();
        let queue = EmbeddingQueue::start(
            Arc::new(Stuck {
                inner: HashingEmbedder::default(),
                release: Mutex::new(released),
            }),
            settings(8, 8),
            Arc::default(),
        )
        .unwrap();
        let limit = Duration::from_millis(200);
        assert_eq!(queue.health(limit), WorkerHealth::Working);
        let job = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.embed(vec!["x".into()]).await })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(queue.health(limit), WorkerHealth::Wedged);
        assert_eq!(queue.health(Duration::from_secs(60)), WorkerHealth::Working);
        release.send(()).unwrap();
        job.await.unwrap().unwrap();
        // The answer is sent before the thread marks itself idle.
        for _ in 0..200 {
            if queue.health(limit) == WorkerHealth::Working {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(queue.health(limit), WorkerHealth::Working);

        // Every sender gone: the thread ends, and says so.
        let heartbeat = Arc::clone(&queue.heartbeat);
        drop(queue);
        for _ in 0..200 {
            if heartbeat.health(limit) == WorkerHealth::Stopped {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(heartbeat.health(limit), WorkerHealth::Stopped);
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
