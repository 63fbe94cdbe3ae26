#!/bin/sh
# The checks and benchmarks that need a real GPU (issues #3 and #4), as one script, so that a
# session lent a GPU machine (minutes of device time, no network, no crates there) spends them
# on measuring, not building:
#
#   sh scripts/device_check.sh build    # here, no GPU needed: release binaries + GPU test
#                                       # executables into target/device/ (≈ 58 MiB;
#                                       # the carry limit is 64 MiB)
#   sh scripts/device_check.sh run      # there: the device tool's `run` with
#                                       #   carry ["target/device"], timeout ≈ 420 s
#
# `run` writes one log per step and summary.txt under $OUT (default out/device/), never stops at
# a failed step, and gives each step its own time limit so one hang cannot eat the budget.
# It runs here too (lavapipe stands in for the GPU; the CUDA steps fail with a clear error),
# which is how the script itself is checked:
#   ENGINE_SHAPES=tiny:f16 TRAIN_PRESET=nano sh scripts/device_check.sh run
set -u
cd "$(dirname "$0")/.."
D=target/device

if [ "${1:-}" = build ]; then
  set -e
  cargo build --release --bin wgpt
  cargo build --release -p wgpt-train --features wgpu,cuda
  # The engine's GPU parity tests, as executables that run without cargo.
  tests=$(cargo test --release --no-run --message-format=json --test gpu_model --test engine 2>/dev/null |
    sed -n 's|.*"executable":"\([^"]*/deps/[^"]*\)".*|\1|p')
  rm -rf "$D" && mkdir -p "$D"
  cp target/release/wgpt target/release/wgpt-train "$D/"
  for t in $tests; do cp "$t" "$D/$(basename "$t" | sed 's/-[0-9a-f]*$//')-test"; done
  strip "$D"/* 2>/dev/null || true
  # The tests find their fixtures under the path they were built in (CARGO_MANIFEST_DIR).
  pwd > "$D/build-root"
  ls -la "$D" && du -sh "$D"
  exit 0
fi
[ "${1:-}" = run ] || { echo "usage: sh scripts/device_check.sh build|run" >&2; exit 2; }
[ -x "$D/wgpt" ] || { echo "no $D/wgpt: run 'sh scripts/device_check.sh build' first and carry $D" >&2; exit 2; }

# The test executables look for tests/fixtures where they were built: point that path here.
root=$(cat "$D/build-root" 2>/dev/null || echo)
if [ -n "$root" ] && [ ! -e "$root/tests/fixtures" ]; then
  mkdir -p "$(dirname "$root")" && ln -s "$(pwd)" "$root"
fi

OUT=${OUT:-out/device}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output in NAME.log, and
# appends its status and the last line of its output to summary.txt.
step() {
  name=$1 limit=$2
  shift 2
  start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%-24s exit %-3s %4s s  %s\n' "$name" "$rc" "$(( $(date +%s) - start ))" \
    "$(grep -v '^\s*$' "$OUT/$name.log" | tail -1 | cut -c1-160)" | tee -a "$SUMMARY"
}

{ date; uname -a; nvidia-smi 2>&1 | head -15; nproc; free -g; } > "$OUT/machine.txt" 2>&1
step vulkan-devices 20 sh -c 'command -v vulkaninfo >/dev/null && vulkaninfo --summary || echo "no vulkaninfo"'

# #3: the WGSL engine on the GPU — parity first (a fast wrong kernel is worth nothing), then
# GPT-2-shaped benchmarks: decode efficiency = bytes/token × tokens/s ÷ copy bandwidth.
for t in "$D"/*-test; do
  [ -x "$t" ] && step "$(basename "$t")" 120 "$t" --test-threads 1
done
# ENGINE_SHAPES and TRAIN_PRESET shrink the run for the check on a software device.
for shape_dtype in ${ENGINE_SHAPES:-gpt2-124m:f16 gpt2-124m:f32 gpt2-355m:f16}; do
  shape=${shape_dtype%:*} dtype=${shape_dtype#*:}
  step "engine-$shape-$dtype" 90 "$D/wgpt" bench --shape "$shape" --backend gpu --dtype "$dtype" \
    --prompt-tokens 128 --decode-tokens 32
done

# #4: the trainer on CUDA — bf16 mixed precision (the issue's MFU goal, against the H200's 989
# TFLOP/s bf16 dense peak), then f32 (against 67 TFLOP/s) — and on wgpu, then the small shape
# the CPU figures use, for scale.
preset=${TRAIN_PRESET:-gpt2-124m}
step "train-cuda-$preset-bf16" 120 "$D/wgpt-train" bench --backend cuda --preset "$preset" --vocab-size 50257 \
  --batch 8 --steps 10 --precision bf16 --peak-tflops 989
step "train-cuda-$preset-f32" 120 "$D/wgpt-train" bench --backend cuda --preset "$preset" --vocab-size 50257 \
  --batch 8 --steps 10 --peak-tflops 67
step train-cuda-micro 60 "$D/wgpt-train" bench --backend cuda --preset micro --vocab-size 256 --batch 16 --steps 20
step train-wgpu-micro 60 "$D/wgpt-train" bench --backend wgpu --preset micro --vocab-size 256 --batch 16 --steps 20
step train-cpu-micro 60 "$D/wgpt-train" bench --backend cpu --preset micro --vocab-size 256 --batch 16 --steps 20
# --devices: data-parallel pre-training on every GPU there is. On a one-GPU machine it asks for
# two, which must end in a clear error naming the one device CUDA sees, not a panic.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
n=$(( ${gpus:-0} < 2 ? 2 : gpus ))
dp=${TMPDIR:-/tmp}/wgpt-device-dp
rm -rf "$dp"
step train-prepare 60 "$D/wgpt-train" prepare --out "$dp/data" --vocab-size 512
step "train-cuda-devices-$n" 90 "$D/wgpt-train" pretrain --backend cuda --data "$dp/data" --out "$dp/run" \
  --preset micro --batch 16 --accum "$n" --devices "$n" --steps 50 --eval-every 50

echo "logs and summary in $OUT"
