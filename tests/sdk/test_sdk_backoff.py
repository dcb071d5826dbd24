"""The SDK's reconnect backoff: first delay, doubling, the cap, and reset."""

from __future__ import annotations

from spendwatch.backoff import Backoff


def test_delays_double_up_to_the_cap_and_reset() -> None:
    b = Backoff(0.05, 0.3)
    assert [b.next_s() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    b.reset()
    assert b.next_s() == 0.05


def test_the_first_delay_is_not_capped() -> None:
    b = Backoff(0.1, 0.05)
    assert [b.next_s() for _ in range(3)] == [0.1, 0.05, 0.05]
