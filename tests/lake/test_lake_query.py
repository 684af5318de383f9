"""SQL over the lake: read-only, datasets as tables, a catalog, and the sma_cross rule in SQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from tickwise.exceptions import InputError, NotFoundError, ReadOnlyQueryError
from tickwise.lake import Lake
from tickwise.lake.query import check_read_only, query, sma_cross_sql
from tickwise.signals import sma_cross_signals
from tickwise.signals.stage import SmaCrossStage


@pytest.mark.parametrize("sql", [
    "DELETE FROM bars",
    "INSERT INTO bars VALUES (1)",
    "CREATE TABLE x AS SELECT 1",
    "COPY (SELECT 1) TO '/tmp/x.csv'",
    "ATTACH '/tmp/x.duckdb' AS x",
    "INSTALL httpfs",
    "DROP VIEW bars",
    "SET threads = 1",
])
def test_check_read_only_write_statement_refused(sql: str) -> None:
    with pytest.raises(ReadOnlyQueryError, match="read-only: expected one SELECT statement, was"):
        check_read_only(sql)


def test_check_read_only_two_statements_refused() -> None:
    with pytest.raises(InputError, match="exactly one SQL statement, was 2"):
        check_read_only("SELECT 1; SELECT 2")


def test_query_cannot_read_files_outside_the_lake(lake: Lake) -> None:
    with pytest.raises(InputError, match="lake query failed"):
        query(lake, "SELECT * FROM read_csv('/etc/hostname')")


def test_query_unknown_table_names_tables_with_data(lake: Lake, aapl_bars: pl.DataFrame) -> None:
    lake.write("bars", aapl_bars.head(3).to_arrow())
    with pytest.raises(NotFoundError, match=r"tables with data are \['bars'\]"):
        query(lake, "SELECT * FROM ticks")


def test_query_bars_by_table_name_filters_and_limits(lake: Lake, aapl_bars: pl.DataFrame) -> None:
    lake.write("bars", aapl_bars.head(40).to_arrow())
    got = query(lake, "SELECT date, symbol, close FROM bars WHERE date >= DATE '2000-04-01' ORDER BY ts")
    expected = aapl_bars.head(40).filter(pl.col("ts") >= datetime(2000, 4, 1, tzinfo=UTC))
    assert got.column("close").to_pylist() == expected["close"].to_list()
    assert query(lake, "SELECT * FROM bars ORDER BY ts", max_rows=7).num_rows == 7


def test_lake_tables_catalog_counts_rows_partitions_and_size(lake: Lake, aapl_bars: pl.DataFrame) -> None:
    lake.write("bars", aapl_bars.head(30).to_arrow())
    lake.write("ticks", pa.table({"symbol": ["A", "B"], "ts_event": [0, 1], "price": [1.0, 2.0],
                                  "size": [1.0, 1.0]}))
    infos = {t.name: t for t in lake.tables()}
    assert sorted(infos) == ["bars", "ticks"]
    bars = infos["bars"]
    assert (bars.zone, bars.rows, bars.partitions, bars.symbols) == ("processed", 30, 30, 1)
    assert bars.first_date == "2000-03-01" and bars.size_bytes > 0
    assert {"close", "date", "symbol"} <= set(bars.schema.names)
    assert (infos["ticks"].zone, infos["ticks"].rows, infos["ticks"].partitions) == ("raw", 2, 2)


def _compare(sql: pl.DataFrame, reference: pl.DataFrame) -> None:
    """Same rows and the same signal on every bar; numbers to 1e-9; reason text equal once
    numbers are masked (their 6th printed digit may round differently)."""
    sql = sql.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    assert sql.height == reference.height
    joined = reference.join(sql, on=["symbol", "timeframe", "ts"], suffix="_sql", how="full")
    assert joined.height == reference.height
    assert joined["signal"].to_list() == joined["signal_sql"].to_list()
    assert joined["rule"].to_list() == joined["rule_sql"].to_list()
    for col in ("price", "fast", "slow", "volume_ratio"):
        a, b = joined[col].to_numpy(), joined[f"{col}_sql"].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        ok = ~np.isnan(a)
        np.testing.assert_allclose(b[ok], a[ok], rtol=1e-9, atol=0)
    mask = lambda s: re.sub(r"-?\d+(\.\d+)?(e[+-]\d+)?", "#", s)  # noqa: E731
    assert [mask(r) for r in joined["reason"]] == [mask(r) for r in joined["reason_sql"]]


def test_sma_cross_sql_equals_batch_and_streaming_on_real_daily_bars(lake: Lake, aapl_bars) -> None:
    lake.write("bars", aapl_bars.to_arrow())
    sql = pl.from_arrow(query(lake, sma_cross_sql()))
    batch = sma_cross_signals(aapl_bars)
    streaming = SmaCrossStage(timeframes=("1d",)).on_bars(aapl_bars.sort("ts")).tables["signals"]
    assert set(batch["signal"]) == {"BUY", "SELL", "HOLD"}
    _compare(sql, batch)
    _compare(sql, streaming)


def test_sma_cross_sql_equals_batch_on_intraday_bars_with_other_parameters(lake: Lake) -> None:
    rng = np.random.default_rng(3)
    frames = []
    for symbol in ("AAA", "BBB", "C/D"):
        n = 1500
        close = 50 + np.cumsum(rng.normal(0, 0.3, n))
        volume = rng.integers(100, 1000, n).astype(float) * np.where(rng.random(n) < 0.2, 4, 1)
        t0 = datetime(2024, 3, 4, 20, tzinfo=UTC)
        frames.append(pl.DataFrame({
            "symbol": symbol, "timeframe": "1m", "ts": [t0 + timedelta(minutes=i) for i in range(n)],
            "open": close, "high": close + 0.1, "low": close - 0.1, "close": close, "volume": volume,
            "trades": 1,
        }))
    bars = pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    lake.write("bars", bars.to_arrow())
    params = {"fast": 5, "slow": 13, "volume_window": 30, "volume_factor": 2.0}
    sql = pl.from_arrow(query(lake, sma_cross_sql(**params)))
    batch = sma_cross_signals(bars, **params)
    assert (batch["signal"] != "HOLD").sum() > 10
    _compare(sql, batch)
    only = pl.from_arrow(query(lake, sma_cross_sql(**params, where="symbol = 'C/D'")))
    assert only["symbol"].unique().to_list() == ["C/D"] and only.height == 1500


def test_sma_cross_sql_bad_parameters_refused() -> None:
    with pytest.raises(InputError, match="fast must be < slow, was fast=21, slow=9"):
        sma_cross_sql(fast=21, slow=9)
    with pytest.raises(InputError, match="volume_window must be an integer >= 1, was 0"):
        sma_cross_sql(volume_window=0)
