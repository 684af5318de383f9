"""The lake as readers see it: datasets, a catalog of them, and reads by symbol and time."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tickwise.lake.datasets import DATASETS, PARTITION_SCHEMA, DatasetSpec, dataset_spec
from tickwise.lake.files import DataFile, list_files, visible
from tickwise.lake.location import LakeLocation, open_location
from tickwise.lake.writer import CompactionResult, LakeWriter, clean_tmp, compact


@dataclass(frozen=True, slots=True)
class TableInfo:
    """One catalog entry: what a crawler would record about a dataset."""

    name: str
    zone: str
    location: str
    schema: pa.Schema
    partitions: int
    files: int
    rows: int
    size_bytes: int
    first_date: str | None
    last_date: str | None
    symbols: int

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "zone": self.zone,
            "location": self.location,
            "columns": [{"name": f.name, "type": str(f.type)} for f in self.schema],
            "partition_keys": PARTITION_SCHEMA.names,
            "partitions": self.partitions,
            "files": self.files,
            "rows": self.rows,
            "size_bytes": self.size_bytes,
            "first_date": self.first_date,
            "last_date": self.last_date,
            "symbols": self.symbols,
        }


class Lake:
    """A Parquet lake on local disk or S3: write, read, catalog, compact.

    Examples
    --------
    >>> import tempfile
    >>> lake = Lake(open_location("file://" + tempfile.mkdtemp()))
    >>> lake.write("ticks", pa.table({"symbol": ["A", "A"], "ts_event": [1, 2],
    ...                                "price": [1.0, 1.1], "size": [5.0, 6.0]}))
    1
    >>> lake.read("ticks").column("price").to_pylist()
    [1.0, 1.1]
    """

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        self.url = location.url

    # -- writing -------------------------------------------------------------------------
    def writer(self, *, compact_files: int = 16) -> LakeWriter:
        """Return a buffering writer onto this lake."""
        return LakeWriter(self.location, compact_files=compact_files)

    def write(self, dataset: str, data: pa.Table) -> int:
        """Append rows to a dataset and commit at once; return the number of files written."""
        writer = self.writer()
        writer.append(dataset, data)
        return len(writer.flush())

    def compact(self, dataset: str | None = None, *, min_files: int = 2,
                tmp_older_than_s: float = 3600.0) -> dict[str, CompactionResult]:
        """Compact partitions with at least ``min_files`` files; drop stale temporary files."""
        names = [dataset] if dataset else list(DATASETS)
        out = {name: compact(self.location, dataset_spec(name), min_files=min_files) for name in names}
        clean_tmp(self.location, older_than_s=tmp_older_than_s)
        return out

    # -- reading -------------------------------------------------------------------------
    def files(self, dataset: str) -> list[DataFile]:
        """The data files of a dataset that readers see, by partition then commit order."""
        spec = dataset_spec(dataset)
        return visible(list_files(self.location.filesystem, self.location.join(spec.path)))

    def dataset(self, name: str, *, files: list[DataFile] | None = None) -> ds.Dataset | None:
        """Return a dataset as a `pyarrow.dataset.Dataset` (with ``date`` and ``symbol``), or None."""
        spec = dataset_spec(name)
        files = self.files(name) if files is None else files
        if not files:
            return None
        fs = self.location.filesystem
        schema = self._schema(spec, files)
        return ds.dataset(
            [f.path for f in files],
            schema=schema,
            filesystem=fs,
            format="parquet",
            partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
            partition_base_dir=self.location.join(spec.path),
        )

    def _schema(self, spec: DatasetSpec, files: list[DataFile]) -> pa.Schema:
        stored = spec.file_schema()
        if stored is None:
            # free-schema datasets may gain columns over time: unify every file's footer
            fs = self.location.filesystem
            schemas = []
            for f in files:
                with fs.open_input_file(f.path) as fh:
                    schemas.append(pq.read_schema(fh))
            stored = pa.unify_schemas(schemas, promote_options="permissive")
        return pa.schema([*stored, *PARTITION_SCHEMA])

    def read(self, name: str, *, symbols: list[str] | None = None, start_ts: int | None = None,
             end_ts: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """Read rows of a dataset, optionally for some symbols and a time range (ns, end exclusive).

        Columns come back in the dataset's order with ``symbol`` first and without ``date``;
        rows are sorted by symbol and time.
        """
        spec = dataset_spec(name)
        files = self.files(name)
        if symbols is not None:
            wanted = set(symbols)
            files = [f for f in files if f.symbol in wanted]
        dataset = self.dataset(name, files=files)
        if dataset is None:
            return pa.table({})
        filt = None
        tcol = ds.field(spec.time_column)
        ttype = dataset.schema.field(spec.time_column).type
        for bound, op in ((start_ts, "ge"), (end_ts, "lt")):
            if bound is None:
                continue
            value = pa.scalar(bound, pa.int64()).cast(ttype) if pa.types.is_timestamp(ttype) else bound
            expr = tcol >= value if op == "ge" else tcol < value
            filt = expr if filt is None else filt & expr
        table = dataset.to_table(filter=filt)
        names = ["symbol", *[c for c in table.column_names if c not in ("symbol", "date")]]
        if columns is not None:
            names = [c for c in names if c in columns or c == "symbol"]
        table = table.select(names)
        order = [("symbol", "ascending"), (spec.time_column, "ascending")]
        return table.take(pc.sort_indices(table, sort_keys=order))

    # -- catalog -------------------------------------------------------------------------
    def tables(self) -> list[TableInfo]:
        """Describe every dataset that has data: schema, partitions, files, rows, size."""
        out = []
        for name, spec in DATASETS.items():
            files = self.files(name)
            dataset = self.dataset(name, files=files)
            if dataset is None:
                continue
            dates = sorted({f.date for f in files})
            out.append(
                TableInfo(
                    name=name,
                    zone=spec.zone,
                    location=self.location.join(spec.path),
                    schema=dataset.schema,
                    partitions=len({f.partition for f in files}),
                    files=len(files),
                    rows=dataset.count_rows(),
                    size_bytes=sum(f.size for f in files),
                    first_date=dates[0],
                    last_date=dates[-1],
                    symbols=len({f.symbol for f in files}),
                )
            )
        return out


def open_lake(url: str, *, endpoint: str = "", access_key: str = "", secret_key: str = "",
              region: str = "us-east-1") -> Lake:
    """Open the lake at a ``file://`` or ``s3://`` URL.

    Examples
    --------
    >>> open_lake("file:///tmp/tw-doc-lake").location.is_local
    True
    """
    return Lake(open_location(url, endpoint=endpoint, access_key=access_key,
                              secret_key=secret_key, region=region))
