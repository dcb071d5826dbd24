"""JSON lines of usage events v1 (``POST /v1/events``) -> events to produce + per-line results.

Each non-blank line is one event exactly as the SDK sends it (``schemas/usage_event_v1.json``:
``schema_version``, ``event_id``, ``ts``, ``service``, ...), checked by the pipeline's own
``schemas.events.validate_event``. A valid line is produced unchanged (its bytes, key = its
``service``); an invalid one is refused with the validator's reason. Blank lines are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.events import validate_event

from .otlp import Produced


@dataclass(frozen=True, slots=True)
class LineResult:
    """The fate of one line (1-based ``line``): accepted with its ``event_id``, or rejected
    with the ``reason``."""

    line: int
    event_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.reason is None:
            return {"line": self.line, "status": "accepted", "event_id": self.event_id}
        return {"line": self.line, "status": "rejected", "reason": self.reason}


def _field(event: Any, name: str) -> Any:
    # validate_event returns a dict today; a typed record (msgspec) would carry attributes.
    return event[name] if isinstance(event, dict) else getattr(event, name)


def parse_lines(body: bytes) -> tuple[list[Produced], list[LineResult]]:
    """Validate every line of ``body``; the events of the valid ones and a result per line."""
    produced: list[Produced] = []
    results: list[LineResult] = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        event, rejection = validate_event(line)
        if event is None:
            results.append(LineResult(number, reason=str(rejection)))
            continue
        produced.append(Produced(_field(event, "service").encode(), line))
        results.append(LineResult(number, event_id=_field(event, "event_id")))
    return produced, results
