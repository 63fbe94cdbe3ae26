//! One layer's keys (or values) on the CPU engine: `[position, n_kv_heads · head_dim]`, held in
//! pages of [`PAGE`] positions that are allocated as the context grows and never move. A cache
//! grown as one `Vec` copied itself at every doubling and left the old block behind, a hole in
//! the heap that later allocations rarely fit: on SmolLM2-135M the holes of its 60 caches kept
//! several MB resident past what the cache holds (`benches/load_memory.sh`), and a wasm memory
//! never gives pages back.

/// Positions per page: 64 × SmolLM2's 192-float rows is 48 KB.
pub const PAGE: usize = 64;

#[derive(Debug, Clone)]
pub struct KvCache {
    /// Floats per position.
    row: usize,
    pages: Vec<Box<[f32]>>,
    /// Positions held.
    len: usize,
}

impl KvCache {
    pub fn new(row: usize) -> Self {
        KvCache { row, pages: Vec::new(), len: 0 }
    }

    /// Appends `rows` (whole positions, `row` floats each).
    pub fn extend(&mut self, rows: &[f32]) {
        for r in rows.chunks_exact(self.row) {
            let (page, at) = (self.len / PAGE, self.len % PAGE);
            if page == self.pages.len() {
                self.pages.push(vec![0f32; PAGE * self.row].into_boxed_slice());
            }
            self.pages[page][at * self.row..][..self.row].copy_from_slice(r);
            self.len += 1;
        }
    }

    /// Position `t`'s row (`t` < the positions held).
    #[inline]
    pub fn row(&self, t: usize) -> &[f32] {
        debug_assert!(t < self.len);
        &self.pages[t / PAGE][(t % PAGE) * self.row..][..self.row]
    }

    /// Keeps the first `positions`; the pages stay allocated for the positions that follow.
    pub fn truncate(&mut self, positions: usize) {
        self.len = self.len.min(positions);
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.pages.len() * PAGE * self.row * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows come back as appended across page boundaries, after a truncation too, and the pages
    /// are reused rather than added.
    #[test]
    fn rows_come_back_across_pages_and_truncation() {
        let row = 3;
        let mut c = KvCache::new(row);
        let rows: Vec<f32> = (0..(PAGE + 5) * row).map(|v| v as f32).collect();
        c.extend(&rows[..2 * row]);
        c.extend(&rows[2 * row..]);
        for t in 0..PAGE + 5 {
            assert_eq!(c.row(t), &rows[t * row..(t + 1) * row], "position {t}");
        }
        assert_eq!(c.bytes(), 2 * PAGE * row * 4);
        c.truncate(PAGE - 1);
        c.extend(&[-1.0; 6]);
        assert_eq!(c.row(PAGE - 2), &rows[(PAGE - 2) * row..(PAGE - 1) * row]);
        assert_eq!((c.row(PAGE - 1), c.row(PAGE)), (&[-1.0; 3][..], &[-1.0; 3][..]));
        assert_eq!(c.bytes(), 2 * PAGE * row * 4);
    }
}
