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
# Every other package at the version in constraints.txt (scripts/lock.sh writes it), so a new
# release upstream changes nothing here until the lock is refreshed and the suite rerun.
if [ "$extra" = "dev" ]; then
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
else
  .venv/bin/python -m pip install -q -c constraints.txt -e .
  # fit the anomaly classifier once per machine now, so `tickwise up` scores with it from its
  # first bar (about a minute; skipped with TICKWISE_MODEL_CACHE=off, where nothing is kept)
  if [ "${TICKWISE_MODEL_CACHE:-}" != "off" ]; then
    .venv/bin/tickwise prepare
  fi
fi
