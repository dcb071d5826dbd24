from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from streams.detect import DetectSettings


def test_defaults_and_money_as_exact_nano_usd() -> None:
    s = DetectSettings.from_config({})
    assert s == DetectSettings()
    custom = DetectSettings.from_config(
        {
            "min_delta_usd_per_min": "0.10",
            "cold_start_usd_per_min": 0.1,  # a TOML float goes through str(): exactly 0.1
            "expensive_usd_per_mtok": 15,
            "window_min": 30,
            "min_points": 10,
            "expensive_models": ["claude-opus*"],
        }
    )
    assert custom.min_delta_nusd_per_min == 100_000_000
    assert custom.cold_start_nusd_per_min == 100_000_000
    assert custom.expensive_nusd_per_mtok == 15_000_000_000
    assert custom.window_min == 30
    assert custom.expensive_models == ("claude-opus*",)
    assert DetectSettings().pair_z_threshold == 4.5
    assert DetectSettings.from_config({"pair_z_threshold": 0}).pair_z_threshold == 0.0
    assert DetectSettings.from_config({"pair_z_threshold": 5}).pair_z_threshold == 5.0
    assert DetectSettings().warm_start is True
    assert DetectSettings.from_config({"warm_start": False}).warm_start is False
    new = DetectSettings.from_config({"sensitivity": 0.7, "shift_min": 0, "seasonal_weeks": 2})
    assert (new.sensitivity, new.shift_min, new.seasonal_weeks) == (0.7, 0, 2)
    d = DetectSettings()
    assert (d.sensitivity, d.shift_min, d.seasonal_weeks) == (0.5, 5, 1)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"window_minutes": 60}, "detect.window_minutes"),
        ({"window_min": "60"}, "detect.window_min"),
        ({"window_min": True}, "detect.window_min"),
        ({"z_threshold": 0}, "detect.z_threshold"),
        ({"min_delta_usd_per_min": "0"}, "detect.min_delta_usd_per_min"),
        ({"min_delta_usd_per_min": "ten"}, "detect.min_delta_usd_per_min"),
        ({"cold_start_usd_per_min": "-1"}, "detect.cold_start_usd_per_min"),
        ({"enabled": "yes"}, "detect.enabled"),
        ({"warm_start": 1}, "detect.warm_start"),
        ({"tag_keys": "agent"}, "detect.tag_keys"),
        ({"min_points": 61}, "detect.min_points"),
        ({"seasonal_min_days": 8}, "detect.seasonal_min_days"),
        ({"relearn_after_min": 2}, "detect.relearn_after_min"),
        ({"pair_z_threshold": 0.5}, "detect.pair_z_threshold"),
        ({"pair_z_threshold": "4"}, "detect.pair_z_threshold"),
        ({"pair_z_threshold": False}, "detect.pair_z_threshold"),
        ({"sensitivity": 1}, "detect.sensitivity"),
        ({"sensitivity": "high"}, "detect.sensitivity"),
        ({"shift_min": 1}, "detect.shift_min"),
        ({"seasonal_weeks": 5}, "detect.seasonal_weeks"),
    ],
)
def test_bad_settings_name_the_field(section: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        DetectSettings.from_config(section)
    assert err.value.field == field


def test_custom_path_and_non_table() -> None:
    with pytest.raises(ConfigError) as err:
        DetectSettings.from_config({"drop_min": 0}, path="services.detect")
    assert err.value.field == "services.detect.drop_min"
    with pytest.raises(ConfigError) as err:
        DetectSettings.from_config([], path="detect")  # type: ignore[arg-type]
    assert err.value.field == "detect"


def test_history_is_seven_days_of_minutes_by_default() -> None:
    assert DetectSettings().history_min == 7 * 1440 + 5 + 1
    # two weeks of time-of-week history make the worker keep (and reload) two weeks
    assert DetectSettings(seasonal_weeks=2).history_min == 14 * 1440 + 5 + 1
