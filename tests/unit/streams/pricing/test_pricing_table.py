"""PriceTable: config parsing with named errors, most-specific matching, exact unit costs."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest

from schemas.errors import ConfigError
from streams.pricing.table import PriceTable, UnitPrice

TOML = """
[[prices]]
unit = "minute"
usd_per_unit = "0.01"

[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.0085"

[[prices]]
service = "support-bot"
unit = "minute"
usd_per_unit = 0.02

[[prices]]
provider = "twilio"
service = "support-bot"
unit = "minute"
usd_per_unit = 0.005

[[prices]]
unit = "email"
usd_per_unit = 3
"""


def table() -> PriceTable:
    return PriceTable.from_config(tomllib.loads(TOML)["prices"])


def test_parses_strings_and_toml_numbers_exactly() -> None:
    entries = table().entries
    assert [e.usd_per_unit for e in entries] == [
        Decimal("0.01"),
        Decimal("0.0085"),
        Decimal("0.02"),
        Decimal("0.005"),
        Decimal("3"),
    ]
    assert entries[3] == UnitPrice("minute", Decimal("0.005"), "twilio", "support-bot")


def test_most_specific_entry_wins() -> None:
    t = table()

    def price(provider: str | None, service: str | None) -> Decimal | None:
        hit = t.find("minute", provider, service)
        return None if hit is None else hit.usd_per_unit

    assert price("twilio", "support-bot") == Decimal("0.005")
    assert price("twilio", "other") == Decimal("0.0085")
    assert price("vonage", "support-bot") == Decimal("0.02")
    assert price(None, "support-bot") == Decimal("0.02")
    assert price("vonage", "other") == Decimal("0.01")
    assert price(None, "other") == Decimal("0.01")
    assert t.find("sms", "twilio", "support-bot") is None


def test_unit_cost_is_exact_and_rounded_half_even_once() -> None:
    assert UnitPrice("minute", Decimal("0.0085")).cost_nusd("2.5") == 21_250_000
    assert UnitPrice("email", Decimal("3")).cost_nusd("7") == 21_000_000_000
    assert UnitPrice("token", Decimal("0.0000000015")).cost_nusd("1") == 2  # 1.5 -> 2
    assert UnitPrice("token", Decimal("0.0000000015")).cost_nusd("3") == 4  # 4.5 -> 4
    # 999999999999.999999999 * 1e-9 USD = 999.999999999999999999 USD: exact product, one rounding
    big = UnitPrice("record", Decimal("0.000000001")).cost_nusd("999999999999.999999999")
    assert big == 1_000_000_000_000
    assert UnitPrice("x", Decimal("1E+2")).cost_nusd("0.5") == 50_000_000_000


def test_empty_table_finds_nothing() -> None:
    assert len(PriceTable.from_config([])) == 0
    assert PriceTable().find("minute", "twilio", "svc") is None


@pytest.mark.parametrize(
    ("items", "field"),
    [
        (
            [{"unit": "minute", "usd_per_unit": "1"}, {"unit": "sms", "usd_per_unit": "abc"}],
            "prices[1].usd_per_unit",
        ),
        ([{"unit": "minute", "usd_per_unit": "-0.1"}], "prices[0].usd_per_unit"),
        ([{"unit": "minute", "usd_per_unit": "NaN"}], "prices[0].usd_per_unit"),
        ([{"unit": "minute", "usd_per_unit": "Infinity"}], "prices[0].usd_per_unit"),
        ([{"unit": "minute", "usd_per_unit": True}], "prices[0].usd_per_unit"),
        ([{"unit": "minute", "usd_per_unit": [1]}], "prices[0].usd_per_unit"),
        ([{"unit": "minute"}], "prices[0].usd_per_unit"),
        ([{"unit": "minute", "usd_per_unit": "0.1234567890123456789"}], "prices[0].usd_per_unit"),
        ([{"usd_per_unit": "1"}], "prices[0].unit"),
        ([{"unit": "Minute", "usd_per_unit": "1"}], "prices[0].unit"),
        ([{"unit": 5, "usd_per_unit": "1"}], "prices[0].unit"),
        ([{"unit": "minute", "usd_per_unit": "1", "currency": "EUR"}], "prices[0].currency"),
        ([{"unit": "minute", "usd_per_unit": "1", "provider": ""}], "prices[0].provider"),
        ([{"unit": "minute", "usd_per_unit": "1", "service": 3}], "prices[0].service"),
        (["minute"], "prices[0]"),
        ([{"unit": "m", "usd_per_unit": "1"}, {"unit": "m", "usd_per_unit": "2"}], "prices[1]"),
    ],
)
def test_bad_config_names_the_field(items: list[Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceTable.from_config(items)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_not_an_array_and_custom_path() -> None:
    with pytest.raises(ConfigError) as info:
        PriceTable.from_config({"unit": "m"}, path="prices")  # type: ignore[arg-type]
    assert info.value.field == "prices"
    with pytest.raises(ConfigError) as info:
        PriceTable.from_config([{"unit": "m", "usd_per_unit": "x"}], path="tenant.prices")
    assert info.value.field == "tenant.prices[0].usd_per_unit"


def test_duplicate_entries_refused_by_constructor_too() -> None:
    with pytest.raises(ValueError, match="duplicate price for unit 'm', provider 'p'"):
        PriceTable([UnitPrice("m", Decimal(1), "p"), UnitPrice("m", Decimal(2), "p")])
