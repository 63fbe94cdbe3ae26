//! The reference kernels, f32, row-major. Each is the plain math; parallelism (rayon: natively,
//! and in a wasm build with threads — `+atomics`, a shared memory, `wasm-bindgen-rayon`'s pool of
//! workers, see `benches/browser_threads.sh`) only splits independent rows or columns, so results
//! do not depend on the thread count.

use crate::quant::Activations;
use crate::weights::{LayerNorm, Linear, Tensor};

/// Runs `f` on one of the pool's threads (where there is a pool; in a single-threaded wasm build,
/// here). A forward pass runs
/// so: its serial parts (norms, attention, the activations' quantization) then run on a worker
/// while the other workers wait for the next parallel product, instead of on a thread outside the
/// pool while every worker spins for work — on two cores, a spinning worker took a third of the
/// time of a decode step from the thread doing the work.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    return rayon::scope(|_| f());
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    f()
}

/// The threads [`for_each_chunk`] runs on (1 in a single-threaded wasm build).
pub fn threads() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    return rayon::current_num_threads();
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    1
}

/// Runs `f(index, chunk)` over `data.chunks_mut(chunk)`, in parallel where threads exist.
pub fn for_each_chunk<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    data.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
}

/// Like [`for_each_chunk`] over two buffers chunked in step.
pub fn for_each_chunk2<F>(a: &mut [f32], ca: usize, b: &mut [f32], cb: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(ca).zip(b.par_chunks_mut(cb)).enumerate().for_each(|(i, (x, y))| f(i, x, y));
    }
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    a.chunks_mut(ca).zip(b.chunks_mut(cb)).enumerate().for_each(|(i, (x, y))| f(i, x, y));
}

/// `out[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias` for each row of `x` `[rows, n]`.
pub fn layer_norm(out: &mut [f32], x: &[f32], ln: &LayerNorm, eps: f32) {
    let n = ln.weight.data.len();
    for (o, row) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        let mean = row.iter().sum::<f32>() / n as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in o.iter_mut().zip(row).zip(&ln.weight.data).zip(&ln.bias.data) {
            *o = (v - mean) * inv * g + b;
        }
    }
}

/// `out[rows, n_out] = x[rows, n_in] @ weight^T + bias`: a [`Linear`]'s product, by the
/// products of its matrix's storage ([`crate::quant::Matrix::linear_with`]).
pub fn linear(out: &mut [f32], x: &[f32], lin: &Linear, activations: Activations) {
    lin.weight.linear_with(out, x, Some(&lin.bias), activations);
}

/// GPT-2's GELU, tanh form: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (the branch-free
/// tanh of [`super::math`], so the loop is vectorized).
pub fn gelu(x: &mut [f32]) {
    const S: f32 = 0.797_884_6; // sqrt(2 / pi)
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + super::math::tanh(S * (u + 0.044715 * u * u * u)));
    }
}

/// `out[rows, n_out] = x[rows, n_in] @ w[n_out, n_in]^T + bias`: a matrix stored `[out, in]`
/// (PyTorch's `nn.Linear`, the Llama family's projections, every LM head).
pub fn linear_out_in(out: &mut [f32], x: &[f32], w: &Tensor, bias: Option<&Tensor>) {
    let (n_out, n_in) = (w.shape[0], w.shape[1]);
    let bias = bias.map(|b| b.data.as_slice());
    if x.len() > n_in {
        return linear_rows(out, x, n_out, n_in, bias, |r, into| {
            into.copy_from_slice(&w.data[r * n_in..(r + 1) * n_in])
        });
    }
    // A few tasks per thread ([`rows_per_task`]): in fixed blocks of 256 rows, a 768-row matrix
    // was three tasks on two threads, one thread idle for a third of it.
    let per_task = rows_per_task(n_out);
    for_each_chunk(out, per_task, |block, o| {
        let r0 = block * per_task;
        for (j, o) in o.iter_mut().enumerate() {
            let row = &w.data[(r0 + j) * n_in..(r0 + j + 1) * n_in];
            *o = dot_f32(row, x) + bias.map_or(0.0, |b| b[r0 + j]);
        }
    });
}

/// Output rows per parallel task for a matrix of `n_out` rows: a few tasks per thread (each
/// parallel region costs a wake-up and a join, so tiny tasks lose more than they balance), never
/// fewer than 16 rows.
pub fn rows_per_task(n_out: usize) -> usize {
    // A multiple of 4: the integer products take rows four at a time.
    n_out.div_ceil(4 * threads()).max(16).next_multiple_of(4)
}

/// Prefill's product, `out[i, r] = row r · x[i] (+ bias[r])` for every row `i` of `x`
/// (`[n, n_in]`), a matrix of `n_out` rows given by `row(r, into)`, which writes row `r` in f32.
/// Each row is made once — a quantized row decoded once, not once per row of `x` — and then
/// multiplied with the rows of `x` four at a time, three weight rows at once ([`dots_rows`]:
/// each weight loaded once for four products, each activation once for three). Tasks own weight rows,
/// so the whole matrix is one parallel region, and each output
/// is one dot product whatever the thread count.
pub fn linear_rows(
    out: &mut [f32],
    x: &[f32],
    n_out: usize,
    n_in: usize,
    bias: Option<&[f32]>,
    row: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let n = x.len() / n_in;
    let per_task = rows_per_task(n_out);
    // The products by weight row (`[n_out, n]`: a task's outputs are one contiguous chunk),
    // then laid out by row of `x`.
    let mut by_row = vec![0f32; n_out * n];
    for_each_chunk(&mut by_row, per_task * n, |chunk, o| {
        let mut w = [(); 3].map(|_| vec![0f32; n_in]);
        // Three weight rows at a time ([`dots_rows`]), the last one or two if the task has fewer.
        for (j, o) in o.chunks_mut(3 * n).enumerate() {
            let r = chunk * per_task + 3 * j;
            let rows = o.len() / n;
            for (k, w) in w.iter_mut().take(rows).enumerate() {
                row(r + k, w);
            }
            match rows {
                3 => {
                    let (o0, o12) = o.split_at_mut(n);
                    let (o1, o2) = o12.split_at_mut(n);
                    dots_rows([&w[0], &w[1], &w[2]], x, [o0, o1, o2]);
                }
                2 => {
                    let (o0, o1) = o.split_at_mut(n);
                    dots_rows([&w[0], &w[1]], x, [o0, o1]);
                }
                _ => dots(&w[0], x, o),
            }
            if let Some(b) = bias {
                for (k, o) in o.chunks_exact_mut(n).enumerate() {
                    o.iter_mut().for_each(|v| *v += b[r + k]);
                }
            }
        }
    });
    for (r, col) in by_row.chunks_exact(n).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * n_out + r] = v;
        }
    }
}

/// [`dots`] for `R` weight rows: four rows of `x` at a time against all of them
/// ([`crate::quant::simd::dot_rows_x4_f32`]), each output the same bits as [`dots`] gives it.
pub fn dots_rows<const R: usize>(w: [&[f32]; R], x: &[f32], mut out: [&mut [f32]; R]) {
    let n_in = w[0].len();
    let whole = out[0].len() / 4 * 4;
    for i in 0..whole / 4 {
        let x4 = &x[4 * i * n_in..(4 * i + 4) * n_in];
        match crate::quant::simd::dot_rows_x4_f32(w, std::array::from_fn(|k| &x4[k * n_in..][..n_in])) {
            Some(sums) => {
                for (o, s) in out.iter_mut().zip(sums) {
                    o[4 * i..4 * i + 4].copy_from_slice(&s);
                }
            }
            None => {
                for (o, w) in out.iter_mut().zip(w) {
                    dots(w, x4, &mut o[4 * i..4 * i + 4]);
                }
            }
        }
    }
    let rest = &x[whole * n_in..];
    for (o, w) in out.iter_mut().zip(w) {
        dots(w, rest, &mut o[whole..]);
    }
}

/// `out[i] = w · x[i]` for each row `i` of `x` (`[out.len(), w.len()]`), four rows at a time.
pub fn dots(w: &[f32], x: &[f32], out: &mut [f32]) {
    let mut rows = x.chunks_exact(w.len());
    for o in out.chunks_mut(4) {
        if let [a, b, c, d] = o {
            let xs = [(); 4].map(|_| rows.next().expect("a row of x per output"));
            let got = crate::quant::simd::dot4_f32(w, xs).unwrap_or_else(|| xs.map(|x| dot_f32(w, x)));
            [*a, *b, *c, *d] = got;
        } else {
            for o in o {
                *o = dot_f32(w, rows.next().expect("a row of x per output"));
            }
        }
    }
}

/// `a · b`, with SIMD where this CPU (or wasm build) has it.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    crate::quant::simd::dot_f32(a, b).unwrap_or_else(|| a.iter().zip(b).map(|(x, y)| x * y).sum())
}

/// `x += y`, element by element (a residual add).
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// In-place softmax of one row.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Shapes for one causal attention call.
pub struct AttentionShape {
    pub n_head: usize,
    pub head_dim: usize,
    /// Positions already in the cache before these rows.
    pub past: usize,
}

/// Causal multi-head attention of `rows` new positions over the cache.
///
/// `q` is `[rows, 3 * n_embd]` (the c_attn output; q is its first third), `k_cache`/`v_cache`
/// are one layer's `[n_positions, n_embd]` with positions `0..past + rows` filled. Row `i`
/// (position `past + i`) attends to positions `0..=past + i`. Writes `out` `[rows, n_embd]` and
/// `probs` `[rows, n_head, past + rows]` (masked entries 0).
pub fn attention(
    out: &mut [f32],
    probs: &mut [f32],
    qkv: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    s: &AttentionShape,
) {
    let c = s.n_head * s.head_dim;
    let rows = out.len() / c;
    let total = s.past + rows;
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    // One (row, head) at a time, in parallel: a decode step's heads spread over the threads.
    for_each_chunk2(out, s.head_dim, probs, total, |ih, o, p| {
        let (i, h) = (ih / s.n_head, ih % s.n_head);
        let visible = s.past + i + 1;
        let cols = h * s.head_dim..(h + 1) * s.head_dim;
        let q = &qkv[i * 3 * c..][cols.clone()];
        for (t, p) in p[..visible].iter_mut().enumerate() {
            *p = dot_f32(q, &k_cache[t * c..][cols.clone()]) * scale;
        }
        softmax(&mut p[..visible]);
        p[visible..].fill(0.0);
        o.fill(0.0);
        for (t, &w) in p[..visible].iter().enumerate() {
            let v = &v_cache[t * c..][cols.clone()];
            for (o, &v) in o.iter_mut().zip(v) {
                *o += w * v;
            }
        }
    });
}
