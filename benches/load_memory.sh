#!/bin/sh
# The memory a model takes once loaded: the peak resident set of `wgpt inspect --model FILE`
# (which reads the file and loads every tensor as the page's engine does: the same Rust,
# src/gguf/model.rs `load_owned`), against the file's size. A GGUF's matrices — blocks, F16,
# BF16 or F32 — stay in the file's buffer.
# Then while decoding: the peak resident set of `wgpt generate` (a short prompt, 256 tokens
# on the CPU engine) against what the engine says it holds at the end — the weights and the KV
# cache (#22's goal: ≤ 1.15 ×).
#
#   sh benches/load_memory.sh               # Qwen2.5-0.5B's and SmolLM2-135M's shapes, random weights
#   sh benches/load_memory.sh FILE.gguf…    # any files
#
# Making the default files needs llama.cpp's converter and /tmp/pyenv with torch, transformers
# and gguf-py: built from PyPI first if they are not there (benches/build_llama_cpp.sh).
set -e
[ -n "$LLAMA_CPP" ] || [ $# -gt 0 ] || sh benches/build_llama_cpp.sh >&2
PY=${PYTHON:-/tmp/pyenv/bin/python}
OUT=target/bench-models
if [ $# -eq 0 ]; then
  if [ ! -f $OUT/qwen2.5-0.5b.q4_0.gguf ]; then
    rm -rf $OUT/qwen2.5-0.5b
    $PY scripts/make_gguf_fixtures.py --random $OUT/qwen2.5-0.5b '{"hidden_size": 896,
      "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
      "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
      "tie_word_embeddings": true, "attention_bias": true, "bos_token_id": 1, "eos_token_id": 2}'
    $PY scripts/make_gguf_fixtures.py --convert $OUT/qwen2.5-0.5b $OUT/qwen2.5-0.5b q8_0 q4_0 | grep gguf
  fi
  [ -f $OUT/smollm2-135m.q4_0.gguf ] || sh benches/vs_llama_cpp.sh > /dev/null
  set -- $OUT/qwen2.5-0.5b.q8_0.gguf $OUT/qwen2.5-0.5b.q4_0.gguf $OUT/smollm2-135m.q8_0.gguf \
    $OUT/smollm2-135m.q4_0.gguf $OUT/smollm2-135m.f16.gguf
fi
cargo build --release --bin wgpt 2>/dev/null
mkdir -p target/tmp
base=$(/usr/bin/time -f %M ./target/release/wgpt inspect --model tests/fixtures/gguf/chat-llama.q8_0.gguf 2>&1 >/dev/null | tail -1)
echo "(a 0.1 MB model: $((base / 1024)) MB resident — the process itself)"
echo "| file | file MB | peak resident MB | peak ÷ file |"
echo "|---|---:|---:|---:|"
for f in "$@"; do
  # A load that fails is no figure: stop with its error.
  /usr/bin/time -o target/tmp/load_memory.kb -f %M ./target/release/wgpt inspect --model "$f" >/dev/null
  kb=$(tail -1 target/tmp/load_memory.kb)
  size=$(stat -c %s "$f")
  python3 -c "print(f'| $(basename "$f") | {$size/1e6:,.0f} | {$kb*1024/1e6:,.0f} | {$kb*1024/$size:.2f} |')"
done
echo
echo "while decoding 256 tokens (wgpt generate --backend cpu):"
echo "| file | weights MB | KV cache MB | peak resident MB | peak ÷ (weights + KV) |"
echo "|---|---:|---:|---:|---:|"
for f in "$@"; do
  /usr/bin/time -o target/tmp/load_memory.kb -f %M ./target/release/wgpt generate --model "$f" --backend cpu \
    --prompt "The history of GPT starts with the Transformer, and" --max-tokens 256 --ignore-eos --temperature 0 \
    2>target/tmp/load_memory.err >/dev/null || { cat target/tmp/load_memory.err >&2; exit 1; }
  kb=$(tail -1 target/tmp/load_memory.kb)
  held=$(grep '^\[held:' target/tmp/load_memory.err)
  python3 -c "
import re
w, kv = map(int, re.findall(r'(\\d+) bytes', '$held'))
peak = $kb * 1024
print(f'| $(basename "$f") | {w/1e6:,.0f} | {kv/1e6:,.1f} | {peak/1e6:,.0f} | {peak/(w+kv):.2f} |')"
done
