//! A weight matrix `[rows, cols]` (rows are outputs, `[out, in]`) as the engines hold it: f32,
//! or GGML blocks kept exactly as the file stored them — each row a whole number of blocks — so
//! a 4-bit model takes 4.5 bits per weight in memory, and a matrix–vector product reads each
//! block once and decodes it in registers (`dot`), never the whole matrix into f32.

use std::borrow::Cow;
use std::ops::{Deref, Range};
use std::sync::Arc;

use super::int8::{Activations, Q8Row};
use super::simd::RowGroup;
use super::{GgmlType, QuantError};
use crate::cpu::ops::rows_per_task;
use crate::weights::Tensor;

/// The bytes of a matrix's blocks: its own, or a range of a file's bytes that every matrix
/// loaded from that file shares — a GGUF file read into memory once is where its blocks stay, so
/// a model is not held twice (the file, and a copy of each tensor).
#[derive(Clone)]
pub struct BlockBytes {
    buf: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl BlockBytes {
    /// `range` of `file` (checked by the caller to lie inside it).
    pub fn shared(file: &Arc<Vec<u8>>, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= file.len(), "a range inside the file");
        BlockBytes { buf: file.clone(), range }
    }
}

impl From<Vec<u8>> for BlockBytes {
    fn from(v: Vec<u8>) -> Self {
        let range = 0..v.len();
        BlockBytes { buf: Arc::new(v), range }
    }
}

impl Deref for BlockBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

impl PartialEq for BlockBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for BlockBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockBytes({} bytes)", self.len())
    }
}

/// Row-major blocks: row `r` is `data[r * row_bytes .. (r + 1) * row_bytes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocks {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: BlockBytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    F32(Tensor),
    Blocks(Blocks),
}

impl Blocks {
    /// `rows × cols` values of type `ty` in `data`, checked: whole blocks per row, the right
    /// length, finite block scales.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: impl Into<BlockBytes>) -> Result<Self, QuantError> {
        let data = data.into();
        let row = ty.bytes_for(cols as u64, cols as u64)?.unwrap_or(u64::MAX);
        let want = row.saturating_mul(rows as u64);
        if data.len() as u64 != want {
            return Err(QuantError::Size { ty, n: rows * cols, got: data.len(), want: want as usize });
        }
        if ty == GgmlType::F32 && f32_values(&data).is_none() {
            return Err(QuantError::Unaligned);
        }
        if let Some(block) = super::first_non_finite_scale(ty, &data) {
            return Err(QuantError::NonFiniteScale { block });
        }
        Ok(Blocks { ty, rows, cols, data })
    }

    /// Row `r` of an F32 matrix as the f32 values it holds (aligned: checked when built).
    fn f32_row(&self, r: usize) -> &[f32] {
        f32_values(self.row(r)).expect("F32 rows are aligned (checked when built)")
    }

    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }

    pub fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }
}

impl Matrix {
    /// `rows × cols` f32 values as Q8_0, Q4_0 or Q4_K blocks (what `wgpt quantize` and
    /// `--dtype` write), or as F16 or BF16 values. Each row must be whole blocks.
    pub fn quantize(ty: GgmlType, rows: usize, cols: usize, x: &[f32]) -> Result<Blocks, QuantError> {
        if !(cols as u64).is_multiple_of(ty.block_len()) {
            return Err(QuantError::PartialBlock { ty, n: cols as u64, block: ty.block_len() });
        }
        let data = match ty {
            GgmlType::Q4_0 => super::quantize_q4_0(x)?,
            GgmlType::Q8_0 => super::quantize_q8_0(x)?,
            GgmlType::Q4K => super::quantize_q4k(x)?,
            GgmlType::F16 | GgmlType::BF16 => super::to_16_bits(ty, x)?,
            other => return Err(QuantError::Unsupported(other)),
        };
        Blocks::new(ty, rows, cols, data)
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        match self {
            Matrix::F32(t) => [t.shape[0], t.shape[1]],
            Matrix::Blocks(b) => [b.rows, b.cols],
        }
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        match self {
            Matrix::F32(t) => t.data.len() * 4,
            Matrix::Blocks(b) => b.data.len(),
        }
    }

    /// Held in f32, F16 or BF16 (not quantized).
    pub fn is_float(&self) -> bool {
        self.block_type().is_none_or(GgmlType::is_float)
    }

    /// The block type, for a matrix in blocks.
    pub fn block_type(&self) -> Option<GgmlType> {
        match self {
            Matrix::F32(_) => None,
            Matrix::Blocks(b) => Some(b.ty),
        }
    }

    /// GGML's name of the stored type (`F32` for f32 matrices).
    pub fn type_name(&self) -> &'static str {
        match self {
            Matrix::F32(_) => "F32",
            Matrix::Blocks(b) => b.ty.name(),
        }
    }

    /// The whole matrix in f32: borrowed, or decoded (the GPU upload, the exporter, tests).
    pub fn to_f32(&self) -> Cow<'_, Tensor> {
        match self {
            Matrix::F32(t) => Cow::Borrowed(t),
            Matrix::Blocks(b) => Cow::Owned(Tensor {
                shape: vec![b.rows, b.cols],
                data: super::dequantize(b.ty, &b.data, b.rows * b.cols).expect("checked when built"),
            }),
        }
    }

    /// Row `r` in f32 into `out` (`cols` long): an embedding lookup.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        match self {
            Matrix::F32(t) => out.copy_from_slice(&t.data[r * t.shape[1]..(r + 1) * t.shape[1]]),
            Matrix::Blocks(b) => super::dequantize_into(b.ty, b.row(r), out).expect("checked when built"),
        }
    }

    /// `out[i, o] = x[i, :] · row o (+ bias[o])` for each row of `x` (`[n, cols]`): `nn.Linear`.
    pub fn linear(&self, out: &mut [f32], x: &[f32], bias: Option<&Tensor>) {
        self.linear_with(out, x, bias, Activations::F32);
    }

    /// [`Matrix::linear`], blocks multiplied as `activations` says.
    pub fn linear_with(&self, out: &mut [f32], x: &[f32], bias: Option<&Tensor>, activations: Activations) {
        match self {
            Matrix::F32(t) => crate::cpu::ops::linear_out_in(out, x, t, bias),
            Matrix::Blocks(b) => b.linear_with(out, x, bias, activations),
        }
    }
}

/// Rows of blocks for a prompt's product: f16 as stored where the kernel widens it, else each
/// row decoded into f32 once for all of the prompt's rows.
impl crate::cpu::ops::WeightRows for Blocks {
    fn group<'a, const G: usize>(&'a self, r: usize, scratch: &'a mut [Vec<f32>; G]) -> RowGroup<'a, G> {
        if self.ty == GgmlType::F16 && super::simd::widens_f16() {
            return RowGroup::F16(std::array::from_fn(|k| self.row(r + k)));
        }
        if self.ty == GgmlType::F32 {
            return RowGroup::F32(std::array::from_fn(|k| self.f32_row(r + k)));
        }
        let mut k = 0;
        RowGroup::F32(scratch.each_mut().map(|out| {
            let row = self.row(r + k);
            k += 1;
            out.resize(self.cols, 0.0);
            if !super::simd::decode_row(self.ty, row, out) {
                super::dequantize_into(self.ty, row, out).expect("checked when built")
            }
            &**out
        }))
    }

    fn stored(&self, rows: std::ops::Range<usize>) -> &[u8] {
        let rows = rows.start.min(self.rows)..rows.end.min(self.rows);
        &self.data[rows.start * self.row_bytes()..rows.end * self.row_bytes()]
    }
}

impl Blocks {
    /// `out[i, o] = x[i, :] · row o (+ bias[o])` for each row of `x` (`[n, cols]`), each row of
    /// blocks decoded in registers by [`dot`].
    pub fn linear(&self, out: &mut [f32], x: &[f32], bias: Option<&Tensor>) {
        self.linear_with(out, x, bias, Activations::F32);
    }

    /// [`Blocks::linear`] with the activations in f32 (the reference) or, where `activations`
    /// says so for this type, quantized to 8 bits and every block product taken in integers:
    /// one row by [`super::int8`]; several (a prompt) of Q4_0 or Q4_K by
    /// [`super::int8_prefill`] where this CPU has its kernel. Any other prompt decodes each row
    /// of blocks once for all of its rows.
    pub fn linear_with(&self, out: &mut [f32], x: &[f32], bias: Option<&Tensor>, activations: Activations) {
        let (n_out, n_in) = (self.rows, self.cols);
        if x.len() > n_in {
            let bias = bias.map(|b| b.data.as_slice());
            // Several rows (a prompt): 4-bit rows in integers where this CPU has the kernel,
            // else each row of blocks decoded once for all of them.
            if activations.integer(self.ty) && super::int8_prefill::linear(self, out, x, bias) {
                return;
            }
            return crate::cpu::ops::linear_rows(out, x, n_out, n_in, bias, self);
        }
        let per_task = rows_per_task(n_out);
        if activations.integer(self.ty) {
            let mut q = Q8Row::default();
            q.quantize(x);
            let bias = bias.map(|b| b.data.as_slice());
            crate::cpu::ops::for_each_chunk(out, per_task, |chunk, o| self.int8_rows(&q, chunk * per_task, o, bias));
            return;
        }
        let bias = |r: usize| bias.map_or(0.0, |b| b.data[r]);
        crate::cpu::ops::for_each_chunk(out, per_task, |chunk, o| {
            let r0 = chunk * per_task;
            for (j, o) in o.iter_mut().enumerate() {
                *o = dot(self.ty, self.row(r0 + j), x) + bias(r0 + j);
            }
        });
    }

    /// Rows `r0 ..` (as many as `out` holds) times the 8-bit activations `q`, plus `bias`: four
    /// rows at a time; a last group of fewer repeats its last row (each result depends on its
    /// own row alone, so a row's output is the same in any group).
    fn int8_rows(&self, q: &Q8Row, r0: usize, out: &mut [f32], bias: Option<&[f32]>) {
        for (j, o) in out.chunks_mut(4).enumerate() {
            let r = r0 + 4 * j;
            let rows = [0, 1, 2, 3].map(|k| self.row(r + k.min(o.len() - 1)));
            let dots = super::int8::dot4(self.ty, rows, q);
            for (k, o) in o.iter_mut().enumerate() {
                *o = dots[k] + bias.map_or(0.0, |b| b[r + k]);
            }
        }
    }
}

/// `x · m + bias` for each `(m, bias)` of `ms`: matrices that read the same input (a layer's q,
/// k and v; its gate and up), `x` `[n, cols]` as [`Matrix::linear_with`] takes it. Where all of
/// them take integer products (`activations`, and their types), the input is quantized once
/// and all their rows are one parallel region, not one per matrix: each region costs a
/// publication and a join, and a prompt's 4-bit products are short. Else one
/// product after another. Each output is the same bits as [`Matrix::linear_with`] gives it.
pub fn linear_many(x: &[f32], ms: &[(&Matrix, Option<&Tensor>)], activations: Activations) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = ms
        .iter()
        .map(|(m, _)| {
            let [rows, cols] = m.shape();
            vec![0.0; x.len() / cols * rows]
        })
        .collect();
    let integer: Option<Vec<&Blocks>> = ms
        .iter()
        .map(|(m, _)| match m {
            Matrix::Blocks(b) if activations.integer(b.ty) && b.cols == ms[0].0.shape()[1] => Some(b),
            _ => None,
        })
        .collect();
    if let Some(blocks) = integer.filter(|b| !b.is_empty()) {
        let biases: Vec<Option<&[f32]>> = ms.iter().map(|(_, b)| b.map(|b| b.data.as_slice())).collect();
        let mut slices: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        if x.len() > blocks[0].cols {
            if super::int8_prefill::linear_many(&blocks, &mut slices, x, &biases) {
                return outs;
            }
        } else {
            let mut q = Q8Row::default();
            q.quantize(x);
            let mut tasks = Vec::new();
            for ((b, out), bias) in blocks.iter().zip(slices).zip(&biases) {
                let per_task = rows_per_task(b.rows);
                tasks.extend(out.chunks_mut(per_task).enumerate().map(|(t, o)| (*b, t * per_task, o, *bias)));
            }
            crate::cpu::ops::for_each_item(tasks, |(b, r0, o, bias)| b.int8_rows(&q, r0, o, bias));
            return outs;
        }
    }
    for ((m, bias), out) in ms.iter().zip(&mut outs) {
        m.linear_with(out, x, *bias, activations);
    }
    outs
}

/// F32 bytes as the values they hold, where they start on a 4-byte boundary (an F32 matrix held
/// as stored is a range of the file's buffer: its rows are read in place, not copied).
fn f32_values(bytes: &[u8]) -> Option<&[f32]> {
    // SAFETY: every bit pattern is an f32; `align_to` puts only whole, aligned values in the
    // middle part, and the bytes are whole values only if the other two parts are empty.
    let (head, values, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(values)
}

/// One row of blocks · `x`, decoding each block as it is read.
pub fn dot(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    match ty {
        GgmlType::F32 if let Some(row) = f32_values(row) => crate::cpu::ops::dot_f32(row, x),
        GgmlType::Q8_0 => super::simd::dot_q8_0(row, x).unwrap_or_else(|| dot_q8_0(row, x)),
        GgmlType::Q4_0 => super::simd::dot_q4_0(row, x).unwrap_or_else(|| dot_q4_0(row, x)),
        GgmlType::Q4K => super::simd::dot_q4k(row, x).unwrap_or_else(|| dot_q4k(row, x)),
        GgmlType::Q6K => super::simd::dot_q6k(row, x).unwrap_or_else(|| dot_q6k(row, x)),
        GgmlType::F16 => super::simd::dot_f16(row, x).unwrap_or_else(|| dot_16(row, x, super::f16)),
        GgmlType::BF16 => super::simd::dot_bf16(row, x).unwrap_or_else(|| dot_16(row, x, bf16)),
        _ => {
            // The other block types: one block decoded onto the stack, then a dot.
            let (len, bytes) = (ty.block_len() as usize, ty.block_bytes() as usize);
            let mut buf = [0f32; 256];
            let mut sum = 0f32;
            for (block, xs) in row.chunks_exact(bytes).zip(x.chunks_exact(len)) {
                let y = &mut buf[..len];
                super::dequantize_into(ty, block, y).expect("one whole block");
                sum += y.iter().zip(xs).map(|(a, b)| a * b).sum::<f32>();
            }
            sum
        }
    }
}

/// Q8_0: `Σ_blocks d · Σ_i q_i x_i`.
fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, xs) in row.chunks_exact(34).zip(x.chunks_exact(32)) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut s = 0f32;
        for (&q, &x) in b[2..34].iter().zip(xs) {
            s += q as i8 as f32 * x;
        }
        sum += d * s;
    }
    sum
}

/// Q4_0: `Σ_blocks d · Σ_j ((lo_j − 8) x_j + (hi_j − 8) x_{j+16})`.
fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, xs) in row.chunks_exact(18).zip(x.chunks_exact(32)) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        let mut s = 0f32;
        for (j, &q) in b[2..18].iter().enumerate() {
            s += ((q & 0x0F) as i32 - 8) as f32 * xs[j] + ((q >> 4) as i32 - 8) as f32 * xs[j + 16];
        }
        sum += d * s;
    }
    sum
}

/// Q4_K: per super-block, per sub-block s of 32,
/// `d·sc_s·Σ_i q_i x_i − dmin·m_s·Σ_i x_i` (the minimum applied once per 32 values).
fn dot_q4k(row: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, xs) in row.chunks_exact(144).zip(x.chunks_exact(256)) {
        let multipliers = super::k_quants::multipliers(b);
        for pair in 0..4 {
            // 32 bytes: sub-block 2·pair in the low nibbles, 2·pair + 1 in the high ones.
            let q = &b[16 + 32 * pair..16 + 32 * pair + 32];
            let (x1, x2) = xs[64 * pair..64 * pair + 64].split_at(32);
            let (mut s1, mut s2, mut t1, mut t2) = (0f32, 0f32, 0f32, 0f32);
            for l in 0..32 {
                s1 += (q[l] & 0x0F) as f32 * x1[l];
                s2 += (q[l] >> 4) as f32 * x2[l];
                t1 += x1[l];
                t2 += x2[l];
            }
            let [a1, a2, o1, o2] = multipliers[pair];
            sum += a1 * s1 + a2 * s2 + o1 * t1 + o2 * t2;
        }
    }
    sum
}

fn bf16(b: &[u8]) -> f32 {
    half::bf16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// F16 or BF16: `Σ_i w_i x_i`, each weight widened to f32 as it is read.
fn dot_16(row: &[u8], x: &[f32], widen: fn(&[u8]) -> f32) -> f32 {
    row.chunks_exact(2).zip(x).map(|(w, x)| widen(w) * x).sum()
}

/// Q6_K: per super-block, per sub-block s of 16, `d·sc_s·Σ_i q_i x_i`, the codes `q_i` (−32 ..
/// 31) put together from a low nibble and a high pair of bits (see `k_quants::dequantize_q6k`).
fn dot_q6k(row: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (b, xs) in row.chunks_exact(super::k_quants::Q6K_BYTES).zip(x.chunks_exact(256)) {
        let d = super::f16(&b[208..210]);
        for half in 0..2 {
            let (ql, qh, sc) = (&b[64 * half..], &b[128 + 32 * half..], &b[192 + 8 * half..200 + 8 * half]);
            let xs = &xs[128 * half..128 * half + 128];
            // Sums of the eight sub-blocks of 16 in this half.
            let mut s = [0f32; 8];
            for l in 0..32 {
                let is = l / 16;
                let q = super::k_quants::q6k_codes(ql[l], ql[l + 32], qh[l]);
                for (j, q) in q.into_iter().enumerate() {
                    s[is + 2 * j] += q as f32 * xs[l + 32 * j];
                }
            }
            sum += sc.iter().zip(s).map(|(&sc, s)| d * sc as i8 as f32 * s).sum::<f32>();
        }
    }
    sum
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` deterministic values in ±1 (the quantization tests' weights and activations).
    pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// An F32 matrix held as stored bytes multiplies as the same matrix held in f32 does, to the
    /// bit (its rows are lent to the same kernels), one row and a prompt; its bytes must start on
    /// a 4-byte boundary.
    #[test]
    fn f32_rows_held_as_stored_multiply_as_f32_tensors() {
        let (rows, cols) = (37, 70);
        let w = values(rows * cols, 5);
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bias = Tensor { shape: vec![rows], data: values(rows, 6) };
        let held = Matrix::Blocks(Blocks::new(GgmlType::F32, rows, cols, bytes.clone()).unwrap());
        let f32 = Matrix::F32(Tensor { shape: vec![rows, cols], data: w });
        for n in [1, 5] {
            let x = values(n * cols, 7);
            let (mut a, mut b) = (vec![0f32; n * rows], vec![0f32; n * rows]);
            held.linear(&mut a, &x, Some(&bias));
            f32.linear(&mut b, &x, Some(&bias));
            assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()), "{n} rows");
        }
        let shifted = BlockBytes::shared(&std::sync::Arc::new([vec![0u8; 2], bytes].concat()), 2..2 + 4 * rows * cols);
        let aligned = shifted.as_ptr().cast::<f32>().is_aligned();
        assert_eq!(matches!(Blocks::new(GgmlType::F32, rows, cols, shifted), Err(QuantError::Unaligned)), !aligned);
    }

    /// `n` Q6_K super-blocks of random codes and sub-block scales (wgpt writes no Q6_K; llama.cpp's
    /// files hold it), `d` a small f16: every bit of the codes is exercised.
    pub(crate) fn q6k_blocks(n: usize, seed: u64) -> Vec<u8> {
        let bits = values(n * 208, seed);
        let mut out = Vec::with_capacity(n * 210);
        for b in bits.chunks_exact(208) {
            out.extend(b.iter().map(|v| ((v + 1.0) * 127.99) as u8));
            out.extend(half::f16::from_f32(0.002).to_le_bytes());
        }
        out
    }

    /// The block kernels against the oracle: decode the whole matrix, then multiply in f32.
    #[test]
    fn block_products_equal_the_decoded_matrix_s() {
        let (rows, cols) = (70, 96); // rows not a multiple of a task; 3 blocks per row
        let w = values(rows * cols, 1);
        let (rows_k, cols_k) = (70, 512); // Q4_K, Q6_K: 2 super-blocks per row
        let wk = values(rows_k * cols_k, 6);
        let cols_16 = 37; // not a multiple of the SIMD width: the plain tail runs too
        let w16 = values(rows * cols_16, 11);
        for (ty, rows, cols, data) in [
            (GgmlType::F16, rows, cols_16, super::super::to_16_bits(GgmlType::F16, &w16).unwrap()),
            (GgmlType::BF16, rows, cols_16, super::super::to_16_bits(GgmlType::BF16, &w16).unwrap()),
            (GgmlType::Q8_0, rows, cols, super::super::quantize_q8_0(&w).unwrap()),
            (GgmlType::Q4_0, rows, cols, super::super::quantize_q4_0(&w).unwrap()),
            (GgmlType::Q4K, rows_k, cols_k, super::super::quantize_q4k(&wk).unwrap()),
            (GgmlType::Q6K, rows_k, cols_k, q6k_blocks(rows_k * cols_k / 256, 9)),
        ] {
            let x = values(2 * cols, 2);
            let m = Matrix::Blocks(Blocks::new(ty, rows, cols, data).unwrap());
            let dense = m.to_f32();
            let bias = Tensor { shape: vec![rows], data: values(rows, 3) };
            let mut want = vec![0f32; 2 * rows];
            crate::cpu::ops::linear_out_in(&mut want, &x, &dense, Some(&bias));
            let mut got = vec![0f32; 2 * rows];
            m.linear(&mut got, &x, Some(&bias));
            let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // Q4_K subtracts its minimums' term from the codes' (two sums of ~10 for one of ~1):
            // its rounding differs from the dense product's more.
            let tol = if matches!(ty, GgmlType::Q4K | GgmlType::Q6K) { 1e-4 } else { 1e-5 };
            assert!(d < tol, "{ty:?}: {d}");
            let mut row = vec![0f32; cols];
            m.row_into(5, &mut row);
            assert_eq!(row, dense.data[5 * cols..6 * cols]);
        }
        assert!(Blocks::new(GgmlType::Q8_0, 2, 32, vec![0; 67]).is_err());
    }

    /// Prefill's product (each row decoded once, four rows of `x` per weight load) against the
    /// plain triple loop on the decoded matrix, for 1 to 9 rows of `x` (the four-row kernel, its
    /// remainders, and decode's single row), every type and f32, widths off the SIMD lanes.
    #[test]
    fn prefill_products_equal_the_plain_loop() {
        let (rows, cols, cols_k, cols_16) = (70, 96, 512, 37);
        let w = values(rows * cols, 21);
        let wk = values(rows * cols_k, 22);
        let w16 = values(rows * cols_16, 23);
        let dense = |cols: usize, data: Vec<f32>| Matrix::F32(Tensor { shape: vec![rows, cols], data });
        for m in [
            dense(cols_16, w16.clone()),
            Matrix::Blocks(
                Blocks::new(GgmlType::F16, rows, cols_16, super::super::to_16_bits(GgmlType::F16, &w16).unwrap())
                    .unwrap(),
            ),
            Matrix::Blocks(
                Blocks::new(GgmlType::BF16, rows, cols_16, super::super::to_16_bits(GgmlType::BF16, &w16).unwrap())
                    .unwrap(),
            ),
            Matrix::Blocks(Blocks::new(GgmlType::Q8_0, rows, cols, super::super::quantize_q8_0(&w).unwrap()).unwrap()),
            Matrix::Blocks(Blocks::new(GgmlType::Q4_0, rows, cols, super::super::quantize_q4_0(&w).unwrap()).unwrap()),
            Matrix::Blocks(Blocks::new(GgmlType::Q4K, rows, cols_k, super::super::quantize_q4k(&wk).unwrap()).unwrap()),
            Matrix::Blocks(Blocks::new(GgmlType::Q6K, rows, cols_k, q6k_blocks(rows * cols_k / 256, 24)).unwrap()),
        ] {
            let d = m.to_f32();
            let cols = d.shape[1];
            let bias = Tensor { shape: vec![rows], data: values(rows, 25) };
            for n in 1..=9 {
                let x = values(n * cols, 26 + n as u64);
                let mut got = vec![0f32; n * rows];
                m.linear(&mut got, &x, Some(&bias));
                for i in 0..n {
                    for r in 0..rows {
                        let want: f32 =
                            (0..cols).map(|k| d.data[r * cols + k] * x[i * cols + k]).sum::<f32>() + bias.data[r];
                        let g = got[i * rows + r];
                        assert!(
                            (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{}, {n} rows, [{i}, {r}]: {g} vs {want}",
                            m.type_name()
                        );
                    }
                }
            }
        }
    }

    /// The SIMD decoding of a row (prefill's: F16/BF16 widened with a tail and subnormals, Q8_0
    /// and Q4_0 blocks scaled) against the plain decode.
    #[test]
    fn simd_decoding_of_rows_is_the_plain_decode() {
        let mut v = values(45, 33);
        v[3] = 3e-6;
        v[4] = -5e-7;
        let w = values(96, 34);
        for (ty, row, n) in [
            (GgmlType::F16, super::super::to_16_bits(GgmlType::F16, &v).unwrap(), v.len()),
            (GgmlType::BF16, super::super::to_16_bits(GgmlType::BF16, &v).unwrap(), v.len()),
            (GgmlType::Q8_0, super::super::quantize_q8_0(&w).unwrap(), w.len()),
            (GgmlType::Q4_0, super::super::quantize_q4_0(&w).unwrap(), w.len()),
            (GgmlType::Q4K, super::super::quantize_q4k(&values(512, 36)).unwrap(), 512),
            (GgmlType::Q6K, q6k_blocks(2, 35), 512),
        ] {
            let want = super::super::dequantize(ty, &row, n).unwrap();
            let mut got = vec![0f32; n];
            if super::super::simd::decode_row(ty, &row, &mut got) {
                assert_eq!(got, want, "{ty:?}");
            }
        }
    }

    /// Matrices that read the same input, in one pass ([`linear_many`]): each output the bits of
    /// its own product, for a prompt and for one row, in integers (Q4_0 and Q4_K beside each
    /// other, with and without a bias) and where one matrix is f32 (one product after another).
    #[test]
    fn products_of_one_input_in_one_pass_are_each_product_s_bits() {
        let cols = 256;
        let q4_0 = |rows, seed| {
            let data = super::super::quantize_q4_0(&values(rows * cols, seed)).unwrap();
            Matrix::Blocks(Blocks::new(GgmlType::Q4_0, rows, cols, data).unwrap())
        };
        let q4k = Matrix::Blocks(
            Blocks::new(GgmlType::Q4K, 40, cols, super::super::quantize_q4k(&values(40 * cols, 52)).unwrap()).unwrap(),
        );
        let dense = Matrix::F32(Tensor { shape: vec![24, cols], data: values(24 * cols, 53) });
        let bias = Tensor { shape: vec![70], data: values(70, 54) };
        let (a, b) = (q4_0(70, 50), q4_0(24, 51));
        for ms in [vec![(&a, Some(&bias)), (&b, None), (&q4k, None)], vec![(&a, None), (&dense, None)]] {
            for n in [1, 5, 16] {
                let x = values(n * cols, 55 + n as u64);
                let got = linear_many(&x, &ms, Activations::Q8);
                for ((m, bias), got) in ms.iter().zip(&got) {
                    let mut want = vec![0f32; n * m.shape()[0]];
                    m.linear_with(&mut want, &x, *bias, Activations::Q8);
                    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(got), bits(&want), "{} rows of x, {}", n, m.type_name());
                }
            }
        }
    }

    /// The f32 SIMD dots (one row; rows against four) against the plain loop, with a tail; a
    /// prompt's kernel gives each row the same bits in any group, with or without rows to ask
    /// into the cache, and on f16 rows as stored the bits of the rows widened first.
    #[test]
    fn simd_and_plain_f32_dots_agree() {
        use super::super::simd::{RowGroup, dot_rows_x4};
        for n in [1, 7, 8, 16, 37, 576] {
            let (w, x) = (values(n, 31), values(4 * n, 32));
            let rows: Vec<&[f32]> = x.chunks_exact(n).collect();
            let four = [rows[0], rows[1], rows[2], rows[3]];
            let plain = |a: &[f32]| w.iter().zip(a).map(|(p, q)| p * q).sum::<f32>();
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
            if let Some(s) = super::super::simd::dot_f32(&w, rows[0]) {
                assert!(close(s, plain(rows[0])), "{n}: {s} vs {}", plain(rows[0]));
            }
            let Some([s]) = dot_rows_x4(RowGroup::F32([&w]), four, &[]) else { continue };
            for k in 0..4 {
                assert!(close(s[k], plain(rows[k])), "{n}, row {k}: {} vs {}", s[k], plain(rows[k]));
            }
            let w1 = values(n, 33);
            let [b1] = dot_rows_x4(RowGroup::F32([&w1]), four, &[]).unwrap();
            let bits = |v: [[f32; 4]; 2]| v.map(|v| v.map(f32::to_bits));
            let ahead: &[u8] = bytemuck::cast_slice(&w);
            let [a, b] = dot_rows_x4(RowGroup::F32([&w, &w1]), four, &[]).unwrap();
            assert_eq!(bits([a, b]), bits([s, b1]), "{n}: two rows at once");
            let [c, d, e] = dot_rows_x4(RowGroup::F32([&w1, &w, &w1]), four, ahead).unwrap();
            assert_eq!((bits([c, d]), bits([e, e])), (bits([b1, s]), bits([b1, b1])), "{n}: three rows at once");
            let six = dot_rows_x4(RowGroup::F32([&w, &w1, &w, &w1, &w, &w1]), four, ahead).unwrap();
            for pair in six.chunks_exact(2) {
                assert_eq!(bits([pair[0], pair[1]]), bits([s, b1]), "{n}: six rows at once");
            }
            if super::super::simd::widens_f16() {
                let h: Vec<u8> = w.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
                let widened: Vec<f32> = w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
                let [want] = dot_rows_x4(RowGroup::F32([&widened]), four, &[]).unwrap();
                let got = dot_rows_x4(RowGroup::F16([&h, &h, &h, &h, &h, &h]), four, &h).unwrap();
                assert!(got.iter().all(|g| bits([*g, *g]) == bits([want, want])), "{n}: f16 rows as stored");
            }
        }
    }

    /// The SIMD kernels (AVX2 here where the CPU has it; SIMD128 in the wasm tests) against the
    /// plain loops, on rows of many blocks with large and small scales.
    #[test]
    fn simd_and_plain_block_products_agree() {
        let cols = 32 * 37;
        let mut w = values(cols, 4);
        w[100] = 40.0;
        let x = values(cols, 5);
        let q8 = super::super::quantize_q8_0(&w).unwrap();
        let q4 = super::super::quantize_q4_0(&w).unwrap();
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        if let Some(s) = super::super::simd::dot_q8_0(&q8, &x) {
            assert!(close(s, dot_q8_0(&q8, &x)), "Q8_0: {s} vs {}", dot_q8_0(&q8, &x));
        }
        if let Some(s) = super::super::simd::dot_q4_0(&q4, &x) {
            assert!(close(s, dot_q4_0(&q4, &x)), "Q4_0: {s} vs {}", dot_q4_0(&q4, &x));
        }
        let cols_k = 256 * 5;
        let mut wk = values(cols_k, 7);
        wk[300] = 25.0;
        let xk = values(cols_k, 8);
        let qk = super::super::quantize_q4k(&wk).unwrap();
        if let Some(s) = super::super::simd::dot_q4k(&qk, &xk) {
            assert!(close(s, dot_q4k(&qk, &xk)), "Q4_K: {s} vs {}", dot_q4k(&qk, &xk));
        }
        let q6 = q6k_blocks(5, 10);
        if let Some(s) = super::super::simd::dot_q6k(&q6, &xk) {
            assert!(close(s, dot_q6k(&q6, &xk)), "Q6_K: {s} vs {}", dot_q6k(&q6, &xk));
        }
        // 16-bit rows with subnormal f16s: 1,181 values (73 steps of 16, one of 8, a tail of 5)
        // and 1,173 (73 of 16, a tail of 5).
        for n in [1181, 1173] {
            let mut w16 = values(n, 12);
            w16[7] = 3e-6;
            w16[8] = -5e-7;
            let x16 = values(n, 13);
            for (ty, simd, widen) in [
                (
                    GgmlType::F16,
                    super::super::simd::dot_f16 as fn(&[u8], &[f32]) -> Option<f32>,
                    super::super::f16 as fn(&[u8]) -> f32,
                ),
                (GgmlType::BF16, super::super::simd::dot_bf16, bf16),
            ] {
                let row = super::super::to_16_bits(ty, &w16).unwrap();
                if let Some(s) = simd(&row, &x16) {
                    let plain = dot_16(&row, &x16, widen);
                    assert!(close(s, plain), "{ty:?}, {n} values: {s} vs {plain}");
                }
            }
        }
        assert!(Blocks::new(GgmlType::Q8_0, 2, 31, vec![0; 68]).is_err());
    }
}
