#!/usr/bin/env python3
"""Records what the trainer must reproduce, from PyTorch + HF `transformers` (independent of wgpt):
for the HF fixtures `tiny-f32` (tied head) and `tiny-bf16-untied` (untied head, padded vocab), the
gradients of the mean next-token loss (case 0's ids, then case 1's) and the parameters after one and two
`torch.optim.AdamW` steps (case 0's ids, then case 1's) with GPT parameter groups (weight decay on
the blocks' matrices only) and `clip_grad_norm_`.

    /tmp/pyenv/bin/python scripts/make_train_fixtures.py     # set-up as in make_hf_fixtures.py
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hf"
HYPER = {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 0.5}


def name(k: str) -> str:
    return k.removeprefix("transformer.")


def decays(k: str, p: torch.Tensor) -> bool:
    return p.dim() == 2 and name(k) not in ("wte.weight", "wpe.weight", "lm_head.weight")


def loss_of(model, ids):
    x = torch.tensor([ids])
    return model(x, labels=x).loss


def main():
    torch.manual_seed(0)
    for fixture in ["tiny-f32", "tiny-bf16-untied"]:
        model = GPT2LMHeadModel.from_pretrained(FIX / fixture, torch_dtype=torch.float32).train()
        model.config.attn_pdrop = model.config.resid_pdrop = model.config.embd_pdrop = 0.0
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        cases = json.loads((FIX / f"{fixture}.expected.json").read_text())["cases"]
        params = dict(model.named_parameters())
        if model.config.tie_word_embeddings:
            params.pop("lm_head.weight", None)  # the same tensor as wte
        groups = [
            {"params": [p for k, p in params.items() if decays(k, p)], "weight_decay": HYPER["weight_decay"]},
            {"params": [p for k, p in params.items() if not decays(k, p)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"])
        out, record = {}, {"hyper": HYPER, "steps": []}
        for step, case in enumerate(cases[:2]):
            opt.zero_grad()
            loss = loss_of(model, case["ids"])
            loss.backward()
            for k, p in params.items():
                out[f"grad{step + 1}.{name(k)}"] = p.grad.detach().clone().contiguous()
            norm = torch.nn.utils.clip_grad_norm_(list(params.values()), HYPER["grad_clip"])
            opt.step()
            for k, p in params.items():
                out[f"step{step + 1}.{name(k)}"] = p.detach().clone().contiguous()
            record["steps"].append({"case": step, "loss": float(loss), "grad_norm": float(norm)})
        save_file(out, FIX / f"{fixture}.train.safetensors")
        (FIX / f"{fixture}.train.json").write_text(json.dumps(record, indent=1) + "\n")
        print(fixture, record)


if __name__ == "__main__":
    main()
