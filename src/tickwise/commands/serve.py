"""Commands of the serving area: `tickwise serve` (API) and `tickwise dashboard`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``dashboard`` to the CLI."""
    app.command("serve")(serve)
    app.command("dashboard")(dashboard)


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default: setting api_host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: setting api_port, 8000)", min=0, max=65535)] = None,
    data_dir: Annotated[Path | None, typer.Option(help="data directory (default: setting data_dir)")] = None,
    with_dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="also run the dashboard")] = False,
) -> None:
    """Serve the REST API, the live WebSocket stream and /metrics over the warehouse.

    Reads bars, signals, forecasts and anomalies from the configured warehouse and streams
    new ones from the configured bus. The OpenAPI docs are at /docs. While `tickwise up`
    runs, use its API instead (it serves the same routes and owns the DuckDB file).
    """
    import uvicorn

    from tickwise.app import build_bus, build_warehouse
    from tickwise.config import load_settings
    from tickwise.serve.api import create_app
    from tickwise.serve.runtime import server_options, start_dashboard, stop_process

    settings = load_settings(data_dir=data_dir)
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    warehouse = build_warehouse(settings)
    bus = build_bus(settings)
    app = create_app(settings, warehouse=warehouse, bus=bus)
    proc = None
    if with_dashboard:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        proc = start_dashboard(api_url=f"http://{host}:{port}", host=host, port=settings.dashboard_port,
                               log_path=settings.data_dir / "dashboard.log")
        typer.echo(f"dashboard on http://{host}:{settings.dashboard_port}")
    typer.echo(f"API on http://{host}:{port} (docs at /docs, metrics at /metrics)")
    try:
        uvicorn.run(app, host=host, port=port, **server_options())  # type: ignore[arg-type]
    finally:
        if proc is not None:
            stop_process(proc)
        bus.close()
        warehouse.close()


def dashboard(
    api: Annotated[str | None, typer.Option(help="API base URL (default: http://<api_host>:<api_port>)")] = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default: setting api_host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: setting dashboard_port, 8501)", min=0, max=65535)] = None,
    refresh: Annotated[float, typer.Option(min=0.2, help="seconds between chart updates")] = 1.0,
) -> None:
    """Run the live dashboard (Streamlit); it reads everything through the API."""
    import subprocess

    from tickwise.config import load_settings
    from tickwise.serve.runtime import dashboard_command

    settings = load_settings()
    host = host or settings.api_host
    port = settings.dashboard_port if port is None else port
    api = api or f"http://{settings.api_host}:{settings.api_port}"
    typer.echo(f"dashboard on http://{host}:{port}, reading {api}")
    proc = subprocess.Popen(dashboard_command(api_url=api, host=host, port=port, refresh_s=refresh))
    try:
        raise typer.Exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
