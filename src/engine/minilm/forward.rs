//! The encoder layers, run by every thread of the pool at once (SPMD).
//!
//! Why not rayon fork-join inside each matmul: a ~17-token query makes 40+
//! parallel sections per pass, and waking and parking the workers for each
//! cost about a third of its time. Here the pool is entered once per pass
//! (`broadcast`). Each thread computes its own share of every step — a block
//! of output columns of each linear layer, a subset of the attention heads, a
//! block of rows for layer norm — and the threads meet at a spinning barrier
//! between steps (7 per layer, well under a microsecond each).
//!
//! All threads write disjoint parts of the same activation buffers, so these
//! are shared as raw pointers (`SharedBuf`); the comments at each `unsafe`
//! say which thread owns what during that step.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gemm::Parallelism;

use super::kernels::{self, MatMut, MatRef, ShapeError};
use super::run::Span;
use super::{EncoderLayer, LayerNorm, Linear};

/// Output columns are split between threads in multiples of gemm's AVX-512
/// micro-kernel height (4 vectors of 16 floats, in gemm's transposed view), so
/// no thread runs a partial kernel in the middle of the matrix.
const COL_ALIGN: usize = 64;

/// One forward pass at a time: the threads of a pass wait for each other at
/// barriers, so two passes sharing the pool could each hold a thread the other
/// waits for.
static PASS_LOCK: Mutex<()> = Mutex::new(());

/// Shape and weights of the encoder, borrowed from `MiniLm`.
pub(super) struct Encoder<'a> {
    pub layers: &'a [EncoderLayer],
    pub hidden: usize,
    pub heads: usize,
    pub eps: f32,
    /// The weight arena the layers' `Linear::w` ranges point into.
    pub weights: &'a [f32],
}

/// Runs all encoder layers in place on `x` (`[tokens, hidden]`, the texts
/// packed one after the other as described by `spans`).
pub(super) fn run(
    enc: &Encoder<'_>,
    x: &mut [f32],
    spans: &[Span],
    pool: Option<&rayon::ThreadPool>,
) -> Result<(), ShapeError> {
    let tokens: usize = spans.iter().map(|s| s.len).sum();
    let h = enc.hidden;
    let ffn = enc.layers.first().map_or(0, |l| l.ffn_in.outputs);
    if x.len() != tokens * h {
        return Err(ShapeError(format!(
            "{} activations for {tokens} tokens",
            x.len()
        )));
    }
    let mut qkv = vec![0.0f32; tokens * 3 * h];
    let mut ctx = vec![0.0f32; tokens * h];
    let mut attn = vec![0.0f32; tokens * h];
    let mut ffn_buf = vec![0.0f32; tokens * ffn];
    let threads = pool.map_or(1, |p| p.current_num_threads()).max(1);
    let pass = Pass {
        enc,
        spans,
        tokens,
        threads,
        barrier: SpinBarrier::new(threads),
        x: SharedBuf::new(x),
        qkv: SharedBuf::new(&mut qkv),
        ctx: SharedBuf::new(&mut ctx),
        attn: SharedBuf::new(&mut attn),
        ffn: SharedBuf::new(&mut ffn_buf),
    };
    let results = match pool {
        Some(pool) if threads > 1 => {
            let _guard = PASS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            pool.broadcast(|ctx| pass.thread_main(ctx.index()))
        }
        _ => vec![pass.thread_main(0)],
    };
    results.into_iter().collect()
}

/// The state of one forward pass, shared by its threads.
struct Pass<'a> {
    enc: &'a Encoder<'a>,
    spans: &'a [Span],
    tokens: usize,
    threads: usize,
    barrier: SpinBarrier,
    x: SharedBuf<'a>,
    qkv: SharedBuf<'a>,
    ctx: SharedBuf<'a>,
    attn: SharedBuf<'a>,
    ffn: SharedBuf<'a>,
}

impl Pass<'_> {
    /// Thread `tid`'s part of the pass. Every thread passes every barrier,
    /// even after an error, so that no thread waits forever.
    fn thread_main(&self, tid: usize) -> Result<(), ShapeError> {
        // If this thread panics, release the others from the barrier.
        let _poison = PoisonOnUnwind(&self.barrier);
        let mut result = Ok(());
        let mut step = |r: Result<(), ShapeError>| {
            if result.is_ok() {
                result = r;
            }
            self.barrier.wait()
        };
        for layer in self.enc.layers {
            // SAFETY (all steps): each step reads buffers no thread writes
            // during it, and each thread writes only its own share of its
            // output; `step` puts a barrier between steps.
            let ok = step(unsafe { self.linear(&layer.qkv, &self.x, &self.qkv, None, false, tid) })
                && step(unsafe { self.attention(tid) })
                && step(unsafe {
                    self.linear(
                        &layer.attn_out,
                        &self.ctx,
                        &self.attn,
                        Some(&self.x),
                        false,
                        tid,
                    )
                })
                && step(unsafe { self.layer_norm(&self.attn, &layer.attn_norm, tid) })
                && step(unsafe {
                    self.linear(&layer.ffn_in, &self.attn, &self.ffn, None, true, tid)
                })
                && step(unsafe {
                    self.linear(
                        &layer.ffn_out,
                        &self.ffn,
                        &self.x,
                        Some(&self.attn),
                        false,
                        tid,
                    )
                })
                && step(unsafe { self.layer_norm(&self.x, &layer.ffn_norm, tid) });
            if !ok {
                return Err(ShapeError("a forward-pass thread panicked".into()));
            }
        }
        result
    }

    /// Thread `tid`'s block of output columns of `out = input · w + b
    /// (+ residual)`, then GELU on it if `gelu`.
    ///
    /// # Safety
    /// No thread writes `input` or `residual` during this step, and no other
    /// thread touches this thread's columns of `out`.
    unsafe fn linear(
        &self,
        l: &Linear,
        input: &SharedBuf<'_>,
        out: &SharedBuf<'_>,
        residual: Option<&SharedBuf<'_>>,
        gelu: bool,
        tid: usize,
    ) -> Result<(), ShapeError> {
        let (t, n) = (self.tokens, l.outputs);
        let cols = share(n, self.threads, tid, COL_ALIGN);
        if cols.is_empty() {
            return Ok(());
        }
        let bias = l.b.get(cols.clone()).unwrap_or(&[]);
        // SAFETY: the caller's contract.
        let residual = residual.map(|r| unsafe { r.read() });
        for row in 0..t {
            let at = row * n + cols.start..row * n + cols.end;
            // SAFETY: this thread's columns of one row of `out`.
            let dst = unsafe { out.write(at.clone()) };
            match residual.and_then(|r| r.get(at)) {
                Some(res) => kernels::fill_rows(dst, res, bias),
                None => kernels::fill_rows(dst, &[], bias),
            }
        }
        // SAFETY: this thread's columns of `out`, and nothing else refers to them now.
        let dst = unsafe { MatMut::from_raw(out.ptr, out.len, cols.start, t, cols.len(), n, 1) };
        let lhs = MatRef::dense(unsafe { input.read() }, t, l.inputs);
        let w = self
            .enc
            .weights
            .get(l.w.clone())
            .ok_or_else(|| ShapeError("weight out of the arena".into()))?;
        let rhs = MatRef {
            data: w,
            offset: cols.start,
            rows: l.inputs,
            cols: cols.len(),
            row_stride: n,
            col_stride: 1,
        };
        kernels::matmul(dst, true, lhs, rhs, 1.0, Parallelism::None)?;
        if gelu {
            for row in 0..t {
                // SAFETY: this thread's columns of one row of `out`.
                kernels::gelu(unsafe { out.write(row * n + cols.start..row * n + cols.end) });
            }
        }
        Ok(())
    }

    /// Scaled dot-product attention for the heads `tid, tid + threads, …`,
    /// every text at its own length (texts never see each other's tokens, and
    /// there is no padding to mask). Reads Q, K, V from the fused
    /// `[tokens, 3·hidden]` buffer, writes the heads' columns of `ctx`.
    ///
    /// # Safety
    /// No thread writes `qkv` during this step, and no other thread touches
    /// this thread's heads' columns of `ctx`.
    unsafe fn attention(&self, tid: usize) -> Result<(), ShapeError> {
        let h = self.enc.hidden;
        let d = h / self.enc.heads.max(1);
        let scale = 1.0 / (d as f32).sqrt();
        let longest = self.spans.iter().map(|s| s.len).max().unwrap_or(0);
        let mut scores = vec![0.0f32; longest * longest];
        // SAFETY: the caller's contract.
        let qkv = unsafe { self.qkv.read() };
        for head in (tid..self.enc.heads).step_by(self.threads) {
            for span in self.spans {
                let (l, base) = (span.len, span.start * 3 * h + head * d);
                let view = |offset, rows, cols, row_stride, col_stride| MatRef {
                    data: qkv,
                    offset,
                    rows,
                    cols,
                    row_stride,
                    col_stride,
                };
                let q = view(base, l, d, 3 * h, 1);
                // Kᵀ: the K block read with rows and columns swapped.
                let k_t = view(base + h, d, l, 1, 3 * h);
                let v = view(base + 2 * h, l, d, 3 * h, 1);
                let scores = scores.get_mut(..l * l).unwrap_or_default();
                let none = Parallelism::None;
                kernels::matmul(MatMut::dense(scores, l, l), false, q, k_t, scale, none)?;
                kernels::softmax_rows(scores, l);
                let (ctx, offset) = (&self.ctx, span.start * h + head * d);
                // SAFETY: this head's columns of this text's rows of `ctx`.
                let out = unsafe { MatMut::from_raw(ctx.ptr, ctx.len, offset, l, d, h, 1) };
                kernels::matmul(out, false, MatRef::dense(scores, l, l), v, 1.0, none)?;
            }
        }
        Ok(())
    }

    /// Layer norm of thread `tid`'s block of rows of `buf`, in place.
    ///
    /// # Safety
    /// No other thread touches this thread's rows of `buf` during this step.
    unsafe fn layer_norm(
        &self,
        buf: &SharedBuf<'_>,
        n: &LayerNorm,
        tid: usize,
    ) -> Result<(), ShapeError> {
        let h = self.enc.hidden;
        let rows = share(self.tokens, self.threads, tid, 1);
        // SAFETY: the caller's contract.
        let rows = unsafe { buf.write(rows.start * h..rows.end * h) };
        kernels::layer_norm(rows, &n.gamma, &n.beta, self.enc.eps);
        Ok(())
    }
}

/// Part `part` of `0..n` split in `parts` nearly equal ranges whose bounds are
/// multiples of `align` (except the end, `n`).
fn share(n: usize, parts: usize, part: usize, align: usize) -> Range<usize> {
    let (parts, align) = (parts.max(1), align.max(1));
    let units = n.div_ceil(align);
    let bound = |p: usize| (units * p / parts * align).min(n);
    bound(part)..bound(part + 1)
}

/// A buffer that the threads of a pass write in disjoint parts and read
/// whole in later steps. Borrows the buffer mutably for its lifetime.
struct SharedBuf<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: PhantomData<&'a mut [f32]>,
}

// SAFETY: access is coordinated by the step structure of `Pass` (see the
// contracts of `read` and `write`); f32 data has no thread affinity.
unsafe impl Send for SharedBuf<'_> {}
unsafe impl Sync for SharedBuf<'_> {}

impl<'a> SharedBuf<'a> {
    fn new(buf: &'a mut [f32]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: PhantomData,
        }
    }

    /// The whole buffer, read-only.
    ///
    /// # Safety
    /// No thread may write the buffer while the slice lives.
    unsafe fn read(&self) -> &[f32] {
        // SAFETY: `ptr[..len]` is the borrowed buffer; no writer, per contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The elements `range` (empty if out of bounds), writable.
    ///
    /// # Safety
    /// No other thread or reference may touch these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn write(&self, range: Range<usize>) -> &mut [f32] {
        if range.start > range.end || range.end > self.len {
            return &mut [];
        }
        // SAFETY: in bounds (checked), and exclusive per contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

/// A barrier for the threads of one pass that spins instead of sleeping: the
/// steps it separates last microseconds, far less than a futex wake-up.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Waits until all threads arrived. False if a thread panicked.
    fn wait(&self) -> bool {
        if self.threads > 1 {
            let generation = self.generation.load(Ordering::Acquire);
            if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
                self.arrived.store(0, Ordering::Relaxed);
                self.generation.fetch_add(1, Ordering::Release);
            } else {
                let mut spins = 0u32;
                while self.generation.load(Ordering::Acquire) == generation {
                    if self.poisoned.load(Ordering::Relaxed) {
                        return false;
                    }
                    spins = spins.saturating_add(1);
                    if spins < 20_000 {
                        std::hint::spin_loop();
                    } else {
                        // The machine is oversubscribed: let the others run.
                        std::thread::yield_now();
                    }
                }
            }
        }
        !self.poisoned.load(Ordering::Relaxed)
    }
}

/// Marks the barrier poisoned if dropped during a panic.
struct PoisonOnUnwind<'a>(&'a SpinBarrier);

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_covers_range_aligned() {
        for (n, parts, align) in [
            (384, 2, 64),
            (1152, 2, 64),
            (17, 2, 1),
            (100, 3, 64),
            (5, 8, 1),
        ] {
            let ranges: Vec<_> = (0..parts).map(|p| share(n, parts, p, align)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[parts - 1].end, n);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            for r in &ranges[1..] {
                assert!(r.start % align == 0 || r.start == n);
            }
        }
        assert_eq!(share(384, 2, 0, 64), 0..192);
    }

    #[test]
    fn barrier_synchronises_threads() {
        let barrier = SpinBarrier::new(3);
        let counter = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for round in 1..=50 {
                        counter.fetch_add(1, Ordering::SeqCst);
                        assert!(barrier.wait());
                        assert_eq!(counter.load(Ordering::SeqCst), 3 * round);
                        assert!(barrier.wait());
                    }
                });
            }
        });
    }
}
