#!/usr/bin/env bash
# Creates .venv with the pinned Python packages the tools under Tools/ use (torch is the CPU
# build from PyPI). Prints the interpreter path. Usage: PY=$(Tools/python-env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv >&2
  .venv/bin/pip install -q --upgrade pip >&2
fi
if ! .venv/bin/pip install -q -r Tools/requirements.txt >&2 2>/dev/null; then
  .venv/bin/pip install -r Tools/requirements.txt >&2
fi
echo "$PWD/.venv/bin/python"
