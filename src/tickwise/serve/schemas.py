"""Request and response shapes of the API, as they appear in its OpenAPI schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: one message saying what was expected and what was found."""

    detail: str


class BarOut(BaseModel):
    symbol: str
    timeframe: str
    ts: dt.datetime = Field(description="start of the bar's window, UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int | None = None
    vwap: float | None = None


class RowOut(BaseModel):
    """A row of an analytics table; columns beyond these are passed through."""

    model_config = ConfigDict(extra="allow")

    symbol: str | None = None
    timeframe: str | None = None
    ts: dt.datetime | None = None


class SymbolsOut(BaseModel):
    symbols: list[str]


class QueryIn(BaseModel):
    """One read-only SQL statement, for SQL too long for a URL."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, description="one read-only statement")
    max_rows: int = Field(default=1000, ge=1, le=100_000)
    timeout_s: float = Field(default=10.0, gt=0, le=60)


class QueryOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="true when more rows existed than max_rows")


class HealthOut(BaseModel):
    status: str = Field(description="ok; or degraded, with HTTP 503 when the warehouse does not answer and "
                                    "with 200 when a part of the pipeline beside the API has stopped (detail says which)")
    version: str
    warehouse: str
    bus: str
    timeframes: list[str]
    symbols: int
    uptime_s: float
    detail: str | None = None


class StatsOut(BaseModel):
    """Pipeline health as the API's process sees it (counters are live inside `tickwise up`)."""

    ticks_total: float
    ticks_per_s: float
    last_tick_age_s: float | None
    bus_lag: dict[str, float]
    deadletters: dict[str, float]
    deadletters_total: float
    bars_written: dict[str, float]
    bar_latency_p99_s: float | None
    stream_subscribers: int
    warehouse_bars: int
    warehouse_deadletters: int
    latest_bar_ts: dt.datetime | None


class AccuracyModelOut(BaseModel):
    model: str
    n: int
    mae: float | None
    mae_random_walk: float | None
    error_ratio: float | None = Field(description="mae / mae_random_walk; below 1 beats the random walk")
    coverage_80: float | None
    coverage_95: float | None


class AccuracyOut(BaseModel):
    symbol: str
    timeframe: str
    models: list[AccuracyModelOut]


class AlertOut(BaseModel):
    ts: dt.datetime | None
    severity: str
    source: str
    symbol: str | None = None
    message: str


class ScoreIn(BaseModel):
    """A series to score for anomalies."""

    model_config = ConfigDict(extra="forbid")

    values: list[float] = Field(min_length=1, max_length=100_000, description="the series, oldest first")
    timestamps: list[dt.datetime] | None = Field(default=None, description="one per value (optional)")
    symbol: str | None = Field(default=None, description="needed with store=true")
    timeframe: str = "1m"
    detector: str = Field(default="zscore", description="zscore, or a detector of tickwise.anomaly")
    window: int = Field(default=20, ge=3, le=10_000)
    threshold: float = Field(default=3.0, gt=0, le=1_000)
    store: bool = Field(default=False, description="write the anomalies found (needs X-API-Key)")


class ScoredPointOut(BaseModel):
    index: int
    ts: dt.datetime | None = None
    value: float
    score: float | None
    is_anomaly: bool


class ScoreOut(BaseModel):
    detector: str
    threshold: float
    points: list[ScoredPointOut]
    anomalies: list[int] = Field(description="indexes of the anomalous points")
    stored: int = 0


class LegacyAnomaliesIn(BaseModel):
    """The older service's body: ``{"symbol": ..., "data": [prices]}``."""

    symbol: str | None = None
    data: list[float] = Field(min_length=1, max_length=100_000)
    threshold: float = Field(default=3.0, gt=0, le=1_000)


class LegacyAnomaliesOut(BaseModel):
    symbol: str | None
    anomalies: list[int]
    scores: list[float | None]


class PredictionOut(BaseModel):
    symbol: str
    timeframe: str
    ts: dt.datetime = Field(description="the bar the prediction is for")
    predicted_price: float
    confidence: float = Field(description="1 - half-width of the 80% interval / predicted price, in [0, 1]")
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None
    model: str | None
