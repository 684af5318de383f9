"""Commands of the anomaly area: detect, anomalies, evaluate-anomaly, prepare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tickwise.config import input_tz
from tickwise.exceptions import DataError, InputError

#: The real series `evaluate-anomaly` uses by default (they ship beside the repository).
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
_TIME_NAMES = ("timestamp", "datetime", "date", "time", "ts", "")


def _read_values(path: Path, column: str | None) -> tuple[Any, Any, list[str]]:
    """A plain CSV: (timestamps as strings, frame, value columns)."""
    import polars as pl

    try:
        frame = pl.read_csv(path, infer_schema_length=10000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: expected a CSV of timestamp + values, could not read it ({exc})") from None
    if frame.width < 2:
        raise InputError(f"{path}: expected a timestamp column and at least one value column, was {frame.columns}")
    time_col = next((c for c in frame.columns if c.strip().lower() in _TIME_NAMES), frame.columns[0])
    if column is not None:
        if column not in frame.columns:
            raise InputError(f"--column must be a column of {path.name} ({', '.join(frame.columns)}), was {column!r}")
        columns = [column]
    else:
        # numeric columns, and text columns whose every value reads as a number ("nan" and "inf" included)
        columns = [c for c in frame.columns if c != time_col and (frame[c].dtype.is_numeric() or (
            frame[c].dtype == pl.Utf8 and frame[c].cast(pl.Float64, strict=False).null_count() == frame[c].null_count()
            and frame[c].null_count() < frame.height))]
    if not columns:
        raise InputError(f"{path}: expected at least one numeric value column, was none in {frame.columns}")
    for c in columns:
        text = frame[c].cast(pl.Utf8)
        frame = frame.with_columns(pl.col(c).cast(pl.Float64, strict=False))
        bad = (~frame[c].is_finite()).fill_null(True)
        if bad.any():
            first = int(bad.arg_max() or 0)
            raise DataError(
                f"{path}: column {c!r} must hold finite numbers, was {int(bad.sum())} empty, non-numeric, NaN or "
                f"infinite values, the first on line {first + 2} ({time_col or 'time'} {frame[time_col][first]}): "
                f"{'empty' if text[first] is None else repr(text[first])}; fill or drop them first")
    return frame[time_col].cast(pl.Utf8), frame, columns


def _reasons(rejected: Any) -> str:
    """``duplicate 3, bad_price 1``: rejected rows counted by reason, most first."""
    return ", ".join(f"{r} {n}" for r, n in rejected["reason"].value_counts(sort=True).iter_rows())


def _is_bars(path: Path) -> bool:
    with path.open("r", errors="replace") as fh:
        header = fh.readline().lower()
    names = {h.strip().strip('"') for h in header.split(",")}
    return {"open", "high", "low", "close"} <= names or {"o", "h", "l", "c"} <= names


def _spread_lines(rows: list[dict[str, object]]) -> list[str]:
    """Under the table: each mixed row's F1 per injection seed and per series (how much one
    draw or one series moves the pooled figure).

    Examples
    --------
    >>> _spread_lines([{"detector": "c", "kind": "all", "f1_by_seed": {"7": 0.9, "8": 0.88},
    ...                 "f1_by_series": {"AAPL": 0.8, "GOOG": 0.97}}, {"detector": "c", "kind": "volume_burst"}])
    ['c F1 by injection seed: 7 0.900, 8 0.880 (range 0.880-0.900); by series: AAPL 0.800, GOOG 0.970']
    """
    lines = []
    mixed = [r for r in rows if r["kind"] == "all"] or rows
    for r in mixed:
        parts = []
        by_seed = r.get("f1_by_seed")
        if isinstance(by_seed, dict):
            values = list(by_seed.values())
            parts.append(f"by injection seed: {', '.join(f'{k} {v:.3f}' for k, v in by_seed.items())} "
                         f"(range {min(values):.3f}-{max(values):.3f})")
        by_series = r.get("f1_by_series")
        if isinstance(by_series, dict):
            parts.append(f"by series: {', '.join(f'{k} {v:.3f}' for k, v in by_series.items())}")
        if parts:
            lines.append(f"{r['detector']}{'' if r['kind'] == 'all' else ' ' + str(r['kind'])} F1 {'; '.join(parts)}")
    return lines


def _kinds(text: str | None, option: str) -> tuple[str, ...]:
    """Anomaly kinds named in a comma-separated option (the default five when empty; the extra
    kinds only when named)."""
    from tickwise.anomaly.inject import ALL_KINDS, KINDS

    names = tuple(k.strip() for k in text.split(",")) if text else KINDS
    for k in names:
        if k not in ALL_KINDS:
            raise InputError(f"{option} must name {', '.join(ALL_KINDS)}, was {k!r}")
    return names


def format_table(rows: list[dict[str, object]], cols: list[str]) -> str:
    """A plain Markdown table (also readable in a terminal).

    Examples
    --------
    >>> print(format_table([{"a": 1, "b": "x"}], ["a", "b"]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect(
        data: Annotated[Path, typer.Option("--data", help="CSV of timestamp + value(s), or an OHLCV bar file")],
        out: Annotated[Path, typer.Option("--out", help="Where to write timestamp,score,threshold,is_anomaly,explanation")],
        detector: Annotated[str, typer.Option("--detector", help="zscore | ewma | transient | divergence | classifier | iforest | autoencoder | stale")] = "zscore",
        column: Annotated[str | None, typer.Option("--column", help="Score only this value column")] = None,
        symbol: Annotated[str | None, typer.Option("--symbol", help="Only this symbol of a multi-symbol bar file")] = None,
        window: Annotated[int, typer.Option("--window", help="Band window in rows", min=5)] = 60,
        false_alarm_rate: Annotated[float, typer.Option("--false-alarm-rate", help="Target share of normal rows flagged")] = 1e-3,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        time_of_day: Annotated[str, typer.Option(
            "--time-of-day", help="auto: intraday bars against their own time of day; off: not")] = "auto",
        tz: Annotated[str, typer.Option("--tz", help="The exchange's time zone, for --time-of-day")] = "America/New_York",
        cross_section: Annotated[str, typer.Option(
            "--cross-section", help="on: the symbols of one bar file are one market (classifier); off: each alone")] = "on",
    ) -> None:
        """Score every row of a series; one output row per input row (the symbols of one bar file are
        scored together: with classifier, each reads the others' bars of the same time)."""
        import numpy as np
        import polars as pl

        from tickwise.anomaly import (
            DETECTORS,
            FeatureSpec,
            Schedule,
            ThresholdSettings,
            make_detector,
            season_for,
            tail_thresholds,
            threshold_settings,
        )
        from tickwise.exceptions import ConfigError

        if detector not in DETECTORS:
            raise InputError(f"--detector must be one of {', '.join(DETECTORS)}, was {detector!r}")
        if cross_section not in ("on", "off"):
            raise InputError(f"--cross-section must be on or off, was {cross_section!r}")
        if not data.exists():
            raise InputError(f"--data must be an existing file, was {str(data)!r} (no such file)")
        try:
            thresholds = ThresholdSettings(q=false_alarm_rate)
        except ValueError as exc:
            raise InputError(f"--false-alarm-rate: {exc}") from None
        parts: list[tuple[str | None, Any, Any, FeatureSpec]] = []
        rejected = None
        if _is_bars(data) and column is None:
            from tickwise.sources.files import read_bar_file

            loaded = read_bar_file(data, tz=input_tz())
            bars, rejected = loaded.bars, loaded.rejected
            if symbol is not None:
                bars = bars.filter(pl.col("symbol") == symbol)
                if bars.height == 0:
                    raise InputError(f"--symbol must be a symbol of {data.name}, was {symbol!r}")
            for (sym,), part in bars.group_by(["symbol"], maintain_order=True):
                part = part.sort("ts")
                stamps = part["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")
                parts.append((str(sym), stamps, part, FeatureSpec.bars()))
        else:
            stamps, frame, columns = _read_values(data, column)
            parts.append((None, stamps, frame, FeatureSpec.values(columns)))
        if detector == "classifier":
            from tickwise.anomaly.learned import Training, first_use_note

            note = first_use_note(Training(seed=seed), market=len(parts) > 1 and cross_section == "on")
            if note:
                typer.echo(note, err=True)
        dets = []
        for _, _, frame, spec in parts:
            n = frame.height
            if n < 30:
                also = f"; {rejected.height} rows rejected ({_reasons(rejected)})" \
                    if rejected is not None and rejected.height else ""
                raise DataError(f"{data.name}: need at least 30 rows to score, was {n}{also}")
            schedule = Schedule(min_train=max(10, min(500, n // 3)), refit_every=1000, max_train=5000)
            try:
                season = season_for(frame["ts"] if spec.kind == "bars" else None, time_of_day, tz=tz)
            except ConfigError as exc:
                raise InputError(f"--time-of-day/--tz: {exc}") from None
            dets.append(make_detector(detector, spec=spec, window=min(window, max(5, n // 4)), schedule=schedule,
                                      seed=seed, seasonality=season))
        from tickwise.anomaly.market import score_together

        # the symbols of one bar file are one market: the classifier reads the others' bars of the same time
        frames = [frame for _, _, frame, _ in parts]
        scored = score_together(dets, frames) if cross_section == "on" else [d.score(f) for d, f in zip(dets, frames, strict=True)]
        outputs = []
        flagged = 0
        for (sym, stamps, frame, _), det, scores in zip(parts, dets, scored, strict=True):
            n = frame.height
            th = tail_thresholds(scores.score, threshold_settings(detector, q=thresholds.q,
                                                                  min_scores=min(200, max(20, n // 5)),
                                                                  window=thresholds.window))
            is_anom = scores.score > th
            flagged += int(is_anom.sum())
            expl = [det.explain(scores, i).text if is_anom[i] else "" for i in range(n)]
            cols = {"timestamp": stamps, "score": scores.score, "threshold": np.where(np.isinf(th), np.nan, th),
                    "is_anomaly": is_anom, "explanation": expl}
            df = pl.DataFrame(cols).with_columns(pl.col("score").fill_nan(None), pl.col("threshold").fill_nan(None))
            if sym is not None:
                df = df.with_columns(pl.lit(sym).alias("symbol")).select("timestamp", "symbol", "score", "threshold", "is_anomaly", "explanation")
            outputs.append(df)
        result = pl.concat(outputs)
        out.parent.mkdir(parents=True, exist_ok=True)
        result.write_csv(out)
        typer.echo(f"scored {result.height} rows with {detector}: {flagged} anomalies -> {out}")
        aside = out.with_name(f"{out.stem}.rejected.csv")
        aside.unlink(missing_ok=True)  # an earlier run's, which would read as this one's
        if rejected is not None and rejected.height:
            # rows that are not bars are not scored, and not dropped unsaid: they go beside the scores
            rejected.write_csv(aside)
            one = rejected.height == 1
            typer.echo(f"{rejected.height} input {'row is not a bar and was' if one else 'rows are not bars and were'} "
                       f"not scored ({_reasons(rejected)}): each with its reason in {aside}", err=True)

    @app.command("prepare")
    def prepare(
        market: Annotated[str, typer.Option(
            "--market", help="on: also the models for bars with other symbols of the same time (as `up` uses them)")] = "on",
    ) -> None:
        """Fit the anomaly classifier into the model cache now (once per machine), so that `up`,
        `worker` and `detect` score with it from their first bar."""
        import time

        from tickwise.anomaly.learned import Training, prepare
        from tickwise.anomaly.modelcache import cache_dir

        if market not in ("on", "off"):
            raise InputError(f"--market must be on or off, was {market!r}")
        trainings = [Training(market=True), Training()] if market == "on" else [Training()]
        total = sum(t.members for t in trainings)
        start = time.perf_counter()
        fitted = prepare(trainings, typer.echo)
        took = f"{fitted} fitted in {time.perf_counter() - start:.0f} s" if fitted else "all stored already"
        typer.echo(f"classifier: {total} models ready in {cache_dir()} ({took})")

    @app.command("anomalies")
    def anomalies(
        symbol: Annotated[str, typer.Argument(help="Symbol to show")],
        last: Annotated[int, typer.Option("--last", help="How many of the newest anomalies", min=1)] = 20,
        timeframe: Annotated[str | None, typer.Option("--timeframe", help="Only bars of this interval, e.g. 1m")] = None,
        detector: Annotated[str | None, typer.Option("--detector", help="Only this detector's, e.g. classifier")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines")] = False,
    ) -> None:
        """Print the newest anomalies of a symbol from the warehouse."""
        import polars as pl

        from tickwise.anomaly import DETECTORS, tables  # noqa: F401
        from tickwise.config import load_settings
        from tickwise.store import open_warehouse
        from tickwise.timeframes import timeframe_ns

        where: dict[str, object] = {"symbol": symbol}
        if timeframe is not None:
            timeframe_ns(timeframe)  # a one-line error for a malformed interval
            where["timeframe"] = timeframe
        if detector is not None:
            if detector not in DETECTORS:
                raise InputError(f"--detector must be one of {', '.join(DETECTORS)}, was {detector!r}")
            where["detector"] = detector
        settings = load_settings()
        warehouse = open_warehouse(settings.warehouse_url, read_only=True)
        try:
            table = pl.from_arrow(warehouse.read("anomalies", where=where, last=last))
        finally:
            warehouse.close()
        if table.height == 0:
            which = "".join(f" {k} {v}" for k, v in where.items() if k != "symbol")
            typer.echo(f"no anomalies for {symbol}{which} in {settings.warehouse_url}")
            return
        if as_json:
            for row in table.iter_rows(named=True):
                typer.echo(json.dumps(row, default=str))
            return
        from rich.console import Console
        from rich.table import Table

        view = Table(title=f"anomalies of {symbol} (newest {table.height})")
        for c in ("ts", "timeframe", "detector", "kind", "score", "threshold", "explanation"):
            view.add_column(c)
        for r in table.iter_rows(named=True):
            view.add_row(str(r["ts"]), r["timeframe"], r["detector"], r["kind"], f"{r['score']:.3g}",
                         f"{r['threshold']:.3g}", r["explanation"])
        Console().print(view)

    @app.command("evaluate-anomaly")
    def evaluate_anomaly(
        data: Annotated[list[Path] | None, typer.Option("--data", help="Bar files (default: every file in ../shared/data)")] = None,
        detectors: Annotated[str, typer.Option("--detectors", help="Comma-separated detectors")] = "zscore,ewma,iforest,autoencoder",
        kinds: Annotated[str | None, typer.Option("--kinds", help="Comma-separated kinds (default: all five)")] = None,
        rate: Annotated[float, typer.Option("--rate", help="Injected events per bar")] = 0.01,
        false_alarm_rate: Annotated[float, typer.Option("--false-alarm-rate")] = 1e-3,
        magnitude: Annotated[str, typer.Option("--magnitude", help="LOW,HIGH size in robust sigmas")] = "6,10",
        seed: Annotated[str, typer.Option(
            "--seed", help="Injection seed, or several comma-separated: the measurement is repeated per seed and the counts pooled")] = "7",
        json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here")] = None,
        quick: Annotated[bool, typer.Option("--quick", help="Only the mixed run (all kinds together); autoencoder with 10 epochs")] = False,
        classifier_exclude: Annotated[str, typer.Option(
            "--classifier-exclude",
            help="Comma-separated symbols of the shipped training bars (AAPL, GOOG, IBM, MSFT) the classifier is not trained on")] = "",
        classifier_kinds: Annotated[str | None, typer.Option(
            "--classifier-kinds", help="Comma-separated kinds the classifier is trained on (default: all five)")] = None,
        time_of_day: Annotated[str, typer.Option(
            "--time-of-day", help="auto: intraday series against their own time of day; off: not")] = "auto",
        tz: Annotated[str, typer.Option("--tz", help="The exchange's time zone, for --time-of-day")] = "America/New_York",
        cross_section: Annotated[str, typer.Option(
            "--cross-section",
            help="on: the series are scored together, as one market (the classifier reads the other series' "
                 "bars of the same time); off: each alone")] = "on",
        false_alarms_out: Annotated[Path | None, typer.Option(
            "--false-alarms", help="Also write every false alarm (a flagged real bar) with its explanation to this CSV")] = None,
    ) -> None:
        """Inject labelled anomalies into real series and report precision, recall, F1, delay."""
        from tickwise.anomaly import DETECTORS
        from tickwise.anomaly.evaluate import SCORED, WARMUP, evaluate
        from tickwise.sources.files import read_bar_file

        names = [d.strip() for d in detectors.split(",") if d.strip()]
        for d in names:
            if d not in DETECTORS:
                raise InputError(f"--detectors must name {', '.join(DETECTORS)}, was {d!r}")
        kind_list = list(_kinds(kinds, "--kinds"))
        if not 0 < rate <= 0.05:
            raise InputError(f"--rate must be in (0, 0.05] events per bar (events stay 20 bars apart), was {rate}")
        from tickwise.anomaly import ThresholdSettings

        try:
            ThresholdSettings(q=false_alarm_rate)
        except ValueError as exc:
            raise InputError(f"--false-alarm-rate: {exc}") from None
        try:
            lo, hi = (float(v) for v in magnitude.split(","))
        except ValueError:
            raise InputError(f"--magnitude must look like 6,10, was {magnitude!r}") from None
        try:
            seeds = [int(v) for v in seed.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"--seed must be an integer or a comma-separated list like 7,8,9, was {seed!r}") from None
        if not seeds:
            raise InputError(f"--seed must name at least one integer, was {seed!r}")
        if len(set(seeds)) < len(seeds):
            raise InputError(f"--seed must name each seed once (a repeat would count the same events twice), was {seed!r}")
        from tickwise.anomaly import Seasonality
        from tickwise.exceptions import ConfigError

        if time_of_day not in ("auto", "off"):
            raise InputError(f"--time-of-day must be auto or off, was {time_of_day!r}")
        if cross_section not in ("on", "off"):
            raise InputError(f"--cross-section must be on or off, was {cross_section!r}")
        try:
            Seasonality(tz=tz)
        except ConfigError as exc:
            raise InputError(f"--tz: {exc}") from None
        file_tz = input_tz()
        files = data or sorted(p for p in SHARED_DATA.glob("*.csv"))
        if not files:
            raise InputError(f"no bar files given and none found in {SHARED_DATA}")
        series = []
        seen: set[tuple[str, int, float]] = set()
        short: list[str] = []
        for f in files:
            loaded = read_bar_file(f, tz=file_tz)
            if loaded.rejected.height:
                n = loaded.rejected.height
                typer.echo(f"{f.name}: {n} {'row is not a bar and is' if n == 1 else 'rows are not bars and are'} "
                           f"left out ({_reasons(loaded.rejected)})", err=True)
            for (sym,), part in loaded.bars.group_by(["symbol"], maintain_order=True):
                part = part.sort("ts")
                sig = (str(part["ts"][0]), part.height, float(part["close"].sum()))
                if sig in seen:
                    continue
                seen.add(sig)
                if part.height < WARMUP + SCORED:
                    short.append(f"{f.name} {sym} ({part.height} bars)")
                    continue
                series.append(part)
        if short and series:
            typer.echo(f"left out, shorter than the {WARMUP + SCORED} bars an evaluation needs ({WARMUP} of "
                       f"warm-up before the first injected event, {SCORED} after): {', '.join(short)}", err=True)
        if not series:
            raise DataError(f"no series to evaluate: each needs at least {WARMUP + SCORED} bars, was "
                            f"{', '.join(short) or 'none'}")
        options: dict[str, dict[str, object]] = {"autoencoder": {"epochs": 10}} if quick else {}
        if "classifier" in names:
            from tickwise.anomaly.learned import Training, first_use_note, training_symbols

            train_kinds = _kinds(classifier_kinds, "--classifier-kinds")
            exclude = tuple(x.strip().upper() for x in classifier_exclude.split(",") if x.strip())
            known = training_symbols()
            unknown = [x for x in exclude if x not in known]
            if unknown:
                raise InputError(f"--classifier-exclude must name symbols of the shipped training bars "
                                 f"({', '.join(known)}), was {', '.join(unknown)}")
            if set(known) <= set(exclude):
                raise InputError(f"--classifier-exclude must leave at least one of the training symbols "
                                 f"({', '.join(known)}) to train on, was all of them")
            training = Training(kinds=train_kinds, exclude=exclude)
            options["classifier"] = {"training": training}
            note = first_use_note(training, market=cross_section == "on")
            if note:
                typer.echo(note, err=True)
        alarms: list[dict[str, object]] | None = [] if false_alarms_out is not None else None
        report = evaluate(series, detectors=names, kinds=kind_list, rate=rate, q=false_alarm_rate,
                          magnitude=(lo, hi), seed=seeds, per_kind=not quick, options=options,
                          time_of_day=time_of_day, tz=tz, cross_section=cross_section == "on", false_alarms=alarms)
        cols = ["detector", "kind", "events", "detected", "false_alarms", "precision", "recall", "f1",
                "mean_delay_bars", "false_alarms_per_1000_bars"]
        typer.echo(f"injected anomalies: rate {rate}/bar, {lo:g}-{hi:g} robust sigma, {report.settings['series']} series, "
                   f"injection seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}, "
                   f"target false-alarm rate {false_alarm_rate:g}")
        typer.echo(format_table(report.rows, cols))
        for line in _spread_lines(report.rows):
            typer.echo(line)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report.to_dict(), indent=2))
            typer.echo(f"wrote {json_out}")
        if false_alarms_out is not None and alarms is not None:
            import polars as pl

            false_alarms_out.parent.mkdir(parents=True, exist_ok=True)
            schema = {"detector": pl.Utf8, "run": pl.Utf8, "seed": pl.Int64, "symbol": pl.Utf8, "row": pl.Int64,
                      "ts": pl.Datetime("us", "UTC"), "score": pl.Float64, "threshold": pl.Float64,
                      "explanation": pl.Utf8}
            pl.DataFrame(alarms, schema=schema).write_csv(false_alarms_out)
            typer.echo(f"wrote {len(alarms)} false alarms (real bars flagged) to {false_alarms_out}")
