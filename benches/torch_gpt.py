#!/usr/bin/env python3
"""The trainer's model in PyTorch (same math: pre-LN GPT-2 blocks, tanh GELU, tied head), trained
on random tokens with AdamW, for a tokens/s figure on the same machine as `wgpt-train bench`.

    python3 benches/torch_gpt.py --n-layer 4 --n-embd 128 --n-head 4 --context 128 --vocab 256 --batch 16
Prints one JSON line like `wgpt-train bench`.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, v, t, c, l, h):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(v, c), nn.Embedding(t, c)
        self.h = nn.ModuleList(Block(c, h) for _ in range(l))
        self.ln_f = nn.LayerNorm(c)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    for k, d in [("n-layer", 4), ("n-embd", 128), ("n-head", 4), ("context", 128), ("vocab", 256), ("batch", 16), ("steps", 20), ("threads", 1)]:
        ap.add_argument(f"--{k}", type=int, default=d)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Gpt(a.vocab, a.context, a.n_embd, a.n_layer, a.n_head)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    params = sum(p.numel() for p in model.parameters())
    for step in range(a.steps + 2):
        if step == 2:
            t0 = time.perf_counter()
        ids = torch.randint(0, a.vocab, (a.batch, a.context + 1))
        loss = model(ids[:, :-1], ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    tok_s = a.steps * a.batch * a.context / (time.perf_counter() - t0)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "parameters": params, "batch": a.batch, "context": a.context, "tokens_per_s": tok_s}))


if __name__ == "__main__":
    main()
