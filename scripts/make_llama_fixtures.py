#!/usr/bin/env python3
"""Writes the Llama-family parity fixtures under tests/fixtures/llama/ (CI only reads them).

Independent of wgpt: HF `transformers` builds tiny random checkpoints of each `model_type` the
engine reads — llama (GQA, head_dim ≠ hidden/heads, llama3 rope scaling, untied head, the config
written in the legacy `rope_theta` + `rope_scaling` form real Llama 3.2 files use), qwen2 (q/k/v
biases, tied head, stored in f16), qwen3 (per-head q/k RMSNorm, explicit head_dim, tied head, the config in
transformers 5's `rope_parameters` form) and llama with `attention_bias` (biases on q, k, v *and* the
output projection) — with every weight, norm gains included, drawn away from
its init, and records for a few id sequences the logits at every position and a greedy
continuation.

And one model to chat with, `chat-llama` (what the page and `wgpt chat` tests load): a Llama with
a real byte-level BPE tokenizer trained here on the repository's own docs (512 ids, ChatML's special
tokens), SmolLM2-Instruct's chat template in its tokenizer config, a generation_config.json with two
end tokens, and its weights in bf16 split into shards with an index — with HF's renderings and ids of
a few conversations, and the logits and greedy continuation of each prompt.

Set-up (CPU is fine):
    python3 -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install torch transformers safetensors jinja2
    /tmp/pyenv/bin/python scripts/make_llama_fixtures.py            # every fixture
    /tmp/pyenv/bin/python scripts/make_llama_fixtures.py llama-bias # only those named (each named
                                                                    # list draws its own weights)
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "llama"
COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, max_position_embeddings=64)

MODELS = {
    "llama-gqa": (LlamaForCausalLM, LlamaConfig(
        **COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-5,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=[2, 3])),
    "qwen2-bias": (Qwen2ForCausalLM, Qwen2Config(
        **COMMON, num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=4, eos_token_id=5)),
    "qwen3-qknorm": (Qwen3ForCausalLM, Qwen3Config(
        **COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
        rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=None, eos_token_id=6)),
    "llama-bias": (LlamaForCausalLM, LlamaConfig(
        **COMMON, num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0,
        attention_bias=True, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)),
}
# Stored in f16 (the others in f32; chat-llama in bf16).
F16 = {"qwen2-bias"}
SEQUENCES = [[7, 100, 31, 200, 5, 9, 250], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]]
GREEDY = 8


def main(names):
    torch.manual_seed(0)
    for name, (cls, config) in MODELS.items():
        if names and name not in names:
            continue
        model = cls(config).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 1 and "norm" in pname:
                    p.copy_(1.0 + 0.3 * torch.randn_like(p))
                elif p.dim() == 1:
                    p.copy_(0.2 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
        out = FIX / name
        out.mkdir(parents=True, exist_ok=True)
        if name in F16:
            # Stored in f16; the expected logits are the f32 forward of the weights as stored,
            # loaded as a user loads them (`.half().float()` would also round the rotary
            # frequencies, which from_pretrained recomputes in f32).
            model.half().save_pretrained(out, safe_serialization=True)
            model = cls.from_pretrained(out, dtype=torch.float32).eval()
        else:
            model.save_pretrained(out, safe_serialization=True)
        cfg = json.loads((out / "config.json").read_text())
        if name == "llama-gqa":
            # The legacy form of real Llama 3.x files.
            rope = cfg.pop("rope_parameters")
            cfg["rope_theta"] = rope.pop("rope_theta")
            cfg["rope_scaling"] = rope
            (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        for extra in ["generation_config.json"]:
            (out / extra).unlink(missing_ok=True)
        cases, tensors = [], {}
        for i, ids in enumerate(SEQUENCES):
            x = torch.tensor([ids])
            with torch.no_grad():
                logits = model(x).logits[0].float()
                greedy = model.generate(x, max_new_tokens=GREEDY, do_sample=False, eos_token_id=None,
                                        pad_token_id=0)[0, len(ids):].tolist()
            tensors[f"case{i}.logits"] = logits.contiguous()
            cases.append({"ids": ids, "greedy": greedy})
        save_file(tensors, str(FIX / f"{name}.expected.safetensors"))
        (FIX / f"{name}.expected.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
        print(name, sum(p.numel() for p in model.parameters()), "parameters")


# SmolLM2-135M-Instruct's template, as its tokenizer_config.json has it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi!"},
     {"role": "assistant", "content": "Hello. How can I help?"}, {"role": "user", "content": "什么是 GPT？ 🙂"}],
]


def make_chat_model():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # A corpus that does not change with the docs: the chat-template fixtures' conversations (en,
    # zh, emoji) and the task-suite episodes.
    corpus = [(ROOT / "tests" / "fixtures" / f).read_text() for f in ["chat-templates.json", "episodes.json"]]
    bpe.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tok.chat_template = SMOLLM2_TEMPLATE
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2)
    first = tok(tok.apply_chat_template(CONVERSATIONS[0], tokenize=False, add_generation_prompt=True),
                add_special_tokens=False)["input_ids"]
    # The first seed whose greedy reply to the first conversation is readable for its first 8
    # tokens (the page and CLI tests compare text) and runs 300 tokens without an end token (the
    # Ctrl-C test stops it mid-reply).
    for seed in range(1, 200):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 1:
                    p.copy_(1.0 + 0.3 * torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
            probe = model.to(torch.bfloat16).float()
            reply = probe.generate(torch.tensor([first]), max_new_tokens=300, do_sample=False, eos_token_id=None,
                                   pad_token_id=0)[0, len(first):].tolist()
        text = tok.decode(reply[:8])
        if not any(t in (0, 1, 2) for t in reply) and "\ufffd" not in text and len(text.strip()) >= 6:
            break
    print("chat-llama seed", seed, repr(text))
    out = FIX / "chat-llama"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True, max_shard_size="120KB")
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": [2, 0]}) + "\n")
    tok.save_pretrained(out)
    # HF's forward in f32 of the bf16 weights as stored (widening bf16 is exact).
    model = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    cases, tensors = [], {}
    for i, messages in enumerate(CONVERSATIONS):
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            tensors[f"case{i}.logits"] = model(x).logits[0].float().contiguous()
            greedy = model.generate(x, max_new_tokens=GREEDY, do_sample=False, eos_token_id=None,
                                    pad_token_id=0)[0, len(ids):].tolist()
        end = next((i for i, t in enumerate(greedy) if t in (0, 2)), len(greedy))
        cases.append({"messages": messages, "text": text, "ids": ids, "greedy": greedy,
                      "reply": tok.decode(greedy[:end])})
    save_file(tensors, str(FIX / "chat-llama.expected.safetensors"))
    (FIX / "chat-llama.expected.json").write_text(json.dumps({"cases": cases}, indent=1, ensure_ascii=False) + "\n")
    print("chat-llama", sum(p.numel() for p in model.parameters()), "parameters,",
          sorted(f.name for f in out.iterdir()))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
    if len(sys.argv) == 1:
        make_chat_model()
