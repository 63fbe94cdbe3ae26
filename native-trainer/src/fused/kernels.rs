//! The CPU kernels of the fused ops: plain loops over row-major slices, forward and backward.
//! Each one replaces a chain of 5–12 burn ops (and their backward nodes) by one pass over memory;
//! the math is the model's (`model.rs`), checked against the composed ops (`tests/fused.rs`).
//! The element- and row-wise kernels split their rows across threads (rayon, like burn's GEMM).

use rayon::prelude::*;

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
fn gelu_z(x: f32) -> f32 {
    (2.0 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).clamp(-30.0, 30.0)
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// GPT-2's GELU `0.5·x·(1 + tanh u)`, computed as the identical `x·σ(2u)`.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    x.par_iter().with_min_len(GRAIN).map(|&v| v * sigmoid(gelu_z(v))).collect()
}

/// `d/dx x·σ(z) = σ + x·σ(1 − σ)·dz/dx`, `dz/dx = 2√(2/π)(1 + 3·0.044715x²)` (0 where z is clamped).
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    x.par_iter()
        .zip(dy)
        .with_min_len(GRAIN)
        .map(|(&v, &g)| {
            let z = gelu_z(v);
            let s = sigmoid(z);
            let dz = if z.abs() < 30.0 { 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v) } else { 0.0 };
            g * (s + v * s * (1.0 - s) * dz)
        })
        .collect()
}

/// Causal softmax of `scale·scores` over rows of `t`: row `r` is query `r mod t` of its `[t, t]`
/// matrix and sees keys `0..=r mod t`; the rest of the row is exactly 0.
pub fn causal_softmax(scores: &[f32], t: usize, scale: f32) -> Vec<f32> {
    let mut p = vec![0.0; scores.len()];
    let rows = scores.par_chunks_exact(t).zip(p.par_chunks_exact_mut(t)).enumerate().with_min_len(rows_per_task(t));
    rows.for_each(|(row, (sr, pr))| {
        let seen = row % t + 1;
        let max = sr[..seen].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
        let mut sum = 0.0;
        for j in 0..seen {
            pr[j] = (sr[j] * scale - max).exp();
            sum += pr[j];
        }
        let inv = 1.0 / sum;
        pr[..seen].iter_mut().for_each(|v| *v *= inv);
    });
    p
}

/// Softmax's backward through the scale: `ds = scale·p ⊙ (dp − Σ_j dp_j p_j)` (0 where masked,
/// as `p` is).
pub fn causal_softmax_backward(p: &[f32], dp: &[f32], t: usize, scale: f32) -> Vec<f32> {
    let mut ds = vec![0.0; p.len()];
    let rows = p.par_chunks_exact(t).zip(dp.par_chunks_exact(t)).zip(ds.par_chunks_exact_mut(t)).enumerate();
    rows.with_min_len(rows_per_task(t)).for_each(|(row, ((pr, dpr), dsr))| {
        let seen = row % t + 1;
        let dot: f32 = (0..seen).map(|j| pr[j] * dpr[j]).sum();
        for j in 0..seen {
            dsr[j] = scale * pr[j] * (dpr[j] - dot);
        }
    });
    ds
}

/// `log softmax(row)[target]` for each row of `v` logits.
pub fn target_logprobs(logits: &[f32], targets: &[i64], v: usize) -> Vec<f32> {
    logits.chunks_exact(v).zip(targets).map(|(row, &k)| row[k as usize] - log_sum_exp(row)).collect()
}

fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    max + row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln()
}

/// Its backward: `dlogits[r] = dy[r]·(onehot(target) − softmax(row))`.
pub fn target_logprobs_backward(logits: &[f32], targets: &[i64], dy: &[f32], v: usize) -> Vec<f32> {
    let mut dl = vec![0.0; logits.len()];
    let rows = logits.par_chunks_exact(v).zip(targets).zip(dy).zip(dl.par_chunks_exact_mut(v));
    rows.with_min_len(rows_per_task(v)).for_each(|(((row, &k), &g), dr)| {
        let lse = log_sum_exp(row);
        for j in 0..v {
            dr[j] = -g * (row[j] - lse).exp();
        }
        dr[k as usize] += g;
    });
    dl
}

/// `x + b` with `b` added to every row of `c`.
pub fn add_rows(x: &[f32], b: &[f32], c: usize) -> Vec<f32> {
    let mut y = x.to_vec();
    for yr in y.chunks_exact_mut(c) {
        yr.iter_mut().zip(b).for_each(|(v, bi)| *v += bi);
    }
    y
}

/// Column sums of rows of `c` (the backward of [`add_rows`] for `b`).
pub fn column_sums(dy: &[f32], c: usize) -> Vec<f32> {
    let mut s = vec![0.0; c];
    for r in dy.chunks_exact(c) {
        s.iter_mut().zip(r).for_each(|(a, v)| *a += v);
    }
    s
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
    fn layer_norm_backward_matches_finite_differences() {
        let (c, x, w, b, dy) = (5, data(15, 1), data(5, 2), data(5, 3), data(15, 4));
        let (dx, dw, db) = layer_norm_backward(&x, &w, &dy, c, 1e-5);
        check_grad(&x, &dy, |x| layer_norm(x, &w, &b, c, 1e-5), &dx);
        check_grad(&w, &dy, |w| layer_norm(&x, w, &b, c, 1e-5), &dw);
        check_grad(&b, &dy, |b| layer_norm(&x, &w, b, c, 1e-5), &db);
    }

    #[test]
    fn gelu_and_softmax_and_logprob_backwards_match_finite_differences() {
        let (x, dy) = (data(12, 5), data(12, 6));
        check_grad(&x, &dy, gelu, &gelu_backward(&x, &dy));
        // Two [3, 3] score matrices: rows see 1, 2, 3 keys.
        let (s, dp) = (data(18, 7), data(18, 8));
        let p = causal_softmax(&s, 3, 0.5);
        assert_eq!((p[1], p[2], p[5]), (0.0, 0.0, 0.0), "masked entries are exactly 0");
        assert!(p.chunks(3).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-6));
        check_grad(&s, &dp, |s| causal_softmax(s, 3, 0.5), &causal_softmax_backward(&p, &dp, 3, 0.5));
        let (logits, targets, g) = (data(12, 9), [2i64, 0, 3], data(3, 10));
        check_grad(
            &logits,
            &g,
            |l| target_logprobs(l, &targets, 4),
            &target_logprobs_backward(&logits, &targets, &g, 4),
        );
    }
}
