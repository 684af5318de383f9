"""One settings object for the whole program.

Values come, highest priority first, from keyword arguments, environment variables
``TICKWISE_*``, a ``tickwise.toml`` in the working directory (or the file named by
``TICKWISE_CONFIG``), and the defaults below. Backends are chosen by URL:

========== ==================================== ==========================================
setting    embedded default                     scale-out
========== ==================================== ==========================================
bus        ``memory://``                        ``redis://host:port/db``
warehouse  ``duckdb://<data_dir>/tickwise.duckdb``  ``postgresql://user@host:port/db``
lake       ``file://<data_dir>/lake``           ``s3://bucket/prefix``
========== ==================================== ==========================================

Nothing else in tickwise reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from tickwise.exceptions import ConfigError, InputError
from tickwise.timeframes import parse_timeframes

DEFAULT_SYMBOLS = ["NIFTY50", "USDINR", "AAPL", "MSFT", "SPY", "GOOG", "AMZN", "TSLA", "BTCUSD", "EURUSD"]


def _config_file() -> Path:
    return Path(os.environ.get("TICKWISE_CONFIG", "tickwise.toml"))


class Settings(BaseSettings):
    """Every knob of tickwise, read once at start.

    Examples
    --------
    >>> s = Settings(data_dir="/tmp/tw-doc", bus="memory://")
    >>> s.warehouse_url
    'duckdb:///tmp/tw-doc/tickwise.duckdb'
    """

    model_config = SettingsConfigDict(env_prefix="TICKWISE_", extra="ignore")

    data_dir: Path = Path("tickwise-data")
    bus: str = "memory://"
    warehouse: str = ""
    lake: str = ""
    #: S3-compatible endpoint for an ``s3://`` lake, e.g. ``http://127.0.0.1:9000`` (empty: AWS)
    lake_endpoint: str = ""
    #: credentials for the lake's S3 endpoint (empty: the AWS SDK's default chain)
    lake_access_key: str = ""
    lake_secret_key: str = ""
    lake_region: str = "us-east-1"
    timeframes: Annotated[list[str], NoDecode] = ["1s", "1m", "5m"]
    #: time zone of date-times without an offset in the files read (import, replay, detect, ...)
    input_tz: str = "UTC"
    lateness_ms: int = 1000
    idle_close_ms: int = 1500
    #: partitions of the ``ticks`` topic; default 1 on ``memory://`` (one process owns them
    #: all, so more only adds per-batch work) and 8 on ``redis://``
    partitions: int | None = None
    commit_interval_ms: int = 200
    bus_capacity: int = 1024
    symbols: Annotated[list[str], NoDecode] = DEFAULT_SYMBOLS
    tick_rate: float = 5000.0
    seed: int = 7
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_key: str = ""
    dashboard_port: int = 8501
    require_services: bool = False
    # anomaly detection and alerts (tickwise.anomaly.stage, tickwise.alerts)
    anomaly_detectors: Annotated[list[str], NoDecode] = ["divergence", "classifier", "iforest", "stale"]
    anomaly_false_alarm_rate: float = 1e-3
    #: intraday bars measured against their own time of day (``auto``) or not (``off``), with
    #: slots of the day in this exchange time zone (tickwise.anomaly.seasonal)
    anomaly_time_of_day: str = "auto"
    anomaly_tz: str = "America/New_York"
    #: the classifier reads the other symbols' bars of the same bar time (``on``) or scores
    #: every bar alone (``off``: for symbols of a timeframe that are not one market)
    anomaly_market: str = "on"
    #: stored bars per series the live detectors step through before its first bar after a
    #: (re)start, so they score from that bar on (0: off)
    anomaly_warmup_bars: int = 2100
    #: seconds between saves of the live detectors' per-series state to the warehouse, which a
    #: (re)started stage loads instead of warming up from scratch (0: off)
    anomaly_checkpoint_s: float = 300.0
    alert_cooldown_s: float = 300.0
    alert_webhook_url: str = ""
    alert_sns_topic_arn: str = ""
    alert_sns_endpoint: str = ""
    #: live forecasting: model name (arima, naive, drift, ets, lstm) and the signal's k (x std error)
    forecast_model: str = "arima"
    forecast_k: float = 1.0

    @field_validator("timeframes", "symbols", "anomaly_detectors", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("input_tz", "anomaly_tz")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        from tickwise.timeframes import is_time_zone

        if not is_time_zone(value):
            raise ValueError(f"must name a time zone like UTC or America/New_York, was {value!r}")
        return value

    @field_validator("anomaly_market", "anomaly_time_of_day")
    @classmethod
    def _check_switch(cls, value: str, info: ValidationInfo) -> str:
        allowed = ("on", "off") if info.field_name == "anomaly_market" else ("auto", "off")
        if value not in allowed:
            raise ValueError(f"must be {allowed[0]!r} or 'off', was {value!r}")
        return value

    @field_validator("timeframes")
    @classmethod
    def _check_timeframes(cls, value: list[str]) -> list[str]:
        try:
            return parse_timeframes(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("lateness_ms", "idle_close_ms", "commit_interval_ms", "anomaly_warmup_bars",
                     "anomaly_checkpoint_s")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if not value >= 0:  # NaN too
            raise ValueError(f"must be >= 0, was {value}")
        return value

    @field_validator("api_port", "dashboard_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError(f"must be a TCP port in 0-65535, was {value}")
        return value

    @field_validator("partitions", "bus_capacity")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be >= 1, was {value}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def bus_partitions(self) -> int:
        if self.partitions is not None:
            return self.partitions
        return 1 if self.bus.startswith("memory://") else 8

    @property
    def warehouse_url(self) -> str:
        # an absolute path: "duckdb:///" + a relative one would name a file under / instead
        return self.warehouse or f"duckdb://{(self.data_dir / 'tickwise.duckdb').resolve().as_posix()}"

    @property
    def lake_url(self) -> str:
        return self.lake or f"file://{(self.data_dir / 'lake').resolve().as_posix()}"


@dataclass(frozen=True, slots=True)
class BackendUrl:
    """A parsed backend URL."""

    scheme: str
    url: str
    host: str
    port: int | None
    path: str


_SCHEMES = {
    "bus": ("memory", "redis", "kafka"),
    "warehouse": ("duckdb", "postgresql", "postgres"),
    "lake": ("file", "s3"),
}

_EXAMPLES = {
    "bus": "memory://, redis://127.0.0.1:6379/0 or kafka://127.0.0.1:9092",
    "warehouse": "duckdb:///path/file.duckdb or postgresql://user@127.0.0.1:5432/db",
    "lake": "file:///path/lake or s3://bucket/prefix",
}


def parse_backend_url(setting: str, url: str) -> BackendUrl:
    """Check a backend URL for one setting and split it.

    Examples
    --------
    >>> parse_backend_url("bus", "redis://127.0.0.1:6379/2").port
    6379
    """
    parsed = urlparse(url)
    allowed = _SCHEMES[setting]
    if parsed.scheme not in allowed:
        raise ConfigError(
            f"setting TICKWISE_{setting.upper()} must be a URL like {_EXAMPLES[setting]}, was {url!r}"
        )
    try:
        port = parsed.port
    except ValueError:
        raise ConfigError(
            f"setting TICKWISE_{setting.upper()} has a bad port, was {url!r}"
        ) from None
    if parsed.scheme == "duckdb" and not parsed.path:
        raise ConfigError(
            f"setting TICKWISE_WAREHOUSE needs a file path, like duckdb:///path/file.duckdb, was {url!r}"
        )
    if parsed.scheme == "s3" and not parsed.netloc:
        raise ConfigError(f"setting TICKWISE_LAKE needs a bucket, like s3://bucket/prefix, was {url!r}")
    return BackendUrl(parsed.scheme, url, parsed.hostname or "", port, parsed.path)


def input_tz() -> str:
    """The time zone of date-times without an offset in the files commands read
    (``TICKWISE_INPUT_TZ``, default UTC)."""
    return load_settings().input_tz


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation failures into one-line `ConfigError`s."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise ConfigError(f"a TICKWISE_* setting could not be read: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        msg = str(first["msg"]).removeprefix("Value error, ")  # our validators' own words
        was = "" if ", was " in msg else f", was {first.get('input')!r}"
        raise ConfigError(f"setting TICKWISE_{name.upper()} is invalid: {msg}{was}") from None
    parse_backend_url("bus", settings.bus)
    parse_backend_url("warehouse", settings.warehouse_url)
    parse_backend_url("lake", settings.lake_url)
    return settings
