"""Prometheus metrics, defined once and updated where the work happens.

The API serves them at ``/metrics``. Names follow Prometheus conventions
(``_total`` for counters, base units, seconds for durations).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKS_INGESTED = Counter("tickwise_ticks_ingested_total", "Ticks accepted by the pipeline", ["source"])
TICKS_PROCESSED = Counter("tickwise_ticks_processed_total", "Valid ticks aggregated into bars")
DEADLETTERS = Counter("tickwise_deadletters_total", "Records sent to the dead-letter topic", ["reason"])
BARS_WRITTEN = Counter("tickwise_bars_written_total", "Closed bars committed to the warehouse", ["timeframe"])
BAR_LATENCY = Histogram(
    "tickwise_bar_latency_seconds",
    "From the watermark passing a window's end to the bar being committed",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BUS_LAG = Gauge("tickwise_bus_lag_entries", "Entries not yet acked by a consumer group", ["topic", "group"])
WATERMARK = Gauge("tickwise_watermark_seconds", "Event-time watermark of the pipeline (Unix seconds)")
LAST_TICK = Gauge("tickwise_last_tick_timestamp_seconds", "Wall-clock time the last tick was processed")

# --- serving (tickwise.serve): API, live stream, model monitor -------------------------------
API_LATENCY = Histogram(
    "tickwise_api_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
API_REQUESTS = Counter(
    "tickwise_api_requests_total", "HTTP requests answered, by route template, method and status class",
    ["route", "method", "status"],
)
STREAM_SUBSCRIBERS = Gauge("tickwise_stream_subscribers", "WebSocket clients connected to /api/v1/stream")
STREAM_EVENTS = Counter(
    "tickwise_stream_events_total", "Events read from the bus by the API's live stream", ["kind"]
)
STREAM_MISSED = Counter(
    "tickwise_stream_missed_total",
    "Bus entries the live stream could not see because more arrived between two polls than it reads",
    ["topic"],
)
ANOMALIES = Counter("tickwise_anomalies_total", "Anomalies seen on the bus", ["symbol", "detector"])
MODEL_ERROR_RATIO = Gauge(
    "tickwise_model_error_ratio",
    "Forecast mean absolute error over the random walk's, on the last closed bars (below 1 beats it)",
    ["symbol", "timeframe", "model"],
)
MODEL_ABS_ERROR = Histogram(
    "tickwise_model_abs_pct_error",
    "Absolute error of a one-step close forecast, as a fraction of the actual close",
    ["timeframe", "model"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
FORECASTS_SCORED = Counter(
    "tickwise_forecasts_scored_total",
    "Forecasts compared with the bar that closed, and whether the bar fell inside each interval",
    ["timeframe", "model", "level", "inside"],
)
