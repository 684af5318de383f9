"""`tickwise lake …` (catalog, SQL, compaction, the SMA signal in SQL, loading bars) and `tickwise etl`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tickwise.config import input_tz
from tickwise.exceptions import InputError

lake_app = typer.Typer(
    help="The Parquet data lake (file:// or s3://): catalog, read-only SQL, compaction.",
    no_args_is_help=True,
)

LakeOpt = Annotated[
    str | None, typer.Option("--lake", help="Lake URL (default: setting TICKWISE_LAKE, else <data_dir>/lake).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _open(lake_url: str | None):  # type: ignore[no-untyped-def]
    from tickwise.config import load_settings
    from tickwise.lake import lake_for

    return lake_for(load_settings(lake=lake_url))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def print_table(table: Any, *, as_json: bool = False, as_csv: bool = False) -> None:
    """Print an Arrow table as a rich table, JSON lines (``--json``) or CSV (``--csv``)."""
    if as_json:
        rows = [{k: _jsonable(v) for k, v in row.items()} for row in table.to_pylist()]
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    if as_csv:
        import pyarrow.csv as pacsv

        sink = sys.stdout.buffer
        pacsv.write_csv(table, sink)
        sink.flush()
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(show_lines=False)
    for name in table.column_names:
        out.add_column(name)
    for row in table.to_pylist():
        out.add_row(*["" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
                      for v in row.values()])
    Console(width=200).print(out)
    typer.echo(f"({table.num_rows} rows)")


@lake_app.command("tables")
def tables_cmd(lake: LakeOpt = None, as_json: JsonOpt = False) -> None:
    """List the lake's datasets: zone, schema, partitions, files, rows, size."""
    opened = _open(lake)
    infos = opened.tables()
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=1))
        return
    if not infos:
        typer.echo(f"the lake at {opened.url} has no data yet")
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"lake {opened.url}")
    for col in ("table", "zone", "partitions", "files", "rows", "size", "dates", "symbols"):
        out.add_column(col)
    for i in infos:
        out.add_row(i.name, i.zone, str(i.partitions), str(i.files), f"{i.rows:,}", _size(i.size_bytes),
                    f"{i.first_date}..{i.last_date}", str(i.symbols))
    console = Console(width=max(Console().width, 100))
    console.print(out)
    for i in infos:
        typer.echo(f"{i.name} ({i.location}), partitioned by date, symbol: "
                   + ", ".join(f"{f.name} {f.type}" for f in i.schema))


@lake_app.command("query")
def query_cmd(
    sql: Annotated[str, typer.Argument(help="One SELECT; tables: ticks, bars, signals, features.")],
    lake: LakeOpt = None,
    max_rows: Annotated[int, typer.Option(help="Print at most this many rows.")] = 1000,
    timeout_s: Annotated[float, typer.Option(help="Stop the query after this many seconds.")] = 300.0,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Run read-only SQL over the lake (DuckDB over the Parquet files, local or S3)."""
    from tickwise.lake.query import query

    table = query(_open(lake), sql, max_rows=max_rows, timeout_s=timeout_s)
    print_table(table, as_json=as_json, as_csv=as_csv)


@lake_app.command("compact")
def compact_cmd(
    lake: LakeOpt = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    min_files: Annotated[int, typer.Option(help="Compact partitions with at least this many files.")] = 2,
) -> None:
    """Merge small files per partition (removing replayed duplicates) and clear stale temp files."""
    if min_files < 2:
        raise InputError(f"--min-files must be >= 2, was {min_files}")
    results = _open(lake).compact(dataset, min_files=min_files)
    for name, r in results.items():
        typer.echo(f"{name}: {r.partitions} partitions, {r.files_in} files -> {r.files_out}, "
                   f"{r.rows_in:,} rows -> {r.rows_out:,}, {r.deleted} old files deleted")


@lake_app.command("signals")
def signals_cmd(
    lake: LakeOpt = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="Symbols (repeatable).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only bars of this interval.")] = None,
    fast: Annotated[int, typer.Option(help="Fast SMA period.")] = 9,
    slow: Annotated[int, typer.Option(help="Slow SMA period.")] = 21,
    volume_window: Annotated[int, typer.Option(help="Bars in the volume average.")] = 20,
    volume_factor: Annotated[float, typer.Option(help="Volume must exceed its average times this.")] = 1.5,
    last: Annotated[int, typer.Option(help="Print the newest N rows.")] = 20,
    include_hold: Annotated[bool, typer.Option("--hold/--no-hold", help="Include HOLD rows.")] = False,
    show_sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute the SMA-crossover BUY/SELL/HOLD signals in SQL over the lake's bars."""
    from tickwise.lake.query import query, sma_cross_sql

    where = ["TRUE"]
    if symbol:
        where.append("symbol IN (" + ", ".join("'" + s.replace("'", "''") + "'" for s in symbol) + ")")
    if timeframe:
        where.append("timeframe = '" + timeframe.replace("'", "''") + "'")
    sql = sma_cross_sql(fast=fast, slow=slow, volume_window=volume_window, volume_factor=volume_factor,
                        where=" AND ".join(where))
    if not include_hold:
        sql = f"SELECT * FROM (\n{sql}\n) WHERE signal <> 'HOLD' ORDER BY ts, symbol"
    if show_sql:
        typer.echo(sql)
        return
    table = query(_open(lake), sql)
    print_table(table.slice(max(table.num_rows - last, 0)), as_json=as_json)


@lake_app.command("load")
def load_cmd(
    path: Annotated[Path, typer.Argument(help="A bars file (CSV/Parquet) that `tickwise import` reads.")],
    lake: LakeOpt = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol, when the file does not say.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Interval, when it cannot be inferred.")] = None,
) -> None:
    """Write the bars of a file into the lake's processed zone (dataset ``bars``)."""
    from tickwise.sources.files import read_bars

    bars = read_bars(path, symbol=symbol, timeframe=timeframe, tz=input_tz())
    opened = _open(lake)
    files = opened.write("bars", bars.to_arrow())
    typer.echo(f"wrote {bars.height:,} bars of {bars['symbol'].n_unique()} symbols into {files} files "
               f"under {opened.url}")


def etl_cmd(
    out: Annotated[Path, typer.Option("--out", help="Feature table to write (.parquet or .csv).")],
    data: Annotated[Path | None, typer.Option("--data", help="Bars file; default: the lake's bars.")] = None,
    source: Annotated[str, typer.Option(help="Where bars come from without --data: lake or warehouse.")] = "lake",
    lake: LakeOpt = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="Symbols (repeatable).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Interval of the bars.")] = None,
    gaps: Annotated[str, typer.Option(help="flag: mark bars after a gap; fill: also insert forward-filled bars.")] = "flag",
    zscore_window: Annotated[int, typer.Option(help="Bars in the trailing z-score window.")] = 100,
    to_lake: Annotated[bool, typer.Option("--lake-write/--no-lake-write",
                                          help="Also write the features to the lake.")] = True,
) -> None:
    """Turn bars into a model-ready feature table: gaps, returns, indicators, trailing z-scores."""
    from tickwise.config import load_settings
    from tickwise.etl import build_features, load_etl_bars

    if out.suffix not in (".parquet", ".csv"):
        raise InputError(f"--out must end in .parquet or .csv, was {out.name!r}")
    settings = load_settings(lake=lake)
    bars = load_etl_bars(settings, data=data, source=source, symbols=symbol, timeframe=timeframe)
    features = build_features(bars, gaps=gaps, zscore_window=zscore_window)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        features.write_csv(out)
    else:
        features.write_parquet(out)
    gaps_found = int(features["gap"].sum())
    filled = int(features["filled"].sum())
    typer.echo(f"wrote {features.height:,} rows x {features.width} columns to {out} "
               f"({gaps_found} gaps, {filled} filled rows)")
    if to_lake:
        from tickwise.lake import lake_for

        opened = lake_for(settings)
        opened.write("features", features.to_arrow())
        # a rerun replaces earlier features: compaction keeps the last row per (timeframe, ts)
        opened.compact("features")
        typer.echo(f"features written to {opened.url} (dataset features)")


def register(app: typer.Typer) -> None:
    app.add_typer(lake_app, name="lake")
    app.command("etl")(etl_cmd)
