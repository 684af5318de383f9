"""Commands of the tick-to-bar pipeline: up, worker, feed, ingest, import, replay, query, bars."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from tickwise.exceptions import InputError

Source = Annotated[str, typer.Option("--source", help="sim, tcp://HOST:PORT, or a CSV/Parquet file of ticks or bars")]
Duration = Annotated[float | None, typer.Option("--duration", min=0.0,
                                                 help="Stop after this many seconds (default: until Ctrl-C)")]


def _settings(**overrides: object):
    from tickwise.config import load_settings

    return load_settings(**overrides)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _stop_on_sigterm(stop: threading.Event) -> None:
    signal.signal(signal.SIGTERM, lambda *_: stop.set())


def _print_table(table, fmt: str) -> None:  # pyarrow.Table
    import polars as pl

    frame = pl.from_arrow(table)
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(frame.with_columns(
            [pl.col(c).cast(pl.Utf8) for c, t in frame.schema.items() if t in (pl.Datetime, pl.Date) or isinstance(t, pl.Datetime)]
        ).to_dicts(), default=str, indent=None) + "\n")
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        out = Table(show_edge=False, header_style="bold")
        for c in frame.columns:
            out.add_column(c, justify="right" if frame.schema[c].is_numeric() else "left")
        for row in frame.iter_rows():
            out.add_row(*("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
        Console(width=200).print(out)
        typer.echo(f"({frame.height} rows)")
    else:
        raise InputError(f"format must be table, csv or json, was {fmt!r}")


def register(app: typer.Typer) -> None:
    feed = typer.Typer(help="Serve a live tick feed over TCP (newline-delimited JSON).", no_args_is_help=True)
    app.add_typer(feed, name="feed")

    @app.command()
    def up(
        source: Source = "sim",
        duration: Duration = None,
        speed: Annotated[float, typer.Option(help="Replay speed for a file source (0: as fast as possible)")] = 0.0,
        symbol: Annotated[str | None, typer.Option(help="Symbol for a file without one")] = None,
        timeframes: Annotated[str | None, typer.Option(help="Bar intervals, e.g. 1s,1m,5m")] = None,
        serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the API")] = True,
        dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Start the dashboard")] = True,
        faults: Annotated[float, typer.Option(
            "--faults",
            help="Labelled faults per minute injected into the simulator's ticks after 30 s (bad prints, block "
                 "trades, frozen feeds); the run ends with what the detectors flagged of them")] = 0.0,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        """Run source → bus → pipeline → warehouse (and signals, forecasts, anomalies, API, dashboard).

        Shows a live status line; Ctrl-C or the end of --duration flushes every open bar and exits 0.
        """
        from tickwise.runtime import Runtime, faulty_simulator

        _logging(verbose)
        settings = _settings(timeframes=timeframes)
        faulty = faulty_simulator(settings, source, faults)
        runtime = Runtime(settings)
        stop = threading.Event()
        _stop_on_sigterm(stop)
        try:
            if serve:
                runtime.start_services(dashboard=dashboard)
                handle = runtime.services
                if handle is not None:
                    where = f"API {handle.api_url}/docs"
                    if handle.dashboard_url:
                        where += f" · dashboard {handle.dashboard_url}"
                    typer.echo(f"{where} · warehouse {settings.warehouse_url}", err=True)
            summary = runtime.run(source, duration_s=duration, speed=speed, symbol=symbol, stop=stop, faults=faulty)
        finally:
            runtime.close()
        typer.echo(
            f"{summary.ticks_processed:,} ticks → {summary.bars:,} bars in {summary.seconds:.1f} s; "
            f"{summary.deadletters:,} dead letters; "
            + (f"{summary.results()}; " if summary.outputs else "") + f"warehouse {settings.warehouse_url}"
        )
        for line in summary.fault_lines():
            typer.echo(line)

    @app.command()
    def worker(
        name: Annotated[str | None, typer.Option(help="Unique member name in the consumer group")] = None,
        analytics: Annotated[bool, typer.Option(
            "--analytics/--no-analytics",
            help="Also run the analytics stages (signals, forecasts, anomalies) on closed bars")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        """Run the pipeline stage against the configured bus (several workers share the partitions).

        With --analytics the worker also runs every analytics stage; each stage is one consumer
        group, so across several workers exactly one member runs it at a time.
        """
        import os
        import socket

        from tickwise import app as composition
        from tickwise.pipeline.stage_runner import DeadLetterSink
        from tickwise.pipeline.worker import PipelineWorker
        from tickwise.runtime import Supervisor

        _logging(verbose)
        settings = _settings()
        if settings.bus.startswith("memory://"):
            raise InputError("tickwise worker needs a shared bus: set TICKWISE_BUS=redis://HOST:PORT/DB "
                             "(or kafka://HOST:PORT), was memory://")
        bus = composition.build_bus(settings)
        warehouse = composition.build_warehouse(settings)
        member = name or f"{socket.gethostname()}-{os.getpid()}"
        w = PipelineWorker(bus, warehouse, timeframes=settings.timeframes, lateness_ms=settings.lateness_ms,
                           name=member, commit_interval_ms=settings.commit_interval_ms,
                           idle_close_ms=settings.idle_close_ms)
        sink = DeadLetterSink(bus, warehouse, name=member)
        stop = threading.Event()
        _stop_on_sigterm(stop)
        supervisor = Supervisor(stop)  # a part that dies stops the worker: no half-working worker
        sink_thread = supervisor.start("deadletter-sink", sink.run, stop)
        stage_threads = []
        if analytics:
            from tickwise.pipeline.stage_runner import StageRunner

            for stage in composition.build_stages(settings, warehouse):
                runner = StageRunner(bus, warehouse, stage, name=member)
                stage_threads.append(supervisor.start(f"stage-{stage.name}", runner.run, stop))
        typer.echo(f"worker {member}: reading {settings.bus}, writing {settings.warehouse_url}", err=True)
        try:
            w.run(stop)
        except KeyboardInterrupt:
            stop.set()
            w.commit()
        sink_thread.join(timeout=10)
        for t in stage_threads:
            t.join(timeout=30)
        typer.echo(f"worker {member}: {w.stats.ticks:,} ticks, {w.stats.bars:,} bars, {w.stats.deadletters:,} dead letters", err=True)
        if supervisor.failures:
            typer.echo(f"worker {member} stopped because {'; '.join(supervisor.failures)}", err=True)
            raise typer.Exit(1)

    @feed.command("serve")
    def feed_serve(
        host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 9009,
        source: Annotated[str, typer.Option(help="sim, or a file to replay")] = "sim",
        speed: Annotated[float, typer.Option(help="Replay speed for a file")] = 1.0,
        rate: Annotated[float | None, typer.Option(help="Simulator ticks per second")] = None,
        duration: Duration = None,
    ) -> None:
        """Stream newline-delimited JSON ticks to any number of TCP clients."""
        from tickwise.runtime import make_source
        from tickwise.sources.socket_feed import FeedServer

        settings = _settings(tick_rate=rate)
        stop = threading.Event()
        _stop_on_sigterm(stop)
        frames = make_source(settings, source, stop, speed=speed)
        if isinstance(frames, str):
            raise InputError("feed serve needs sim or a file as its source, was a tcp:// URL")
        server = FeedServer(frames, host=host, port=port)
        if duration is not None:
            threading.Timer(duration, stop.set).start()
        typer.echo(f"serving ticks on tcp://{host}:{port} (Ctrl-C to stop)", err=True)
        try:
            server.run(stop)
        except KeyboardInterrupt:
            stop.set()
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        typer.echo(f"sent {server.sent_ticks:,} ticks", err=True)

    @app.command()
    def ingest(
        source: Annotated[str, typer.Option("--source", help="tcp://HOST:PORT of a tick feed")],
        duration: Duration = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        """Read a TCP tick feed into the bus; reconnect with backoff when the feed goes away."""
        from tickwise import app as composition
        from tickwise.pipeline.ingest import TickPublisher
        from tickwise.sources.socket_feed import FeedClient

        _logging(verbose)
        settings = _settings()
        if settings.bus.startswith("memory://"):
            raise InputError("tickwise ingest publishes to a shared bus: set TICKWISE_BUS=redis://HOST:PORT/DB "
                             "(or run everything in one process with tickwise up --source tcp://HOST:PORT)")
        bus = composition.build_bus(settings)
        pub = TickPublisher(bus, source=source)
        client = FeedClient(source, lambda t, d: (pub.publish(t), pub.reject(d)))
        stop = threading.Event()
        _stop_on_sigterm(stop)
        if duration is not None:
            threading.Timer(duration, stop.set).start()
        try:
            client.run(stop)
        except KeyboardInterrupt:
            stop.set()
        typer.echo(f"published {pub.published:,} ticks, {pub.rejected:,} dead letters", err=True)

    @app.command("import")
    def import_(
        files: Annotated[list[Path], typer.Argument(help="CSV, Kaggle .txt, yfinance CSV or Parquet files")],
        symbol: Annotated[str | None, typer.Option(help="Symbol for every row (overrides the file)")] = None,
        timeframe: Annotated[str | None, typer.Option(help="Bar interval (default: inferred)")] = None,
    ) -> None:
        """Load historical bars (or ticks) into the warehouse; bad rows go to the dead letters."""
        from tickwise import app as composition
        from tickwise.runtime import Runtime
        from tickwise.sources.files import load_bars

        settings = _settings()
        warehouse = composition.build_warehouse(settings)
        try:
            for path in files:
                loaded = load_bars(path, symbol=symbol, timeframe=timeframe, tz=settings.input_tz)
                if loaded.kind == "ticks":
                    from tickwise.bus.memory import MemoryBus

                    rt = Runtime(settings, bus=MemoryBus(partitions=settings.bus_partitions), warehouse=warehouse,
                                 stages=False, lake=False)
                    s = rt.run(str(path), symbol=symbol, status=False)
                    typer.echo(f"{path}: {s.ticks_processed:,} ticks → {s.bars:,} bars, {s.deadletters:,} dead letters")
                    continue
                writes = {"bars": loaded.bars.to_arrow()}
                if loaded.rejected.height:

                    from tickwise.pipeline.validate import deadletters

                    writes["deadletter"] = deadletters(f"import:{path.name}", loaded.rejected["reason"],
                                                       loaded.rejected["payload"]).to_arrow()
                warehouse.commit(writes)
                b = loaded.bars
                symbols = ",".join(sorted(b["symbol"].unique().to_list()))
                typer.echo(
                    f"{path}: {b.height:,} bars ({b['timeframe'][0] if b.height else '-'}) for {symbols} "
                    f"from {b['ts'].min()} to {b['ts'].max()}; {loaded.rejected.height:,} rows rejected"
                )
        finally:
            warehouse.close()

    @app.command("replay")
    def replay_(
        file: Annotated[Path, typer.Argument(help="A file of ticks or bars")],
        speed: Annotated[float, typer.Option(help="How many times faster than real time (0: at once)")] = 60.0,
        symbol: Annotated[str | None, typer.Option(help="Symbol for a file without one")] = None,
        timeframes: Annotated[str | None, typer.Option(help="Bar intervals, e.g. 1d for daily files")] = None,
        duration: Duration = None,
    ) -> None:
        """Publish a historical file onto the bus as a live stream and build bars from it."""
        from tickwise.runtime import Runtime

        settings = _settings(timeframes=timeframes)
        runtime = Runtime(settings)
        stop = threading.Event()
        _stop_on_sigterm(stop)
        try:
            s = runtime.run(str(file), speed=speed, symbol=symbol, duration_s=duration, stop=stop)
        finally:
            runtime.close()
        typer.echo(f"replayed {s.ticks_published:,} ticks → {s.bars:,} bars, {s.deadletters:,} dead letters")

    @app.command()
    def query(
        sql: Annotated[str, typer.Argument(help="One read-only SQL statement")],
        format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
        max_rows: Annotated[int, typer.Option(help="Return at most this many rows")] = 10_000,
    ) -> None:
        """Run read-only SQL on the warehouse (tables: bars, deadletter, signals, forecasts, anomalies…)."""
        from tickwise import app as composition

        if format not in ("table", "csv", "json"):
            raise InputError(f"format must be table, csv or json, was {format!r}")
        settings = _settings()
        warehouse = composition.build_warehouse(settings, read_only=True)
        try:
            _print_table(warehouse.query(sql, max_rows=max_rows, timeout_s=60), format)
        finally:
            warehouse.close()

    @app.command()
    def bars(
        symbol: Annotated[str, typer.Argument(help="Instrument symbol")],
        timeframe: Annotated[str, typer.Option(help="Bar interval")] = "1m",
        last: Annotated[int, typer.Option(help="How many of the newest bars")] = 20,
        format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
    ) -> None:
        """Print the newest bars of a symbol."""
        from tickwise import app as composition
        from tickwise.timeframes import timeframe_ns

        timeframe_ns(timeframe)
        if last < 1:
            raise InputError(f"--last must be >= 1, was {last}")
        settings = _settings()
        warehouse = composition.build_warehouse(settings, read_only=True)
        try:
            table = warehouse.bars(symbol, timeframe, last=last)
            if table.num_rows == 0:
                known = warehouse.symbols()
                raise InputError(f"no {timeframe} bars for {symbol!r}; symbols with bars: {', '.join(known) or 'none'}")
            _print_table(table, format)
        finally:
            warehouse.close()
