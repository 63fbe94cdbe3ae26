#!/bin/sh
# The CPU engine against llama.cpp on the same GGUF files: SmolLM2-135M's shape (30 layers × 576,
# 9 heads, 3 key/value, vocabulary 49,152) with random weights, converted by llama.cpp's own
# tools to F16, Q8_0 and Q4_0; each file run by `llama-bench` and by `wgpt bench --model FILE`,
# 2 threads, a 16-token prompt, 32 decoded tokens, in one run (this machine is noisy: compare
# within a run). wgpt decodes F16 files to f32 at load; Q8_0 and Q4_0 it reads as blocks.
#
#   sh benches/cpu_vs_llama_cpp.sh
#
# Needs the llama.cpp tools of scripts/make_gguf_fixtures.py (llama-quantize, llama-bench) and
# /tmp/pyenv with torch, transformers and gguf-py.
set -e
PY=${PYTHON:-/tmp/pyenv/bin/python}
L=${LLAMA_CPP:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}/build/bin
OUT=target/bench-models
mkdir -p $OUT
if [ ! -f $OUT/smollm2-135m.q4_0.gguf ]; then
  rm -rf $OUT/smollm2-135m
  $PY scripts/make_gguf_fixtures.py --random $OUT/smollm2-135m '{"hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true,
    "bos_token_id": 1, "eos_token_id": 2}'
  $PY scripts/make_gguf_fixtures.py --convert $OUT/smollm2-135m $OUT/smollm2-135m f16 q8_0 q4_0 | grep gguf
fi
cargo build --release --bin wgpt
echo "| weights | engine | prefill tokens/s (16) | decode tokens/s (context 16) |"
echo "|---|---|---:|---:|"
for t in f16 q8_0 q4_0; do
  f=$OUT/smollm2-135m.$t.gguf
  LD_LIBRARY_PATH=$L $L/llama-bench -m $f -t 2 -p 16 -n 32 -r 3 -o json 2>/dev/null | python3 -c "
import json, sys
r = {x['n_prompt'] and 'pp' or 'tg': x['avg_ts'] for x in json.load(sys.stdin)}
print(f\"| $t | llama.cpp (2 threads) | {r['pp']:,.0f} | {r['tg']:,.1f} |\")"
  ./target/release/wgpt bench --model $f --backend cpu --prompt-tokens 16 --decode-tokens 32 --contexts 16 | python3 -c "
import re, sys
t = sys.stdin.read()
pp = re.search(r'prefill +16 tokens: ([\d.]+) tokens/s', t).group(1)
tg = re.search(r'\n +16 +([\d.]+) +[\d.]+', t).group(1)
print(f'| $t | wgpt CPU engine (2 threads) | {float(pp):,.0f} | {float(tg):,.1f} |')"
done
