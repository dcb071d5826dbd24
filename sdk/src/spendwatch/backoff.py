"""Capped exponential backoff for the SDK's reconnect loops.

The pipeline retries with tenacity; the SDK keeps its dependencies to aiokafka and orjson,
so its two loops (the sender's producer, the guard's status follower) share this instead.
"""

from __future__ import annotations


class Backoff:
    """Delays ``first_s``, then doubling up to ``max_s``; :meth:`reset` after a success.

    The first delay is ``first_s`` even when ``max_s`` is smaller (the cap applies to growth).
    """

    __slots__ = ("_next_s", "first_s", "max_s")

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._next_s = first_s

    def next_s(self) -> float:
        """The delay to wait now; the following one doubles (capped at ``max_s``)."""
        delay = self._next_s
        self._next_s = min(delay * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self.first_s
