"""Commands of the indicators and signals area: ``tickwise indicators`` and ``tickwise signals``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tickwise.config import input_tz
from tickwise.exceptions import InputError

_FORMATS = ("table", "csv", "json")


def _write_csv(frame: Any, out: Path | None) -> None:
    import polars as pl

    text_ts = frame.with_columns(
        pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
        for c, t in frame.schema.items() if isinstance(t, pl.Datetime)
    )
    if out is None:
        sys.stdout.write(text_ts.write_csv())
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        text_ts.write_csv(out)


def _print_signals(frame: Any, fmt: str) -> None:
    import polars as pl

    if fmt == "json":
        rows = frame.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%SZ")).to_dicts()
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if fmt == "csv":
        _write_csv(frame, None)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for name in ("ts", "symbol", "timeframe", "signal", "price", "reason"):
        table.add_column(name, justify="right" if name == "price" else "left")
    colours = {"BUY": "green", "SELL": "red"}
    for row in frame.iter_rows(named=True):
        signal = row["signal"]
        table.add_row(row["ts"].strftime("%Y-%m-%d %H:%M:%S"), row["symbol"], row["timeframe"],
                      f"[{colours[signal]}]{signal}[/]" if signal in colours else signal,
                      f"{row['price']:.6g}", row["reason"])
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def indicators(
        file: Annotated[Path, typer.Argument(help="A bars file: CSV, Kaggle .txt, yfinance CSV or Parquet")],
        indicators: Annotated[str, typer.Option(
            "--indicators", "-i",
            help="Comma-separated names: sma_N, ema_N, wma_N, rsi_N, macd, bbands_N, atr_N, obv, vwap, "
                 "vwap_N, volume_sma_N")] = "sma_9,ema_12,rsi_14,macd,bbands_20,atr_14,obv",
        out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV to write (default: stdout)")] = None,
        symbol: Annotated[str | None, typer.Option(help="Symbol for a file without one; or keep only it")] = None,
    ) -> None:
        """Compute indicators over a bars file, per symbol, and write CSV: bar columns + one per value."""
        import polars as pl

        from tickwise.indicators import compute_indicators, parse_indicators
        from tickwise.sources.files import read_bars

        specs = parse_indicators(indicators)
        if not file.exists():
            raise InputError(f"bars file must exist, was {str(file)!r}")
        bars = read_bars(file, symbol=symbol, tz=input_tz())
        if symbol is not None and "symbol" in bars.columns and bars["symbol"].n_unique() > 1:
            bars = bars.filter(pl.col("symbol") == symbol)
            if bars.height == 0:
                raise InputError(f"symbol must be one in {file}, was {symbol!r}")
        result = compute_indicators(bars, specs)
        _write_csv(result, out)
        if out is not None:
            columns = [c for s in specs for c in s.columns]
            typer.echo(f"wrote {result.height:,} bars × {len(columns)} indicator columns "
                       f"({', '.join(columns)}) to {out}", err=True)

    @app.command()
    def signals(
        symbol: Annotated[str, typer.Argument(help="Instrument symbol")],
        last: Annotated[int, typer.Option("--last", "-n", help="How many of the newest signals")] = 20,
        timeframe: Annotated[str, typer.Option(help="Bar interval")] = "1m",
        rule: Annotated[str, typer.Option(help="Rule name, e.g. sma_cross")] = "sma_cross",
        only_trades: Annotated[bool, typer.Option("--trades", help="Only BUY and SELL rows")] = False,
        format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
        data: Annotated[Path | None, typer.Option(
            "--data", help="Compute sma_cross over this bars file instead of reading the warehouse")] = None,
        fast: Annotated[int, typer.Option(help="With --data: fast SMA bars")] = 9,
        slow: Annotated[int, typer.Option(help="With --data: slow SMA bars")] = 21,
        volume_window: Annotated[int, typer.Option(help="With --data: bars in the volume mean")] = 20,
        volume_factor: Annotated[float, typer.Option(help="With --data: volume confirmation factor")] = 1.5,
    ) -> None:
        """Print the newest BUY/SELL/HOLD signals of a symbol from the warehouse (or --data FILE)."""
        import polars as pl

        from tickwise.timeframes import timeframe_ns

        if format not in _FORMATS:
            raise InputError(f"format must be table, csv or json, was {format!r}")
        if last < 1:
            raise InputError(f"--last must be >= 1, was {last}")
        if data is not None:
            from tickwise.signals import sma_cross_signals
            from tickwise.sources.files import read_bars

            if not data.exists():
                raise InputError(f"--data must be an existing bars file, was {str(data)!r}")
            bars = read_bars(data, symbol=symbol, tz=input_tz())
            bars = bars.filter(pl.col("symbol") == symbol)
            if bars.height == 0:
                raise InputError(f"symbol must be in {data}, was {symbol!r}")
            try:
                frame = sma_cross_signals(bars, fast=fast, slow=slow, volume_window=volume_window,
                                          volume_factor=volume_factor)
            except ValueError as exc:
                raise InputError(str(exc)) from None
            if only_trades:
                frame = frame.filter(pl.col("signal") != "HOLD")
            frame = frame.tail(last)
        else:
            from tickwise import app as composition
            from tickwise.config import load_settings
            from tickwise.signals import tables  # noqa: F401  (declares the table)

            timeframe_ns(timeframe)
            settings = load_settings()
            warehouse = composition.build_warehouse(settings, read_only=True)
            try:
                where: dict[str, object] = {"symbol": symbol, "timeframe": timeframe, "rule": rule}
                if only_trades:
                    frame = pl.from_arrow(warehouse.read("signals", where=where))
                    frame = frame.filter(pl.col("signal") != "HOLD").tail(last)  # type: ignore[union-attr]
                else:
                    frame = pl.from_arrow(warehouse.read("signals", where=where, last=last))
            finally:
                warehouse.close()
        if frame.height == 0:  # type: ignore[union-attr]
            source = str(data) if data is not None else "the warehouse"
            typer.echo(f"no {rule} signals for {symbol} ({timeframe}) in {source}; "
                       "run `tickwise up` (signals start after the warm-up, "
                       f"{max(slow, volume_window) + 1} bars) or use --data FILE")
            return
        _print_signals(frame, format)
