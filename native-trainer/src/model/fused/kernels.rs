//! The CPU kernels of the fused ops, forward and backward: plain loops over row-major slices, and
//! `gemm` (through `matmul.rs`) for the products inside the linear layer and the attention.
//! Each one replaces a chain of 5–12 burn ops (and their backward nodes) by one pass over memory;
//! the math is the model's (`model.rs`), checked against the composed ops (`tests/fused.rs`).
//! The element- and row-wise kernels split their rows across threads (rayon, like burn's GEMM).

use rayon::prelude::*;

use super::matmul::{View, matmul, matmul_add, matmul_new};

/// Elements per parallel task: below this a thread hand-off costs more than the work.
const GRAIN: usize = 1 << 14;

/// Rows per parallel task for rows of `len` elements.
fn rows_per_task(len: usize) -> usize {
    GRAIN.div_ceil(len.max(1))
}

/// `√(2/π)`, GPT-2's GELU constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// LayerNorm over rows of `c` (biased variance, as PyTorch): `y = (x − μ)·r·w + b`, `r = 1/√(σ²+ε)`.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], c: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let (mean, r) = moments(xr, eps);
        for i in 0..c {
            yr[i] = (xr[i] - mean) * r * w[i] + b[i];
        }
    }
    y
}

/// Mean and `1/√(var + ε)` of one row.
fn moments(xr: &[f32], eps: f32) -> (f32, f32) {
    let n = xr.len() as f32;
    let mean = xr.iter().sum::<f32>() / n;
    let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm's backward: with `x̂ = (x − μ)·r` and `g = dy·w`,
/// `dx = r·(g − mean(g) − x̂·mean(g·x̂))`, `dw = Σ_rows dy·x̂`, `db = Σ_rows dy`.
pub fn layer_norm_backward(x: &[f32], w: &[f32], dy: &[f32], c: usize, eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; x.len()];
    let (mut dw, mut db) = (vec![0.0; c], vec![0.0; c]);
    let mut xhat = vec![0.0; c];
    for ((xr, dyr), dxr) in x.chunks_exact(c).zip(dy.chunks_exact(c)).zip(dx.chunks_exact_mut(c)) {
        let (mean, r) = moments(xr, eps);
        let (mut g_mean, mut gx_mean) = (0.0, 0.0);
        for i in 0..c {
            xhat[i] = (xr[i] - mean) * r;
            let g = dyr[i] * w[i];
            g_mean += g;
            gx_mean += g * xhat[i];
            dw[i] += dyr[i] * xhat[i];
            db[i] += dyr[i];
        }
        g_mean /= c as f32;
        gx_mean /= c as f32;
        for i in 0..c {
            dxr[i] = r * (dyr[i] * w[i] - g_mean - xhat[i] * gx_mean);
        }
    }
    (dx, dw, db)
}

/// GELU's `z = 2u = 2√(2/π)(x + 0.044715x³)`, clamped at ±30 where σ(z) is 0 or 1 in f32.
#[inline(always)]
fn gelu_z(x: f32) -> f32 {
    (2.0 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).clamp(-30.0, 30.0)
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// GPT-2's GELU `0.5·x·(1 + tanh u)`, computed as the identical `x·σ(2u)`.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    y.par_chunks_mut(GRAIN).zip(x.par_chunks(GRAIN)).for_each(|(y, x)| gelu_chunk_dispatch(x, y));
    y
}

#[inline(always)]
fn gelu_chunk(x: &[f32], y: &mut [f32]) {
    for (yi, &v) in y.iter_mut().zip(x) {
        *yi = v * sigmoid(gelu_z(v));
    }
}

/// `d/dx x·σ(z) = σ + x·σ(1 − σ)·dz/dx`, `dz/dx = 2√(2/π)(1 + 3·0.044715x²)` (0 where z is clamped).
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; x.len()];
    let chunks = dx.par_chunks_mut(GRAIN).zip(x.par_chunks(GRAIN)).zip(dy.par_chunks(GRAIN));
    chunks.for_each(|((dx, x), dy)| gelu_backward_chunk_dispatch(x, dy, dx));
    dx
}

#[inline(always)]
fn gelu_backward_chunk(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let z = gelu_z(v);
        let s = sigmoid(z);
        let dz = if z.abs() < 30.0 { 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v) } else { 0.0 };
        *d = g * (s + v * s * (1.0 - s) * dz);
    }
}

/// Causal multi-head self-attention of packed `[batch·t, 3c]` rows `q | k | v` (head `h` in
/// columns `h·d..(h+1)·d` of each third, `d = c / n_head`): for each batch element and head,
/// `p_i = softmax_j≤i(q_i·k_j/√d)`, `y_i = Σ_j p_ij v_j`, written to `[batch·t, c]` in the
/// same column layout (the heads merged). Also returns `p` as `[batch, n_head, t, t]` (future
/// keys exactly 0) for the backward. One fused pass instead of the split/transpose copies, two
/// batched matmuls, the softmax and the merge copy; batch elements run in parallel.
pub fn causal_attention(qkv: &[f32], s: &AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let (t, c) = (s.t, s.c);
    let mut y = vec![0.0; qkv.len() / 3];
    let mut p = vec![0.0; qkv.len() / (3 * c) * s.n_head * t];
    let parts = qkv.par_chunks_exact(t * 3 * c).zip(y.par_chunks_exact_mut(t * c));
    let parts = parts.zip(p.par_chunks_exact_mut(s.n_head * t * t));
    parts.for_each(|((x, y), p)| attend_sequence_dispatch(x, y, p, s));
    (y, p)
}

/// Query rows per block of the causal GEMMs: block `[r0, r1)` only needs keys `0..r1`, so the
/// products skip most of the masked upper triangle (5/8 of the square at t = 128) while each GEMM
/// stays large enough to run at full speed.
const CAUSAL_BLOCK: usize = 32;

/// The row blocks `[r0, r1)` of a sequence of `t` positions.
fn causal_blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t).step_by(CAUSAL_BLOCK).map(move |r0| (r0, (r0 + CAUSAL_BLOCK).min(t)))
}

/// [`causal_attention`] of one sequence: `x` its `[t, 3c]` rows, `y` its `[t, c]` output, `p` its
/// `[n_head, t, t]` probabilities. Per head and block of query rows: the scores `q·kᵀ/√d`
/// against the keys up to the block's last row, the softmax of each row over its past and present
/// keys (the future ones set to 0), and `p·v`, the two products GEMMs on the head's columns where
/// they lie.
#[inline(always)]
fn attend_sequence(x: &[f32], y: &mut [f32], p: &mut [f32], s: &AttentionShape) {
    let (t, c, d) = (s.t, s.c, s.d);
    for h in 0..s.n_head {
        let ph = &mut p[h * t * t..][..t * t];
        for (r0, r1) in causal_blocks(t) {
            matmul(&mut ph[r0 * t..], t, s.part(x, 0, h, r0..r1), s.part(x, 1, h, 0..r1).t(), s.scale());
            for (i, row) in (r0..r1).zip(ph[r0 * t..r1 * t].chunks_exact_mut(t)) {
                let (live, future) = row.split_at_mut(i + 1);
                let max = live.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                live.iter_mut().for_each(|pj| *pj = exp(*pj - max));
                let inv = 1.0 / sum(live);
                live.iter_mut().for_each(|pj| *pj *= inv);
                future.fill(0.0);
            }
            let pb = View::rows(&ph[r0 * t..], r1 - r0, r1, t);
            matmul(&mut y[r0 * c + h * d..], c, pb, s.part(x, 2, h, 0..r1), 1.0);
        }
    }
}

/// Its backward, from `qkv`, `p` and `dy = ∂L/∂y`: with `dp_ij = dy_i·v_j` and
/// `ds_ij = p_ij·(dp_ij − Σ_k p_ik dp_ik)`: `dq_i = Σ_j ds_ij k_j/√d`, `dk_j = Σ_i ds_ij q_i/√d`,
/// `dv_j = Σ_i p_ij dy_i`, packed as `qkv` is.
pub fn causal_attention_backward(qkv: &[f32], p: &[f32], dy: &[f32], s: &AttentionShape) -> Vec<f32> {
    let (t, c) = (s.t, s.c);
    let mut dqkv = vec![0.0; qkv.len()];
    let parts = qkv.par_chunks_exact(t * 3 * c).zip(p.par_chunks_exact(s.n_head * t * t));
    let parts = parts.zip(dy.par_chunks_exact(t * c)).zip(dqkv.par_chunks_exact_mut(t * 3 * c));
    parts.for_each(|(((x, p), dy), dx)| attend_sequence_backward_dispatch(x, p, dy, dx, s));
    dqkv
}

/// [`causal_attention_backward`] of one sequence (`dx` its `[t, 3c]` gradient rows): per head,
/// by blocks of query rows `dp = dy·vᵀ`, then `ds` row by row, then `dq = ds·k`; by blocks of key
/// rows `[j0, j1)`, which only queries `j0..t` see, `dk = dsᵀ·q` and `dv = pᵀ·dy`. Each product
/// is a GEMM written straight into the head's columns of `dx`.
#[inline(always)]
fn attend_sequence_backward(x: &[f32], p: &[f32], dy: &[f32], dx: &mut [f32], s: &AttentionShape) {
    let (t, c, d, scale) = (s.t, s.c, s.d, s.scale());
    let mut ds = vec![0.0; t * t];
    for h in 0..s.n_head {
        let ph = &p[h * t * t..][..t * t];
        let dyh = |rows: std::ops::Range<usize>| View::rows(&dy[rows.start * c + h * d..], rows.len(), d, c);
        for (r0, r1) in causal_blocks(t) {
            matmul(&mut ds[r0 * t..], t, dyh(r0..r1), s.part(x, 2, h, 0..r1).t(), 1.0);
            for (i, (dsr, pr)) in (r0..r1).zip(ds[r0 * t..r1 * t].chunks_exact_mut(t).zip(ph[r0 * t..].chunks_exact(t)))
            {
                let (live, future) = dsr.split_at_mut(i + 1);
                let p_dp = dot(&pr[..=i], live);
                for (dsj, &pj) in live.iter_mut().zip(pr) {
                    *dsj = scale * pj * (*dsj - p_dp);
                }
                future.fill(0.0);
            }
            let dsb = View::rows(&ds[r0 * t..], r1 - r0, r1, t);
            matmul(&mut dx[r0 * 3 * c + h * d..], 3 * c, dsb, s.part(x, 1, h, 0..r1), 1.0);
        }
        for (j0, j1) in causal_blocks(t) {
            let (dsb, pb) = (
                View::rows(&ds[j0 * t + j0..], t - j0, j1 - j0, t),
                View::rows(&ph[j0 * t + j0..], t - j0, j1 - j0, t),
            );
            matmul(&mut dx[j0 * 3 * c + c + h * d..], 3 * c, dsb.t(), s.part(x, 0, h, j0..t), 1.0);
            matmul(&mut dx[j0 * 3 * c + 2 * c + h * d..], 3 * c, pb.t(), dyh(j0..t), 1.0);
        }
    }
}

/// The shape of a causal attention: sequences of `t` positions, `n_head` heads of `d` channels
/// (`c = n_head·d`), and where head `h`'s vectors of position `i` sit in one sequence's `[t, 3c]`
/// rows of `q | k | v`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub t: usize,
    pub c: usize,
    pub n_head: usize,
    d: usize,
}

impl AttentionShape {
    pub fn new(t: usize, c: usize, n_head: usize) -> Self {
        Self { t, c, n_head, d: c / n_head }
    }

    /// `1/√d`, GPT's attention scale.
    #[inline(always)]
    pub fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// Part `part` (0 = q, 1 = k, 2 = v) of head `h`, positions `rows`, in one sequence's
    /// `[t, 3c]` rows: `[rows.len(), d]`.
    fn part<'a>(&self, x: &'a [f32], part: usize, h: usize, rows: std::ops::Range<usize>) -> View<'a> {
        View::rows(&x[rows.start * 3 * self.c + part * self.c + h * self.d..], rows.len(), self.d, 3 * self.c)
    }
}

/// Defines `fn $name(args)` that runs the `#[inline(always)]` kernel `$kernel(args)` compiled for
/// AVX2 (8-wide vectors) when the CPU has it, as `gemm` picks its kernels at run time; the build
/// itself targets baseline x86-64 (SSE2, 4-wide). Everything the kernel calls must be
/// `#[inline(always)]` too, or it runs the baseline code.
macro_rules! with_avx2 {
    ($name:ident => $kernel:ident($($arg:ident: $ty:ty),*)) => {
        with_avx2!($name => $kernel($($arg: $ty),*) -> ());
    };
    ($name:ident => $kernel:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU was just found to support AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}

with_avx2!(gelu_chunk_dispatch => gelu_chunk(x: &[f32], y: &mut [f32]));
with_avx2!(gelu_backward_chunk_dispatch => gelu_backward_chunk(x: &[f32], dy: &[f32], dx: &mut [f32]));
with_avx2!(attend_sequence_dispatch => attend_sequence(x: &[f32], y: &mut [f32], p: &mut [f32], s: &AttentionShape));
with_avx2!(attend_sequence_backward_dispatch => attend_sequence_backward(
    x: &[f32], p: &[f32], dy: &[f32], dx: &mut [f32], s: &AttentionShape
));

/// `eˣ` within ≈ 2 ulp on [−87, 88] (clamped outside, where f32 under- or overflows anyway):
/// `x = k·ln 2 + r`, `eʳ` by its Taylor series to r⁶ on |r| ≤ ln 2 / 2, `2ᵏ` put in the exponent
/// bits. No branch and no call, so loops over it vectorize; libm's `expf` is one call per element
/// (it was 8 % of a training step).
#[inline(always)]
fn exp(x: f32) -> f32 {
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer (SSE2 has no round).
    const ROUND: f32 = 12_582_912.0;
    // ln 2 = LN2_HI + LN2_LO with LN2_HI short enough that k·LN2_HI is exact (Cephes' split).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let k = rounded - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2ᵏ: `rounded`'s low mantissa bits are 2²² + k, so its bits + 127, shifted up by 23, are
    // k + 127 in the exponent (k is in −126..=127 after the clamp). Integer ops on the bits
    // vectorize; `k as i32` does not (Rust's saturating float → int cast is done one lane at a
    // time, which made this exp a third of GELU's time).
    p * f32::from_bits(rounded.to_bits().wrapping_add(127) << 23)
}

/// `Σ x` in 8 independent lanes (see [`dot`]).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (x8, tail) = x.as_chunks::<8>();
    for chunk in x8 {
        for k in 0..8 {
            lanes[k] += chunk[k];
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// `a·b`, summed in 8 independent lanes: a plain `sum()` is one chain of dependent float adds
/// that the compiler may not reorder, so it neither vectorizes nor pipelines (this alone made the
/// attention kernels 40 % of a training step).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let ((a8, a_tail), (b8, b_tail)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    for (x, y) in a8.iter().zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `log softmax(row)[target]` for each row of `v` logits.
pub fn target_logprobs(logits: &[f32], targets: &[i64], v: usize) -> Vec<f32> {
    let mut out = vec![0.0; targets.len()];
    let rows = logits.par_chunks_exact(v).zip(targets).zip(&mut out).with_min_len(rows_per_task(v));
    rows.for_each(|((row, &k), o)| *o = row[k as usize] - log_sum_exp_dispatch(row));
    out
}

with_avx2!(log_sum_exp_dispatch => log_sum_exp(row: &[f32]) -> f32);

#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut lanes = [0.0f32; 8];
    let (row8, tail) = row.as_chunks::<8>();
    for chunk in row8 {
        for k in 0..8 {
            lanes[k] += exp(chunk[k] - max);
        }
    }
    max + (sum(&lanes) + tail.iter().map(|&v| exp(v - max)).sum::<f32>()).ln()
}

/// Its backward: `dlogits[r] = dy[r]·(onehot(target) − softmax(row))`.
pub fn target_logprobs_backward(logits: &[f32], targets: &[i64], dy: &[f32], v: usize) -> Vec<f32> {
    let mut dl = vec![0.0; logits.len()];
    let rows = logits.par_chunks_exact(v).zip(targets).zip(dy).zip(dl.par_chunks_exact_mut(v));
    rows.with_min_len(rows_per_task(v)).for_each(|(((row, &k), &g), dr)| {
        target_logprobs_backward_row_dispatch(row, g, dr);
        dr[k as usize] += g;
    });
    dl
}

with_avx2!(target_logprobs_backward_row_dispatch => target_logprobs_backward_row(row: &[f32], g: f32, dr: &mut [f32]));

/// `dr = −g·softmax(row)`.
#[inline(always)]
fn target_logprobs_backward_row(row: &[f32], g: f32, dr: &mut [f32]) {
    let lse = log_sum_exp(row);
    for (d, &v) in dr.iter_mut().zip(row) {
        *d = -g * exp(v - lse);
    }
}

/// A linear layer over rows, `y = x·w + b`: `x` `[rows, k]`, `w` `[k, n]` (HF Conv1D layout),
/// `b` `[n]`. The bias rows are written first and the GEMM adds onto them, one pass instead of a
/// product, an aligned copy of it (burn's CPU matmul) and a broadcast add.
pub fn linear(x: &[f32], w: &[f32], b: &[f32], k: usize) -> Vec<f32> {
    let (rows, n) = (x.len() / k, b.len());
    let mut y = Vec::with_capacity(rows * n);
    for _ in 0..rows {
        y.extend_from_slice(b);
    }
    matmul_add(&mut y, View::rows(x, rows, k, k), View::rows(w, k, n, n));
    y
}

/// Its backward from `dy` `[rows, n]`: `dx = dy·wᵀ`, `dw = xᵀ·dy`, `db = Σ_rows dy`.
pub fn linear_backward(x: &[f32], w: &[f32], dy: &[f32], k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / k;
    let (x, w, dy) = (View::rows(x, rows, k, k), View::rows(w, k, n, n), View::rows(dy, rows, n, n));
    let dx = matmul_new(dy, w.t());
    let dw = matmul_new(x.t(), dy);
    let mut db = vec![0.0; n];
    for r in dy.data.chunks_exact(n) {
        db.iter_mut().zip(r).for_each(|(a, v)| *a += v);
    }
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `f` at `x` against the analytic `grad` for the loss `Σ f(x)·dy`.
    fn check_grad(x: &[f32], dy: &[f32], f: impl Fn(&[f32]) -> Vec<f32>, grad: &[f32]) {
        let h = 1e-2;
        for i in 0..x.len() {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += h;
            b[i] -= h;
            let dot = |y: Vec<f32>| y.iter().zip(dy).map(|(u, v)| u * v).sum::<f32>();
            let numeric = (dot(f(&a)) - dot(f(&b))) / (2.0 * h);
            assert!((numeric - grad[i]).abs() < 2e-2 * (1.0 + numeric.abs()), "{i}: {numeric} vs {}", grad[i]);
        }
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32 + 1).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 1000) as f32 / 250.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f32;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let (want, got) = (x.exp(), exp(x));
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e9) < 1e-37 && exp(-1e9) >= 0.0, "clamped below: {}", exp(-1e9));
        assert!(exp(1e9).is_finite(), "clamped above");
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let (c, x, w, b, dy) = (5, data(15, 1), data(5, 2), data(5, 3), data(15, 4));
        let (dx, dw, db) = layer_norm_backward(&x, &w, &dy, c, 1e-5);
        check_grad(&x, &dy, |x| layer_norm(x, &w, &b, c, 1e-5), &dx);
        check_grad(&w, &dy, |w| layer_norm(&x, w, &b, c, 1e-5), &dw);
        check_grad(&b, &dy, |b| layer_norm(&x, &w, b, c, 1e-5), &db);
    }

    #[test]
    fn linear_matches_its_definition_and_finite_differences() {
        let (k, n, x, w, b, dy) = (3, 4, data(6, 11), data(12, 12), data(4, 13), data(8, 14));
        let y = linear(&x, &w, &b, k);
        for (r, c) in [(0, 0), (1, 3), (1, 1)] {
            let want = b[c] + (0..k).map(|e| x[r * k + e] * w[e * n + c]).sum::<f32>();
            assert!((y[r * n + c] - want).abs() < 1e-6, "y[{r}, {c}] = {} against {want}", y[r * n + c]);
        }
        let (dx, dw, db) = linear_backward(&x, &w, &dy, k, n);
        check_grad(&x, &dy, |x| linear(x, &w, &b, k), &dx);
        check_grad(&w, &dy, |w| linear(&x, w, &b, k), &dw);
        check_grad(&b, &dy, |b| linear(&x, &w, b, k), &db);
    }

    #[test]
    fn gelu_attention_and_logprob_backwards_match_finite_differences() {
        let (x, dy) = (data(12, 5), data(12, 6));
        check_grad(&x, &dy, gelu, &gelu_backward(&x, &dy));
        // Two sequences of 3 positions, 2 heads of 2 channels: rows of q | k | v, 12 wide.
        let shape = AttentionShape::new(3, 4, 2);
        let (x, dy) = (data(2 * 3 * 12, 7), data(2 * 3 * 4, 8));
        let (y, p) = causal_attention(&x, &shape);
        assert_eq!((p[1], p[2], p[5]), (0.0, 0.0, 0.0), "future keys have weight exactly 0");
        assert!(p.chunks(3).all(|row| (row.iter().sum::<f32>() - 1.0).abs() < 1e-6));
        assert_eq!(&y[..2], &x[8..10], "position 0 sees only itself: y = v");
        let dx = causal_attention_backward(&x, &p, &dy, &shape);
        check_grad(&x, &dy, |x| causal_attention(x, &shape).0, &dx);
        let (logits, targets, g) = (data(12, 9), [2i64, 0, 3], data(3, 10));
        check_grad(
            &logits,
            &g,
            |l| target_logprobs(l, &targets, 4),
            &target_logprobs_backward(&logits, &targets, &g, 4),
        );
    }
}
