#!/bin/sh
# Decode at longer contexts: wgpt's CPU engine against llama.cpp on the same GGUF files (SmolLM2's
# and GPT-2's shapes, random weights; benches/vs_llama_cpp.sh builds llama.cpp and makes the
# files: run it once first). Each engine fills DEPTH positions, then decodes 32 tokens, timed:
# `wgpt bench --contexts DEPTH` and `llama-bench -d DEPTH`, 2 threads each, the two engines in
# turns, every round one after another; each cell the median of the rounds with their range.
# At a long context a decode step reads the whole KV cache (wgpt holds it in f32, llama.cpp in
# f16) and spends much of its time in attention.
#
#   sh benches/long_context.sh
#   ROUNDS=3 DEPTHS=16,512,960 sh benches/long_context.sh
set -e
L=${LLAMA_CPP:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp}/build/bin
OUT=target/bench-models
DEPTHS=${DEPTHS:-16,512,960}
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
    ./target/release/wgpt bench --model $OUT/$f.gguf --backend cpu --prompt-tokens 16 --decode-tokens 32 \
      --contexts $DEPTHS 2>/dev/null | awk -v f=$f '$1 ~ /^[0-9]+$/ && NF >= 5 {print f, "wgpt CPU engine (2 threads)", $1, $2}'
  done
done
}
rounds | python3 -c "
import statistics, sys
depths = [int(d) for d in '$DEPTHS'.split(',')]
order, runs = [], {}
for line in sys.stdin:
    *name, depth, tps = line.split()
    key = (name[0], ' '.join(name[1:]))
    if key not in runs:
        order.append(key)
        runs[key] = {}
    runs[key].setdefault(int(depth), []).append(float(tps))
print('| weights | engine | ' + ' | '.join(f'decode tokens/s at {d}' for d in depths) + ' |')
print('|---|---|' + '---:|' * len(depths))
for key in order:
    cells = []
    for d in depths:
        v = runs[key].get(d, [])
        cells.append(f'{statistics.median(v):,.1f} ({min(v):,.1f}–{max(v):,.1f})' if len(v) > 1 else (f'{v[0]:,.1f}' if v else ''))
    print(f'| {key[0]} | {key[1]} | ' + ' | '.join(cells) + ' |')
"
