#!/bin/sh
# The page's CPU engine in headless Chromium on one thread and on a pool of threads, side by side:
# the single-threaded package (www/pkg) against the build with threads (www/pkg-threads), on a
# Llama shape with random weights, `www/bench.html?run&backend=cpu&dtype=…&threads=N`.
#
# The build with threads: nightly Rust with rust-src (`-Z build-std`: std rebuilt with atomics),
# `+atomics,+bulk-memory,+mutable-globals` and a shared, imported memory (since rust-lang/rust
# #147225 `+atomics` no longer makes the memory shared: the linker is told), and
# wasm-bindgen-rayon's pool of workers started by `initThreadPool(n)`. The page must be
# cross-origin isolated (COOP: same-origin, COEP: require-corp): served here by a small server
# that sends both.
#
#   cargo xtask e2e                         # builds www/pkg (or any command that builds it)
#   sh benches/browser_threads.sh [SHAPE] [THREADS]      (default smollm2-135m, 2)
#   DTYPES="q8_0 q4_0" ACTIVATIONS=q8 sh benches/browser_threads.sh
#
# Where llama.cpp's tools and the same shape's GGUF files are there (`sh benches/vs_llama_cpp.sh`
# makes both: target/bench-models/SHAPE.DTYPE.gguf, random weights), each dtype also gets
# llama.cpp's `llama-bench` on THREADS threads in the same run: the native peer beside the tab.
set -e
SHAPE=${1:-smollm2-135m}
THREADS=${2:-2}
PORT=${PORT:-8932}
[ -f www/pkg/wgpt.js ] || { echo "www/pkg is missing: run cargo xtask e2e first" >&2; exit 1; }
rustup component add rust-src --toolchain nightly >&2
RUSTFLAGS='-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base' \
  cargo +nightly build -Z build-std=panic_abort,std --target wasm32-unknown-unknown --release --lib \
  --target-dir target/wasm-threads >&2
wasm-bindgen --target web --no-typescript --out-dir www/pkg-threads \
  target/wasm-threads/wasm32-unknown-unknown/release/wgpt.wasm
python3 - $PORT <<'PY' &
import functools, http.server, sys
class Isolated(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
        self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
        super().end_headers()
    def log_message(self, *args):
        pass
handler = functools.partial(Isolated, directory='www')
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()
PY
SERVER=$!
sleep 1
. benches/bench_page.sh
L=${LLAMA_CPP:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}/build/bin
# One page load per row, one thread and THREADS interleaved, so the machine's drift hits both.
for dtype in ${DTYPES:-f16 q8_0 q4_0}; do
  for threads in 1 $THREADS; do
    echo "$dtype, $threads thread(s): $(bench_page "http://127.0.0.1:$PORT/bench.html?run&shape=$SHAPE&backend=cpu&dtype=$dtype&activations=${ACTIVATIONS:-f32}&prompt=16&decode=16&contexts=16&threads=$threads")"
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
