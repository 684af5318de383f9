#!/usr/bin/env bash
# Create .venv in the repository and install tickwise into it (pass "dev" for test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of PyTorch first: a plain "torch" requirement pulls gigabytes of CUDA wheels.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || .venv/bin/python -m pip install -q "torch==2.13.0"
fi
if [ "$extra" = "dev" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
