#!/bin/sh
# The page's CPU engine (wasm, SIMD128, one thread) in headless Chromium on a Llama shape with
# random weights, in f32, f16 and in Q8_0/Q4_0 blocks: `www/bench.html?run&backend=cpu&dtype=...`,
# one page load each, in one run. Prints the report each page logs.
#
#   cargo xtask e2e      # builds www/pkg (or any command that builds the wasm package)
#   sh benches/browser_cpu.sh [SHAPE]      (default smollm2-135m)
SHAPE=${1:-smollm2-135m}
PORT=${PORT:-8931}
python3 -m http.server $PORT --bind 127.0.0.1 --directory www >/dev/null 2>&1 &
SERVER=$!
sleep 1
# ACTIVATIONS=f32 runs the reference's f32 products instead of the 8-bit integer ones (src/quant/int8.rs, the default).
. benches/bench_page.sh
for dtype in f32 f16 q8_0 q4_0; do
  echo "$dtype: $(bench_page "http://127.0.0.1:$PORT/bench.html?run&shape=$SHAPE&backend=cpu&dtype=$dtype&activations=${ACTIVATIONS:-q8}&prompt=16&decode=16&contexts=16")"
done
kill $SERVER
