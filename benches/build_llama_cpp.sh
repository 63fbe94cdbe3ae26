#!/bin/sh
# Builds the peer the benchmarks compare against, and the tools the fixture scripts use, from
# PyPI alone (no model hub, no GitHub): the sdist of llama-cpp-python 0.3.36 vendors llama.cpp's
# source — its `convert_hf_to_gguf.py`, `gguf-py`, `llama-quantize` and `llama-bench` — and CMake
# comes from PyPI too. A Python virtualenv gets torch, transformers and gguf-py (the converter's
# and the fixture scripts' needs). A few minutes on 2 cores the first time; nothing after.
#
#   sh benches/build_llama_cpp.sh      # tools in $LLAMA_CPP/build/bin, Python in $PYTHON
#
# Where (the other scripts' defaults): LLAMA_CPP_WORK=/tmp/llcpp, PYENV=/tmp/pyenv.
set -e
W=${LLAMA_CPP_WORK:-/tmp/llcpp}
PYENV=${PYENV:-/tmp/pyenv}
L=$W/llama_cpp_python-0.3.36/vendor/llama.cpp
[ -x $PYENV/bin/python ] || python3 -m venv $PYENV
if [ ! -d $L ]; then
  mkdir -p $W
  $PYENV/bin/pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d $W
  tar xzf $W/llama_cpp_python-0.3.36.tar.gz -C $W
fi
if ! $PYENV/bin/python -c "import torch, transformers, safetensors, numpy, gguf" 2>/dev/null \
  || [ ! -x $PYENV/bin/cmake ]; then
  $PYENV/bin/pip install -q torch transformers safetensors numpy sentencepiece cmake "$L/gguf-py"
fi
if [ ! -x $L/build/bin/llama-bench ] || [ ! -x $L/build/bin/llama-quantize ]; then
  $PYENV/bin/cmake -S $L -B $L/build -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DCMAKE_BUILD_TYPE=Release > $W/cmake.log
  $PYENV/bin/cmake --build $L/build --target llama-quantize llama-bench -j2 >> $W/cmake.log
fi
echo "llama.cpp tools in $L/build/bin; Python with torch, transformers and gguf-py: $PYENV/bin/python"
