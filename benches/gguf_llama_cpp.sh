#!/bin/sh
# llama.cpp loads and runs what `wgpt quantize` writes: the shipped base model (GPT-2) and the
# chat-llama fixture (llama: its q/k rows in llama.cpp's order) in F16, Q8_0 and Q4_0, each run by
# llama.cpp's `llama-bench` (prompt 16, 16 decoded tokens, 2 threads). Prints llama-bench's
# Markdown rows. (That the tensors are llama.cpp's own bytes is tests/gguf.rs's
# `exported_files_round_trip_and_equal_llama_cpp_s`.)
#
#   sh benches/gguf_llama_cpp.sh
#
# Needs llama.cpp's llama-bench, built as in scripts/make_gguf_fixtures.py's docstring
# (`--target llama-bench`); LLAMA_CPP points at the vendored source.
set -e
L=${LLAMA_CPP:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}/build/bin
OUT=target/gguf-llama-cpp
mkdir -p $OUT
cargo build --release --bin wgpt
for m in www/models/base tests/fixtures/llama/chat-llama; do
  for t in f16 q8_0 q4_0; do
    f=$OUT/$(basename $m).$t.gguf
    ./target/release/wgpt quantize --model $m --to $t --out $f --force
    LD_LIBRARY_PATH=$L $L/llama-bench -m $f -t 2 -p 16 -n 16 -r 2 2>/dev/null | grep '^| [a-z]'
  done
done
