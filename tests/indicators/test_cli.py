from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import talib
from typer.testing import CliRunner

from tests.conftest import FIXTURES
from tickwise.cli import app


def test_indicators_command_writes_bar_columns_and_one_column_per_value(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["indicators", str(FIXTURES / "aapl_daily_wiki.csv"), "--indicators",
                                      "sma_9,ema_12,rsi_14,macd,bbands_20,atr_14,obv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(out)
    assert frame.columns[:8] == ["symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
    assert frame.columns[-11:] == ["sma_9", "ema_12", "rsi_14", "macd", "macd_signal", "macd_hist",
                                   "bbands_20_upper", "bbands_20_middle", "bbands_20_lower", "atr_14", "obv"]
    close = frame["close"].to_numpy()
    np.testing.assert_allclose(frame["macd_hist"].fill_null(np.nan).to_numpy(), talib.MACD(close)[2],
                               rtol=1e-9, atol=1e-12)
    assert frame.height == 800 and frame["ts"][0] == "2000-03-01T00:00:00Z"


def test_indicators_command_unknown_name_exits_2_with_valid_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "from tickwise.cli import main; main()", "indicators",
                           str(FIXTURES / "aapl_daily_wiki.csv"), "-i", "sma_9,foo_3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "sma_N" in proc.stderr and "'foo_3'" in proc.stderr and "Traceback" not in proc.stderr
