#!/bin/sh
# wgpt's engines against llama.cpp on the same GGUF files: SmolLM2-135M's shape (30 layers × 576,
# 9 heads, 3 key/value, vocabulary 49,152) with random weights, converted by llama.cpp's own
# tools to F16, Q8_0 and Q4_0; each file run by `llama-bench` (2 threads) and by `wgpt bench
# --model FILE` on the CPU engine (2 threads) and on the WGSL engine (whatever adapter there is:
# lavapipe here), a 16-token prompt, 32 decoded tokens, in one run (this machine is noisy:
# compare within a run). Bytes per token: what each engine reads per decoded token (llama.cpp:
# its model size); GB/s = bytes/token × tokens/s. Both engines hold F16 as F16 and read Q8_0,
# Q4_0, Q4_K and Q6_K as blocks. The CPU engine decodes quantized files with integer products
# over 8-bit activations (its default, llama.cpp's way); it also runs them with `--activations
# f32`, the reference's exact products.
#
# Q4_K needs rows of whole 256-value super-blocks, and SmolLM2's 576 are not (llama.cpp would
# fall back to Q5_0 for them): its row is a Llama shape whose rows are, Qwen3-0.6B's sizes (28
# layers × 1024, MLP 3072, 16 heads of 128, 8 key/value, vocabulary 151,936) as a plain llama
# with random weights, every matrix Q4_K (`llama-quantize --pure ... Q4_K_S`).
#
# GPT-2 124M (12 layers × 768, vocabulary 50,257; random weights, GPT-2's own tokenizer) the same
# way: F16, Q8_0 and Q4_0 by llama.cpp's tools (its Q4_0 keeps the tied embedding/head in Q6_K,
# llama.cpp's default), and Q4_K with every matrix in Q4_K (768 and 3,072 are whole super-blocks).
#
#   sh benches/vs_llama_cpp.sh
#   WGSL=0 sh benches/vs_llama_cpp.sh     # without the WGSL engine's rows (slow on lavapipe)
#   ROUNDS=3 WGSL=0 sh benches/vs_llama_cpp.sh
#
# ROUNDS=N runs every row N times, the rounds one after another (so each engine's runs are spread
# over the same minutes as its peer's), and prints each row's median with the range beside it:
# one round's figures move by a third on a noisy VM.
#
# Then f32: llama.cpp on F32 files, HF transformers on PyTorch (f32 and bf16) and wgpt on the
# HF folders they came from.
#
# Builds llama.cpp's tools (llama-quantize, llama-bench) and /tmp/pyenv with torch, transformers
# and gguf-py from PyPI first, if they are not there (benches/build_llama_cpp.sh; LLAMA_CPP and
# PYTHON point at others).
set -e
[ -n "$LLAMA_CPP" ] || sh benches/build_llama_cpp.sh >&2
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
if [ ! -f $OUT/llama-0.6b.q4_k.gguf ]; then
  rm -rf $OUT/llama-0.6b
  $PY scripts/make_gguf_fixtures.py --random $OUT/llama-0.6b '{"hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
    "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}'
  $PY scripts/make_gguf_fixtures.py --convert $OUT/llama-0.6b $OUT/llama-0.6b f32 | grep gguf
  LD_LIBRARY_PATH=$L $L/llama-quantize --pure $OUT/llama-0.6b.f32.gguf $OUT/llama-0.6b.q4_k.gguf Q4_K_S >/dev/null 2>&1
fi
if [ ! -f $OUT/gpt2-124m.q4_k.gguf ]; then
  rm -rf $OUT/gpt2-124m
  $PY scripts/make_gguf_fixtures.py --random-gpt2 $OUT/gpt2-124m '{"vocab_size": 50257, "n_positions": 1024,
    "n_embd": 768, "n_layer": 12, "n_head": 12}'
  $PY scripts/make_gguf_fixtures.py --convert $OUT/gpt2-124m $OUT/gpt2-124m f16 q8_0 q4_0 | grep gguf
  LD_LIBRARY_PATH=$L $L/llama-quantize --pure $OUT/gpt2-124m.f32.gguf $OUT/gpt2-124m.q4_k.gguf Q4_K_S >/dev/null 2>&1
fi
cargo build --release --bin wgpt
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg}; mkdir -p -m 700 $XDG_RUNTIME_DIR
./target/release/wgpt bench --shape tiny --backend gpu --prompt-tokens 1 --decode-tokens 1 --contexts 1 | grep '^engine'
echo "| weights | engine | prefill tokens/s (16) | decode tokens/s (context 16) | bytes/token | GB/s |"
echo "|---|---|---:|---:|---:|---:|"
wgpt_row() { # $1 weights, $2 label, then wgpt bench's flags
  t=$1; label=$2; shift 2
  ./target/release/wgpt bench "$@" --prompt-tokens 16 --decode-tokens 32 --contexts 16 2>/dev/null | python3 -c "
import re, sys
t = sys.stdin.read()
pp = re.search(r'prefill +16 tokens: ([\d.]+) tokens/s', t).group(1)
tg, b, gbs = re.search(r'\n +16 +([\d.]+) +[\d.]+ +(\d+) +([\d.]+)', t).groups()
print(f'| $t | $label | {float(pp):,.0f} | {float(tg):,.1f} | {int(b)/1e6:,.0f} M | {float(gbs):.2f} |')"
}
llama_row() { # $1 label, $2 file
  LD_LIBRARY_PATH=$L $L/llama-bench -m $2 -t 2 -p 16 -n 32 -r 3 -o json 2>/dev/null | python3 -c "
import json, sys
runs = json.load(sys.stdin)
r = {x['n_prompt'] and 'pp' or 'tg': x['avg_ts'] for x in runs}
size = runs[0]['model_size']
print(f\"| $1 | llama.cpp CPU (2 threads) | {r['pp']:,.0f} | {r['tg']:,.1f} | {size/1e6:,.0f} M | {size*r['tg']/1e9:.2f} |\")"
}
rows() {
for f in $OUT/smollm2-135m.f16.gguf $OUT/smollm2-135m.q8_0.gguf $OUT/smollm2-135m.q4_0.gguf $OUT/llama-0.6b.q4_k.gguf \
  $OUT/gpt2-124m.f16.gguf $OUT/gpt2-124m.q8_0.gguf $OUT/gpt2-124m.q4_0.gguf $OUT/gpt2-124m.q4_k.gguf; do
  t=$(basename $f .gguf)
  llama_row $t $f
  wgpt_row $t "wgpt CPU engine (2 threads)" --model $f --backend cpu
  case $t in *.f16) ;; *) wgpt_row $t "wgpt CPU, f32 products" --model $f --backend cpu --activations f32 ;; esac
  [ "${WGSL:-1}" = 0 ] || wgpt_row $t "wgpt WGSL engine" --model $f --backend gpu
done
# f32 weights: llama.cpp on the F32 file; HF transformers on PyTorch (f32, and bf16 as its fast
# CPU path) on the HF folder the files came from (benches/hf_transformers.py: the same prompt and
# decode, best of 3 rounds); wgpt's CPU engine on that folder's f32 safetensors.
for m in smollm2-135m gpt2-124m; do
  [ -f $OUT/$m.f32.gguf ] || $PY scripts/make_gguf_fixtures.py --convert $OUT/$m $OUT/$m f32 | grep gguf
  llama_row $m.f32 $OUT/$m.f32.gguf
  for dtype in float32 bfloat16; do $PY benches/hf_transformers.py $OUT/$m --threads 2 --dtype $dtype 2>/dev/null; done
  wgpt_row $m.f32 "wgpt CPU engine (2 threads)" --model $OUT/$m --backend cpu
done
}
for round in $(seq ${ROUNDS:-1}); do rows; done | python3 -c "
import statistics, sys
order, rows = [], {}
for line in sys.stdin:
    if not line.startswith('| '):
        print(line, end='')
        continue
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    key = (cells[0], cells[1])
    if key not in rows:
        order.append(key)
        rows[key] = []
    rows[key].append((line, cells))
num = lambda s: float(s.replace(',', ''))
for key in order:
    runs = rows[key]
    if len(runs) == 1:
        print(runs[0][0], end='')
        continue
    pp, tg = ([num(c[k]) for _, c in runs] for k in (2, 3))
    size = runs[0][1][4]
    gbs = f'{num(size.split()[0]) * statistics.median(tg) / 1e3:.2f}' if size else ''
    print(f'| {key[0]} | {key[1]} | {statistics.median(pp):,.0f} ({min(pp):,.0f}–{max(pp):,.0f}) '
          f'| {statistics.median(tg):,.1f} ({min(tg):,.1f}–{max(tg):,.1f}) | {size} | {gbs} |')
"
