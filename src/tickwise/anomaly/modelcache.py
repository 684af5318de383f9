"""An on-disk cache of fitted models, so a model trained once per machine is not trained again.

The ``classifier`` detector trains on the shipped bars on first use (seconds per member).
Its fits are pickled into ``TICKWISE_MODEL_CACHE`` (default ``$XDG_CACHE_HOME/tickwise/models``,
i.e. ``~/.cache/tickwise/models``; ``off`` disables the cache). A file's name is a hash of
everything the fit depends on: the training settings, the versions of Python, numpy and
scikit-learn, and the bytes of the training data and of the modules that build the training
set. Change any of them and the old file is simply not found. A file that cannot be read
(truncated, foreign) is refitted and replaced; a directory that cannot be written only costs
the refit next time. Files are written to a temporary name and renamed, so a reader never
sees half a file; a temporary file a process left when it died mid-write (a background fit
cut off at exit) is removed by the next write to the folder once it is `STALE_S` old. Processes
sharing the folder fit a model once between them: a fit holds an advisory lock on a file beside
the model's (``fcntl.flock``: released by the kernel when its holder dies), and a process that
wanted the same model waits for it and loads what the holder stored.

Only load a cache directory you own: unpickling runs code.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import platform
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so processes may fit the same member side by side
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Environment variable naming the cache directory (``off`` disables it).
ENV = "TICKWISE_MODEL_CACHE"
#: Age in seconds after which a leftover temporary file is taken for a dead writer's.
STALE_S = 3600.0


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache directory named by ``environ`` (default: the process environment), or None
    when the cache is off.

    Examples
    --------
    >>> cache_dir({ENV: "off"}) is None, cache_dir({ENV: "/tmp/tw-models"})
    (True, PosixPath('/tmp/tw-models'))
    >>> cache_dir({"XDG_CACHE_HOME": "/var/cache/me"})
    PosixPath('/var/cache/me/tickwise/models')
    """
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "").strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "tickwise" / "models"


def fingerprint(parts: Iterable[str | bytes]) -> str:
    """A hex digest of ``parts`` and of the library versions a pickled model depends on.

    Examples
    --------
    >>> fingerprint(["a", b"b"]) == fingerprint(["a", b"b"]), fingerprint(["a"]) == fingerprint(["b"])
    (True, False)
    """
    import numpy
    import sklearn

    h = hashlib.sha256()
    for part in (platform.python_version(), numpy.__version__, sklearn.__version__, *parts):
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:32]


def unwritable(folder: Path) -> str | None:
    """Why models cannot be stored in ``folder`` (created if missing), or None when they can.

    Examples
    --------
    >>> with tempfile.TemporaryDirectory() as d:
    ...     unwritable(Path(d) / "models") is None, unwritable(Path("/dev/null/models"))
    (True, 'Not a directory')
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def stored(name: str, key: str) -> bool:
    """Whether a model is stored under ``name-key`` (so `cached` will not fit it)."""
    folder = cache_dir()
    return folder is not None and (folder / f"{name}-{key}.pkl").exists()


def cached(name: str, key: str, fit: Callable[[], T]) -> T:
    """The model stored under ``name-key`` in `cache_dir`, or ``fit()``'s result, stored
    there for next time (see the module docstring for what goes wrong and how it is handled)."""
    folder = cache_dir()
    if folder is None:
        return fit()
    path = folder / f"{name}-{key}.pkl"
    model = _load(path)
    if model is not None:
        return model
    with _fitting(path):
        model = _load(path, warn=False)  # another process may have stored it while this one waited for the lock
        if model is None:
            model = fit()
            _store(path, model)
    return model


def _load(path: Path, *, warn: bool = True) -> Any:
    """The model pickled at ``path``, or None when there is none or it cannot be read."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:
            return pickle.load(f)  # our own cache directory: see the module docstring
    except Exception as exc:  # a truncated or foreign file: refit and replace it
        if warn:
            log.warning("model cache file %s could not be read (%s); fitting again", path, exc)
        return None


@contextlib.contextmanager
def _fitting(path: Path) -> Iterator[None]:
    """Hold the fit lock of ``path`` (blocking while another process holds it); without a
    writable folder (or without ``fcntl``) there is nothing to share, and no lock."""
    if fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(f".{path.stem}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove_stale(folder: Path, now: float) -> None:
    """Remove temporary files of writers that died mid-write (older than `STALE_S`; a younger
    one may be another process writing now)."""
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_S:
                tmp.unlink()
                log.info("removed %s, left by a write that did not finish", tmp)
        except OSError:  # gone already (another process cleaned it) or not ours to remove
            continue


def _store(path: Path, model: object) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path.parent, time.time())
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("model cache %s is not writable (%s); the model will be fitted again next time", path.parent, exc)
