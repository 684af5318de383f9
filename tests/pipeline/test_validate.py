from __future__ import annotations

import json
import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.pipeline.validate import TICK_POLARS_SCHEMA, decode_lines, validate_ticks

NOW = 1_700_000_000 * 10**9
GOOD = {"symbol": "AAPL", "ts": NOW - 10**9, "price": 190.5, "size": 100, "id": "AAPL-1"}


def check(lines: list[bytes]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ticks, dead = decode_lines(lines, source="test")
    good, bad = validate_ticks(ticks, source="test", now_ns=NOW)
    return good, pl.concat([dead, bad])


def test_validate_good_ticks_pass_through_fast_path() -> None:
    lines = [json.dumps({**GOOD, "id": f"A-{i}"}).encode() for i in range(100)]
    good, dead = check(lines)
    assert good.height == 100 and dead.height == 0
    assert good.schema == pl.Schema(TICK_POLARS_SCHEMA)


def test_validate_each_bad_shape_lands_in_deadletter_with_reason() -> None:
    cases = {
        b"{not json": "malformed",
        b"[1,2,3]": "malformed",
        json.dumps({k: v for k, v in GOOD.items() if k != "price"}).encode(): "malformed",
        json.dumps({**GOOD, "price": "abc"}).encode(): "malformed",
        json.dumps({**GOOD, "ts": "yesterday"}).encode(): "malformed",
        b'{"symbol":"AAPL","ts":1,"price":1e999,"size":1}': "malformed",  # out of float range
        json.dumps({**GOOD, "price": -3.0}).encode(): "bad_price",
        json.dumps({**GOOD, "price": 0.0}).encode(): "bad_price",
        json.dumps({**GOOD, "size": -1}).encode(): "bad_size",
        json.dumps({**GOOD, "symbol": ""}).encode(): "bad_symbol",
        json.dumps({**GOOD, "symbol": "bad symbol!"}).encode(): "bad_symbol",
        json.dumps({**GOOD, "ts": NOW + 3600 * 10**9}).encode(): "bad_timestamp",
        json.dumps({**GOOD, "ts": -5}).encode(): "bad_timestamp",
        json.dumps({**GOOD, "ts": 2**70}).encode(): "bad_timestamp",
        b"\xff\xfe\x00garbage": "malformed",
    }
    good_line = json.dumps(GOOD).encode()
    for line, reason in cases.items():
        good, dead = check([good_line, line])
        assert good.height == 1, line
        assert dead["reason"].str.split(":").list.first().to_list() == [reason], line
        assert dead["payload"].str.len_chars()[0] > 0  # the original payload is kept


def test_validate_iso_timestamp_is_accepted() -> None:
    good, dead = check([json.dumps({**GOOD, "ts": "2023-11-14T22:13:19+00:00"}).encode()])
    assert dead.height == 0 and good["ts_event"].to_list() == [1_699_999_999 * 10**9]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_validate_fuzzed_bytes_never_crash_and_nothing_vanishes(blobs: list[bytes]) -> None:
    lines = [b.replace(b"\n", b" ") for b in blobs]
    good, dead = check(lines)
    assert good.height + dead.height == sum(1 for ln in lines if ln.strip())
    assert dead["reason"].null_count() == 0


@settings(max_examples=200, deadline=None)
@given(
    price=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10)),
    size=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10)),
    symbol=st.text(max_size=40),
)
def test_validate_fuzzed_values_are_valid_or_deadlettered(price: float, size: float, symbol: str) -> None:
    frame = pl.DataFrame({"symbol": [symbol], "ts_event": [NOW], "price": [float(price)], "size": [float(size)],
                          "id": [None]}, schema=TICK_POLARS_SCHEMA)
    good, dead = validate_ticks(frame, source="fuzz", now_ns=NOW)
    assert good.height + dead.height == 1
    if good.height:
        assert math.isfinite(good["price"][0]) and good["price"][0] > 0 and good["size"][0] >= 0
