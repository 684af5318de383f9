#!/usr/bin/env bash
# Write constraints.txt: the newest release of every dependency (dev tools included) that
# installs together today, as scripts/setup.sh then installs them on every machine.
# Refresh it on purpose, then run the whole suite and the anomaly evaluation (the classifier's
# fit, and so its published figures, depend on scikit-learn's version: README).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip
"$scratch/venv/bin/python" -m pip install -q "torch==2.13.0+cpu" 2>/dev/null \
  || "$scratch/venv/bin/python" -m pip install -q "torch==2.13.0"
"$scratch/venv/bin/python" -m pip install -q ".[dev]"
{
  echo "# Versions scripts/setup.sh installs (pip constraints): the set the test suite and the"
  echo "# published figures were last run with. Written by scripts/lock.sh on $(date -u +%F); torch is"
  echo "# pinned in pyproject.toml (its CPU build is installed first)."
  "$scratch/venv/bin/python" -m pip freeze --exclude-editable | grep -v -i -E '^(torch|tickwise)([=@ ]|$)' | sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -c '==' constraints.txt) packages)"
