from __future__ import annotations

import pytest

from tickwise.exceptions import InputError
from tickwise.indicators import FAMILIES, parse_indicator, parse_indicators


def test_parse_indicator_issue_names_give_issue_columns() -> None:
    columns = [c for s in parse_indicators("sma_9,ema_12,wma_10,rsi_14,macd,bbands_20,atr_14,obv,vwap,volume_sma_20")
               for c in s.columns]
    assert columns == ["sma_9", "ema_12", "wma_10", "rsi_14", "macd", "macd_signal", "macd_hist",
                       "bbands_20_upper", "bbands_20_middle", "bbands_20_lower", "atr_14", "obv", "vwap",
                       "volume_sma_20"]


def test_parse_indicator_macd_with_default_parameters_is_canonical_macd() -> None:
    assert parse_indicator("macd_12_26_9").name == "macd"
    assert parse_indicator("MACD_5_35_5").columns == ("macd_5_35_5", "macd_5_35_5_signal", "macd_5_35_5_hist")


@pytest.mark.parametrize("name", ["foo_3", "sma", "sma9", "sma_9_2", "macd_1_2", "", "rsi_x"])
def test_parse_indicator_bad_name_lists_valid_names(name: str) -> None:
    with pytest.raises(InputError) as err:
        parse_indicators(name)
    text = str(err.value)
    assert repr(name) in text or "at least one" in text
    assert "sma_N" in text or FAMILIES[name.split("_")[0].lower()].pattern in text


@pytest.mark.parametrize("name", ["sma_0", "rsi_1", "macd_26_12_9", "bbands_0"])
def test_parse_indicator_bad_parameter_says_expected_and_found(name: str) -> None:
    with pytest.raises(InputError, match=r"must be .*was"):
        parse_indicator(name)


def test_parse_indicators_repeats_dropped_in_order() -> None:
    assert [s.name for s in parse_indicators(" obv , sma_9,obv")] == ["obv", "sma_9"]
