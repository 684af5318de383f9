"""Shared fixtures: real-data paths and real services.

A test that needs a service asks for its fixture. When the service is absent the test
skips with the reason, unless TICKWISE_REQUIRE_SERVICES=1 (as in CI), where it fails.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"
REQUIRE_SERVICES = os.environ.get("TICKWISE_REQUIRE_SERVICES") == "1"

os.environ.setdefault("TICKWISE_CONFIG", str(ROOT / "tests" / "no-such-tickwise.toml"))
# fitted classifier members are cached on disk for the whole session (subprocesses included),
# in a folder of its own, not the user's ~/.cache
if "TICKWISE_MODEL_CACHE" not in os.environ:
    _MODELS = tempfile.mkdtemp(prefix="tickwise-test-models-")
    os.environ["TICKWISE_MODEL_CACHE"] = _MODELS
    atexit.register(shutil.rmtree, _MODELS, ignore_errors=True)


def missing(reason: str) -> None:
    """Skip, or fail when services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def shared_file(name: str) -> Path:
    """Path of a real data file in ../shared/data, or skip with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data file {path} is absent (it ships beside the repo in CI)")
    return path


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _worker() -> int:
    """This pytest-xdist worker's number (0 for gw0 and without xdist): tests on other workers
    run at the same time, so a shared service gets a namespace per worker."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never the same twice in one test session."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of the test's own (db 9, 10, ... for xdist workers gw0, gw1, ...), emptied before and after."""
    if not _port_open("127.0.0.1", 6379):
        missing("Redis is not running on 127.0.0.1:6379")
    import redis

    db = 9 + _worker()
    if db > 15:  # Redis has 16 databases by default
        pytest.fail(f"xdist worker {_worker()} has no Redis database of its own: run at most 7 workers")
    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database of the test's own, dropped afterwards."""
    if not _port_open("127.0.0.1", 5432):
        missing("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"tw_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def moto_s3() -> Iterator[str]:
    """An S3 endpoint (moto server) on 127.0.0.1, started and stopped by this test."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        missing("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not _port_open("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                missing("moto_server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def settings(tmp_path: Path):
    """Embedded-default settings with a data dir of the test's own."""
    from tickwise.config import load_settings

    return load_settings(data_dir=tmp_path / "data", bus="memory://")
