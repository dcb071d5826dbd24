"""In-memory notifier that records what it is given: for tests, demos and users' own checks
(like OpenTelemetry's ``InMemorySpanExporter``).

``fail_with`` scripts failures: each ``send`` pops the next entry; an exception entry is
raised (and the message is not recorded), ``None`` means succeed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from alerting.notification import Notification


class RecordingNotifier:
    """Keeps every successfully "sent" notification in ``sent``; ``attempts`` counts calls."""

    def __init__(
        self,
        name: str = "recording",
        *,
        fail_with: Iterable[BaseException | None] = (),
        pace_key: str | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        self.name = name
        self.pace_key = pace_key
        self.min_interval_s = min_interval_s
        self.sent: list[Notification] = []
        self.attempts = 0
        self.closed = False
        self._script: deque[BaseException | None] = deque(fail_with)

    def script(self, *outcomes: BaseException | None) -> None:
        """Append outcomes to the failure script."""
        self._script.extend(outcomes)

    async def send(self, message: Notification) -> None:
        self.attempts += 1
        if self._script:
            outcome = self._script.popleft()
            if outcome is not None:
                raise outcome
        self.sent.append(message)

    @property
    def delivered_keys(self) -> list[str]:
        """Every ``alert_id:status:seq`` delivered, in order (duplicates kept)."""
        return [k for n in self.sent for k in n.delivery_keys]

    async def close(self) -> None:
        self.closed = True
