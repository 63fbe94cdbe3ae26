//! `gemm` (the crate burn's CPU backend multiplies with) on strided views of slices, for the
//! fused linear layer and the per-head products inside the fused attention. A view names a
//! matrix inside a larger row-major buffer by its offset and strides, so one head's `q`, `k` or
//! `v` is multiplied where it lies in the packed `q | k | v` rows, and a transpose is a swap of
//! strides: no copies.

/// A `rows × cols` matrix whose element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// Rows of `cols` elements, `rs` apart (a column block of a row-major buffer).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self { data, rows, cols, rs, cs: 1 }
    }

    /// The transpose: the same elements, strides swapped.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
}

/// One past the largest index a `rows × cols` matrix with these strides touches.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 }
}

/// `dst = scale·(a·b)`, `dst` being rows of `b.cols` elements `dst_rs` apart (unit columns).
/// Single-threaded: the callers already run one sequence per thread.
///
/// # Panics
/// If the inner dimensions differ or a view reaches past its slice (checked here, which is what
/// makes the call into `gemm`'s raw pointers sound).
pub fn matmul(dst: &mut [f32], dst_rs: usize, a: View, b: View, scale: f32) {
    gemm_into(dst, dst_rs, false, a, b, scale, gemm::Parallelism::None);
}

/// `dst += a·b` (`dst` rows of `b.cols`, contiguous), on every thread when it is worth it.
pub fn matmul_add(dst: &mut [f32], a: View, b: View) {
    gemm_into(dst, b.cols, true, a, b, 1.0, parallelism(a.rows, b.cols, a.cols));
}

/// `a·b` into a new `[a.rows, b.cols]` buffer, on every thread when it is worth it. The buffer
/// is not zeroed first: the product writes every element (zeroing it was a tenth of the copies
/// and fills of a training step).
pub fn matmul_new(a: View, b: View) -> Vec<f32> {
    let (m, n) = (a.rows, b.cols);
    if a.cols == 0 {
        return vec![0.0; m * n];
    }
    check(m * n, n, a, b);
    let mut dst = Vec::with_capacity(m * n);
    // SAFETY: the extents are checked; the pointer is the fresh allocation's; with k > 0 and
    // `read_dst = false` gemm writes `beta·a·b` to each of the m·n elements and reads none, so
    // all are initialized when the length is set.
    unsafe {
        gemm_raw(dst.spare_capacity_mut().as_mut_ptr().cast(), n, false, a, b, 1.0, parallelism(m, n, a.cols));
        dst.set_len(m * n);
    }
    dst
}

/// Threads for an `m × k · k × n` product: burn-flex's rule (below 192³ multiply-adds a thread
/// hand-off costs more than it saves).
fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst = scale·(a·b)`, or `dst += scale·(a·b)` with `accumulate`.
fn gemm_into(dst: &mut [f32], dst_rs: usize, accumulate: bool, a: View, b: View, scale: f32, par: gemm::Parallelism) {
    check(dst.len(), dst_rs, a, b);
    // SAFETY: checked extents; `dst` is borrowed mutably, so it overlaps neither `a` nor `b`.
    unsafe { gemm_raw(dst.as_mut_ptr(), dst_rs, accumulate, a, b, scale, par) }
}

/// The inner dimensions agree and every view (and a destination of `dst_len` elements, rows
/// `dst_rs` apart) stays inside its slice: what makes handing gemm raw pointers sound.
fn check(dst_len: usize, dst_rs: usize, a: View, b: View) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: inner dimensions differ");
    assert!(extent(m, k, a.rs, a.cs) <= a.data.len(), "matmul: a reaches past its slice");
    assert!(extent(k, n, b.rs, b.cs) <= b.data.len(), "matmul: b reaches past its slice");
    assert!(extent(m, n, dst_rs, 1) <= dst_len, "matmul: dst reaches past its slice");
}

/// # Safety
/// [`check`] passed for `dst`'s allocation, which overlaps neither view. Every index gemm reads or
/// writes is then `r·rs + c·cs` within the checked extents. Without `accumulate`
/// (`read_dst = false`) `dst` is only written, alpha is ignored.
unsafe fn gemm_raw(
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: View,
    b: View,
    scale: f32,
    par: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let i = |x: usize| x as isize;
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            i(dst_rs),
            accumulate,
            a.data.as_ptr(),
            i(a.cs),
            i(a.rs),
            b.data.as_ptr(),
            i(b.cs),
            i(b.rs),
            1.0,
            scale,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_and_transposed_views_multiply_like_the_definition() {
        // a: 2×3 inside rows of 5 (offset 1); b = cᵀ where c is 4×3 inside rows of 4.
        let abuf: Vec<f32> = (0..10).map(|x| x as f32 * 0.5 - 1.0).collect();
        let cbuf: Vec<f32> = (0..16).map(|x| (x * 7 % 11) as f32 - 5.0).collect();
        let a = View::rows(&abuf[1..], 2, 3, 5);
        let b = View::rows(&cbuf, 4, 3, 4).t();
        let mut dst = vec![9.0; 2 * 6];
        matmul(&mut dst, 6, a, b, 2.0);
        for r in 0..2 {
            for c in 0..4 {
                let want: f32 = (0..3).map(|e| abuf[1 + r * 5 + e] * cbuf[c * 4 + e]).sum::<f32>() * 2.0;
                assert_eq!(dst[r * 6 + c], want, "({r}, {c})");
            }
            assert_eq!(&dst[r * 6 + 4..r * 6 + 6], &[9.0, 9.0], "columns past n are left alone");
        }
        let mut acc = vec![1.0; 2 * 4];
        matmul_add(&mut acc, a, b);
        let new = matmul_new(a, b);
        for r in 0..2 {
            for c in 0..4 {
                assert_eq!(acc[r * 4 + c], 1.0 + dst[r * 6 + c] / 2.0);
                assert_eq!(new[r * 4 + c], dst[r * 6 + c] / 2.0);
            }
        }
    }

    #[test]
    #[should_panic(expected = "reaches past")]
    fn a_view_past_its_slice_panics_instead_of_reading_out_of_bounds() {
        let buf = vec![0.0; 8];
        let mut dst = vec![0.0; 4];
        matmul(&mut dst, 2, View::rows(&buf, 2, 2, 7), View::rows(&buf, 2, 2, 2), 1.0);
    }
}
