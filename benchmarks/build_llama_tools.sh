#!/usr/bin/env bash
# Builds llama.cpp's own tools (llama-bench, llama-batched-bench, llama-server) from the llama.cpp
# sources inside the pinned llama-cpp-python sdist, with the same CPU flags as our wheel
# (scripts/cmake-args). For side-by-side benchmarks only: the binaries stay in a cache directory
# outside the repository and are never committed. About 6 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pin=${LLAMA_CPP_PIN:-0.3.36}
cache=${LLAMARUN_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llamarun/bench}
src=$cache/llama_cpp_python-$pin
build=$src/vendor/llama.cpp/build
if [ -x "$build/bin/llama-bench" ] && [ -x "$build/bin/llama-batched-bench" ] && [ -x "$build/bin/llama-server" ]; then
    echo "$build/bin"; exit 0
fi
mkdir -p "$cache"
if [ ! -d "$src" ]; then
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$pin" -d "$cache/sdist" >&2
    tar -xzf "$cache/sdist/llama_cpp_python-$pin.tar.gz" -C "$cache"
fi
# shellcheck disable=SC2046
cmake -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    $(sh "$here/scripts/cmake-args") >&2
cmake --build "$build" -j"$(nproc)" --target llama-bench llama-batched-bench llama-server >&2
echo "$build/bin"
