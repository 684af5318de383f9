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
# Test files run on parallel workers (pytest-xdist; a file stays on one worker, so its module
# fixtures are built once): many tests wait on brokers, subprocesses and clocks, so even two cores
# gain. At most 4 workers (each gets a Redis database of its own, 9-12); TICKWISE_TEST_WORKERS
# overrides (0: no workers, the tests run in this process).
workers="${TICKWISE_TEST_WORKERS:-$(n=$(nproc 2>/dev/null || echo 2); echo $(( n < 2 ? 2 : (n > 4 ? 4 : n) )))}"
# --durations: the slowest tests, so a slower suite shows where its time goes
.venv/bin/python -m pytest -n "$workers" --dist loadfile --durations=15 "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here too.
exit $rc
