#!/usr/bin/env python3
"""Writes the GGUF parity fixtures under tests/fixtures/gguf/ (CI only reads them).

Independent of wgpt: llama.cpp's own tools make the files — its `convert_hf_to_gguf.py` (F32, F16,
Q8_0) from the repository's tiny HF fixtures, and its `llama-quantize` (Q4_0, Q4_K_M) from the F16
file — and the expected logits are HF transformers' forward on the weights *as the GGUF holds
them*: every tensor dequantized with llama.cpp's `gguf-py`, put back under HF's name and layout
(the q/k row order llama.cpp's converter changes for `llama` undone, GPT-2's Conv1D transposed
back), loaded into the HF model of the source config.

Models: `tiny-f32` (GPT-2, tied head, its byte-level BPE tokenizer), `chat-llama` (llama: GQA, tied
head, its byte-level BPE tokenizer and SmolLM2's template),
`llama-gqa` (Llama 3.1's rotary scaling, which the converter stores as `rope_freqs.weight`; an untied
head), `qwen2-bias` (q/k/v biases), `qwen3-qknorm` (per-head q/k norms), and `llama-k` (one made here: a
llama 256 wide, so rows are whole 256-value super-blocks and Q4_K_M holds real Q4_K and Q6_K
tensors; narrower rows fall back to Q5_0/Q8_0). Models without a tokenizer get a byte-level one of
their 256 ids (no merges).

Set-up (a few minutes; `sh benches/build_llama_cpp.sh` does these steps):
    W=/tmp/llcpp; pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d $W
    tar xzf $W/llama_cpp_python-0.3.36.tar.gz -C $W; L=$W/llama_cpp_python-0.3.36/vendor/llama.cpp
    /tmp/pyenv/bin/pip install torch transformers safetensors numpy sentencepiece cmake "$L/gguf-py"
    cmake -S $L -B $L/build -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release
    cmake --build $L/build --target llama-quantize -j2
    LLAMA_CPP=$L /tmp/pyenv/bin/python scripts/make_gguf_fixtures.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "fixtures" / "llama"
OUT = ROOT / "tests" / "fixtures" / "gguf"
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", "/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp"))
sys.path.insert(0, str(LLAMA_CPP))
sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
import gguf  # noqa: E402
import convert_hf_to_gguf as convert  # noqa: E402
from conversion import base as convert_base  # noqa: E402

SEQUENCES = [[7, 100, 31, 200, 5, 9, 250], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]]
# (source, GGUF types); F32/F16/Q8_0 from the converter, the rest from llama-quantize.
MODELS = {
    "chat-llama": ["f16", "q8_0", "q4_0"],
    "llama-gqa": ["f32"],
    # Q4_K_M of 64-wide rows: llama.cpp falls back to Q5_0 and Q8_0 (rows not whole super-blocks).
    "qwen2-bias": ["f32", "q8_0", "q4_0", "q4_k_m"],
    "qwen3-qknorm": ["f16", "q8_0", "q4_0"],
    "llama-k": ["q4_k_m"],
    "tiny-f32": ["f32", "f16", "q8_0", "q4_0", "q4_k_m"],
}


def bytes_to_unicode():
    """GPT-2's byte → printable character map (what byte-level BPE vocabularies are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def byte_vocab(self):
    """A byte-level tokenizer (no merges) for models that have none: the 256 byte tokens, then
    unused `[PAD{id}]` ids up to the model's vocabulary (as the converter pads a short vocab)."""
    n = self.hparams.get("vocab_size", 256)
    tokens = [bytes_to_unicode()[b] for b in range(256)] + [f"[PAD{i}]" for i in range(256, n)]
    types = [gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.UNUSED] * (n - 256)
    merges = []
    if n > 256:
        # llama.cpp refuses a BPE vocabulary without merges: a real-size one (the benchmarks')
        # gets one, " t", whose result is id 256. (The tiny fixtures have none; wgpt reads both.)
        tokens[256], types[256], merges = "Ġt", gguf.TokenType.NORMAL, ["Ġ t"]
    self.gguf_writer.add_tokenizer_model("gpt2")
    self.gguf_writer.add_tokenizer_pre("gpt-2")
    self.gguf_writer.add_token_list(tokens)
    self.gguf_writer.add_token_types(types)
    self.gguf_writer.add_token_merges(merges)


def convert_model(src: Path, outtype: str, out: Path, has_tokenizer: bool):
    # Our fixtures' BPE pre-tokenizer is GPT-2's (ByteLevel with its regex); the converter only
    # knows pre-tokenizers by the hash of real models' outputs.
    convert_base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    saved = {}
    if not has_tokenizer:
        import conversion
        conversion.load_all_models()  # the converter registers its model classes lazily
        for cls in convert_base.ModelBase._model_classes[convert_base.ModelType.TEXT].values():
            saved[cls] = cls.__dict__.get("set_vocab")
            cls.set_vocab = byte_vocab
    try:
        sys.argv = ["convert_hf_to_gguf.py", str(src), "--outtype", outtype, "--outfile", str(out)]
        convert.main()
    finally:
        for cls, f in saved.items():
            if f is None:
                del cls.set_vocab
            else:
                cls.set_vocab = f


def hf_name(arch, name):
    if arch == "gpt2":
        fixed = {"token_embd.weight": "transformer.wte.weight", "position_embd.weight": "transformer.wpe.weight",
                 "output_norm.weight": "transformer.ln_f.weight", "output_norm.bias": "transformer.ln_f.bias",
                 "output.weight": "lm_head.weight"}
        if name in fixed:
            return fixed[name]
        _, layer, rest = name.split(".", 2)
        part, kind = rest.rsplit(".", 1)
        part = {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
                "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}[part]
        return f"transformer.h.{layer}.{part}.{kind}"
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if name in fixed:
        return fixed[name]
    _, layer, rest = name.split(".", 2)
    part, kind = rest.rsplit(".", 1)
    part = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
            "attn_k_norm": "self_attn.k_norm", "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}[part]
    return f"model.layers.{layer}.{part}.{kind}"


def unpermute(w, n_head):
    """The inverse of the converter's LlamaModel.permute."""
    shape = w.shape
    return w.reshape(n_head, shape[0] // n_head // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def dequantized_state(path: Path, config: dict):
    reader = gguf.GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()
    types, state = {}, {}
    for t in reader.tensors:
        if t.name == "rope_freqs.weight":
            continue  # Llama 3.1's rotary divisors: HF computes them from the config
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape.tolist())]) if w.ndim != len(t.shape) else w
        name = hf_name(arch, t.name)
        if arch == "gpt2" and name.startswith("transformer.h.") and w.ndim == 2:
            w = w.T  # the converter's Conv1D transpose, undone
        if arch == "llama" and ("q_proj" in name or "k_proj" in name):
            heads = config["num_attention_heads"] if "q_proj" in name else config["num_key_value_heads"]
            w = unpermute(w, heads)
        state[name] = torch.from_numpy(np.ascontiguousarray(w))
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return state, types


def expected(path: Path, src: Path, name: str):
    config = json.loads((src / "config.json").read_text())
    state, types = dequantized_state(path, config)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # A tied head is the embedding; nothing else may be missing.
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
    tensors, cases = {}, []
    for i, ids in enumerate(SEQUENCES):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        tensors[f"case{i}.logits"] = logits.contiguous()
        cases.append({"ids": ids})
    record = {"types": types, "cases": cases}
    tok = None
    if (src / "tokenizer.json").exists():
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(src)
    if tok is not None and tok.chat_template:
        # A greedy chat reply with the model's own template, from HF on these weights (what the
        # page and CLI tests compare against).
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
        record["chat"] = {"messages": messages, "prompt_ids": ids[0].tolist(), "reply_ids": out[0, ids.shape[1]:].tolist(),
                          "reply": tok.decode(out[0, ids.shape[1]:])}
    save_file(tensors, str(OUT / f"{name}.expected.safetensors"))
    (OUT / f"{name}.expected.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return types


def make_llama_k(dir: Path):
    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=256, hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            p.copy_(1.0 + 0.3 * torch.randn_like(p) if p.dim() == 1 else torch.randn_like(p) / p.shape[-1] ** 0.5)
    model.save_pretrained(dir, safe_serialization=True)


def gpt2_for_converter(src: Path, dst: Path) -> Path:
    """A copy of a GPT-2 folder the converter takes: it wants `n_ctx` (which transformers 5 no
    longer writes) and `architectures`, and cannot map the causal-mask buffers old files carry."""
    from safetensors.torch import load_file
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["n_ctx"] = config["n_positions"]
    config.setdefault("architectures", ["GPT2LMHeadModel"])
    (dst / "config.json").write_text(json.dumps(config))
    state = load_file(dst / "model.safetensors")
    save_file({k: v.float() for k, v in state.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))},
              str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def convert_only(src: Path, prefix: Path, kinds):
    """`--convert SRC PREFIX TYPE...`: SRC (a GPT-2 or Llama-family folder) as PREFIX.TYPE.gguf,
    by the converter (f32, f16, q8_0) or llama-quantize from the f32 file (q4_0, q4_k_m, ...)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if json.loads((src / "config.json").read_text()).get("model_type") == "gpt2":
            src = gpt2_for_converter(src, Path(tmp) / "model")
        has_tokenizer = (src / "tokenizer.json").exists()
        f32 = Path(f"{prefix}.f32.gguf")
        convert_model(src, "f32", f32, has_tokenizer)
        for kind in kinds:
            out = Path(f"{prefix}.{kind}.gguf")
            if kind in ("f16", "q8_0"):
                convert_model(src, kind, out, has_tokenizer)
            elif kind != "f32":
                subprocess.run([str(LLAMA_CPP / "build" / "bin" / "llama-quantize"), str(f32), str(out), kind],
                               check=True, capture_output=True)
            types = {}
            for t in gguf.GGUFReader(str(out)).tensors:
                types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
            print(out, types)


def random_llama(dst: Path, config_json: str):
    """`--random DIR CONFIG_JSON`: an HF checkpoint with a real model's shape (its config.json
    as JSON text) and random weights, for benchmarks."""
    torch.manual_seed(0)
    config = LlamaConfig(**json.loads(config_json))
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(dst, safe_serialization=True)
    print(dst, sum(p.numel() for p in model.parameters()), "parameters")


def random_gpt2(dst: Path, config_json: str):
    """`--random-gpt2 DIR CONFIG_JSON`: an HF GPT-2 checkpoint of that shape with random weights
    and GPT-2's own tokenizer (the repository's `encoder.json` / `vocab.bpe`), for benchmarks."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**json.loads(config_json))).eval()
    model.save_pretrained(dst, safe_serialization=True)
    vocab = ROOT / "tests" / "fixtures" / "hf" / "gpt2vocab-f16"
    merges = [tuple(m.split(" ")) for m in (vocab / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:] if m]
    encoder = json.loads((vocab / "encoder.json").read_text(encoding="utf-8"))
    GPT2TokenizerFast(vocab=encoder, merges=merges).save_pretrained(dst)
    print(dst, sum(p.numel() for p in model.parameters()), "parameters")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--random":
        return random_llama(Path(sys.argv[2]), sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "--random-gpt2":
        return random_gpt2(Path(sys.argv[2]), sys.argv[3])
    if len(sys.argv) > 3 and sys.argv[1] == "--convert":
        return convert_only(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
    # `make_gguf_fixtures.py NAME.TYPE ...`: only those files (default: every one).
    only = set(sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    quantize = LLAMA_CPP / "build" / "bin" / "llama-quantize"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, kinds in MODELS.items():
            kinds = [k for k in kinds if not only or f"{name}.{k}" in only]
            if not kinds:
                continue
            src = SRC / name
            if name == "llama-k":
                src = tmp / name
                make_llama_k(src)
            if name == "tiny-f32":
                src = gpt2_for_converter(ROOT / "tests" / "fixtures" / "hf" / name, tmp / name)
            has_tokenizer = (src / "tokenizer.json").exists()
            f16 = tmp / f"{name}.f16.gguf"
            convert_model(src, "f16", f16, has_tokenizer)
            for kind in kinds:
                out = OUT / f"{name}.{kind}.gguf"
                if kind in ("f32", "f16", "q8_0"):
                    convert_model(src, kind, out, has_tokenizer)
                elif not quantize.exists():
                    print(f"skipped {out.name}: no {quantize}")
                    continue
                else:
                    subprocess.run([str(quantize), str(f16), str(out), kind], check=True, capture_output=True)
                types = expected(out, src, f"{name}.{kind}")
                print(out.name, out.stat().st_size, "bytes", types)


if __name__ == "__main__":
    main()
