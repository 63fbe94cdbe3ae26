#!/bin/sh
# The memory a model takes once loaded: the peak resident set of `wgpt inspect --model FILE`
# (which reads the file and loads every tensor, as the page's engine does: the same Rust,
# src/gguf/model.rs `load_owned`), against the file's size. A GGUF's Q8_0/Q4_0 blocks stay in
# the file's buffer; F16/F32 tensors (and GPT-2's matrices) are decoded to f32 beside it.
#
#   sh benches/load_memory.sh target/bench-models/*.gguf
set -e
cargo build --release --bin wgpt 2>/dev/null
base=$(/usr/bin/time -f %M ./target/release/wgpt inspect --model tests/fixtures/gguf/chat-llama.q8_0.gguf 2>&1 >/dev/null | tail -1)
echo "(a 0.1 MB model: $((base / 1024)) MB resident — the process itself)"
echo "| file | file MB | peak resident MB | peak ÷ file |"
echo "|---|---:|---:|---:|"
for f in "$@"; do
  kb=$(/usr/bin/time -f %M ./target/release/wgpt inspect --model "$f" 2>&1 >/dev/null | tail -1)
  size=$(stat -c %s "$f")
  python3 -c "print(f'| $(basename "$f") | {$size/1e6:,.0f} | {$kb*1024/1e6:,.0f} | {$kb*1024/$size:.2f} |')"
done
