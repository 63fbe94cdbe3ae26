#!/bin/sh
# llama.cpp loads and runs what `wgpt quantize` writes: the shipped base model (GPT-2) and the
# chat-llama fixture (llama: its q/k rows in llama.cpp's order) in F16, Q8_0 and Q4_0, each run by
# llama.cpp's `llama-bench` (prompt 16, 16 decoded tokens, 2 threads); and `--to q4_k` of the
# 0.6 B llama of benches/vs_llama_cpp.sh (whose rows are whole 256-value super-blocks; run that
# script first to make it). Prints llama-bench's Markdown rows. (That the tensors are llama.cpp's own bytes is tests/gguf.rs's
# `exported_files_round_trip_and_equal_llama_cpp_s`.)
#
#   sh benches/gguf_llama_cpp.sh
#
# Needs llama.cpp's llama-bench: built from PyPI first if it is not there
# (benches/build_llama_cpp.sh; LLAMA_CPP points at another build's vendored source).
set -e
[ -n "$LLAMA_CPP" ] || sh benches/build_llama_cpp.sh >&2
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
big=target/bench-models/llama-0.6b.f32.gguf
if [ -f $big ]; then
  f=$OUT/llama-0.6b.q4_k.gguf
  ./target/release/wgpt quantize --model $big --to q4_k --out $f --force
  LD_LIBRARY_PATH=$L $L/llama-bench -m $f -t 2 -p 16 -n 16 -r 2 2>/dev/null | grep '^| [a-z]'
  # And its Q4_K tensors against llama-quantize's of the same file (vs_llama_cpp.sh made it).
  ${PYTHON:-/tmp/pyenv/bin/python} - $f target/bench-models/llama-0.6b.q4_k.gguf <<'PY'
import sys, gguf, numpy as np
ours, theirs = ({t.name: t for t in gguf.GGUFReader(p).tensors} for p in sys.argv[1:3])
both = [n for n, t in ours.items() if t.tensor_type.name == "Q4_K" and n in theirs]
same = sum(np.array_equal(np.asarray(ours[n].data).view(np.uint8), np.asarray(theirs[n].data).view(np.uint8))
           for n in both if theirs[n].tensor_type == ours[n].tensor_type)
print(f"Q4_K tensors byte-identical to llama-quantize's: {same} of {len(both)}")
PY
fi
