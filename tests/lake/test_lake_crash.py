"""A writer killed with SIGKILL mid-write leaves the lake readable and complete to its last commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tickwise.lake import Lake, open_lake

BATCH = 200_000

#: The writer: batch k holds ts_event k*BATCH .. (k+1)*BATCH-1 in one partition; it prints
#: "committed k" after each flush returns and compacts every third flush.
WRITER = r"""
import sys, numpy as np, pyarrow as pa
from tickwise.lake import open_lake
url, endpoint, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
lake = open_lake(url, endpoint=endpoint, access_key="testing", secret_key="testing")
writer = lake.writer(compact_files=2)
rng = np.random.default_rng(0)
for k in range(10_000):
    ts = np.arange(k * batch, (k + 1) * batch, dtype=np.int64)
    writer.append("ticks", pa.table({"symbol": pa.array(["AAPL"] * batch), "ts_event": ts,
        "price": rng.uniform(100, 200, batch), "size": rng.uniform(1, 9, batch),
        "id": pa.array([None] * batch, pa.string())}))
    writer.flush()
    print(f"committed {k}", flush=True)
"""


def run_and_kill(url: str, endpoint: str, *, after: int, tmp_dir: Path | None) -> tuple[int, bool]:
    """Start the writer, wait for ``after`` commits and a write in flight, SIGKILL it.

    Returns the number of commits the writer reported, and whether a temp file was being
    written at the moment of the kill (always unknown, False, on S3).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, endpoint, str(BATCH)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    committed, mid_write = 0, False
    try:
        assert proc.stdout is not None
        while committed < after:
            line = proc.stdout.readline()
            assert line, f"writer died early: {proc.stderr.read() if proc.stderr else ''}"
            committed = int(line.split()[1]) + 1
        if tmp_dir is not None:
            # kill while a file is being written (it exists only under _tmp/ until committed)
            deadline = time.monotonic() + 20
            while not (mid_write := any(tmp_dir.glob("*.parquet"))) and time.monotonic() < deadline:
                time.sleep(0.0005)
        else:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # lines printed before the kill
        rest = proc.stdout.read()
        committed += len([x for x in rest.splitlines() if x.startswith("committed")])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return committed, mid_write


def check_complete(lake: Lake, committed: int) -> int:
    """Every visible file parses and the rows are exactly batches 0..m-1, m >= committed."""
    table = lake.read("ticks")
    ts = sorted(table.column("ts_event").to_pylist())
    m = len(ts) // BATCH
    # the kill may land after a commit but before its "committed" line was printed
    assert m in (committed, committed + 1)
    assert ts == list(range(m * BATCH))
    assert [t.rows for t in lake.tables()] == [m * BATCH]
    return m


def test_writer_killed_mid_write_leaves_lake_complete_to_last_commit(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'lake'}"
    committed, mid_write = run_and_kill(url, "", after=4, tmp_dir=tmp_path / "lake" / "_tmp")
    assert mid_write, "the writer was not caught writing a file"
    lake = open_lake(url)
    m = check_complete(lake, committed)
    # the lake keeps working: compaction tidies, the killed writer's temp file goes
    lake.compact("ticks", tmp_older_than_s=0)
    assert not list((tmp_path / "lake" / "_tmp").glob("*.parquet"))
    assert check_complete(lake, m) == m
