"""Reference blocks from llama.cpp's own quantizer, for tests/quant.rs.

Calls `quantize_row_q4_K_ref` in llama.cpp's libggml-base (what `llama-quantize` runs for Q4_K
without an importance matrix) on values chosen to reach every branch of it — smooth rows, rows
of one sign, a sub-block of zeros, a whole super-block of zeros, one huge value, tiny values —
and writes the input (f32, little-endian) and llama.cpp's blocks next to each other:

    /tmp/pyenv/bin/python scripts/make_quant_fixtures.py tests/fixtures/quant

LLAMA_CPP: the llama.cpp tree of scripts/make_gguf_fixtures.py (its build/bin holds the library).
"""
import ctypes
import os
import sys

import numpy as np

root = os.environ.get("LLAMA_CPP", "/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp")
lib = ctypes.CDLL(os.path.join(root, "build/bin/libggml-base.so"))

rng = np.random.default_rng(21)
blocks = [
    rng.normal(0, 0.02, 256),  # a weight matrix's usual values
    rng.normal(0, 1.0, 256) + 0.5,
    np.abs(rng.normal(0, 1, 256)),  # one sign: the minimum clamps to 0
    -np.abs(rng.normal(0, 3, 256)),
    np.zeros(256),
    np.concatenate([np.zeros(32), rng.normal(0, 1, 224)]),  # one sub-block of zeros
    np.where(np.arange(256) == 77, 3e4, rng.normal(0, 0.5, 256)),  # one huge value
    rng.normal(0, 1e-6, 256),  # subnormal-range scales
    rng.uniform(-1, 1, 256) * np.repeat(rng.uniform(0, 4, 8), 32),  # sub-blocks of different spread
]
x = np.concatenate(blocks).astype(np.float32)
out = ctypes.create_string_buffer(len(blocks) * 144)
lib.quantize_row_q4_K_ref(x.ctypes.data_as(ctypes.c_void_p), out, ctypes.c_int64(len(x)))
dest = sys.argv[1]
os.makedirs(dest, exist_ok=True)
x.tofile(os.path.join(dest, "q4_k.input.f32"))
with open(os.path.join(dest, "q4_k.llama-cpp.bin"), "wb") as f:
    f.write(out.raw)
print(f"{len(blocks)} Q4_K blocks from llama.cpp's quantize_row_q4_K_ref")
