"""Writing the lake: batched appends, atomic file commits, small-file compaction.

A `LakeWriter` buffers rows per dataset and, on `LakeWriter.flush`, writes one Parquet
file per ``(date, symbol)`` partition. Each file is written under ``<root>/_tmp/`` and
then renamed into its partition (a rename on local disk; a server-side copy on S3, where
an object appears whole or not at all), so a writer killed at any moment leaves no
partial file where readers look. ``flush`` returning is the commit point.

Compaction merges a partition's files into one, keeping the last row written per natural
key, so rows replayed after a crash (the bus delivers at least once) are removed too.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

import polars as pl
import pyarrow as pa
import pyarrow.fs as pfs
import pyarrow.parquet as pq

from tickwise.exceptions import BackendError
from tickwise.lake.datasets import DatasetSpec, conform_table, dataset_spec
from tickwise.lake.files import DataFile, file_name, list_files, partition_dir, superseded, visible
from tickwise.lake.location import LakeLocation

TMP_DIR = "_tmp"


def _plain(schema: pa.Schema) -> pa.Schema:
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        elif pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            t = pa.binary()
        fields.append(pa.field(f.name, t, f.nullable))
    return pa.schema(fields)


def split_partitions(spec: DatasetSpec, table: pa.Table) -> dict[tuple[str, str], pa.Table]:
    """Split conformed rows by ``(date, symbol)``; the tables lose the ``symbol`` column.

    Examples
    --------
    >>> t = pa.table({"symbol": ["A", "B"], "ts_event": [0, 86_400 * 10**9],
    ...               "price": [1.0, 2.0], "size": [1.0, 1.0]})
    >>> sorted(split_partitions(dataset_spec("ticks"), conform_table(dataset_spec("ticks"), t)))
    [('1970-01-01', 'A'), ('1970-01-02', 'B')]
    """
    if table.num_rows == 0:
        return {}
    df = cast(pl.DataFrame, pl.from_arrow(table))
    tcol = pl.col(spec.time_column)
    if df.schema[spec.time_column].is_integer():
        tcol = pl.from_epoch(tcol, time_unit="ns")
    df = df.with_columns(tcol.dt.replace_time_zone(None).dt.date().alias("__date"))
    target = spec.file_schema()
    out = {}
    for (date, symbol), part in df.partition_by(
        ["__date", "symbol"], as_dict=True, include_key=False, maintain_order=True
    ).items():
        arrow = part.to_arrow()
        arrow = arrow.cast(target if target is not None else _plain(arrow.schema))
        out[(date.isoformat(), str(symbol))] = arrow
    return out


#: Attempts and first back-off of a file commit before it fails with `BackendError`.
ATTEMPTS, BACKOFF_S = 3, 0.2


def write_file(location: LakeLocation, directory: str, table: pa.Table, *, kind: str = "part",
               seq: int | None = None, compression: str = "zstd") -> str:
    """Write a table under ``_tmp/`` and rename it into ``directory``; return its path.

    Without ``seq`` the commit time (ns) is used, taken just before the rename. I/O errors
    are retried with back-off, then raised as `BackendError`.
    """
    for attempt in range(ATTEMPTS):
        try:
            return _write_file(location, directory, table, kind=kind, seq=seq, compression=compression)
        except OSError as exc:
            if attempt == ATTEMPTS - 1:
                raise BackendError(
                    f"lake {location.url}: writing a file into {directory} failed {ATTEMPTS} times: {exc}"
                ) from None
            time.sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


def _write_file(location: LakeLocation, directory: str, table: pa.Table, *, kind: str,
                seq: int | None, compression: str) -> str:
    fs = location.filesystem
    uid = uuid.uuid4().hex[:16]
    tmp = location.join(TMP_DIR, f"{uid}.parquet")
    if location.is_local:
        os.makedirs(location.join(TMP_DIR), exist_ok=True)
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression=compression)
            fh.flush()
            os.fsync(fh.fileno())
    else:
        pq.write_table(table, tmp, filesystem=fs, compression=compression)
    fs.create_dir(directory, recursive=True)
    final = f"{directory}/{file_name(kind, seq if seq is not None else time.time_ns(), uid)}"
    fs.move(tmp, final)
    return final


@dataclass(slots=True)
class LakeWriter:
    """Buffers rows per dataset and commits them as Parquet files on `flush`.

    Parameters
    ----------
    location
        Where the lake lives (`tickwise.lake.location.open_location`).
    compact_files
        After a flush, a partition with more visible files than this is compacted.
    threads
        Partitions written at the same time during a flush.

    Examples
    --------
    >>> import tempfile
    >>> from tickwise.lake.location import open_location
    >>> w = LakeWriter(open_location("file://" + tempfile.mkdtemp()))
    >>> w.append("ticks", pa.table({"symbol": ["A"], "ts_event": [0], "price": [1.0], "size": [1.0]}))
    >>> w.pending_rows
    1
    >>> len(w.flush())
    1
    """

    location: LakeLocation
    compact_files: int = 16
    compression: str = "zstd"
    threads: int = 8
    _buffers: dict[str, list[pa.Table]] = field(default_factory=dict)
    _rows: int = 0

    @property
    def pending_rows(self) -> int:
        return self._rows

    def append(self, dataset: str, data: pa.Table | pl.DataFrame) -> None:
        """Buffer rows for a dataset (checked and cast now, written on `flush`)."""
        spec = dataset_spec(dataset)
        table = conform_table(spec, data)
        if table.num_rows:
            self._buffers.setdefault(dataset, []).append(table)
            self._rows += table.num_rows

    def flush(self) -> list[str]:
        """Commit every buffered row; return the paths of the files written."""
        written: list[str] = []
        for name, tables in list(self._buffers.items()):
            spec = dataset_spec(name)
            table = pa.concat_tables(tables, promote_options="permissive")
            parts = split_partitions(spec, table)
            base = self.location.join(spec.path)
            jobs = [(f"{base}/{partition_dir(date, symbol)}", part) for (date, symbol), part in parts.items()]
            if len(jobs) > 1 and self.threads > 1:
                # Parquet encoding and fsync/PUT release the GIL: overlap them across partitions
                with ThreadPoolExecutor(max_workers=self.threads) as pool:
                    written.extend(pool.map(lambda job: write_file(
                        self.location, job[0], job[1], compression=self.compression), jobs))
            else:
                written.extend(write_file(self.location, d, t, compression=self.compression) for d, t in jobs)
            # the buffer goes only once every file of the dataset is committed
            del self._buffers[name]
            self._rows -= table.num_rows
            if self.compact_files > 0:
                compact(self.location, spec, partitions=parts.keys(), min_files=self.compact_files + 1,
                        compression=self.compression, threads=self.threads)
        return written


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one compaction run did."""

    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    deleted: int = 0


def _read_file(fs: pfs.FileSystem, path: str) -> pa.Table:
    with fs.open_input_file(path) as fh:
        return pq.ParquetFile(fh).read()


def _dedupe(spec: DatasetSpec, table: pa.Table) -> pa.Table:
    df = cast(pl.DataFrame, pl.from_arrow(table))
    key = [k for k in spec.key if k in df.columns] or None
    df = df.unique(subset=key, keep="last", maintain_order=True)
    return df.sort([spec.time_column, *[k for k in (key or []) if k != spec.time_column]]).to_arrow()


def compact(location: LakeLocation, spec: DatasetSpec, *,
            partitions: Iterable[tuple[str, str]] | None = None, min_files: int = 2,
            compression: str = "zstd", threads: int = 8) -> CompactionResult:
    """Merge each partition with at least ``min_files`` visible files into one file.

    Rows are de-duplicated by the dataset's key (the last written wins) and sorted by time.
    Superseded files, of these partitions or left by an earlier interrupted run, are deleted.
    """
    fs = location.filesystem
    base = location.join(spec.path)
    wanted = set(partitions) if partitions is not None else None
    files = list_files(fs, base, partitions=wanted)
    by_partition: dict[tuple[str, str], list[DataFile]] = {}
    for f in visible(files):
        by_partition.setdefault(f.partition, []).append(f)
    target = spec.file_schema()

    def merge(item: tuple[tuple[str, str], list[DataFile]]) -> tuple[int, int, int]:
        (date, symbol), group = item
        group = sorted(group, key=lambda f: (f.seq, f.path))
        merged = pa.concat_tables([_read_file(fs, f.path) for f in group], promote_options="permissive")
        out = _dedupe(spec, merged)
        out = out.cast(target if target is not None else _plain(out.schema))
        # the output takes its newest input's seq: it hides exactly its inputs
        write_file(location, f"{base}/{partition_dir(date, symbol)}", out, kind="compact",
                   seq=group[-1].seq, compression=compression)
        return len(group), merged.num_rows, out.num_rows

    todo = [(k, g) for k, g in by_partition.items() if len(g) >= max(min_files, 2)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = list(pool.map(merge, todo))
    n_parts, files_out = len(done), len(done)
    files_in = sum(d[0] for d in done)
    rows_in = sum(d[1] for d in done)
    rows_out = sum(d[2] for d in done)
    stale = superseded(list_files(fs, base, partitions=wanted))
    if stale:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda f: fs.delete_file(f.path), stale))
    return CompactionResult(n_parts, files_in, files_out, rows_in, rows_out, len(stale))


def clean_tmp(location: LakeLocation, *, older_than_s: float = 3600.0) -> int:
    """Delete temporary files left by killed writers; return how many were removed."""
    fs = location.filesystem
    selector = pfs.FileSelector(location.join(TMP_DIR), recursive=True, allow_not_found=True)
    now_ns = time.time_ns()
    removed = 0
    for info in fs.get_file_info(selector):
        if info.type != pfs.FileType.File:
            continue
        mtime = info.mtime_ns
        if mtime is not None and now_ns - mtime < older_than_s * 1e9:
            continue
        fs.delete_file(info.path)
        removed += 1
    return removed
