from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.config import load_settings
from tickwise.exceptions import ConfigError


def test_settings_defaults_are_embedded(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.bus == "memory://"
    assert s.warehouse_url == f"duckdb://{tmp_path.resolve().as_posix()}/tickwise.duckdb"
    assert s.lake_url.startswith("file://") and s.timeframes == ["1s", "1m", "5m"]


def test_relative_data_dir_puts_warehouse_and_lake_under_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tickwise.store import open_warehouse

    monkeypatch.chdir(tmp_path)
    s = load_settings(data_dir="data")
    here = (tmp_path / "data").resolve().as_posix()
    assert s.warehouse_url == f"duckdb://{here}/tickwise.duckdb"
    assert s.lake_url == f"file://{here}/lake"
    warehouse = open_warehouse(s.warehouse_url)
    warehouse.close()
    assert (tmp_path / "data" / "tickwise.duckdb").is_file()


def test_settings_read_from_toml_file_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "tickwise.toml"
    cfg.write_text('bus = "redis://127.0.0.1:6379/3"\ntimeframes = ["5m", "1m"]\nlateness_ms = 250\n')
    monkeypatch.setenv("TICKWISE_CONFIG", str(cfg))
    s = load_settings()
    assert (s.bus, s.timeframes, s.lateness_ms) == ("redis://127.0.0.1:6379/3", ["1m", "5m"], 250)
    monkeypatch.setenv("TICKWISE_LATENESS_MS", "40")
    monkeypatch.setenv("TICKWISE_TIMEFRAMES", "1s,1h")
    s = load_settings()
    assert (s.lateness_ms, s.timeframes) == (40, ["1s", "1h"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bus": "nats://x"}, "TICKWISE_BUS must be a URL like memory://, redis://"),
        ({"warehouse": "mysql://x"}, "TICKWISE_WAREHOUSE must be a URL like duckdb:///"),
        ({"warehouse": "duckdb://"}, "TICKWISE_WAREHOUSE needs a file path"),
        ({"lake": "s3://"}, "TICKWISE_LAKE needs a bucket"),
        ({"bus": "redis://host:notaport/0"}, "TICKWISE_BUS has a bad port"),
        ({"timeframes": "1s,7q"}, "TICKWISE_TIMEFRAMES is invalid"),
        ({"partitions": 0}, "TICKWISE_PARTITIONS is invalid"),
        ({"lateness_ms": -1}, "TICKWISE_LATENESS_MS is invalid"),
    ],
)
def test_settings_wrong_value_is_one_line_naming_the_setting(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as info:
        load_settings(**overrides)
    assert "\n" not in str(info.value)
