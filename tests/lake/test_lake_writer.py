"""The lake writer on local disk: layout, round trips, compaction, invisible temp files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tickwise.exceptions import InputError
from tickwise.lake import Lake
from tickwise.lake.files import list_files, visible

DAY_NS = 86_400 * 10**9


def ticks(n: int, *, start: int = 0, symbols: tuple[str, ...] = ("AAPL", "EUR/USD")) -> pa.Table:
    return pa.table({
        "symbol": [symbols[i % len(symbols)] for i in range(n)],
        "ts_event": [start + i * 3_600 * 10**9 for i in range(n)],
        "price": [100.0 + i for i in range(n)],
        "size": [float(i % 7 + 1) for i in range(n)],
        "id": [f"t{start + i}" for i in range(n)],
    })


def test_writer_ticks_partitioned_by_date_and_symbol_hive_layout(lake: Lake) -> None:
    lake.write("ticks", ticks(48))  # two days, two symbols
    root = Path(lake.location.root) / "raw" / "ticks"
    dirs = sorted(str(p.relative_to(root)) for p in root.glob("date=*/symbol=*"))
    assert dirs == [
        "date=1970-01-01/symbol=AAPL", "date=1970-01-01/symbol=EUR%2FUSD",
        "date=1970-01-02/symbol=AAPL", "date=1970-01-02/symbol=EUR%2FUSD",
    ]
    one = next(root.glob("date=1970-01-01/symbol=AAPL/*.parquet"))
    # partition columns live in the path, not in the file (what Athena/Trino/Spark expect)
    assert pq.read_schema(one).names == ["ts_event", "price", "size", "id"]


def test_lake_read_round_trip_equals_written_rows(lake: Lake) -> None:
    data = ticks(100)
    lake.write("ticks", data)
    back = lake.read("ticks")
    expected = pl.from_arrow(data).sort("symbol", "ts_event")
    assert pl.from_arrow(back).equals(expected)
    assert lake.read("ticks", symbols=["EUR/USD"]).column("symbol").unique().to_pylist() == ["EUR/USD"]


def test_lake_read_time_range_end_exclusive(lake: Lake) -> None:
    lake.write("ticks", ticks(48))
    start, end = 10 * 3_600 * 10**9, 30 * 3_600 * 10**9
    got = lake.read("ticks", start_ts=start, end_ts=end)
    assert sorted(got.column("ts_event").to_pylist()) == list(range(start, end, 3_600 * 10**9))


def test_lake_bars_round_trip_real_data(lake: Lake, aapl_bars: pl.DataFrame) -> None:
    part = aapl_bars.head(300)
    lake.write("bars", part.to_arrow())
    back = pl.from_arrow(lake.read("bars"))
    assert back.select(part.columns).equals(part.sort("symbol", "ts"))


def test_writer_append_rejects_missing_column_with_message(lake: Lake) -> None:
    with pytest.raises(InputError, match="needs a 'ts_event' column"):
        lake.writer().append("ticks", pa.table({"symbol": ["A"], "price": [1.0]}))
    with pytest.raises(InputError, match="dataset must be one of"):
        lake.writer().append("nope", ticks(1))


def test_writer_flush_batches_many_appends_into_one_file_per_partition(lake: Lake) -> None:
    writer = lake.writer()
    for k in range(10):
        writer.append("ticks", ticks(2, start=k * 2 * 3_600 * 10**9, symbols=("AAPL",)))
    assert writer.pending_rows == 20
    assert len(writer.flush()) == 1
    assert writer.pending_rows == 0
    assert lake.read("ticks").num_rows == 20


def test_compact_merges_small_files_and_removes_replayed_duplicates(lake: Lake, aapl_bars) -> None:
    bars = aapl_bars.filter(pl.col("ts").dt.year() == 2001).head(5).to_arrow()
    writer = lake.writer(compact_files=0)
    for _ in range(3):  # the same bars three times, as after at-least-once redelivery
        writer.append("bars", bars)
        writer.flush()
    assert lake.read("bars").num_rows == 15
    result = lake.compact("bars")["bars"]
    assert (result.files_in, result.rows_in, result.rows_out) == (15, 15, 5)
    assert result.deleted == 15
    assert pl.from_arrow(lake.read("bars")).select(bars.column_names).equals(
        pl.from_arrow(bars).sort("ts"))
    assert len(lake.files("bars")) == 5


def test_writer_compacts_partition_with_too_many_files(lake: Lake) -> None:
    writer = lake.writer(compact_files=4)
    for k in range(9):
        writer.append("ticks", ticks(1, start=k * 3_600 * 10**9, symbols=("AAPL",)))
        writer.flush()
    assert len(lake.files("ticks")) <= 4
    assert sorted(lake.read("ticks").column("ts_event").to_pylist()) == [k * 3_600 * 10**9 for k in range(9)]


def test_reader_ignores_temp_hidden_and_foreign_files(lake: Lake) -> None:
    lake.write("ticks", ticks(4, symbols=("AAPL",)))
    part_dir = Path(lake.location.root) / "raw/ticks/date=1970-01-01/symbol=AAPL"
    garbage = b"PAR1 half written"
    (part_dir / "_part-00000000000000000001-aa.parquet").write_bytes(garbage)
    (part_dir / ".part-00000000000000000002-bb.parquet").write_bytes(garbage)
    (part_dir / "part-00000000000000000003-cc.parquet.tmp").write_bytes(garbage)
    (Path(lake.location.root) / "_tmp").mkdir(exist_ok=True)
    (Path(lake.location.root) / "_tmp" / "x.parquet").write_bytes(garbage)
    assert lake.read("ticks").num_rows == 4
    assert [t.rows for t in lake.tables()] == [4]


def test_compaction_output_hides_its_inputs_before_they_are_deleted(lake: Lake) -> None:
    # a compaction killed after committing its output but before deleting its inputs
    writer = lake.writer(compact_files=0)
    for k in range(3):
        writer.append("ticks", ticks(1, start=k * 3_600 * 10**9, symbols=("AAPL",)))
        writer.flush()
    base = lake.location.join("raw/ticks")
    before = list_files(lake.location.filesystem, base)
    merged = pa.concat_tables([pq.read_table(f.path) for f in before])
    from tickwise.lake.writer import write_file

    write_file(lake.location, f"{base}/date=1970-01-01/symbol=AAPL", merged, kind="compact",
               seq=before[-1].seq)
    after = list_files(lake.location.filesystem, base)
    assert len(after) == 4 and [f.kind for f in visible(after)] == ["compact"]
    assert lake.read("ticks").num_rows == 3


def test_write_file_unwritable_lake_raises_backend_error_after_retries(tmp_path: Path) -> None:
    from tickwise.exceptions import BackendError
    from tickwise.lake import open_lake

    lake = open_lake(f"file://{tmp_path / 'lake'}")
    (tmp_path / "lake" / "raw").write_text("a file where the zone directory should be")
    with pytest.raises(BackendError, match="failed 3 times"):
        lake.write("ticks", ticks(1))
