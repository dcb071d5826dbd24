"""Retry schedule: exponential backoff, ``Retry-After`` honoured, then dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` tries in all (first one included); delays grow
    ``initial_backoff_s * factor**(n-1)`` capped at ``max_backoff_s``; after the last try
    the message is dead-lettered and retried every ``dead_letter_retry_s``."""

    max_attempts: int = 6
    initial_backoff_s: float = 1.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 60.0
    dead_letter_retry_s: float = 600.0

    def backoff_s(self, failed_attempts: int) -> float:
        """Delay after the ``failed_attempts``-th failure (1-based)."""
        n = max(failed_attempts, 1) - 1
        return float(min(self.initial_backoff_s * self.backoff_factor**n, self.max_backoff_s))

    def exhausted(self, failed_attempts: int) -> bool:
        return failed_attempts >= self.max_attempts

    def next_attempt_at(
        self, now: datetime, failed_attempts: int, retry_after_s: float | None
    ) -> datetime:
        """When to try again: the backoff, or the server's ``Retry-After`` if longer."""
        delay = self.backoff_s(failed_attempts)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return now + timedelta(seconds=delay)
