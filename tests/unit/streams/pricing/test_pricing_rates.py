"""Integer rates compiled from hand-written genai-prices ModelPrice objects: exact figures."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices.types import ModelPrice, Tier, TieredPrices

from streams.pricing.exact import quantity_nanos, round_half_even_div
from streams.pricing.rates import compile_model_price

D = Decimal


def cost(mp: ModelPrice, i: int = 0, o: int = 0, cr: int = 0, cw: int = 0, r: int = 0) -> int:
    return compile_model_price(mp).rates_for(i).cost_nusd(i, o, cr, cw, r)


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(0, 7, 0), (5, 2, 2), (7, 2, 4), (3, 2, 2), (1, 2, 0), (14, 10, 1), (16, 10, 2), (10, 5, 2)],
)
def test_round_half_even_div(num: int, den: int, expected: int) -> None:
    assert round_half_even_div(num, den) == expected


def test_quantity_nanos() -> None:
    assert quantity_nanos("2.5") == 2_500_000_000
    assert quantity_nanos("0.000000001") == 1
    assert quantity_nanos("12") == 12_000_000_000
    for bad in ("", "-1", "1.", "1.0000000001", "1e3", "abc"):
        with pytest.raises(ValueError):
            quantity_nanos(bad)


def test_cache_read_is_carved_out_of_input() -> None:
    mp = ModelPrice(input_mtok=D("2.5"), cache_read_mtok=D("1.25"), output_mtok=D("10"))
    # 600 uncached * 2.5 + 400 cached * 1.25 + 500 output * 10 = 7000 USD/M
    assert cost(mp, i=1000, cr=400, o=500, r=100) == 7_000_000


def test_cache_write_without_its_own_price_stays_at_input_price() -> None:
    mp = ModelPrice(input_mtok=D("3"), output_mtok=D("15"))
    assert cost(mp, i=1000, cw=1000) == 3_000_000
    assert cost(mp, i=1000, cr=1000) == 3_000_000


def test_cache_write_and_read_priced() -> None:
    mp = ModelPrice(
        input_mtok=D("3"), cache_read_mtok=D("0.3"), cache_write_mtok=D("3.75"), output_mtok=D("15")
    )
    # 5000*3 + 2000*0.3 + 3000*3.75 + 1000*15 = 41850 USD/M
    assert cost(mp, i=10_000, cr=2000, cw=3000, o=1000) == 41_850_000


def test_reasoning_priced_separately_only_when_the_model_says_so() -> None:
    separate = ModelPrice(input_mtok=D("2"), output_mtok=D("8"), output_reasoning_mtok=D("3"))
    # 100*2 + (1000-400)*8 + 400*3 = 6200 USD/M
    assert cost(separate, i=100, o=1000, r=400) == 6_200_000
    inclusive = ModelPrice(input_mtok=D("2"), output_mtok=D("8"))
    assert cost(inclusive, i=100, o=1000, r=400) == 8_200_000


def test_per_request_fee() -> None:
    mp = ModelPrice(input_mtok=D("1"), output_mtok=D("1"), requests_kcount=D("12"))
    assert cost(mp) == 12_000_000  # $12 per 1000 requests
    assert cost(mp, i=1000, o=1000) == 14_000_000


def test_tier_applies_strictly_above_its_start_to_all_tokens() -> None:
    mp = ModelPrice(
        input_mtok=TieredPrices(base=D("1.25"), tiers=[Tier(start=200_000, price=D("2.5"))]),
        output_mtok=TieredPrices(base=D("10"), tiers=[Tier(start=200_000, price=D("15"))]),
    )
    assert cost(mp, i=200_000, o=1000) == 260_000_000  # 200000*1.25 + 1000*10
    assert cost(mp, i=200_001, o=1000) == 515_002_500  # 200001*2.5 + 1000*15


def test_several_tiers_given_out_of_order() -> None:
    mp = ModelPrice(
        input_mtok=TieredPrices(base=D("1"), tiers=[Tier(1000, D("2")), Tier(10, D("3"))]),
        output_mtok=D("0"),
    )
    compiled = compile_model_price(mp)
    assert compiled.starts == (10, 1000)
    assert [cost(mp, i=n) for n in (0, 10, 11, 1000, 1001)] == [
        0,
        10_000,
        33_000,
        3_000_000,
        2_002_000,
    ]


def test_rounds_once_half_even_after_summing() -> None:
    half_nano = ModelPrice(input_mtok=D("0.0005"), output_mtok=D("0.0005"))  # 0.5 nUSD/token
    assert [cost(half_nano, i=n) for n in (1, 2, 3, 5)] == [0, 1, 2, 2]
    # 0.5 + 0.5: rounding each part first would give 0.
    assert cost(half_nano, i=1, o=1) == 1


def test_prices_with_eighteen_decimals_stay_exact() -> None:
    mp = ModelPrice(input_mtok=D("1.000000000000000001"), output_mtok=D("0.000000000000000001"))
    assert cost(mp, i=100_000_000, o=100_000_000) == 100_000_000_000


def test_a_price_genai_prices_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="ancestor"):
        compile_model_price(ModelPrice(cache_read_mtok=D("1"), output_mtok=D("1")))
