"""The pipeline commands through the real `tickwise` entry point, in subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, shared_file


def tw(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "TICKWISE_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run([sys.executable, "-m", "tickwise.cli", *args], capture_output=True, text=True,
                          env=full, timeout=240, cwd=tmp_path)


def test_cli_help_lists_commands_and_each_subcommand_explains_itself(tmp_path: Path) -> None:
    out = tw(["--help"], tmp_path)
    assert out.returncode == 0
    for cmd in ("up", "worker", "ingest", "import", "replay", "query", "bars", "feed"):
        assert cmd in out.stdout
        sub = tw([cmd, "--help"], tmp_path)
        assert sub.returncode == 0 and "Usage" in sub.stdout, cmd


def test_cli_up_runs_the_simulator_for_a_few_seconds_and_stores_bars(tmp_path: Path) -> None:
    out = tw(["up", "--duration", "4", "--no-serve"], tmp_path, TICKWISE_TICK_RATE="2000")
    assert out.returncode == 0, out.stderr
    assert "ticks →" in out.stdout and "dead letters" in out.stdout
    # the summary counts what the analytics stages wrote, as the warehouse holds it
    said = re.search(r"signals ([\d,]+), forecasts ([\d,]+), anomalies ([\d,]+);", out.stdout)
    assert said, out.stdout
    counts = tw(["query", "SELECT (SELECT count(*) FROM signals) AS s, (SELECT count(*) FROM forecasts) AS f, "
                 "(SELECT count(*) FROM anomalies) AS a", "--format", "json"], tmp_path)
    stored = json.loads(counts.stdout)[0]
    assert [int(n.replace(",", "")) for n in said.groups()] == [stored["s"], stored["f"], stored["a"]]
    assert stored["s"] > 0
    q = tw(["query", "SELECT timeframe, sum(trades) AS n FROM bars GROUP BY 1 ORDER BY 1", "--format", "json"],
           tmp_path)
    assert q.returncode == 0, q.stderr
    rows = json.loads(q.stdout)
    assert {r["timeframe"] for r in rows} == {"1s", "1m", "5m"}
    assert len({r["n"] for r in rows}) == 1  # every interval saw every tick
    b = tw(["bars", "AAPL", "--timeframe", "1s", "--last", "3", "--format", "csv"], tmp_path)
    assert b.returncode == 0 and len(b.stdout.strip().splitlines()) == 4


def test_cli_import_real_file_then_bars_and_query(tmp_path: Path) -> None:
    path = shared_file("msft_daily_pmdarima.csv")
    out = tw(["import", str(path), str(FIXTURES / "wiki_ibm_aapl_daily.csv")], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "7,983 bars (1d) for MSFT" in out.stdout
    q = tw(["query", "SELECT symbol, count(*) AS n FROM bars GROUP BY 1 ORDER BY 1", "-f", "csv"], tmp_path)
    assert q.stdout.splitlines() == ["symbol,n", "AAPL,300", "IBM,300", "MSFT,7983"]
    again = tw(["import", str(path)], tmp_path)  # idempotent upsert
    assert again.returncode == 0
    q2 = tw(["query", "SELECT count(*) AS n FROM bars", "-f", "csv"], tmp_path)
    assert q2.stdout.splitlines()[1] == str(7983 + 600)


def test_cli_import_bad_rows_go_to_deadletter_table(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10,9,9.5,10.5,100\n")
    out = tw(["import", str(bad), "--symbol", "X"], tmp_path)
    assert out.returncode == 0 and "1 rows rejected" in out.stdout
    q = tw(["query", "SELECT reason, payload FROM deadletter", "-f", "json"], tmp_path)
    rows = json.loads(q.stdout)
    assert rows[0]["reason"] == "incoherent_ohlc" and "2024-01-03" in rows[0]["payload"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["query", "DELETE FROM bars"], {}, "read-only"),
        (["query", "SELECT * FROM nope"], {}, "SQL error"),
        (["bars", "NOPE", "--timeframe", "1d"], {}, "no 1d bars for 'NOPE'"),
        (["bars", "AAPL", "--timeframe", "7x"], {}, "timeframe must look like"),
        (["bars", "AAPL"], {"TICKWISE_BUS": "nats://x"}, "TICKWISE_BUS"),
        (["bars", "AAPL"], {"TICKWISE_WAREHOUSE": "mysql://x"}, "TICKWISE_WAREHOUSE"),
        (["import", "/no/such/file.csv"], {}, "must exist"),
        (["up", "--source", "/no/such/file.csv", "--no-serve"], {}, "source must be sim"),
        (["up", "--source", str(FIXTURES / "ibm.us.txt"), "--faults", "5", "--no-serve"], {},
         "--faults injects faults into the simulator's ticks: it needs --source sim"),
        (["up", "--faults", "1000", "--no-serve"], {}, "--faults must be 0 (none) or up to 600 faults per minute, was 1000"),
        (["up", "--faults", "-2", "--no-serve"], {}, "--faults must be 0 (none) or up to 600 faults per minute, was -2"),
        (["worker"], {}, "needs a shared bus"),
        (["ingest", "--source", "tcp://127.0.0.1:1"], {}, "shared bus"),
        (["detect", "--data", "x.csv"], {}, "Missing option '--out'"),  # click's usage error
        (["bars", "AAPL", "--nope"], {}, "No such option: --nope"),
        (["up", "--duration", "-1", "--no-serve"], {}, "Invalid value for '--duration'"),
        (["feed", "serve", "--port", "99999"], {}, "Invalid value for '--port'"),
        (["serve"], {"TICKWISE_API_PORT": "99999"}, "TICKWISE_API_PORT is invalid: must be a TCP port"),
        (["evaluate-anomaly", "--data", str(FIXTURES / "ibm.us.txt"), "--rate", "0.5"], {}, "--rate must be in (0, 0.05]"),
        (["evaluate-anomaly", "--data", str(FIXTURES / "ibm.us.txt"), "--false-alarm-rate", "2"], {},
         "--false-alarm-rate: q must be in"),
        (["detect", "--data", str(FIXTURES / "ibm.us.txt"), "--out", "o.csv"], {"TICKWISE_INPUT_TZ": "Eastern"},
         "setting TICKWISE_INPUT_TZ is invalid: must name a time zone like UTC or America/New_York, was 'Eastern'"),
        (["up", "--duration", "1", "--no-serve"], {"TICKWISE_ANOMALY_MARKET": "maybe"},
         "setting TICKWISE_ANOMALY_MARKET is invalid: must be 'on' or 'off', was 'maybe'"),
        (["detect", "--data", str(FIXTURES / "ibm.us.txt"), "--out", "o.csv", "--cross-section", "both"], {},
         "--cross-section must be on or off, was 'both'"),
        (["prepare"], {"TICKWISE_MODEL_CACHE": "/dev/null/models"},
         "model cache /dev/null/models (TICKWISE_MODEL_CACHE) cannot be written: Not a directory"),
    ],
)
def test_cli_bad_input_gives_one_line_error_not_traceback(tmp_path: Path, args, env, message) -> None:
    tw(["import", str(FIXTURES / "ibm.us.txt")], tmp_path)  # a warehouse to query
    out = tw(args, tmp_path, **env)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout and "internal error" not in out.stderr


def test_cli_replay_daily_file_rebuilds_the_same_daily_bars(tmp_path: Path) -> None:
    out = tw(["replay", str(FIXTURES / "ibm.us.txt"), "--speed", "0", "--timeframes", "1d"], tmp_path)
    assert out.returncode == 0, out.stderr
    q = tw(["query", "SELECT open, high, low, close, volume FROM bars ORDER BY ts", "-f", "csv"], tmp_path)
    lines = q.stdout.strip().splitlines()[1:]
    src = [ln.split(",")[1:6] for ln in (FIXTURES / "ibm.us.txt").read_text().splitlines()[1:]]
    assert len(lines) == len(src) == 100
    for got, want in zip(lines, src, strict=True):
        assert [float(x) for x in got.split(",")] == pytest.approx([float(x) for x in want], rel=1e-12)
