//! A tokenizer that is dropped gives back all it held: a page that loads one model after another,
//! and a process that opens many (the fuzzer: ~57,000 tokenizers in one run), must not keep the
//! old ones' caches. `tokenizers` 0.23 moved BPE's word cache into a per-thread map keyed by
//! tokenizer, which nothing empties when a tokenizer goes (found by `cargo xtask fuzz` as one 9.6 MB
//! allocation: that map doubling); `src/tokenizer/json.rs` builds the BPE with no cache.
//!
//! Its own test binary: the live-byte count below is process-wide, so no other test may run
//! beside it. Native only: the wasm build has its own allocator (`src/web_heap.rs`).
#![cfg(not(target_arch = "wasm32"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct LiveBytes;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

/// Loads `chat-llama`'s tokenizer (a byte-level BPE of 512 tokens), encodes a text of many
/// distinct words and drops it; after two such rounds (statics and lazily compiled regexes
/// settle), 200 more must leave the live heap where it was.
#[test]
fn a_dropped_tokenizer_keeps_no_cache_behind() {
    let json = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama/chat-llama/tokenizer.json"))
        .expect("the chat-llama fixture");
    let text: String = (0..300).map(|i| format!("word{i} ")).collect();
    let round = || {
        let t = wgpt::tokenizer::Tokenizer::from_json(&json).expect("the fixture loads");
        let ids = t.encode(&text).expect("the text encodes");
        assert!(ids.len() > 300);
    };
    round();
    round();
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..200 {
        round();
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    // Each round's cache holds ~300 words (a string and its merged symbols, ~100 bytes each):
    // kept, 200 rounds are megabytes.
    assert!(grown < 4096, "200 tokenizers loaded and dropped left {grown} bytes live");
}
