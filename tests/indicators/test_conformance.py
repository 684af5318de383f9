"""Every registered indicator: streaming == batch == TA-Lib (Function and Streaming API), every bar.

The families are discovered from the registry; a family without a reference here fails,
so a new indicator cannot land untested. VWAP is not in TA-Lib: its reference is the
definition written out plainly with exact sums (math.fsum).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import talib
from talib import stream

from tickwise.indicators import FAMILIES, IndicatorSpec, parse_indicator

RTOL = 1e-9

Arrays = dict[str, np.ndarray]


def _vwap_reference(a: Arrays, params: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    pv = [(h + lo + c) / 3.0 * v for h, lo, c, v in zip(a["high"], a["low"], a["close"], a["volume"], strict=True)]
    out = np.full(len(pv), np.nan)
    for t in range(len(pv)):
        start = 0 if not params else t - params[0] + 1
        if start < 0:
            continue
        den = math.fsum(a["volume"][start : t + 1])
        if den != 0.0:
            out[t] = math.fsum(pv[start : t + 1]) / den
    return (out,)


#: family -> (Function API reference, name of the TA-Lib stream class or None, argument builder)
REFERENCES: dict[str, tuple[Callable[[Arrays, tuple[int, ...]], tuple[np.ndarray, ...]], str | None,
                            Callable[[tuple[int, ...]], dict]]] = {
    "sma": (lambda a, p: (talib.SMA(a["close"], p[0]),), "SMA", lambda p: {"timeperiod": p[0]}),
    "ema": (lambda a, p: (talib.EMA(a["close"], p[0]),), "EMA", lambda p: {"timeperiod": p[0]}),
    "wma": (lambda a, p: (talib.WMA(a["close"], p[0]),), "WMA", lambda p: {"timeperiod": p[0]}),
    "rsi": (lambda a, p: (talib.RSI(a["close"], p[0]),), "RSI", lambda p: {"timeperiod": p[0]}),
    "macd": (lambda a, p: talib.MACD(a["close"], *p), "MACD",
             lambda p: {"fastperiod": p[0], "slowperiod": p[1], "signalperiod": p[2]}),
    "bbands": (lambda a, p: talib.BBANDS(a["close"], p[0], 2.0, 2.0, 0), "BBANDS",
               lambda p: {"timeperiod": p[0], "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0}),
    "atr": (lambda a, p: (talib.ATR(a["high"], a["low"], a["close"], p[0]),), "ATR",
            lambda p: {"timeperiod": p[0]}),
    "obv": (lambda a, p: (talib.OBV(a["close"], a["volume"]),), "OBV", lambda p: {}),
    "vwap": (_vwap_reference, None, lambda p: {}),
    "volume_sma": (lambda a, p: (talib.SMA(a["volume"], p[0]),), None, lambda p: {}),
}

CASES = [name for family in FAMILIES.values() for name in family.examples]


def _talib_inputs(spec: IndicatorSpec, a: Arrays) -> list[np.ndarray]:
    return [a[field] for field in spec.inputs]


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Same NaN pattern, and |a - e| <= 1e-9 |e| (absolute floor 1e-12 of the series' scale)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (
        f"{what}: warm-up differs, first values at {np.argmax(~np.isnan(actual))} "
        f"and {np.argmax(~np.isnan(expected))}"
    )
    ok = ~np.isnan(expected)
    if not ok.any():
        return
    scale = float(np.max(np.abs(expected[ok])))
    err = np.abs(actual[ok] - expected[ok])
    limit = RTOL * np.abs(expected[ok]) + 1e-12 * scale
    worst = int(np.argmax(err - limit))
    assert np.all(err <= limit), (
        f"{what}: bar {np.flatnonzero(ok)[worst]} is {actual[ok][worst]!r}, "
        f"reference {expected[ok][worst]!r}"
    )


def test_references_every_family_has_one() -> None:
    assert sorted(REFERENCES) == sorted(FAMILIES)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("data", ["aapl", "msft"])
def test_batch_matches_talib_function_api(name: str, data: str, request: pytest.FixtureRequest) -> None:
    a = request.getfixturevalue(data)
    spec = parse_indicator(name)
    reference = REFERENCES[spec.family.name][0](a, spec.params)
    ours = spec.batch(a)
    for column, expected in zip(spec.columns, reference, strict=True):
        assert_close(ours[column], expected, f"{data} {column} batch vs TA-Lib")


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("data", ["aapl", "msft"])
def test_streaming_matches_batch_every_bar(name: str, data: str, request: pytest.FixtureRequest) -> None:
    a = request.getfixturevalue(data)
    spec = parse_indicator(name)
    expected = spec.batch(a)
    indicator = spec.streaming()
    assert indicator.columns == spec.columns
    inputs = [a[field].tolist() for field in indicator.inputs]
    got = np.full((len(a["close"]), len(spec.columns)), np.nan)
    ready = np.zeros(len(a["close"]), dtype=bool)
    for t, bar in enumerate(zip(*inputs, strict=True)):
        indicator.update(*bar)
        got[t] = indicator.values
        ready[t] = indicator.is_ready
    for j, column in enumerate(spec.columns):
        assert_close(got[:, j], expected[column], f"{data} {column} streaming vs batch")
        # the batch kernels run the streaming update itself: the same bits, not just close
        np.testing.assert_array_equal(got[:, j], expected[column], err_msg=f"{data} {column}")
    assert np.array_equal(ready, ~np.isnan(got[:, 0]))


@pytest.mark.parametrize("name", CASES)
def test_batch_short_and_flat_series_equals_streaming_bit_for_bit(name: str, aapl: Arrays) -> None:
    spec = parse_indicator(name)
    flat = {field: np.full(60, a[0]) for field, a in aapl.items()}  # Bollinger's two-pass path
    cases = [{field: a[:n] for field, a in aapl.items()} for n in range(40)] + [flat]
    for a in cases:
        n = len(a["close"])
        ours = spec.batch(a)
        indicator = spec.streaming()
        got = np.full((n, len(spec.columns)), np.nan)
        for t, bar in enumerate(zip(*[a[field].tolist() for field in indicator.inputs], strict=True)):
            indicator.update(*bar)
            got[t] = indicator.values
        for j, column in enumerate(spec.columns):
            assert ours[column].shape == (n,)
            np.testing.assert_array_equal(got[:, j], ours[column], err_msg=f"{column} over {n} bars")


@pytest.mark.parametrize("name", [n for n in CASES if REFERENCES[parse_indicator(n).family.name][1]])
@pytest.mark.parametrize("data", ["aapl", "msft"])
def test_streaming_matches_talib_stream_api_every_bar(name: str, data: str,
                                                     request: pytest.FixtureRequest) -> None:
    a = request.getfixturevalue(data)
    spec = parse_indicator(name)
    _, stream_name, kwargs = REFERENCES[spec.family.name]
    opener = getattr(stream, stream_name)
    inputs = _talib_inputs(spec, a)
    indicator = spec.streaming()
    handle = None
    compared = 0
    for t, bar in enumerate(zip(*[x.tolist() for x in inputs], strict=True)):
        indicator.update(*bar)
        if handle is None:
            try:
                handle = opener(*[x[: t + 1] for x in inputs], **kwargs(spec.params))
            except talib.InsufficientHistory:
                assert not indicator.is_ready or spec.family.name in ("obv",)
                continue
            theirs = handle.value
        else:
            theirs = handle.update(*bar)
        theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        for column, ours, ref in zip(spec.columns, indicator.values, theirs, strict=True):
            assert_close(np.array([ours]), np.array([ref]), f"{data} {column} bar {t} vs talib.stream")
        compared += 1
    assert compared > len(a["close"]) - 60
