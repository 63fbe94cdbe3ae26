#!/bin/sh
# transformers.js 4.x's wasm backend (ONNX Runtime Web) beside the page's CPU engine, in headless
# Chromium, GPT-2 124M (random weights: target/bench-models/gpt2-124m, `sh benches/vs_llama_cpp.sh`
# makes it), a 16-token prompt and 16 greedy tokens, on 1 and THREADS threads, both pages served
# cross-origin isolated (the engines' threads need it), one page load per figure, interleaved:
#   - transformers.js on the checkpoint's ONNX export (`optimum-cli export onnx --task
#     text-generation-with-past`, from PyPI's optimum-onnx, which pins transformers<4.58: a
#     virtualenv of its own, OPTIMUM; it reuses PYENV's torch), in fp32 and in q8 (the export's
#     weights quantized to 8 bits by ONNX Runtime's `quantize_dynamic`, as transformers.js's
#     `dtype: 'q8'` files are made);
#   - the page's CPU engine (`www/bench.html?run&shape=gpt2-124m&backend=cpu`) on f32 and on
#     q8_0 blocks of the same shape (`--dtype` as the page quantizes).
#
#   sh benches/browser_transformers_js.sh [THREADS]       (default 2)
set -e
THREADS=${1:-2}
PORT=${PORT:-8934}
TJS_PORT=${TJS_PORT:-8935}
PYENV=${PYENV:-/tmp/pyenv}
OPTIMUM=${OPTIMUM:-target/optimum-venv}
OUT=target/transformers-js
MODEL=target/bench-models/gpt2-124m
[ -f $MODEL/model.safetensors ] || { echo "$MODEL is missing: run sh benches/vs_llama_cpp.sh first" >&2; exit 1; }
mkdir -p $OUT
# transformers.js and ONNX Runtime Web from npm (onnxruntime-node's install script is skipped:
# it downloads from a host this machine cannot reach, and the browser does not use it).
[ -d $OUT/node_modules/@huggingface/transformers ] ||
  npm install --prefix $OUT --ignore-scripts --no-audit --no-fund @huggingface/transformers@4.3.2 >&2
SITE=$OUT/site
M=$SITE/models/gpt2-124m
if [ ! -f $M/onnx/model_quantized.onnx ]; then
  if [ ! -x $OPTIMUM/bin/optimum-cli ]; then
    python3 -m venv $OPTIMUM
    # torch from PYENV (the HF transformers benchmark's), not a second 2 GB download.
    $PYENV/bin/python -c 'import site; print(site.getsitepackages()[0])' > $(echo $OPTIMUM/lib/python3*/site-packages)/zz-pyenv.pth
    $OPTIMUM/bin/pip install -q --no-compile optimum-onnx onnxruntime accelerate >&2
  fi
  rm -rf $OUT/export
  $OPTIMUM/bin/optimum-cli export onnx --task text-generation-with-past --model $MODEL $OUT/export >&2
  mkdir -p $M/onnx
  cp $OUT/export/config.json $OUT/export/generation_config.json $OUT/export/tokenizer.json $OUT/export/tokenizer_config.json $M/
  mv $OUT/export/model.onnx $M/onnx/model.onnx
  $OPTIMUM/bin/python -c "
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic('$M/onnx/model.onnx', '$M/onnx/model_quantized.onnx', weight_type=QuantType.QUInt8)" >&2
fi
cp benches/transformers_js/index.html benches/transformers_js/main.mjs benches/transformers_js/bench.mjs $SITE/
ln -sfn $(pwd)/$OUT/node_modules/@huggingface/transformers/dist $SITE/transformers
ln -sfn $(pwd)/$OUT/node_modules/onnxruntime-web/dist $SITE/ort
cargo xtask web >&2
cargo xtask serve --port $PORT >/dev/null 2>&1 &
SERVER=$!
python3 - $TJS_PORT $SITE <<'PY' &
import functools, http.server, sys
class Isolated(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, '.mjs': 'text/javascript', '.wasm': 'application/wasm'}
    def end_headers(self):
        self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
        self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
        super().end_headers()
    def log_message(self, *args):
        pass
handler = functools.partial(Isolated, directory=sys.argv[2])
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()
PY
TJS=$!
trap 'kill $SERVER $TJS 2>/dev/null' EXIT
sleep 5
. benches/bench_page.sh
for threads in 1 $THREADS; do
  for dtype in fp32 q8; do
    echo "transformers.js $dtype, $threads thread(s): $(bench_page "http://127.0.0.1:$TJS_PORT/?threads=$threads&dtype=$dtype" tjs-bench)"
  done
  for dtype in f32 q8_0; do
    echo "wgpt $dtype, $threads thread(s): $(bench_page "http://127.0.0.1:$PORT/bench.html?run&shape=gpt2-124m&backend=cpu&dtype=$dtype&prompt=16&decode=16&contexts=16&threads=$threads")"
  done
done
