#!/bin/sh
# Quality of quantized weights: the shipped base model (www/models/base) converted by llama.cpp's
# own tools to GGUF F32, Q8_0, Q4_0 and Q4_K_M, each scored by `wgpt perplexity` on a held-out
# text, with top-1 agreement against F32 under forced decoding (the same tokens, position by
# position). Prints a Markdown table (BENCHMARKS.md).
#
#   sh benches/gguf_quality.sh [TEXT]     (default: the article the project comes from, which
#                                          the base model never saw)
#
# Needs llama.cpp's tools and /tmp/pyenv with gguf-py: built from PyPI first if they are not
# there (benches/build_llama_cpp.sh; LLAMA_CPP and PYTHON point at others).
set -e
[ -n "$LLAMA_CPP" ] || sh benches/build_llama_cpp.sh >&2
TEXT=${1:-../shared/seed/gpt-evolution-article.zh.txt}
PY=${PYTHON:-/tmp/pyenv/bin/python}
OUT=target/gguf-quality
mkdir -p $OUT
$PY scripts/make_gguf_fixtures.py --convert www/models/base $OUT/base q8_0 q4_0 q4_k_m | grep gguf
cargo build --release --bin wgpt
echo
echo "| weights | file bytes | tensor types | tokens | nll (nats/token) | perplexity | vs F32 | top-1 agreement with F32 |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
for t in f32 q8_0 q4_0 q4_k_m; do
  f=$OUT/base.$t.gguf
  j=$(./target/release/wgpt perplexity --model $f --reference $OUT/base.f32.gguf --text-file "$TEXT" --json)
  types=$(./target/release/wgpt inspect --model $f --json | python3 -c 'import json,sys; print("+".join(json.load(sys.stdin)["dtypes"]))')
  echo "$j" | python3 -c "
import json, os, sys
j = json.load(sys.stdin)
rel = (j['ppl'] / j['reference']['ppl'] - 1) * 100
print(f\"| $t | {os.path.getsize('$f'):,} | $types | {j['tokens']:,} | {j['nll']:.4f} | {j['ppl']:.1f} | {rel:+.2f} % | {j['top1_agreement'] * 100:.1f} % |\")"
done
