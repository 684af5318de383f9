"""Indicator names: ``sma_9``, ``rsi_14``, ``macd``, ``bbands_20``… parsed into specs.

A name is a family followed by its integer parameters, joined by ``_``. Each family is
registered once in `FAMILIES` with its streaming class and batch function, so everything
that takes indicator names (the CLI, the conformance test, the ETL) discovers them here.

========================  ==================================================  ===================
name                      columns                                             inputs
========================  ==================================================  ===================
``sma_N``                 ``sma_N``                                           close
``ema_N``                 ``ema_N``                                           close
``wma_N``                 ``wma_N``                                           close
``rsi_N``                 ``rsi_N``                                           close
``macd`` (12, 26, 9)      ``macd``, ``macd_signal``, ``macd_hist``            close
``macd_F_S_G``            ``macd_F_S_G``, ``…_signal``, ``…_hist``            close
``bbands_N`` (2 dev.)     ``bbands_N_upper``, ``bbands_N_middle``, ``…_lower``  close
``atr_N``                 ``atr_N``                                           high, low, close
``obv``                   ``obv``                                             close, volume
``vwap`` / ``vwap_N``     ``vwap`` (cumulative) / ``vwap_N`` (rolling)        high, low, close, volume
``volume_sma_N``          ``volume_sma_N``                                    volume
========================  ==================================================  ===================

Examples
--------
>>> spec = parse_indicator("bbands_20")
>>> spec.columns
('bbands_20_upper', 'bbands_20_middle', 'bbands_20_lower')
>>> [s.name for s in parse_indicators("sma_9, macd")]
['sma_9', 'macd']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tickwise.exceptions import InputError
from tickwise.indicators import batch
from tickwise.indicators.base import FloatArray, Indicator
from tickwise.indicators.streaming import ATR, EMA, MACD, OBV, RSI, SMA, VWAP, WMA, BollingerBands

BatchFn = Callable[[Mapping[str, FloatArray], tuple[int, ...]], tuple[FloatArray, ...]]


@dataclass(frozen=True, slots=True)
class Family:
    """One kind of indicator and how to build it from integer parameters."""

    name: str
    #: how the name is written, for help and errors, e.g. ``"sma_N"``
    pattern: str
    #: accepted parameter counts, e.g. ``(1,)`` or ``(0, 3)``
    arities: tuple[int, ...]
    inputs: tuple[str, ...]
    streaming: Callable[..., Indicator]
    batch: BatchFn
    #: names the conformance test and docs use
    examples: tuple[str, ...]
    #: parameters used when the name gives none (``macd`` is ``macd_12_26_9``)
    defaults: tuple[int, ...] = ()


def _close(fn: Callable[..., FloatArray]) -> BatchFn:
    return lambda a, p: (fn(a["close"], period=p[0]),)


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add an indicator family (its names then parse everywhere)."""
    FAMILIES[family.name] = family
    return family


register_family(Family("sma", "sma_N", (1,), ("close",), SMA, _close(batch.sma), ("sma_9", "sma_21")))
register_family(Family("ema", "ema_N", (1,), ("close",), EMA, _close(batch.ema), ("ema_12", "ema_26")))
register_family(Family("wma", "wma_N", (1,), ("close",), WMA, _close(batch.wma), ("wma_10",)))
register_family(Family("rsi", "rsi_N", (1,), ("close",), RSI, _close(batch.rsi), ("rsi_14", "rsi_2")))
register_family(Family(
    "macd", "macd or macd_FAST_SLOW_SIGNAL", (0, 3), ("close",), MACD,
    lambda a, p: batch.macd(a["close"], fast=p[0], slow=p[1], signal=p[2]),
    ("macd", "macd_5_35_5"), defaults=(12, 26, 9),
))
register_family(Family(
    "bbands", "bbands_N", (1,), ("close",), BollingerBands,
    lambda a, p: batch.bbands(a["close"], period=p[0]), ("bbands_20", "bbands_5"),
))
register_family(Family(
    "atr", "atr_N", (1,), ("high", "low", "close"), ATR,
    lambda a, p: (batch.atr(a["high"], a["low"], a["close"], period=p[0]),), ("atr_14", "atr_1"),
))
register_family(Family(
    "obv", "obv", (0,), ("close", "volume"), OBV,
    lambda a, p: (batch.obv(a["close"], a["volume"]),), ("obv",),
))
register_family(Family(
    "vwap", "vwap or vwap_N", (0, 1), ("high", "low", "close", "volume"),
    lambda *p: VWAP(p[0] if p else None),
    lambda a, p: (batch.vwap(a["high"], a["low"], a["close"], a["volume"], window=p[0] if p else None),),
    ("vwap", "vwap_20"),
))
register_family(Family(
    "volume_sma", "volume_sma_N", (1,), ("volume",),
    lambda p: SMA(p, source="volume", name=f"volume_sma_{p}"),
    lambda a, p: (batch.sma(a["volume"], period=p[0]),), ("volume_sma_20",),
))


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """A parsed indicator name: its family, parameters and output columns."""

    name: str
    family: Family
    params: tuple[int, ...]
    columns: tuple[str, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.family.inputs

    def streaming(self) -> Indicator:
        """Return a fresh streaming indicator."""
        return self.family.streaming(*self.params)

    def batch(self, arrays: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Compute over whole arrays keyed by bar field; return one array per column.

        Examples
        --------
        >>> import numpy as np
        >>> parse_indicator("sma_2").batch({"close": np.array([1.0, 3.0])})["sma_2"].tolist()
        [nan, 2.0]
        """
        return dict(zip(self.columns, self.family.batch(arrays, self.params), strict=True))


_NAME = re.compile(r"^(?P<family>[a-z]+(?:_[a-z]+)*)(?P<params>(?:_\d+)*)$")


def valid_names() -> str:
    """The name patterns, for help texts and errors."""
    return ", ".join(f.pattern for f in FAMILIES.values())


def parse_indicator(name: str) -> IndicatorSpec:
    """Parse one indicator name; an unknown or malformed name raises `InputError`.

    Examples
    --------
    >>> parse_indicator("macd").params
    (12, 26, 9)
    """
    text = name.strip().lower()
    match = _NAME.match(text)
    family = FAMILIES.get(match.group("family")) if match else None
    if match is None or family is None:
        raise InputError(
            f"indicator must be one of {valid_names()} (e.g. sma_9, rsi_14, macd), was {name!r}"
        )
    params = tuple(int(p) for p in match.group("params").split("_")[1:])
    if len(params) not in family.arities:
        counts = " or ".join(str(a) for a in family.arities)
        raise InputError(
            f"indicator {family.name} takes {counts} parameter(s), written {family.pattern}, was {name!r}"
        )
    full = params or family.defaults
    try:
        indicator = family.streaming(*full)
    except ValueError as exc:
        raise InputError(f"indicator {name!r}: {exc}") from None
    shown = () if params == family.defaults else params
    canonical = family.name + "".join(f"_{p}" for p in shown)
    return IndicatorSpec(canonical, family, full, indicator.columns)


def parse_indicators(names: str | Iterable[str]) -> list[IndicatorSpec]:
    """Parse a comma-separated list (or an iterable) of names, dropping repeats.

    Examples
    --------
    >>> [s.name for s in parse_indicators("obv,obv,atr_14")]
    ['obv', 'atr_14']
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    specs: dict[str, IndicatorSpec] = {}
    for item in items:
        if item.strip():
            spec = parse_indicator(item)
            specs.setdefault(spec.name, spec)
    if not specs:
        raise InputError(f"at least one indicator is needed, one of {valid_names()}, was {names!r}")
    return list(specs.values())


def as_specs(indicators: str | Iterable[str] | Iterable[IndicatorSpec]) -> list[IndicatorSpec]:
    """Accept names (a comma-separated string or an iterable) or specs; return specs.

    Examples
    --------
    >>> [s.name for s in as_specs("sma_9,ema_12")]
    ['sma_9', 'ema_12']
    """
    if isinstance(indicators, str):
        return parse_indicators(indicators)
    items = list(indicators)
    if items and all(isinstance(i, IndicatorSpec) for i in items):
        return items  # type: ignore[return-value]
    return parse_indicators([str(i) for i in items])
