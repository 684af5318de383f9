"""The lake on an S3 endpoint (moto server on 127.0.0.1, started and stopped by each test)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.lake.test_lake_crash import check_complete, run_and_kill
from tickwise.bus.base import SIGNALS, TICKS, bars_topic
from tickwise.bus.memory import MemoryBus
from tickwise.codec import encode_table
from tickwise.exceptions import BackendError
from tickwise.lake import Lake, open_lake
from tickwise.lake.archiver import LakeArchiver
from tickwise.lake.query import query, sma_cross_sql
from tickwise.signals import sma_cross_signals
from tickwise.signals.stage import SmaCrossStage

pytestmark = pytest.mark.integration

BUCKET = "tw-lake"
KEYS = {"access_key": "testing", "secret_key": "testing"}


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def s3_lake(moto_s3: str) -> Lake:
    s3_client(moto_s3).create_bucket(Bucket=BUCKET)
    return open_lake(f"s3://{BUCKET}/lake", endpoint=moto_s3, **KEYS)


def minute_bars(symbols: tuple[str, ...] = ("AAA", "B/C"), n: int = 600, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    t0 = datetime(2024, 5, 6, 22, tzinfo=UTC)  # crosses midnight: two date partitions
    for symbol in symbols:
        close = 20 + np.cumsum(rng.normal(0, 0.1, n))
        volume = rng.integers(10, 100, n).astype(float) * np.where(rng.random(n) < 0.25, 5, 1)
        frames.append(pl.DataFrame({
            "symbol": symbol, "timeframe": "1m", "ts": [t0 + timedelta(minutes=i) for i in range(n)],
            "open": close, "high": close + 0.05, "low": close - 0.05, "close": close, "volume": volume,
            "trades": 3, "vwap": close,
        }))
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def test_s3_lake_hive_layout_round_trip_and_catalog(s3_lake: Lake, moto_s3: str) -> None:
    bars = minute_bars()
    s3_lake.write("bars", bars.to_arrow())
    keys = [o["Key"] for o in s3_client(moto_s3).list_objects_v2(Bucket=BUCKET)["Contents"]]
    data = sorted(k for k in keys if k.endswith(".parquet"))
    assert [k.rsplit("/", 1)[0] for k in data] == [
        "lake/processed/bars/date=2024-05-06/symbol=AAA", "lake/processed/bars/date=2024-05-06/symbol=B%2FC",
        "lake/processed/bars/date=2024-05-07/symbol=AAA", "lake/processed/bars/date=2024-05-07/symbol=B%2FC",
    ]
    assert not [k for k in keys if "/_tmp/" in k and k.endswith(".parquet")]
    back = pl.from_arrow(s3_lake.read("bars")).select(bars.columns)
    assert back.equals(bars.sort("symbol", "ts"))
    (info,) = s3_lake.tables()
    assert (info.name, info.rows, info.partitions, info.symbols) == ("bars", 1200, 4, 2)


def test_s3_lake_sql_signal_equals_batch_and_compaction_dedupes(s3_lake: Lake) -> None:
    bars = minute_bars()
    writer = s3_lake.writer(compact_files=0)
    for chunk in bars.iter_slices(400):  # three flushes, then the first replayed
        writer.append("bars", chunk.to_arrow())
        writer.flush()
    writer.append("bars", bars.head(400).to_arrow())
    writer.flush()
    assert s3_lake.read("bars").num_rows == 1600
    result = s3_lake.compact("bars")["bars"]
    assert result.rows_in - result.rows_out == 400
    assert s3_lake.read("bars").num_rows == 1200
    sql = pl.from_arrow(query(s3_lake, sma_cross_sql(fast=5, slow=20, volume_window=10)))
    batch = sma_cross_signals(bars, fast=5, slow=20, volume_window=10)
    assert (batch["signal"] != "HOLD").sum() > 5
    got = sql.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC"))).select("symbol", "ts", "signal")
    assert got.equals(batch.select("symbol", "ts", "signal"))


def test_s3_writer_killed_mid_write_leaves_lake_complete(moto_s3: str) -> None:
    s3_client(moto_s3).create_bucket(Bucket=BUCKET)
    url = f"s3://{BUCKET}/crash"
    committed, _ = run_and_kill(url, moto_s3, after=3, tmp_dir=None)
    check_complete(open_lake(url, endpoint=moto_s3, **KEYS), committed)


def test_s3_archiver_from_memory_bus(s3_lake: Lake) -> None:
    import threading
    import time

    bus = MemoryBus(partitions=2, capacity=1000)
    archiver = LakeArchiver(bus, s3_lake.writer(), timeframes=("1m",), flush_interval_s=0.05)
    bars = minute_bars(symbols=("AAA",), n=100)
    bus.publish(bars_topic("1m"), [encode_table(c.to_arrow()) for c in bars.iter_slices(25)])
    bus.publish(SIGNALS, SmaCrossStage().on_bars(bars).topics[SIGNALS])
    bus.publish(TICKS, [encode_table(pa.table({"symbol": ["AAA"], "ts_event": [5], "price": [1.0],
                                               "size": [1.0], "id": ["a"]}))])
    stop = threading.Event()
    thread = threading.Thread(target=archiver.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(bus.lag(t, "lake") for t in (TICKS, SIGNALS, bars_topic("1m"))):
        time.sleep(0.02)
    stop.set()
    thread.join(30)
    counts = query(s3_lake, "SELECT (SELECT count(*) FROM bars) AS b, (SELECT count(*) FROM signals) AS s, "
                            "(SELECT count(*) FROM ticks) AS t").to_pylist()
    assert counts == [{"b": 100, "s": 100, "t": 1}]


def test_s3_cli_lake_query_through_settings(s3_lake: Lake, moto_s3: str, tmp_path) -> None:
    from tickwise.cli import app

    s3_lake.write("bars", minute_bars(n=50).to_arrow())
    env = {"TICKWISE_DATA_DIR": str(tmp_path), "TICKWISE_LAKE": f"s3://{BUCKET}/lake",
           "TICKWISE_LAKE_ENDPOINT": moto_s3, "TICKWISE_LAKE_ACCESS_KEY": "testing",
           "TICKWISE_LAKE_SECRET_KEY": "testing"}
    result = CliRunner().invoke(app, ["lake", "query", "SELECT symbol, count(*) AS n FROM bars GROUP BY 1 ORDER BY 1",
                                      "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"symbol": "AAA", "n": 50}, {"symbol": "B/C", "n": 50}]


def test_s3_missing_bucket_clear_error(moto_s3: str) -> None:
    with pytest.raises(BackendError, match="lake bucket 'nope' must exist"):
        open_lake("s3://nope/lake", endpoint=moto_s3, **KEYS)
