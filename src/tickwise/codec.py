"""Payload encodings on the bus: Arrow IPC for columnar batches, JSON for single records."""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa

_json_encoder = msgspec.json.Encoder()


def encode_table(table: pa.Table | pa.RecordBatch) -> bytes:
    """Serialize a table as one Arrow IPC stream.

    Examples
    --------
    >>> decode_table(encode_table(pa.table({"x": [1, 2]}))).column("x").to_pylist()
    [1, 2]
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().to_pybytes()


def decode_table(payload: bytes) -> pa.Table:
    """Read a table written by `encode_table`."""
    return pa.ipc.open_stream(payload).read_all()


def encode_json(record: Any) -> bytes:
    """Serialize one record as JSON."""
    return _json_encoder.encode(record)


def decode_json(payload: bytes) -> Any:
    """Read one JSON record."""
    return msgspec.json.decode(payload)
