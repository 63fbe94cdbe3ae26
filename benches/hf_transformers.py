#!/usr/bin/env python3
"""HF transformers on PyTorch's CPU, measured as `wgpt bench` measures: a prompt of 16 tokens
(prefill), then decode tokens/s at a context of 16 — for the f32 goal of #22 (wgpt's CPU engine
on f32 weights ≥ 2× this).

    /tmp/pyenv/bin/python benches/hf_transformers.py MODEL_DIR [--threads 2] [--dtype float32]

Prints one table row like benches/vs_llama_cpp.sh's: `| name | engine | prefill | decode | … |`.
"""

import argparse
import os
import time

import warnings

import torch
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    # transformers 5.2x: `past_key_values` works and warns of a rename; the figures are the point.
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, vocab, (1, a.prompt), generator=g)
    best_pp, best_tg = 0.0, 0.0
    with torch.inference_mode():
        model(prompt)  # warm-up
        for _ in range(a.rounds):
            t = time.perf_counter()
            out = model(prompt, use_cache=True)
            pp = a.prompt / (time.perf_counter() - t)
            past = out.past_key_values
            ids = out.logits[:, -1:].argmax(-1)
            t = time.perf_counter()
            for _ in range(a.decode):
                out = model(ids, past_key_values=past, use_cache=True)
                past = out.past_key_values
                ids = out.logits[:, -1:].argmax(-1)
            tg = a.decode / (time.perf_counter() - t)
            best_pp, best_tg = max(best_pp, pp), max(best_tg, tg)
    name = os.path.basename(os.path.normpath(a.model))
    engine = f"HF transformers {__import__('transformers').__version__} + PyTorch {torch.__version__.split('+')[0]} {a.dtype} ({a.threads} threads)"
    print(f"| {name} | {engine} | {best_pp:,.0f} | {best_tg:,.1f} | | |")


if __name__ == "__main__":
    main()
