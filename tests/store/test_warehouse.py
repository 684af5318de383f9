"""The same checks on every warehouse backend: DuckDB (embedded) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import FIXTURES
from tickwise.exceptions import InputError, ReadOnlyQueryError
from tickwise.sources.files import read_bars
from tickwise.store import Checkpoint, Warehouse, open_warehouse


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path}/w.duckdb"
    else:
        url = request.getfixturevalue("postgres_url")
    wh = open_warehouse(url)
    yield wh
    wh.close()


def bars() -> pl.DataFrame:
    return read_bars(FIXTURES / "wiki_ibm_aapl_daily.csv")


def test_warehouse_upsert_is_idempotent_and_last_write_wins(warehouse: Warehouse) -> None:
    b = bars()
    warehouse.upsert("bars", b.to_arrow())
    warehouse.upsert("bars", b.to_arrow())
    changed = b.head(1).with_columns(pl.col("close") * 0 + 123.0, pl.col("high") * 0 + 500.0)
    warehouse.upsert("bars", changed.to_arrow())
    n = warehouse.query("SELECT count(*) AS n FROM bars").column("n").to_pylist()[0]
    assert n == b.height
    first = warehouse.bars(b["symbol"][0], "1d", last=b.filter(pl.col("symbol") == b["symbol"][0]).height)
    assert first.column("close").to_pylist()[0] == 123.0


def test_warehouse_read_filters_range_and_last(warehouse: Warehouse) -> None:
    b = bars()
    warehouse.upsert("bars", b.to_arrow())
    ibm = b.filter(pl.col("symbol") == "IBM")
    last = pl.from_arrow(warehouse.bars("IBM", "1d", last=5))
    assert last["close"].to_list() == ibm.tail(5)["close"].to_list()
    start, end = ibm["ts"][10], ibm["ts"][20]
    ranged = warehouse.bars("IBM", "1d", start_ts=int(start.timestamp() * 1e9), end_ts=int(end.timestamp() * 1e9))
    assert ranged.num_rows == 10
    assert warehouse.bars("NOPE", "1d").num_rows == 0
    assert warehouse.symbols() == ["AAPL", "IBM"]
    # a list of values: any of them
    both = pl.from_arrow(warehouse.read("bars", where={"symbol": ["IBM", "NOPE", "AAPL"], "timeframe": "1d"}))
    assert both.height == b.height
    assert pl.from_arrow(warehouse.read("bars", where={"symbol": ("IBM",)}))["symbol"].unique().to_list() == ["IBM"]
    assert warehouse.read("bars", where={"symbol": []}).num_rows == 0


def test_warehouse_last_rows_of_many_series_equal_a_read_of_each(warehouse: Warehouse) -> None:
    """One call for the stored bars before each series' own instant (the live stages' warm-up),
    DuckDB in one query: the rows of a `read` per series, in the order the series are given."""
    b = bars()
    warehouse.upsert("bars", b.to_arrow())
    ts = {s: b.filter(pl.col("symbol") == s)["ts"].dt.epoch("ns").to_list() for s in ("IBM", "AAPL")}
    series = [("IBM", "1d", ts["IBM"][30]), ("AAPL", "1d", ts["AAPL"][10]), ("IBM", "1d", ts["IBM"][5]),
              ("NOPE", "1d", ts["IBM"][30]), ("AAPL", "3d", ts["AAPL"][10])]
    got = pl.from_arrow(warehouse.last_rows("bars", series, 8))
    each = [pl.from_arrow(warehouse.read("bars", where={"symbol": s, "timeframe": tf}, end_ts=t, last=8))
            for s, tf, t in series]
    assert got.equals(pl.concat(each))
    assert got.height == 8 + 8 + 5
    assert warehouse.last_rows("bars", [], 8).num_rows == 0


def test_warehouse_checkpoint_round_trip(warehouse: Warehouse) -> None:
    assert warehouse.load_checkpoint("p:0") is None
    warehouse.commit({}, [Checkpoint("p:0", "12-0", b"\x00state")])
    warehouse.commit({}, [Checkpoint("p:0", "15-3", b"\x01state")])
    assert warehouse.load_checkpoint("p:0") == Checkpoint("p:0", "15-3", b"\x01state")


@pytest.mark.parametrize("sql", ["DELETE FROM bars", "DROP TABLE bars", "SELECT 1; DELETE FROM bars",
                                 "WITH x AS (DELETE FROM bars RETURNING *) SELECT * FROM x",
                                 "INSERT INTO bars SELECT * FROM bars", "UPDATE bars SET close = 0"])
def test_warehouse_query_refuses_writes(warehouse: Warehouse, sql: str) -> None:
    warehouse.upsert("bars", bars().to_arrow())
    with pytest.raises((ReadOnlyQueryError, InputError)):
        warehouse.query(sql)
    assert warehouse.query("SELECT count(*) AS n FROM bars").column("n").to_pylist()[0] == bars().height


def test_warehouse_query_limits_rows_and_reports_sql_errors(warehouse: Warehouse) -> None:
    warehouse.upsert("bars", bars().to_arrow())
    assert warehouse.query("SELECT * FROM bars", max_rows=7).num_rows == 7
    with pytest.raises(InputError, match="SQL error"):
        warehouse.query("SELECT nope FROM bars")


def test_duckdb_warehouse_cannot_read_server_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\nsecret\n")
    wh = open_warehouse(f"duckdb:///{tmp_path}/w.duckdb")
    with pytest.raises(InputError, match="disabled"):
        wh.query(f"SELECT * FROM read_csv('{secret}')")
    wh.close()
