#!/usr/bin/env bash
# Set up .venv with the test tools and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# System tools some tests drive: promtool (prometheus) and headless Chromium.
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} not installed; the tests that need them will skip" >&2
  fi
fi
set +e
# --durations: the slowest tests, so a slower suite shows where its time goes
.venv/bin/python -m pytest --durations=15 "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here too.
exit $rc
