"""Run the API (and the dashboard) in the background of another command, e.g. `tickwise up`.

The API runs under uvicorn in a thread of the calling process, so it shares the caller's
`Warehouse` object (DuckDB allows one writer process) and bus; the dashboard runs as a
Streamlit subprocess that reads only through the API.
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tickwise.bus.base import Bus
from tickwise.config import Settings
from tickwise.exceptions import BackendError
from tickwise.store.base import Warehouse

DASHBOARD_FILE = Path(__file__).with_name("dashboard.py")


def dashboard_command(*, api_url: str, host: str, port: int, refresh_s: float = 1.0) -> list[str]:
    """Return the command line that runs the Streamlit dashboard against an API.

    Examples
    --------
    >>> dashboard_command(api_url="http://127.0.0.1:8000", host="127.0.0.1", port=8501)[-4:]
    ['--api', 'http://127.0.0.1:8000', '--refresh', '1.0']
    """
    return [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD_FILE),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", host,
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "dark",
        "--theme.primaryColor", "#26a69a",
        "--",
        "--api", api_url,
        "--refresh", str(refresh_s),
    ]


def start_dashboard(*, api_url: str, host: str, port: int, log_path: Path | None = None,
                    refresh_s: float = 1.0) -> subprocess.Popen[bytes]:
    """Start the dashboard as a subprocess (stop it with `stop_process`)."""
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            dashboard_command(api_url=api_url, host=host, port=port, refresh_s=refresh_s),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    finally:
        if log_path is not None:
            out.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def wait_http(url: str, *, timeout_s: float) -> bool:
    """Wait until ``url`` answers 200; return whether it did in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def server_options() -> dict[str, object]:
    """Return uvicorn's options for the API: the C event loop and HTTP parser, no access log.

    WebSocket compression is off: the stream sends the same small JSON message to every
    subscriber, and per-message deflate would compress it again for each one.

    Examples
    --------
    >>> server_options()["http"]
    'httptools'
    """
    import importlib.util

    fast = importlib.util.find_spec("uvloop") is not None and importlib.util.find_spec("httptools") is not None
    return {"loop": "uvloop" if fast else "asyncio", "http": "httptools" if fast else "h11",
            "ws": "websockets-sansio", "ws_per_message_deflate": False, "lifespan": "on", "log_level": "warning", "access_log": False,
            "timeout_graceful_shutdown": 3}


@dataclass
class ServiceHandle:
    """The running API (and dashboard); `stop` ends both."""

    api_url: str
    dashboard_url: str | None
    _server: object = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _dashboard: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the dashboard, then the API server, and wait for both."""
        if self._dashboard is not None:
            stop_process(self._dashboard)
            self._dashboard = None
        self._server.should_exit = True  # type: ignore[attr-defined]
        self._thread.join(timeout=15)

    def wait_dashboard(self, *, timeout_s: float = 60.0) -> bool:
        """Wait until the dashboard answers its health check."""
        if self.dashboard_url is None:
            return False
        return wait_http(f"{self.dashboard_url}/_stcore/health", timeout_s=timeout_s)

    def __enter__(self) -> ServiceHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start_services(settings: Settings, *, warehouse: Warehouse, bus: Bus | None, dashboard: bool = True,
                   host: str | None = None, port: int | None = None, dashboard_port: int | None = None,
                   log_dir: Path | None = None, ready_timeout_s: float = 30.0,
                   problems: Callable[[], list[str]] | None = None) -> ServiceHandle:
    """Start the API in a background thread and, optionally, the dashboard subprocess.

    Parameters
    ----------
    settings
        ``api_host``/``api_port`` and ``dashboard_port`` say where to listen.
    warehouse, bus
        Shared with the caller (the pipeline of `tickwise up`).
    dashboard
        Also start the Streamlit dashboard, pointed at this API.
    log_dir
        Where the dashboard's output goes (``dashboard.log``); default the data dir.
    problems
        The parts of the caller's pipeline that have stopped, for ``/health``.

    Returns
    -------
    ServiceHandle
        Call ``handle.stop()`` (or use it as a context manager) to stop both.

    Examples
    --------
    >>> import tempfile
    >>> from tickwise.config import load_settings
    >>> from tickwise.app import build_warehouse, build_bus
    >>> s = load_settings(data_dir=tempfile.mkdtemp(), api_port=0)
    >>> with start_services(s, warehouse=build_warehouse(s), bus=build_bus(s), dashboard=False) as h:
    ...     httpx.get(h.api_url + "/api/v1/health").json()["status"]
    'ok'
    """
    import uvicorn

    from tickwise.serve.api import create_app

    host = host or settings.api_host
    port = settings.api_port if port is None else port
    app = create_app(settings, warehouse=warehouse, bus=bus, problems=problems)
    config = uvicorn.Config(app, host=host, port=port, **server_options())
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run()
        except BaseException as exc:  # SystemExit from a failed bind ends only this thread
            failure.append(exc)

    thread = threading.Thread(target=serve, name="tickwise-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise BackendError(f"API did not start on {host}:{port} (port in use?)")
        time.sleep(0.02)
    bound = port
    for s in server.servers:
        for sock in s.sockets:
            bound = sock.getsockname()[1]
            break
    api_url = f"http://{host}:{bound}"
    # Everything imported and built so far (FastAPI, pydantic, polars, the pipeline) lives as
    # long as the process: move it out of the collector's reach, so a full collection scans
    # only newer objects (one over the whole heap paused every request for 50-100 ms).
    gc.freeze()
    proc, dashboard_url = None, None
    if dashboard:
        dport = settings.dashboard_port if dashboard_port is None else dashboard_port
        logs = log_dir or settings.data_dir
        logs.mkdir(parents=True, exist_ok=True)
        if not _port_free(host, dport):
            server.should_exit = True
            raise BackendError(f"dashboard port {host}:{dport} is in use; set TICKWISE_DASHBOARD_PORT "
                               "or run with --no-dashboard")
        proc = start_dashboard(api_url=api_url, host=host, port=dport, log_path=logs / "dashboard.log")
        dashboard_url = f"http://{host}:{dport}"
    return ServiceHandle(api_url, dashboard_url, server, thread, proc)
