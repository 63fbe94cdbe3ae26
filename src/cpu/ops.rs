//! The reference kernels, f32, row-major. Each is the plain math; parallelism (rayon: natively,
//! and in a wasm build with threads — `+atomics`, a shared memory, `wasm-bindgen-rayon`'s pool of
//! workers, see `benches/browser_threads.sh`) only splits independent rows or columns, so results
//! do not depend on the thread count.

use crate::quant::Activations;
use crate::quant::simd::{self, RowGroup};
use crate::weights::{LayerNorm, Linear, Tensor};

/// Runs `f` on one of the pool's threads (where there is a pool; in a single-threaded wasm build,
/// here), with the pool's other threads held for its parallel regions (`src/cpu/team.rs`). A
/// forward pass runs so: its serial parts (norms, attention, the activations' quantization) then
/// run on a worker while the others wait for the next region, instead of on a thread outside the
/// pool while every worker spins for work — on two cores, a spinning worker took a third of the
/// time of a decode step from the thread doing the work.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    return rayon::scope(|_| super::team::lead(f));
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

/// Runs `task(i)` for `i` in `0..n`, in parallel where threads exist.
fn for_each_index(n: usize, task: &(dyn Fn(usize) + Sync)) {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    super::team::for_each_index(n, task);
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    (0..n).for_each(task);
}

/// A buffer's start, shared by the tasks that each take one disjoint chunk of it.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: the tasks given a `Shared` write disjoint chunks, each index run once.
unsafe impl<T: Send> Sync for Shared<T> {}
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    /// Chunk `i` of `chunk` elements of a buffer of `len` (the last one shorter).
    ///
    /// # Safety
    /// Each `i` is asked for once while the buffer is borrowed mutably by the caller.
    #[allow(clippy::mut_from_ref)]
    unsafe fn chunk(&self, i: usize, chunk: usize, len: usize) -> &mut [T] {
        let start = i * chunk;
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), chunk.min(len - start)) }
    }

    /// Moves element `i` out.
    ///
    /// # Safety
    /// Each `i` is taken once, and the buffer then forgets its elements.
    unsafe fn take(&self, i: usize) -> T {
        unsafe { self.0.add(i).read() }
    }
}

/// Runs `f(index, chunk)` over `data.chunks_mut(chunk)`, in parallel where threads exist.
pub fn for_each_chunk<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let (len, base) = (data.len(), Shared(data.as_mut_ptr()));
    // SAFETY: index `i` is run once and takes chunk `i` of `data`, borrowed until the end.
    for_each_index(len.div_ceil(chunk), &|i| f(i, unsafe { base.chunk(i, chunk, len) }));
}

/// Runs `f(item)` for each of `items`, in parallel where threads exist (tasks of different
/// sizes or sources: several matrices' rows in one parallel region).
pub fn for_each_item<T, F>(items: Vec<T>, f: F)
where
    T: Send,
    F: Fn(T) + Sync + Send,
{
    let mut items = std::mem::ManuallyDrop::new(items);
    let (n, base) = (items.len(), Shared(items.as_mut_ptr()));
    // SAFETY: index `i` is run once, so item `i` is moved out once; the buffer is then freed
    // with no items left in it (those of a panicking region leak).
    for_each_index(n, &|i| f(unsafe { base.take(i) }));
    unsafe { items.set_len(0) };
    std::mem::ManuallyDrop::into_inner(items);
}

/// `out[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias` for each row of `x` `[rows, n]`;
/// a prompt's rows in parallel ([`PARALLEL_VALUES`]), each row whole on one thread.
pub fn layer_norm(out: &mut [f32], x: &[f32], ln: &LayerNorm, eps: f32) {
    let n = ln.weight.data.len();
    let norm = |r: usize, out: &mut [f32]| {
        for (o, row) in out.chunks_exact_mut(n).zip(x[r * n..].chunks_exact(n)) {
            let mean = row.iter().sum::<f32>() / n as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for (((o, &v), &g), &b) in o.iter_mut().zip(row).zip(&ln.weight.data).zip(&ln.bias.data) {
                *o = (v - mean) * inv * g + b;
            }
        }
    };
    if x.len() >= PARALLEL_VALUES {
        for_each_chunk(out, n, norm);
    } else {
        norm(0, out);
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
    let gelu = |_, x: &mut [f32]| {
        for v in x {
            let u = *v;
            *v = 0.5 * u * (1.0 + super::math::tanh(S * (u + 0.044715 * u * u * u)));
        }
    };
    elementwise(x, gelu);
}

/// SwiGLU's `silu(gate) · up`, into `gate`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    elementwise(gate, |i, g| {
        for (g, &u) in g.iter_mut().zip(&up[i * ELEMENTWISE_CHUNK..]) {
            *g = *g / (1.0 + super::math::exp(-*g)) * u;
        }
    });
}

/// From how many values the serial steps between products (element-wise ops, norms, the
/// activations' quantization) are split over the threads: a prompt's rows, not a decode step's
/// one row, where a parallel region costs more than it saves. Serial, SmolLM2's Q4_0 prefill
/// of 16 tokens left the second thread waiting for two fifths of the time (`perf`).
pub const PARALLEL_VALUES: usize = 8192;
const ELEMENTWISE_CHUNK: usize = 2048;

/// `f(i, chunk)` over `x` in chunks of [`ELEMENTWISE_CHUNK`] values in parallel, or `f(0, x)`
/// where `x` is short.
fn elementwise(x: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if x.len() < PARALLEL_VALUES {
        f(0, x);
    } else {
        for_each_chunk(x, ELEMENTWISE_CHUNK, f);
    }
}

/// `out[rows, n_out] = x[rows, n_in] @ w[n_out, n_in]^T + bias`: a matrix stored `[out, in]`
/// (PyTorch's `nn.Linear`, the Llama family's projections, every LM head).
pub fn linear_out_in(out: &mut [f32], x: &[f32], w: &Tensor, bias: Option<&Tensor>) {
    let (n_out, n_in) = (w.shape[0], w.shape[1]);
    let bias = bias.map(|b| b.data.as_slice());
    if x.len() > n_in {
        return linear_rows(out, x, n_out, n_in, bias, w);
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
/// task costs a claim and each region a join, so tiny tasks lose more than they balance), never
/// fewer than 16 rows.
pub fn rows_per_task(n_out: usize) -> usize {
    // A multiple of 4: the integer products take rows four at a time.
    n_out.div_ceil(4 * threads()).max(16).next_multiple_of(4)
}

/// Where [`linear_rows`] gets its weight rows: as a prompt's kernel reads them
/// ([`RowGroup`]), and as stored (what it asks into the cache ahead of them).
pub trait WeightRows: Sync {
    /// Rows `r .. r + G`: f32 lent as they are, f16 as stored where this CPU's kernel widens
    /// them in registers, else decoded into `scratch` (each resized to a row's length).
    fn group<'a, const G: usize>(&'a self, r: usize, scratch: &'a mut [Vec<f32>; G]) -> RowGroup<'a, G>;
    /// The bytes `rows` are stored in (clipped at the matrix's end): what the product asks into
    /// the cache while it multiplies the rows before them.
    fn stored(&self, rows: std::ops::Range<usize>) -> &[u8];
}

/// An f32 matrix `[out, in]`: its rows lent as they are (a copy first cost a pass over the
/// matrix, which the product then read again from the cache).
impl WeightRows for Tensor {
    fn group<'a, const G: usize>(&'a self, r: usize, _scratch: &'a mut [Vec<f32>; G]) -> RowGroup<'a, G> {
        let n_in = self.shape[1];
        RowGroup::F32(std::array::from_fn(|k| &self.data[(r + k) * n_in..(r + k + 1) * n_in]))
    }

    fn stored(&self, rows: std::ops::Range<usize>) -> &[u8] {
        let n_in = self.shape[1];
        let end = (rows.end * n_in).min(self.data.len());
        bytemuck::cast_slice(&self.data[(rows.start * n_in).min(end)..end])
    }
}

/// Prefill's product, `out[i, r] = row r · x[i] (+ bias[r])` for every row `i` of `x`
/// (`[n, n_in]`), a matrix of `n_out` rows given by `rows`. Each row is made once — a
/// quantized row decoded once, not once per row of `x` — and then multiplied with the rows of
/// `x` four at a time, a group of weight rows at once ([`dots_rows`]: each weight loaded once
/// for four products, each activation once for the group). Tasks own weight rows, so the
/// whole matrix is one parallel region, and each output is one dot product whatever the
/// thread count or the group it is in.
pub fn linear_rows(
    out: &mut [f32],
    x: &[f32],
    n_out: usize,
    n_in: usize,
    bias: Option<&[f32]>,
    rows: &impl WeightRows,
) {
    // As many weight rows as the kernel's sums fit in registers beside their operands: 6 × 4
    // sums in AVX-512's 32 (each activation vector read from the cache once per six rows, not
    // per three: prefill 15–25 % faster), 3 × 4 in AVX2's 16.
    match crate::quant::simd::prompt_rows() {
        6 => linear_groups::<6>(out, x, n_out, n_in, bias, rows),
        _ => linear_groups::<3>(out, x, n_out, n_in, bias, rows),
    }
}

/// [`linear_rows`] in groups of `G` weight rows.
fn linear_groups<const G: usize>(
    out: &mut [f32],
    x: &[f32],
    n_out: usize,
    n_in: usize,
    bias: Option<&[f32]>,
    rows: &impl WeightRows,
) {
    let n = x.len() / n_in;
    let per_task = rows_per_task(n_out);
    // The products by weight row (`[n_out, n]`: a task's outputs are one contiguous chunk),
    // then laid out by row of `x`.
    let mut by_row = vec![0f32; n_out * n];
    for_each_chunk(&mut by_row, per_task * n, |chunk, o| {
        let mut scratch: [Vec<f32>; G] = std::array::from_fn(|_| Vec::new());
        let (mut three, mut one) = (std::array::from_fn(|_| Vec::new()), [Vec::new()]);
        for (j, o) in o.chunks_mut(G * n).enumerate() {
            let r = chunk * per_task + G * j;
            if o.len() == G * n {
                // The next group's rows, read while these are multiplied (past the task's own
                // rows at its end: the next task's, which a thread takes next).
                dots_rows(rows.group(r, &mut scratch), x, split(o, n), rows.stored(r + G..r + 2 * G));
            } else {
                // The task's last rows, fewer than a group: by three, then one at a time.
                for (k, o) in o.chunks_mut(3 * n).enumerate() {
                    if o.len() == 3 * n {
                        dots_rows::<3>(rows.group(r + 3 * k, &mut three), x, split(o, n), &[]);
                        continue;
                    }
                    for (q, o) in o.chunks_exact_mut(n).enumerate() {
                        dots_rows::<1>(rows.group(r + 3 * k + q, &mut one), x, [o], &[]);
                    }
                }
            }
            if let Some(b) = bias {
                for (k, o) in o.chunks_exact_mut(n).enumerate() {
                    o.iter_mut().for_each(|v| *v += b[r + k]);
                }
            }
        }
    });
    // Laid out by row of `x` in parallel, sixteen rows a task, each reading sixteen consecutive
    // products of every weight row (one thread's pass over a 960-token prompt's outputs left
    // the other waiting for an eighth of the prefill).
    const ROWS: usize = 16;
    for_each_chunk(out, ROWS * n_out, |c, o| {
        let (i0, m) = (ROWS * c, o.len() / n_out);
        for (r, col) in by_row.chunks_exact(n).enumerate() {
            for (k, &v) in col[i0..i0 + m].iter().enumerate() {
                o[k * n_out + r] = v;
            }
        }
    });
}

/// `o` (`R · n` values) as `R` rows of `n`.
fn split<const R: usize>(o: &mut [f32], n: usize) -> [&mut [f32]; R] {
    let mut rows = o.chunks_exact_mut(n);
    std::array::from_fn(|_| rows.next().expect("R rows of n"))
}

/// `out[k][i] = w[k] · x[i]` for each row `i` of `x` (`[out[k].len(), n_in]`): four rows of `x`
/// at a time against all `R` weight rows ([`crate::quant::simd::dot_rows_x4`]); a last one to
/// three rows of `x` padded to four with copies of the last (their sums dropped), so every
/// output comes from the same kernel in the same order. `ahead`: bytes asked into the cache
/// during the first four rows' products (the weights multiplied next).
pub fn dots_rows<const R: usize>(w: RowGroup<'_, R>, x: &[f32], mut out: [&mut [f32]; R], ahead: &[u8]) {
    let n_in = w.cols();
    let n = out[0].len();
    for i in (0..n).step_by(4) {
        let x4: [&[f32]; 4] = std::array::from_fn(|k| &x[(i + k).min(n - 1) * n_in..][..n_in]);
        let ahead = if i == 0 { ahead } else { &[] };
        let sums = crate::quant::simd::dot_rows_x4(w, x4, ahead).unwrap_or_else(|| match w {
            RowGroup::F32(w) => w.map(|w| x4.map(|x| dot_f32(w, x))),
            RowGroup::F16(_) => unreachable!("f16 rows are lent only to a kernel that widens them"),
        });
        for (o, s) in out.iter_mut().zip(sums) {
            let take = (n - i).min(4);
            o[i..i + take].copy_from_slice(&s[..take]);
        }
    }
}

/// `a · b`, with SIMD where this CPU (or wasm build) has it.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    crate::quant::simd::dot_f32(a, b).unwrap_or_else(|| a.iter().zip(b).map(|(x, y)| x * y).sum())
}

/// One query row's attention (one head): `p[t] = softmax(q · key(t) · scale)` over the visible
/// positions `t < p.len()`, then `out = Σ p[t] · value(t)`. Scores four keys per call of the
/// prompt's kernel ([`simd::dot_rows_x4`] with one row: each score is the same bits whatever
/// keys are beside it, so a position's scores do not depend on how many are visible) and the
/// values four rows per pass over `out` ([`simd::add_weighted4`]: one row at a time's bits).
/// At a long context a decode step is mostly this: a call and a horizontal sum per key, and
/// `out` loaded and stored per value row, left most of the time waiting on the calls.
pub fn attend<'a>(
    q: &[f32],
    key: impl Fn(usize) -> &'a [f32],
    value: impl Fn(usize) -> &'a [f32],
    scale: f32,
    p: &mut [f32],
    out: &mut [f32],
) {
    scores(q, key, scale, p);
    softmax(p);
    weighted_sum(p, value, out);
}

/// One head's keys laid out for a prompt's rows: positions in tiles of sixteen, a tile
/// `[j][16]` (each key's values down one of its columns), so that one query row's scores for
/// sixteen keys are one vector sum ([`simd::dot_key_tiles`]) and no key needs a horizontal sum
/// (at a head size of 64, eight instructions of a key's twelve). Laid out once per head and
/// pass and read by every row: a long prompt's prefill is mostly its attention.
pub struct KeyTiles {
    hd: usize,
    data: Vec<f32>,
    scores: Vec<f32>,
}

impl KeyTiles {
    /// The keys of positions `0 .. positions`; None where this CPU has no kernel for them (each
    /// row then takes [`attend`]).
    pub fn new<'a>(key: impl Fn(usize) -> &'a [f32], positions: usize, hd: usize) -> Option<Self> {
        if !simd::has_key_tiles() || hd == 0 {
            return None;
        }
        let mut data = vec![0f32; positions.div_ceil(16) * 16 * hd];
        for t in 0..positions {
            let tile = &mut data[t / 16 * 16 * hd..][..16 * hd];
            for (j, &v) in key(t).iter().enumerate() {
                tile[16 * j + t % 16] = v;
            }
        }
        Some(KeyTiles { hd, data, scores: Vec::new() })
    }

    /// `p[t] = q · key(t) · scale` for `t < p.len()`.
    fn scores(&mut self, q: &[f32], scale: f32, p: &mut [f32]) {
        let tiles = p.len().div_ceil(16);
        self.scores.resize(16 * tiles, 0.0);
        assert!(simd::dot_key_tiles(q, &self.data[..16 * self.hd * tiles], &mut self.scores));
        for (p, s) in p.iter_mut().zip(&self.scores) {
            *p = s * scale;
        }
    }

    /// [`KeyTiles::attend`] for four rows at once (`p[r]` as long as row `r`'s visible
    /// positions): their scores with each tile's row loaded once for the four
    /// ([`simd::dot_key_tiles4`]), their weighted sums with each value row loaded once for the
    /// four over the positions all of them see ([`simd::add_weighted4x4`]), then each row's own
    /// last positions alone. The same bits as four calls of [`KeyTiles::attend`]: a prompt's
    /// attention read every key and value once per row, and waited on the loads.
    pub fn attend4<'a>(
        &mut self,
        q: [&[f32]; 4],
        value: impl Fn(usize) -> &'a [f32],
        scale: f32,
        mut p: [&mut [f32]; 4],
        mut out: [&mut [f32]; 4],
    ) {
        let (least, most) = (p.iter().map(|p| p.len()).min(), p.iter().map(|p| p.len()).max());
        let (least, most) = (least.unwrap_or(0), most.unwrap_or(0));
        let per = 16 * most.div_ceil(16);
        self.scores.resize(4 * per, 0.0);
        let mut scores = self.scores.chunks_exact_mut(per);
        let scores: [&mut [f32]; 4] = std::array::from_fn(|_| scores.next().expect("four rows of scores"));
        assert!(simd::dot_key_tiles4(q, &self.data[..self.hd * per], scores));
        for (r, p) in p.iter_mut().enumerate() {
            for (p, s) in p.iter_mut().zip(&self.scores[r * per..]) {
                *p = s * scale;
            }
            softmax(p);
        }
        out.iter_mut().for_each(|o| o.fill(0.0));
        let whole = least / 4 * 4;
        for t0 in (0..whole).step_by(4) {
            let w = std::array::from_fn(|r| std::array::from_fn(|k| p[r][t0 + k]));
            simd::add_weighted4x4(out.each_mut().map(|o| &mut **o), w, std::array::from_fn(|k| value(t0 + k)));
        }
        for (p, out) in p.iter().zip(out) {
            weighted_sum_from(p, &value, out, whole);
        }
    }

    /// [`attend`] with the scores from the tiles: the same but for the scores' rounding.
    pub fn attend<'a>(
        &mut self,
        q: &[f32],
        value: impl Fn(usize) -> &'a [f32],
        scale: f32,
        p: &mut [f32],
        out: &mut [f32],
    ) {
        self.scores(q, scale, p);
        softmax(p);
        weighted_sum(p, value, out);
    }
}

/// Causal attention of `n` new rows (positions `past ..`) over `past + n` positions, each of
/// `heads` heads of size `hd`: `q(i, head)`, `key(head, t)`, `value(head, t)` the rows. Returns
/// the heads' outputs in row order, `[n, heads · hd]`; where `probs` is given (`[heads, n, past +
/// n]`), each row's probabilities too, masked entries 0 (else each task holds one row of them at
/// a time). A prompt's tasks lay their head's keys out in tiles once ([`KeyTiles`]), up to their
/// last row's positions.
///
/// One task per head and chunk of its rows ([`row_chunks`]): one per head left a thread idle
/// where the heads do not divide among the threads (nine on two: a ninth of the time). Each
/// row's result is the same bits however its head's rows are cut (a score's bits do not depend
/// on the tiles beside its own), so on any thread count.
#[allow(clippy::too_many_arguments)]
pub fn attend_rows<'a>(
    heads: usize,
    hd: usize,
    past: usize,
    n: usize,
    q: impl Fn(usize, usize) -> &'a [f32] + Sync,
    key: impl Fn(usize, usize) -> &'a [f32] + Sync,
    value: impl Fn(usize, usize) -> &'a [f32] + Sync,
    scale: f32,
    probs: Option<&mut [f32]>,
) -> Vec<f32> {
    let total = past + n;
    let chunks = row_chunks(past, n, heads);
    let mut by_head = vec![0f32; heads * n * hd];
    // The tasks: (head, rows, their outputs `[rows, hd]`, their probabilities `[rows, total]`).
    type Task<'t> = (usize, std::ops::Range<usize>, &'t mut [f32], Option<&'t mut [f32]>);
    let mut tasks: Vec<Task> = Vec::with_capacity(heads * chunks.len());
    let (mut outs, mut probs) = (by_head.as_mut_slice(), probs);
    for head in 0..heads {
        for rows in &chunks {
            let (o, rest) = std::mem::take(&mut outs).split_at_mut(rows.len() * hd);
            outs = rest;
            let p = probs.take().map(|p| {
                let (p, rest) = p.split_at_mut(rows.len() * total);
                probs = Some(rest);
                p
            });
            tasks.push((head, rows.clone(), o, p));
        }
    }
    for_each_item(tasks, |(head, rows, out, mut probs)| {
        let (key, value) = (|t| key(head, t), |t| value(head, t));
        let last = past + rows.end;
        let mut tiles = if n > 1 { KeyTiles::new(key, last, hd) } else { None };
        // Each row's probabilities: kept, masked with 0 past its positions, or four rows' scratch.
        let kept = probs.is_some();
        let (width, mut scratch) = if kept { (total, Vec::new()) } else { (last, vec![0f32; 4 * last]) };
        let rows_p = probs.as_deref_mut().unwrap_or(&mut scratch);
        let mut k = 0;
        while k < rows.len() {
            // Four rows at once where there are tiles; one at a time else, and for the last.
            let m = if tiles.is_some() && k + 4 <= rows.len() { 4 } else { 1 };
            let i0 = rows.start + k;
            let base = if kept { k } else { 0 };
            let mut p = rows_p[base * width..][..m * width].chunks_exact_mut(width);
            let mut o = out[k * hd..][..m * hd].chunks_exact_mut(hd);
            let mut row = |r: usize| {
                let (p, visible) = (p.next().expect("m rows"), past + i0 + r + 1);
                p[visible..].fill(0.0);
                (&mut p[..visible], o.next().expect("m rows"))
            };
            match &mut tiles {
                Some(tiles) if m == 4 => {
                    let [a, b, c, d] = std::array::from_fn(&mut row);
                    let q = std::array::from_fn(|r| q(i0 + r, head));
                    tiles.attend4(q, value, scale, [a.0, b.0, c.0, d.0], [a.1, b.1, c.1, d.1]);
                }
                Some(tiles) => {
                    let (p, o) = row(0);
                    tiles.attend(q(i0, head), value, scale, p, o);
                }
                None => {
                    let (p, o) = row(0);
                    attend(q(i0, head), key, value, scale, p, o);
                }
            }
            k += m;
        }
    });
    let mut out = vec![0f32; n * heads * hd];
    for (head, rows) in by_head.chunks_exact(n * hd).enumerate() {
        for (i, row) in rows.chunks_exact(hd).enumerate() {
            out[(i * heads + head) * hd..][..hd].copy_from_slice(row);
        }
    }
    out
}

/// The chunks [`attend_rows`] cuts each head's `n` rows into: as many as make about eight tasks
/// per thread (one where the prompt is under 32 rows, and at least 16 rows each), cut where the
/// rows' work is equal — row `i` reads `past + i + 1` positions.
fn row_chunks(past: usize, n: usize, heads: usize) -> Vec<std::ops::Range<usize>> {
    let count = if n < 32 { 1 } else { (8 * threads()).div_ceil(heads).clamp(1, n / 16) };
    // The work of rows 0 .. i.
    let before = |i: usize| (i * past + i * (i + 1) / 2) as f64;
    let mut starts: Vec<usize> =
        (0..count).map(|c| (0..n).find(|&i| before(i) * count as f64 >= before(n) * c as f64).unwrap_or(n)).collect();
    starts.dedup();
    starts.iter().zip(starts.iter().skip(1).chain([&n])).map(|(&a, &b)| a..b).filter(|r| !r.is_empty()).collect()
}

/// `p[t] = q · key(t) · scale` for `t < p.len()`, four keys a call (see [`attend`]).
fn scores<'a>(q: &[f32], key: impl Fn(usize) -> &'a [f32], scale: f32, p: &mut [f32]) {
    let visible = p.len();
    for t0 in (0..visible).step_by(4) {
        // A last group of fewer keys repeats its last one.
        let keys = std::array::from_fn(|k| key((t0 + k).min(visible - 1)));
        let s = match simd::dot_rows_x4(RowGroup::F32([q]), keys, &[]) {
            Some([s]) => s,
            None => keys.map(|k| dot_f32(q, k)),
        };
        for (p, s) in p[t0..].iter_mut().zip(s) {
            *p = s * scale;
        }
    }
}

/// `out = Σ p[t] · value(t)`, four value rows a pass (see [`attend`]).
fn weighted_sum<'a>(p: &[f32], value: impl Fn(usize) -> &'a [f32], out: &mut [f32]) {
    out.fill(0.0);
    weighted_sum_from(p, value, out, 0);
}

/// `out += Σ p[t] · value(t)` for `t` from `from`: each output the same chain of additions, in
/// order of `t`, however the positions before `from` were summed.
fn weighted_sum_from<'a>(p: &[f32], value: impl Fn(usize) -> &'a [f32], out: &mut [f32], from: usize) {
    let whole = from + (p.len() - from) / 4 * 4;
    for t0 in (from..whole).step_by(4) {
        let w = std::array::from_fn(|k| p[t0 + k]);
        simd::add_weighted4(out, w, std::array::from_fn(|k| value(t0 + k)));
    }
    for (t, &w) in p.iter().enumerate().skip(whole) {
        for (o, &v) in out.iter_mut().zip(value(t)) {
            *o += w * v;
        }
    }
}

/// `x += y`, element by element (a residual add).
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// In-place softmax of one row (attention's: every value finite or −∞).
///
/// The exponentials by the branch-free [`super::math::exp`], which the compiler vectorizes
/// (libm's `expf` was a call per score: at 960 positions a sixth of a decode step's time),
/// exactly 0 below −87 (where that one clamps; libm's is under 1.2e−38 there), so a −∞ still
/// weighs nothing. Their sum in sixteen lanes (element `i` into lane `i % 16`, the lanes then
/// added in order): one chain of additions waited on each one. The same bits for a row
/// wherever it is computed.
pub fn softmax(x: &mut [f32]) {
    simd::softmax(x)
}

/// [`softmax`]'s loops, compiled by [`simd::softmax`] for this CPU's vectors.
#[inline(always)]
pub(crate) fn softmax_plain(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in x.iter_mut() {
        let d = *v - max;
        let e = super::math::exp(d);
        *v = if d < -87.0 { 0.0 } else { e };
    }
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for chunk in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    for (l, v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += v;
    }
    let sum = lanes.iter().fold(0.0, |s, l| s + l);
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
/// (position `past + i`) attends to positions `0..=past + i`. Writes `out` `[rows, n_embd]` and,
/// where given, `probs` `[rows, n_head, past + rows]` (masked entries 0): [`attend_rows`].
pub fn attention(
    out: &mut [f32],
    probs: Option<&mut [f32]>,
    qkv: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    s: &AttentionShape,
) {
    let (c, hd) = (s.n_head * s.head_dim, s.head_dim);
    let rows = out.len() / c;
    let total = s.past + rows;
    let scale = 1.0 / (hd as f32).sqrt();
    let q = |i: usize, h: usize| &qkv[i * 3 * c + h * hd..][..hd];
    let (key, value) =
        (|h: usize, t: usize| &k_cache[t * c + h * hd..][..hd], |h: usize, t: usize| &v_cache[t * c + h * hd..][..hd]);
    match probs {
        // `[heads, rows, total]` from the tasks, `[rows, heads, total]` here (the same where one row).
        Some(probs) if rows > 1 => {
            let mut by_head = vec![0f32; s.n_head * rows * total];
            out.copy_from_slice(&attend_rows(s.n_head, hd, s.past, rows, q, key, value, scale, Some(&mut by_head)));
            for (h, head) in by_head.chunks_exact(rows * total).enumerate() {
                for (i, row) in head.chunks_exact(total).enumerate() {
                    probs[(i * s.n_head + h) * total..][..total].copy_from_slice(row);
                }
            }
        }
        probs => out.copy_from_slice(&attend_rows(s.n_head, hd, s.past, rows, q, key, value, scale, probs)),
    }
}

// Pools of threads: native only (the wasm tests run in the browser, tests/web.rs).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// One head's attention against the plain formula (each score a dot product, softmax, the
    /// values summed one row at a time), for head sizes that are and are not multiples of the
    /// SIMD widths and 1 to 35 visible positions (nine calls of four keys): scores and probabilities within rounding, each
    /// position's score the same bits however many positions are visible, and the weighted sum
    /// the plain sum's bits; the same with the prompt's tiles of keys (140 positions: nine tiles,
    /// eight of them taken together, against one to three tiles taken one by one).
    #[test]
    fn attention_of_one_row_is_the_plain_formula() {
        let value_of = |i: usize| ((i * 7919) % 1999) as f32 / 999.0 - 1.0;
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for hd in [5, 16, 64, 72] {
            let q: Vec<f32> = (0..hd).map(value_of).collect();
            let row = |t: usize, at: usize| (0..hd).map(|j| value_of(at + 31 * t + j)).collect::<Vec<f32>>();
            let (keys, values): (Vec<_>, Vec<_>) = (0..140).map(|t| (row(t, 3), row(t, 5))).unzip();
            let scale = 1.0 / (hd as f32).sqrt();
            let mut all = vec![0f32; 35];
            scores(&q, |t| &keys[t], scale, &mut all);
            for visible in 1..=35 {
                let mut s = vec![0f32; visible];
                scores(&q, |t| &keys[t], scale, &mut s);
                assert_eq!(bits(&s), bits(&all[..visible]), "hd {hd}, {visible} visible");
                let mut want: Vec<f32> =
                    keys[..visible].iter().map(|k| q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale).collect();
                for (g, w) in s.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "hd {hd}: score {g} vs {w}");
                }
                softmax(&mut want);
                let (mut p, mut out) = (vec![0f32; visible], vec![f32::NAN; hd]);
                attend(&q, |t| &keys[t], |t| &values[t], scale, &mut p, &mut out);
                for (g, w) in p.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-6, "hd {hd}, {visible} visible: p {g} vs {w}");
                }
                let mut sum = vec![0f32; hd];
                for (w, v) in p.iter().zip(&values) {
                    sum.iter_mut().zip(v).for_each(|(o, v)| *o += w * v);
                }
                assert_eq!(bits(&out), bits(&sum), "hd {hd}, {visible} visible");
                // The prompt's tiles of keys, where this CPU has them: the same within rounding,
                // each score the same bits however many positions are visible.
                if let Some(mut tiles) = KeyTiles::new(|t| &keys[t], 140, hd) {
                    let mut all = vec![0f32; 140];
                    tiles.scores(&q, scale, &mut all);
                    let mut s = vec![0f32; visible];
                    tiles.scores(&q, scale, &mut s);
                    assert_eq!(bits(&s), bits(&all[..visible]), "tiles: hd {hd}, {visible} visible");
                    tiles.attend(&q, |t| &values[t], scale, &mut s, &mut out);
                    for (g, w) in s.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-6, "tiles: hd {hd}, {visible} visible: p {g} vs {w}");
                    }
                    let mut sum = vec![0f32; hd];
                    for (w, v) in s.iter().zip(&values) {
                        sum.iter_mut().zip(v).for_each(|(o, v)| *o += w * v);
                    }
                    assert_eq!(bits(&out), bits(&sum), "tiles: hd {hd}, {visible} visible");
                    // Four rows at once (four queries; `visible` to `visible + 3` positions and
                    // the next tile's): each row's bits as alone.
                    let qs: Vec<Vec<f32>> = (0..4).map(|r| row(r, 11)).collect();
                    let lens = [visible, visible + 3, visible + 1, visible + 16];
                    let mut alone = Vec::new();
                    for (r, &len) in lens.iter().enumerate() {
                        let (mut p, mut o) = (vec![0f32; len], vec![0f32; hd]);
                        tiles.attend(&qs[r], |t| &values[t], scale, &mut p, &mut o);
                        alone.push((bits(&p), bits(&o)));
                    }
                    let mut p: [Vec<f32>; 4] = lens.map(|len| vec![f32::NAN; len]);
                    let mut o: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; hd]);
                    let [p0, p1, p2, p3] = p.each_mut().map(|p| p.as_mut_slice());
                    let [o0, o1, o2, o3] = o.each_mut().map(|o| o.as_mut_slice());
                    let q4 = std::array::from_fn(|r| qs[r].as_slice());
                    tiles.attend4(q4, |t| &values[t], scale, [p0, p1, p2, p3], [o0, o1, o2, o3]);
                    for (r, (p, o)) in p.iter().zip(&o).enumerate() {
                        assert_eq!((bits(p), bits(o)), alone[r], "four rows: hd {hd}, row {r}, {visible} visible");
                    }
                }
            }
        }
    }

    /// LayerNorm of a prompt's rows over three threads is each row's norm alone.
    #[test]
    fn layer_norm_over_threads_is_each_row_alone() {
        let n = 96;
        let rows = PARALLEL_VALUES / n + 3;
        let x: Vec<f32> = (0..rows * n).map(|i| ((i * 7919) % 2001) as f32 / 500.0 - 2.0).collect();
        let tensor = |data: Vec<f32>| Tensor { shape: vec![n], data };
        let ln = LayerNorm {
            weight: tensor((0..n).map(|i| 0.5 + i as f32 / 64.0).collect()),
            bias: tensor((0..n).map(|i| i as f32 / 100.0 - 0.3).collect()),
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let mut all = vec![0f32; x.len()];
        pool.install(|| on_pool(|| layer_norm(&mut all, &x, &ln, 1e-5)));
        for (r, row) in x.chunks_exact(n).enumerate() {
            let mut one = vec![0f32; n];
            layer_norm(&mut one, row, &ln, 1e-5);
            assert!(one.iter().zip(&all[r * n..]).all(|(a, b)| a.to_bits() == b.to_bits()), "row {r}");
        }
    }

    /// The element-wise ops of a prompt's rows, split over three threads, are the serial loop's
    /// values, chunk edges and a last short chunk included.
    #[test]
    fn element_wise_ops_over_threads_are_the_serial_values() {
        let n = PARALLEL_VALUES + ELEMENTWISE_CHUNK + 77;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 / 250.0 - 4.0).collect();
        let up: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 999) as f32 / 333.0 - 1.5).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (mut gelu_all, mut silu_all) = (x.clone(), x.clone());
        pool.install(|| {
            on_pool(|| {
                gelu(&mut gelu_all);
                silu_mul(&mut silu_all, &up);
            })
        });
        for i in 0..n {
            let (mut g, mut s) = ([x[i]], [x[i]]);
            gelu(&mut g);
            silu_mul(&mut s, &up[i..i + 1]);
            assert_eq!((gelu_all[i].to_bits(), silu_all[i].to_bits()), (g[0].to_bits(), s[0].to_bits()), "{i}");
        }
    }

    /// A prompt's attention cut into chunks of each head's rows ([`attend_rows`]): each row within
    /// rounding of [`attend`] alone (the tiles' scores round differently), the same bits however
    /// the rows are cut (1, 2 and 3 threads cut 64 rows into 3, 4 and 4 chunks of equal work,
    /// whose tiles hold different positions), each row's probabilities masked with 0 past its
    /// positions; and the chunks cover the rows in order.
    #[test]
    fn a_prompt_s_attention_is_each_row_s_however_its_rows_are_cut() {
        let (heads, hd, past, n) = (3, 16, 5, 64);
        let total = past + n;
        let value_of = |i: usize| ((i * 7919) % 1999) as f32 / 999.0 - 1.0;
        let (qs, keys, values): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            (0..n * heads * hd).map(value_of).collect(),
            (0..total * heads * hd).map(|i| value_of(i + 7)).collect(),
            (0..total * heads * hd).map(|i| value_of(i + 11)).collect(),
        );
        let q = |i: usize, h: usize| &qs[(i * heads + h) * hd..][..hd];
        let key = |h: usize, t: usize| &keys[(t * heads + h) * hd..][..hd];
        let value = |h: usize, t: usize| &values[(t * heads + h) * hd..][..hd];
        let scale = 0.25;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                on_pool(|| {
                    let chunks = row_chunks(past, n, heads);
                    let mut probs = vec![f32::NAN; heads * n * total];
                    let out = attend_rows(heads, hd, past, n, q, key, value, scale, Some(&mut probs));
                    (chunks, out, probs)
                })
            })
        };
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (chunks, out, probs) = run(1);
        for threads in [2, 3] {
            let (other, o, p) = run(threads);
            assert_ne!(other, chunks, "{threads} threads cut the rows as one does");
            assert_eq!((bits(&o), bits(&p)), (bits(&out), bits(&probs)), "{threads} threads");
        }
        for cut in [&chunks, &run(2).0] {
            assert_eq!(cut.first().map(|r| r.start), Some(0));
            assert_eq!(cut.last().map(|r| r.end), Some(n));
            assert!(cut.windows(2).all(|w| w[0].end == w[1].start && !w[0].is_empty()), "{cut:?}");
        }
        for h in 0..heads {
            for i in 0..n {
                let visible = past + i + 1;
                let (mut p, mut o) = (vec![0f32; visible], vec![0f32; hd]);
                attend(q(i, h), |t| key(h, t), |t| value(h, t), scale, &mut p, &mut o);
                let got = &probs[(h * n + i) * total..][..total];
                assert!(got[visible..].iter().all(|&x| x == 0.0), "head {h} row {i}: masked");
                for (g, w) in got.iter().zip(&p).chain(out[(i * heads + h) * hd..][..hd].iter().zip(&o)) {
                    assert!((g - w).abs() <= 1e-5, "head {h} row {i}: {g} vs {w}");
                }
            }
        }
    }
}
