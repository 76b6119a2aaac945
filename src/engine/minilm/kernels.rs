//! Numeric kernels of the MiniLM forward pass, on plain row-major `f32` slices.
//!
//! * Matrix products go straight to the `gemm` crate (the one candle uses
//!   internally) with explicit strides, so weights stored pre-transposed are
//!   read in place and attention heads are read out of the fused QKV buffer
//!   without copies.
//! * The element-wise parts (GELU, softmax, layer norm) are plain loops written
//!   so LLVM vectorises them. The crate is built for baseline x86-64 (SSE2), so
//!   each of them is compiled a second and third time with AVX-512 / AVX2+FMA
//!   enabled and the best one is picked at run time (`simd_dispatch!`).
//! * GELU needs `erf` and softmax needs `exp`; the libm versions are scalar
//!   calls that cost ~11% and ~4% of a batch. They are replaced by branch-free
//!   polynomial approximations accurate to a few float ulps, far inside
//!   the 0.9999 cosine parity with sentence-transformers.

use std::marker::PhantomData;

use gemm::Parallelism;

/// A kernel was called with shapes that do not fit its buffers (a bug, never
/// caused by input text; reported instead of panicking).
#[derive(Debug)]
pub struct ShapeError(pub String);

/// A read-only strided matrix view into a slice.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }
}

/// A writable strided matrix view. Holds a raw pointer so that several
/// threads can each write their own columns of one buffer at the same time
/// (see `forward.rs`); built safely from a `&mut` slice, or unsafely from a
/// shared buffer.
pub struct MatMut<'a> {
    ptr: *mut f32,
    len: usize,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    _buf: PhantomData<&'a mut [f32]>,
}

impl<'a> MatMut<'a> {
    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        // SAFETY: a unique borrow of `data` for 'a.
        unsafe { Self::from_raw(data.as_mut_ptr(), data.len(), 0, rows, cols, cols, 1) }
    }

    /// A view into the buffer `ptr[..len]`.
    ///
    /// # Safety
    /// `ptr[..len]` must stay valid for writes during `'a`, and no other
    /// thread or reference may read or write the elements this view covers
    /// while it lives. (Bounds are checked by [`matmul`].)
    pub unsafe fn from_raw(
        ptr: *mut f32,
        len: usize,
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        Self {
            ptr,
            len,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
            _buf: PhantomData,
        }
    }
}

/// True when every element of the strided view lies inside a slice of `len`.
fn fits(len: usize, offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .and_then(|a| a.checked_add(offset));
    matches!(last, Some(last) if last < len)
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` when `accumulate`.
///
/// Shapes and bounds are checked here, once, so the `unsafe` call below only
/// ever touches memory inside the three slices.
pub fn matmul(
    dst: MatMut<'_>,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    scale: f32,
    parallelism: Parallelism,
) -> Result<(), ShapeError> {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    if lhs.rows != m || rhs.cols != n || rhs.rows != k {
        return Err(ShapeError(format!(
            "matmul shapes: dst {m}x{n}, lhs {}x{}, rhs {}x{}",
            lhs.rows, lhs.cols, rhs.rows, rhs.cols
        )));
    }
    let views_fit = fits(dst.len, dst.offset, m, n, dst.row_stride, dst.col_stride)
        && fits(
            lhs.data.len(),
            lhs.offset,
            m,
            k,
            lhs.row_stride,
            lhs.col_stride,
        )
        && fits(
            rhs.data.len(),
            rhs.offset,
            k,
            n,
            rhs.row_stride,
            rhs.col_stride,
        );
    if !views_fit {
        return Err(ShapeError(format!(
            "matmul view out of bounds ({m}x{k} · {k}x{n})"
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        // Never the case in BERT (k is a hidden size, a head size or a text
        // length of at least 2); gemm would leave `dst` untouched.
        return Err(ShapeError("matmul with an empty inner dimension".into()));
    }
    // Strides are at most the slice lengths, which always fit in isize.
    let s = |x: usize| x as isize;
    // SAFETY: all three views were checked above to lie inside their buffers;
    // `dst` is exclusive to this call (its contract), so it cannot alias
    // `lhs` or `rhs`, which are shared borrows.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr.add(dst.offset),
            s(dst.col_stride),
            s(dst.row_stride),
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            s(lhs.col_stride),
            s(lhs.row_stride),
            rhs.data.as_ptr().add(rhs.offset),
            s(rhs.col_stride),
            s(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// Defines a function whose body is compiled three times — for AVX-512,
/// AVX2+FMA and the baseline target — and dispatched on the running CPU.
/// Helpers called from the body must be `#[inline(always)]` so they are
/// compiled with the same features.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                fn avx512($($arg: $ty),*) { generic($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) { generic($($arg),*) }

                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                {
                    // SAFETY: the CPU has every feature `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// Width of the partial sums in reductions: 16 independent lanes let LLVM
/// keep them in one AVX-512 register (float addition is not associative, so
/// it will not reorder a plain serial sum by itself).
const LANES: usize = 16;

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

#[inline(always)]
fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            let d = v - mean;
            *a += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a = if *v > *a { *v } else { *a };
        }
    }
    acc.iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m })
}

/// `e^x`, branch-free (Cephes `expf`): x = n·ln2 + r with |r| ≤ ln2/2, a
/// degree-7 polynomial for e^r, and 2^n built directly in the exponent bits.
/// Relative error ~1e-7; inputs are clamped to the normal float range.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 split in two so that n·LN2_HI is exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let two_n = f32::from_bits(((n_int + 127) << 23) as u32);
    e_r * two_n
}

/// `erf(x)` as a rational function (the fast erf of Eigen / XLA), branch-free.
/// Max error a few ulps; |x| ≥ 4 gives ±1 exactly as in single precision.
#[inline(always)]
pub fn erf_approx(x: f32) -> f32 {
    let x = if x < -4.0 { -4.0 } else { x };
    let x = if x > 4.0 { 4.0 } else { x };
    let x2 = x * x;
    let p = -2.726_142_3e-10_f32;
    let p = p * x2 + 2.770_681_4e-8;
    let p = p * x2 + -2.101_024e-6;
    let p = p * x2 + -5.692_506_4e-5;
    let p = p * x2 + -7.349_906e-4;
    let p = p * x2 + -2.954_6e-3;
    let p = p * x2 + -1.609_603_3e-2;
    let p = p * x;
    let q = -1.456_607_2e-5_f32;
    let q = q * x2 + -2.133_740_6e-4;
    let q = q * x2 + -1.682_827e-3;
    let q = q * x2 + -7.373_329e-3;
    let q = q * x2 + -1.426_473_9e-2;
    p / q
}

simd_dispatch! {
    /// Exact (erf-based) GELU in place, as BERT's `hidden_act = "gelu"`.
    pub fn gelu(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf_approx(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

simd_dispatch! {
    /// Softmax over each row of `x` (rows of `row_len`), in place.
    pub fn softmax_rows(x: &mut [f32], row_len: usize) {
        if row_len == 0 {
            return;
        }
        for row in x.chunks_exact_mut(row_len) {
            let m = max(row);
            for v in row.iter_mut() {
                *v = exp_approx(*v - m);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

simd_dispatch! {
    /// Layer norm over each row of `x` (rows of `gamma.len()`), in place.
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let width = gamma.len();
        if width == 0 {
            return;
        }
        let inv_n = 1.0 / width as f32;
        for row in x.chunks_exact_mut(width) {
            let mean = sum(row) * inv_n;
            let var = sum_sq_dev(row, mean) * inv_n;
            let inv_std = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv_std * g + b;
            }
        }
    }
}

simd_dispatch! {
    /// Each row of `dst` (rows of `bias.len()`) becomes `residual_row + bias`;
    /// with an empty `residual`, just `bias`. Prepares the output of a linear
    /// layer, which the matmul then accumulates into.
    pub fn fill_rows(dst: &mut [f32], residual: &[f32], bias: &[f32]) {
        let width = bias.len();
        if width == 0 {
            return;
        }
        if residual.is_empty() {
            for row in dst.chunks_exact_mut(width) {
                row.copy_from_slice(bias);
            }
        } else {
            for (row, res) in dst.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
                for ((d, r), b) in row.iter_mut().zip(res).zip(bias) {
                    *d = r + b;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64: exact enough (<1e-12) on [-4, 4].
    fn erf_ref(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_approx_is_accurate() {
        let mut worst = 0.0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let want = erf_ref(f64::from(x.clamp(-4.0, 4.0)));
            let want = if x.abs() > 4.0 { want.signum() } else { want };
            worst = worst.max((f64::from(erf_approx(x)) - want).abs());
        }
        assert!(worst < 1e-6, "worst erf error {worst}");
    }

    #[test]
    fn exp_approx_is_accurate() {
        let mut worst = 0.0f64;
        for i in -8000..=0 {
            let x = i as f32 / 100.0;
            let want = f64::from(x).exp();
            let rel = (f64::from(exp_approx(x)) - want).abs() / want;
            worst = worst.max(rel);
        }
        assert!(worst < 1e-6, "worst exp relative error {worst}");
        assert!(exp_approx(-1000.0) < 1e-37);
    }

    #[test]
    fn matmul_matches_naive_and_rejects_bad_shapes() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect(); // 3x4
        let mut c = vec![1.0f32; 8];
        matmul(
            MatMut::dense(&mut c, 2, 4),
            true,
            MatRef::dense(&a, 2, 3),
            MatRef::dense(&b, 3, 4),
            2.0,
            Parallelism::None,
        )
        .unwrap();
        for r in 0..2 {
            for col in 0..4 {
                let want: f32 =
                    1.0 + 2.0 * (0..3).map(|k| a[r * 3 + k] * b[k * 4 + col]).sum::<f32>();
                assert!((c[r * 4 + col] - want).abs() < 1e-4);
            }
        }
        let err = matmul(
            MatMut::dense(&mut c, 2, 4),
            false,
            MatRef::dense(&a, 2, 3),
            MatRef::dense(&b, 4, 3),
            1.0,
            Parallelism::None,
        );
        assert!(err.is_err());
    }
}
