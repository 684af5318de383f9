from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.conftest import FIXTURES
from tickwise import app as composition
from tickwise.bus.base import SIGNALS
from tickwise.codec import decode_json
from tickwise.signals import sma_cross_signals
from tickwise.signals.stage import SmaCrossStage, make_stage
from tickwise.sources.files import read_bars


def _two_symbols() -> pl.DataFrame:
    aapl = read_bars(FIXTURES / "aapl_daily_wiki.csv").head(300)
    other = aapl.with_columns(symbol=pl.lit("AAPL2"), close=pl.col("close") * 1.01 + 0.5,
                              volume=pl.col("volume").reverse())
    return pl.concat([aapl, other]).with_columns(timeframe=pl.lit("1m")).sort("ts", maintain_order=True)


def test_stage_fed_in_small_batches_equals_batch_rule() -> None:
    bars = _two_symbols()
    stage = SmaCrossStage()
    outs = [stage.on_bars(bars.slice(i, 7)) for i in range(0, bars.height, 7)]
    live = pl.concat([o.tables["signals"] for o in outs]).sort(["symbol", "ts"])
    batch = sma_cross_signals(bars).sort(["symbol", "ts"])
    assert live.select("symbol", "ts", "signal", "reason", "fast", "slow").equals(
        batch.select("symbol", "ts", "signal", "reason", "fast", "slow"))
    payloads = [decode_json(p) for o in outs for p in o.topics[SIGNALS]]
    assert len(payloads) == bars.height
    table = pl.concat([o.tables["signals"] for o in outs])
    assert [p["signal"] for p in payloads] == table["signal"].to_list()
    assert "BUY" in table["signal"].to_list()
    assert payloads[-1]["ts"].endswith("Z") and payloads[-1]["rule"] == "sma_cross"


def test_stage_history_warms_up_like_an_uninterrupted_run() -> None:
    bars = _two_symbols()
    whole = SmaCrossStage().on_bars(bars).tables["signals"]
    cut = bars.height // 2

    def history(symbol: str, timeframe: str, before_ns: int, count: int) -> pl.DataFrame:
        past = bars.head(cut).filter((pl.col("symbol") == symbol) & (pl.col("timeframe") == timeframe))
        return past.filter(pl.col("ts").dt.epoch("ns") < before_ns).tail(count)

    restarted = SmaCrossStage(history=history).on_bars(bars.tail(bars.height - cut)).tables["signals"]
    assert restarted.select("signal", "reason").equals(whole.tail(bars.height - cut).select("signal", "reason"))


def test_stage_registered_in_app_and_uses_1m(settings) -> None:
    assert "tickwise.signals.stage:make_stage" in composition.STAGES
    stage = make_stage(settings)
    assert stage.name == "signals.sma_cross" and stage.timeframes == ("1m",)


# the DuckDB store still calls fetch_arrow_table (deprecated in duckdb 1.5); not this area's code
@pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning")
def test_signals_command_prints_rows_committed_by_the_stage(tmp_path: Path, monkeypatch) -> None:
    from tickwise.cli import app
    from tickwise.config import load_settings

    monkeypatch.setenv("TICKWISE_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    out = SmaCrossStage().on_bars(_two_symbols())
    warehouse = composition.build_warehouse(settings)
    try:
        warehouse.commit({name: df.to_arrow() for name, df in out.tables.items()})
        warehouse.commit({name: df.to_arrow() for name, df in out.tables.items()})  # idempotent
        assert warehouse.read("signals").num_rows == 600
    finally:
        warehouse.close()
    runner = CliRunner()
    result = runner.invoke(app, ["signals", "AAPL", "--last", "5", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = __import__("json").loads(result.output)
    expected = out.tables["signals"].filter(pl.col("symbol") == "AAPL").tail(5)
    assert [r["reason"] for r in rows] == expected["reason"].to_list()
    trades = runner.invoke(app, ["signals", "AAPL", "--trades", "--last", "3"])
    assert trades.exit_code == 0 and "HOLD" not in trades.output and "crossed" in trades.output
    none = runner.invoke(app, ["signals", "NOPE"])
    assert none.exit_code == 0 and "no sma_cross signals for NOPE" in none.output


def test_stage_restarted_with_warehouse_history_gives_the_same_signals(tmp_path) -> None:
    from tests.conftest import FIXTURES
    from tickwise.config import load_settings
    from tickwise.signals.stage import make_stage
    from tickwise.sources.files import read_bars
    from tickwise.store.duckdb import DuckDBWarehouse

    bars = read_bars(FIXTURES / "aapl_daily_wiki.csv").head(120)
    settings = load_settings(data_dir=tmp_path, timeframes="1d")
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    uninterrupted = make_stage(settings, warehouse=wh).on_bars(bars).tables["signals"]
    wh.upsert("bars", bars.head(80).to_arrow())  # what the warehouse held when the stage restarted
    first = make_stage(settings, warehouse=wh).on_bars(bars.head(80)).tables["signals"]
    restarted = make_stage(settings, warehouse=wh).on_bars(bars.tail(40)).tables["signals"]
    assert first["signal"].to_list() + restarted["signal"].to_list() == uninterrupted["signal"].to_list()
    assert restarted["reason"].str.starts_with("warming up").sum() == 0


def test_stage_that_lost_and_regained_its_bars_warms_up_from_what_the_other_worker_stored(tmp_path) -> None:
    from tests.conftest import FIXTURES
    from tickwise.config import load_settings
    from tickwise.signals.stage import make_stage
    from tickwise.sources.files import read_bars
    from tickwise.store.duckdb import DuckDBWarehouse

    bars = read_bars(FIXTURES / "aapl_daily_wiki.csv").head(120)
    settings = load_settings(data_dir=tmp_path, timeframes="1d")
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    uninterrupted = make_stage(settings, warehouse=wh).on_bars(bars).tables["signals"]
    stage = make_stage(settings, warehouse=wh)
    first = stage.on_bars(bars.head(60)).tables["signals"]
    stage.revoked("1d")  # bars 60-89 go to another worker, which stores them
    wh.upsert("bars", bars.head(90).to_arrow())
    back = stage.on_bars(bars.tail(30)).tables["signals"]
    assert first["signal"].to_list() == uninterrupted["signal"].head(60).to_list()
    assert back["reason"].to_list() == uninterrupted["reason"].tail(30).to_list()
