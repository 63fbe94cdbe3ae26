#!/bin/sh
# Longer contexts: wgpt's CPU engine against llama.cpp on the same GGUF files (SmolLM2's and
# GPT-2's shapes, random weights; benches/vs_llama_cpp.sh builds llama.cpp and makes the files:
# run it once first). A prompt of PROMPT tokens (default 960), timed; and decode at each DEPTH:
# the engine fills DEPTH positions, then decodes 32 tokens, timed (`wgpt bench --contexts DEPTH`,
# `llama-bench -d DEPTH`). 2 threads each, the two engines in turns, every round one after
# another; each cell the median of the rounds with their range. At a long context a decode step
# reads the whole KV cache (wgpt holds it in f32, llama.cpp in f16) and a prompt's time is mostly
# attention's.
#
#   sh benches/long_context.sh
#   ROUNDS=3 DEPTHS=16,512,960 sh benches/long_context.sh
set -e
L=${LLAMA_CPP:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}/build/bin
OUT=target/bench-models
DEPTHS=${DEPTHS:-16,512,960}
PROMPT=${PROMPT:-960}
for f in smollm2-135m.f16 smollm2-135m.q8_0 smollm2-135m.q4_0 gpt2-124m.f16 gpt2-124m.q8_0 gpt2-124m.q4_0; do
  [ -f $OUT/$f.gguf ] || { echo "no $OUT/$f.gguf: run benches/vs_llama_cpp.sh first" >&2; exit 1; }
done
cargo build --release --bin wgpt
rounds() {
for round in $(seq ${ROUNDS:-1}); do
  for f in smollm2-135m.f16 smollm2-135m.q8_0 smollm2-135m.q4_0 gpt2-124m.f16 gpt2-124m.q8_0 gpt2-124m.q4_0; do
    LD_LIBRARY_PATH=$L $L/llama-bench -m $OUT/$f.gguf -t 2 -p 0 -n 32 -d $DEPTHS -r 2 -o json 2>/dev/null |
      python3 -c "
import json, sys
for r in json.load(sys.stdin):
    print('$f', 'llama.cpp CPU (2 threads)', r['n_depth'], r['avg_ts'])"
    LD_LIBRARY_PATH=$L $L/llama-bench -m $OUT/$f.gguf -t 2 -p $PROMPT -n 0 -r 2 -o json 2>/dev/null |
      python3 -c "
import json, sys
print('$f', 'llama.cpp CPU (2 threads)', 'prompt', json.load(sys.stdin)[0]['avg_ts'])"
    ./target/release/wgpt bench --model $OUT/$f.gguf --backend cpu --prompt-tokens $PROMPT --decode-tokens 32 \
      --contexts $DEPTHS 2>/dev/null | awk -v f=$f '$1 ~ /^[0-9]+$/ && NF >= 5 {print f, "wgpt CPU engine (2 threads)", $1, $2}
        $1 == "prefill" {print f, "wgpt CPU engine (2 threads)", "prompt", $4}'
  done
done
}
rounds | python3 -c "
import statistics, sys
depths = ['prompt'] + [d for d in '$DEPTHS'.split(',')]
order, runs = [], {}
for line in sys.stdin:
    *name, depth, tps = line.split()
    key = (name[0], ' '.join(name[1:]))
    if key not in runs:
        order.append(key)
        runs[key] = {}
    runs[key].setdefault(depth, []).append(float(tps))
print('| weights | engine | prefill tokens/s ($PROMPT) | ' + ' | '.join(f'decode tokens/s at {d}' for d in depths[1:]) + ' |')
print('|---|---|' + '---:|' * len(depths))
for key in order:
    cells = []
    for d in depths:
        v = runs[key].get(d, [])
        cells.append(f'{statistics.median(v):,.1f} ({min(v):,.1f}–{max(v):,.1f})' if len(v) > 1 else (f'{v[0]:,.1f}' if v else ''))
    print(f'| {key[0]} | {key[1]} | ' + ' | '.join(cells) + ' |')
"
