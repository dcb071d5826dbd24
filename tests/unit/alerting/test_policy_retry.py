"""Retry schedule: exponential backoff capped, Retry-After wins when longer."""

from __future__ import annotations

from alerting.policy.retry import RetryPolicy
from tests.unit.alerting.factories import at


def test_backoff_grows_and_caps() -> None:
    p = RetryPolicy(max_attempts=8, initial_backoff_s=1, backoff_factor=2, max_backoff_s=10)
    assert [p.backoff_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert not p.exhausted(7) and p.exhausted(8)


def test_retry_after_is_a_floor() -> None:
    p = RetryPolicy(initial_backoff_s=1)
    assert p.next_attempt_at(at(0), 1, None) == at(1)
    assert p.next_attempt_at(at(0), 1, 30) == at(30)
    assert p.next_attempt_at(at(0), 3, 0.5) == at(4)
