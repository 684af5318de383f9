"""Data-file names, and which files a reader sees.

A committed file is ``part-<seq>-<id>.parquet`` or ``compact-<seq>-<id>.parquet`` inside
``<zone>/<dataset>/date=YYYY-MM-DD/symbol=XYZ/``; ``seq`` is the commit time in
nanoseconds, chosen when the file is renamed into place, so a later commit always has a
larger ``seq``. Files are written under ``_tmp/`` first: anything whose name starts with
``_`` or ``.``, or that does not follow the pattern, is invisible.

A compacted file holds every row of the files it replaced and takes the largest ``seq``
among them; in a partition, readers see the newest compacted file and the part files
committed after it. That makes compaction safe to kill at any point: its inputs are
hidden the instant its output appears, and deleting them afterwards is only tidying.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

import pyarrow.fs as pfs

_NAME = re.compile(r"^(part|compact)-(\d{20})-([0-9a-f]{1,32})\.parquet$")
_DATE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True)
class DataFile:
    """One committed Parquet file of a dataset partition."""

    path: str
    date: str
    symbol: str
    kind: str
    seq: int
    size: int

    @property
    def partition(self) -> tuple[str, str]:
        return self.date, self.symbol


def file_name(kind: str, seq: int, uid: str) -> str:
    """Return a committed file's name.

    Examples
    --------
    >>> file_name("part", 12, "ab")
    'part-00000000000000000012-ab.parquet'
    """
    return f"{kind}-{seq:020d}-{uid}.parquet"


def partition_dir(date: str, symbol: str) -> str:
    """Return the Hive partition path; the symbol is URI-escaped.

    Examples
    --------
    >>> partition_dir("2024-01-02", "EUR/USD")
    'date=2024-01-02/symbol=EUR%2FUSD'
    """
    return f"date={date}/symbol={quote(symbol, safe='')}"


def parse_file(base: str, info: pfs.FileInfo) -> DataFile | None:
    """Return the committed data file at ``info``, or None for anything a reader ignores."""
    if info.type != pfs.FileType.File:
        return None
    rel = info.path[len(base) :].strip("/").split("/")
    if len(rel) != 3:
        return None
    date_part, symbol_part, name = rel
    date = _DATE.match(date_part)
    match = _NAME.match(name)
    if date is None or match is None or not symbol_part.startswith("symbol="):
        return None
    return DataFile(
        path=info.path,
        date=date.group(1),
        symbol=unquote(symbol_part[len("symbol=") :]),
        kind=match.group(1),
        seq=int(match.group(2)),
        size=int(info.size or 0),
    )


def list_files(fs: pfs.FileSystem, base: str, *,
               partitions: Iterable[tuple[str, str]] | None = None) -> list[DataFile]:
    """Every committed data file under a dataset's directory (or in some of its partitions)."""
    if partitions is None:
        infos = fs.get_file_info(pfs.FileSelector(base, recursive=True, allow_not_found=True))
    else:
        infos = []
        for date, symbol in sorted(set(partitions)):
            selector = pfs.FileSelector(f"{base}/{partition_dir(date, symbol)}", allow_not_found=True)
            infos.extend(fs.get_file_info(selector))
    files = [parse_file(base, info) for info in infos]
    return sorted((f for f in files if f is not None), key=lambda f: (f.date, f.symbol, f.seq, f.path))


def visible(files: list[DataFile]) -> list[DataFile]:
    """Keep the files readers see: per partition, the newest compacted file and later parts.

    Examples
    --------
    >>> mk = lambda kind, seq: DataFile(f"{kind}{seq}", "2024-01-02", "A", kind, seq, 1)
    >>> [f.path for f in visible([mk("part", 1), mk("compact", 2), mk("part", 3)])]
    ['compact2', 'part3']
    """
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for f in files:
        if f.kind == "compact":
            newest[f.partition] = max(newest.get(f.partition, (-1, "")), (f.seq, f.path))
    out = []
    for f in files:
        floor = newest.get(f.partition)
        if floor is None or f.path == floor[1] or (f.kind == "part" and f.seq > floor[0]):
            out.append(f)
    return out


def superseded(files: list[DataFile]) -> list[DataFile]:
    """The committed files no reader sees any more (safe to delete)."""
    keep = {f.path for f in visible(files)}
    return [f for f in files if f.path not in keep]
