#!/bin/sh
# The page's CPU engine in headless Chromium on one thread and on a pool of threads, side by side:
# the single-threaded package (www/pkg) against the build with threads (www/pkg-threads), on a
# Llama shape with random weights, `www/bench.html?run&backend=cpu&dtype=…&threads=N`.
#
# The build with threads (`cargo xtask web` builds it, xtask/src/main.rs `THREADS_RUSTFLAGS`):
# nightly Rust with rust-src, std rebuilt with atomics, a shared memory, and wasm-bindgen-rayon's
# pool of workers started by `initThreadPool(n)`. The page must be cross-origin isolated (COOP:
# same-origin, COEP: require-corp): `cargo xtask serve` sends both.
#
#   sh benches/browser_threads.sh [SHAPE] [THREADS]      (default smollm2-135m, 2)
#   DTYPES="q8_0 q4_0" ACTIVATIONS=f32 sh benches/browser_threads.sh
#
# Where llama.cpp's tools and the same shape's GGUF files are there (`sh benches/vs_llama_cpp.sh`
# makes both: target/bench-models/SHAPE.DTYPE.gguf, random weights), each dtype also gets
# llama.cpp's `llama-bench` on THREADS threads in the same run: the native peer beside the tab.
set -e
SHAPE=${1:-smollm2-135m}
THREADS=${2:-2}
PORT=${PORT:-8932}
cargo xtask web >&2
cargo xtask serve --port $PORT >/dev/null 2>&1 &
SERVER=$!
sleep 5
. benches/bench_page.sh
L=${LLAMA_CPP:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}/build/bin
# One page load per row, one thread and THREADS interleaved, so the machine's drift hits both.
for dtype in ${DTYPES:-f16 q8_0 q4_0}; do
  for threads in 1 $THREADS; do
    echo "$dtype, $threads thread(s): $(bench_page "http://127.0.0.1:$PORT/bench.html?run&shape=$SHAPE&backend=cpu&dtype=$dtype&activations=${ACTIVATIONS:-q8}&prompt=16&decode=16&contexts=16&threads=$threads")"
  done
  GGUF=target/bench-models/$SHAPE.$dtype.gguf
  if [ -x $L/llama-bench ] && [ -f $GGUF ]; then
    LD_LIBRARY_PATH=$L $L/llama-bench -m $GGUF -t $THREADS -p 16 -n 16 -r 3 -o json 2>/dev/null | python3 -c "
import json, sys
r = {x['n_prompt'] and 'prefill' or 'decode': round(x['avg_ts'], 1) for x in json.load(sys.stdin)}
print('$dtype, llama.cpp CPU ($THREADS threads, native):', r)"
  fi
done
kill $SERVER
