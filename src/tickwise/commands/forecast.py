"""Commands of the forecast area: forecast, evaluate, tune, models list/promote/train."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tickwise.config import input_tz
from tickwise.exceptions import DataError, InputError

Data = Annotated[str | None, typer.Option("--data", help="A bar file (CSV, Kaggle .txt, yfinance CSV, Parquet); default: the warehouse")]
Timeframe = Annotated[str, typer.Option("--timeframe", help="Bar interval to read from the warehouse")]
Last = Annotated[int, typer.Option("--last", help="Use at most this many of the newest bars", min=10)]

models_app = typer.Typer(help="The model registry: list, promote and train versions.", no_args_is_help=True)


def _settings() -> Any:
    from tickwise.config import load_settings

    return load_settings()


def load_series(source: str | None, symbol: str | None, *, timeframe: str, last: int) -> Any:
    """Bars (polars frame, one symbol, oldest first) from a file or the warehouse."""
    import polars as pl

    if source is not None and Path(source).exists():
        from tickwise.sources.files import read_bars

        bars = read_bars(source, tz=input_tz())
        names = bars["symbol"].unique().sort().to_list()
        if symbol is not None and symbol in names:
            bars = bars.filter(pl.col("symbol") == symbol)
        elif len(names) > 1:
            raise InputError(f"{source} holds several symbols ({', '.join(names[:10])}); name one, was {symbol!r}")
    else:
        name = source or symbol
        if source is not None and ("/" in source or "." in source):
            raise InputError(f"--data must be an existing file or a symbol in the warehouse, was {source!r} (no such file)")
        if not name:
            raise InputError("a symbol or --data FILE is needed, was neither")
        from tickwise.forecast import tables  # noqa: F401
        from tickwise.store import open_warehouse

        settings = _settings()
        warehouse = open_warehouse(settings.warehouse_url, read_only=True)
        try:
            bars = pl.from_arrow(warehouse.bars(name, timeframe, last=last))
        finally:
            warehouse.close()
        if bars.height == 0:
            raise DataError(f"no {timeframe} bars for {name} in the warehouse {settings.warehouse_url}")
    return bars.sort("ts").tail(last)


def gap_note(bars: Any) -> str | None:
    """A one-line note when bars are not evenly spaced (nights, weekends, missing bars)."""
    import numpy as np

    ts = bars["ts"].dt.epoch("ns").to_numpy()
    if ts.shape[0] < 3:
        return None
    step = np.diff(ts)
    if np.any(step <= 0):
        raise DataError("bars must have strictly increasing timestamps, found a duplicate or out-of-order bar")
    median = float(np.median(step))
    gaps = int(np.sum(step > 5 * median))
    if gaps == 0:
        return None
    return (f"note: {gaps} gaps longer than 5 bar intervals (nights, weekends or missing bars); "
            "models treat the bars as consecutive")


def _bar_array(bars: Any) -> Any:
    return bars.select(["open", "high", "low", "close", "volume"]).to_numpy().astype("float64")


def _parse_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--params must be a JSON object, was {text!r} ({exc.msg})") from None
    if not isinstance(params, dict):
        raise InputError(f"--params must be a JSON object, was {text!r}")
    return params


def _echo_table(header: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    Console(width=200).print(table)


def forecast_cmd(
    symbol: Annotated[str, typer.Argument(help="Symbol to forecast")],
    model: Annotated[str, typer.Option("--model", help="arima, lstm, naive, drift, ets")] = "arima",
    horizon: Annotated[int, typer.Option("--horizon", help="Bars ahead", min=1, max=500)] = 1,
    data: Data = None,
    timeframe: Timeframe = "1m",
    last: Last = 1000,
    params: Annotated[str | None, typer.Option("--params", help='Model parameters as JSON, e.g. {"order": [1,1,1]}')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Forecast the next bars of SYMBOL with 80% and 95% intervals of the close."""
    import numpy as np

    from tickwise.forecast.catalog import make_model
    from tickwise.timeframes import timeframe_ns

    if model == "lstm":
        import torch

        torch.set_num_threads(1)
    bars = load_series(data, symbol, timeframe=timeframe, last=last)
    note = gap_note(bars)
    if note:
        typer.echo(note, err=True)
    f = make_model(model, **_parse_params(params)).forecast(_bar_array(bars), horizon, level=(80, 95))
    ts = bars["ts"].dt.epoch("ns").to_numpy()
    step = int(np.median(np.diff(ts))) if ts.shape[0] > 1 else timeframe_ns(timeframe)
    import polars as pl

    when = pl.Series((ts[-1] + step * np.arange(1, horizon + 1)).astype("int64")).cast(pl.Datetime("ns", "UTC")).to_list()
    rows = [[str(when[i]), float(f.open[i]), float(f.high[i]), float(f.low[i]), float(f.mean[i]),
             float(f.lo[80][i]), float(f.hi[80][i]), float(f.lo[95][i]), float(f.hi[95][i])] for i in range(horizon)]
    header = ["ts", "open", "high", "low", "close", "lo_80", "hi_80", "lo_95", "hi_95"]
    if as_json:
        sys.stdout.write(json.dumps({"symbol": bars["symbol"][0], "model": model, "last_close": float(bars["close"][-1]),
                                     "forecasts": [dict(zip(header, r, strict=True)) for r in rows]}) + "\n")
        return
    typer.echo(f"{bars['symbol'][0]} {model}: {bars.height} bars to {bars['ts'][-1]}, last close {bars['close'][-1]:.6g}")
    _echo_table(header, rows)


def evaluate_cmd(
    models: Annotated[str, typer.Option("--models", help="Comma-separated: arima,lstm,naive,drift,seasonal_naive,ets")] = "arima,naive",
    data: Annotated[str, typer.Option("--data", help="A bar file or a symbol in the warehouse")] = "",
    symbol: Annotated[str | None, typer.Option("--symbol", help="Symbol inside a multi-symbol file")] = None,
    timeframe: Timeframe = "1m",
    origins: Annotated[int, typer.Option("--origins", help="Number of one-step forecasts (the newest bars)", min=1)] = 250,
    refit_every: Annotated[int, typer.Option("--refit-every", help="Refit every k origins; cheap updates between", min=1)] = 20,
    window: Annotated[int, typer.Option("--window", help="Bars per fit (rolling)", min=10)] = 1000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON to this file")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report with plots to this file")] = None,
) -> None:
    """Walk-forward (rolling-origin) evaluation of one-step forecasts against the random walk."""
    from functools import partial

    from tickwise.forecast.catalog import make_model, parse_models
    from tickwise.forecast.evaluate import SCORE_KEYS, walk_forward

    names = parse_models(models)
    if not data:
        raise InputError("--data must name a bar file or a symbol, was empty")
    if "lstm" in names:
        import torch

        torch.set_num_threads(1)
    bars = load_series(data, symbol, timeframe=timeframe, last=origins + window + 1)
    note = gap_note(bars)
    if note:
        typer.echo(note, err=True)
    if bars.height < origins + 20:
        raise DataError(f"evaluation of {origins} origins needs at least {origins + 20} bars, was {bars.height}")
    wf = walk_forward(_bar_array(bars), {n: partial(make_model, n) for n in names}, origins=origins,
                      refit_every=refit_every, window=window)
    scores = wf.scores()
    label = f"{bars['symbol'][0]} {bars['timeframe'][0]}"
    typer.echo(f"{label}: {origins} one-step forecasts, refit every {refit_every}, window {window}")
    vs = wf.versus("naive") if "naive" in scores else {}
    extra = ["mae/naive", "dm_p"] if vs else []
    _echo_table(["model", *SCORE_KEYS, *extra],
                [[n, *(s[k] for k in SCORE_KEYS), *((vs[n]["mae_ratio"], vs[n]["dm_p_value"]) if vs else ())]
                 for n, s in scores.items()])
    if vs:
        beat = [n for n in vs if n != "naive" and vs[n]["mae_ratio"] < 1 and vs[n]["dm_p_value"] < 0.05]
        typer.echo(f"beat the random walk (lower MAE, Diebold-Mariano p < 0.05): {', '.join(beat)}" if beat
                   else "the random walk wins: no model beats naive with Diebold-Mariano p < 0.05")
    if json_out is not None:
        json_out.write_text(json.dumps(wf.to_json(), indent=2) + "\n")
    if report is not None:
        from tickwise.forecast.report import render_report

        stamps = [str(t) for t in bars["ts"].to_list()]
        report.write_text(render_report(wf, title=f"walk-forward: {label}", timestamps=stamps))


def tune_cmd(
    model: Annotated[str, typer.Option("--model", help="lstm or arima")] = "lstm",
    trials: Annotated[int, typer.Option("--trials", help="Optuna trials", min=1)] = 10,
    data: Annotated[str, typer.Option("--data", help="A bar file or a symbol in the warehouse")] = "",
    symbol: Annotated[str | None, typer.Option("--symbol", help="Symbol inside a multi-symbol file")] = None,
    timeframe: Timeframe = "1m",
    origins: Annotated[int, typer.Option("--origins", help="One-step forecasts per trial", min=5)] = 60,
    window: Annotated[int, typer.Option("--window", help="Bars per fit in each walk-forward trial", min=50)] = 500,
    register: Annotated[bool, typer.Option("--register", help="Train the best parameters and register a version")] = False,
) -> None:
    """Search hyperparameters with Optuna; the objective is walk-forward MAE."""
    import optuna

    from tickwise.forecast.tune import tune

    if not data:
        raise InputError("--data must name a bar file or a symbol, was empty")
    if model == "lstm":
        import torch

        torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bars = load_series(data, symbol, timeframe=timeframe, last=origins + window + 1)
    result = tune(model, _bar_array(bars), trials=trials, origins=origins, window=window)
    typer.echo(f"best of {result.trials} trials: walk-forward MAE {result.mae:.6g}")
    typer.echo(json.dumps(result.params))
    if register:
        version = _train_and_register(model, result.params, bars, metrics=result.scores)
        typer.echo(f"registered {model} version {version.version}")


def _train_and_register(model: str, params: dict[str, Any], bars: Any, *, metrics: dict[str, Any]) -> Any:
    from tickwise.app import build_warehouse
    from tickwise.forecast.catalog import make_model
    from tickwise.forecast.registry import ModelRegistry

    fitted = make_model(model, **params).fit(_bar_array(bars))
    artifact = fitted.dumps() if hasattr(fitted, "dumps") else b""
    ts = bars["ts"].dt.epoch("ns")
    warehouse = build_warehouse(_settings())
    try:
        return ModelRegistry(warehouse).register(
            model, params=params, metrics={**metrics, "symbol": bars["symbol"][0]},
            train_start=int(ts[0]), train_end=int(ts[-1]), artifact=artifact)
    finally:
        warehouse.close()


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List registered model versions."""
    import polars as pl

    from tickwise.app import build_warehouse
    from tickwise.forecast.registry import ModelRegistry

    warehouse = build_warehouse(_settings())
    try:
        versions = ModelRegistry(warehouse).versions()
    finally:
        warehouse.close()

    def when(ns: int | None) -> str:
        return "" if ns is None else str(pl.Series([ns]).cast(pl.Datetime("ns", "UTC"))[0])

    if as_json:
        sys.stdout.write(json.dumps([{"name": v.name, "version": v.version, "promoted": v.promoted, "params": v.params,
                                      "metrics": v.metrics, "train_start": when(v.train_start),
                                      "train_end": when(v.train_end), "artifact_bytes": len(v.artifact)}
                                     for v in versions]) + "\n")
        return
    if not versions:
        typer.echo("no models registered (tickwise models train --model arima --data FILE)")
        return
    _echo_table(["name", "version", "promoted", "train_start", "train_end", "mae", "params"],
                [[v.name, v.version, "yes" if v.promoted else "", when(v.train_start)[:19], when(v.train_end)[:19],
                  v.metrics.get("mae", ""), json.dumps(v.params)] for v in versions])


@models_app.command("promote")
def models_promote(name: Annotated[str, typer.Argument(help="Model name")],
                   version: Annotated[int, typer.Argument(help="Version number")]) -> None:
    """Make VERSION the promoted version of NAME (live forecasting uses it)."""
    from tickwise.app import build_warehouse
    from tickwise.forecast.registry import ModelRegistry

    warehouse = build_warehouse(_settings())
    try:
        v = ModelRegistry(warehouse).promote(name, version)
    finally:
        warehouse.close()
    typer.echo(f"promoted {v.name} version {v.version}")


@models_app.command("train")
def models_train(
    model: Annotated[str, typer.Option("--model", help="arima, lstm, naive, drift, ets")] = "arima",
    data: Annotated[str, typer.Option("--data", help="A bar file or a symbol in the warehouse")] = "",
    symbol: Annotated[str | None, typer.Option("--symbol", help="Symbol inside a multi-symbol file")] = None,
    timeframe: Timeframe = "1m",
    params: Annotated[str | None, typer.Option("--params", help="Model parameters as JSON")] = None,
    origins: Annotated[int, typer.Option("--origins", help="Walk-forward origins for the recorded metrics", min=5)] = 100,
    last: Last = 2000,
) -> None:
    """Train a model, score it walk-forward, and register it as a new version."""
    from functools import partial

    from tickwise.forecast.catalog import make_model
    from tickwise.forecast.evaluate import walk_forward

    if not data:
        raise InputError("--data must name a bar file or a symbol, was empty")
    if model == "lstm":
        import torch

        torch.set_num_threads(1)
    parsed = _parse_params(params)
    bars = load_series(data, symbol, timeframe=timeframe, last=last)
    wf = walk_forward(_bar_array(bars), {model: partial(make_model, model, **parsed)}, origins=min(origins, bars.height // 3),
                      refit_every=max(origins // 4, 1), window=None)
    v = _train_and_register(model, parsed, bars, metrics=wf.scores()[model])
    typer.echo(f"registered {v.name} version {v.version} (walk-forward MAE {v.metrics['mae']:.6g}); "
               f"promote it with: tickwise models promote {v.name} {v.version}")


def register(app: typer.Typer) -> None:
    app.command("forecast")(forecast_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("tune")(tune_cmd)
    app.add_typer(models_app, name="models")
