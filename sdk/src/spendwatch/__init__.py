"""spendwatch SDK: one usage event per LLM or metered API call, sent to Kafka in the background.

    import spendwatch
    spendwatch.configure(bootstrap_servers="localhost:9092", service="checkout")
    client = spendwatch.instrument(openai.OpenAI())        # app code unchanged

    with spendwatch.track("geocode", provider="mapbox", unit="request", quantity=1):
        ...

Nothing here blocks on the network or raises into an instrumented call; see ``stats()``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from .config import Settings
from .errors import ConfigurationError, InvalidEventError, SpendwatchError
from .instrument import instrument
from .queue import Stats
from .runtime import configure, flush, shutdown, stats
from .runtime import record as _record
from .track import Track, current_track, track

__version__ = "0.1.0"


def record(
    operation: str,
    *,
    status: str = "ok",
    provider: str | None = None,
    model: str | None = None,
    response_model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    unit: str | None = None,
    quantity: object = None,
    cost_usd: object = None,
    latency_ms: float | None = None,
    error_type: str | None = None,
    cache_hit: bool = False,
    partial: bool = False,
    request_id: str | None = None,
    tags: dict[str, str] | None = None,
    ts: datetime | None = None,
    service: str | None = None,
) -> None:
    """Record one finished call (``None`` = field absent); returns at once.

    ``service`` overrides the configured service for this event (a process running a
    fleet of agents); it is also the event's Kafka message key.

    ``quantity`` / ``cost_usd`` accept ``Decimal``, ``int``, ``str`` (kept exactly) or ``float``
    (read via ``Decimal(str(x))``, rounded to 9 places). ``ts`` (timezone-aware) defaults to
    now. Never raises: an event with a value the schema refuses is not sent, it is counted
    in ``stats().rejected`` and logged (``spendwatch`` logger, naming the field); otherwise it
    is queued (or counted in ``stats().rejected`` if the SDK is not configured).
    """
    _record(
        operation,
        status=status,
        provider=provider,
        model=model,
        response_model=response_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        unit=unit,
        quantity=quantity,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        error_type=error_type,
        cache_hit=cache_hit,
        partial=partial,
        request_id=request_id,
        tags=tags,
        ts=ts,
        service=service,
    )


async def aflush(timeout_s: float = 5.0) -> bool:
    """``flush`` for asyncio code: waits in a worker thread, the event loop keeps running."""
    return await asyncio.to_thread(flush, timeout_s)


def __getattr__(name: str) -> Any:
    if name in ("guard", "BudgetExceeded"):
        raise AttributeError(
            f"spendwatch.{name} is unavailable: the spendwatch.guard module is not installed"
        )
    raise AttributeError(f"module 'spendwatch' has no attribute {name!r}")


# The budget guard (a follower of the budget-status topic) lives in its own module, which may
# be absent. Bound here, after everything above exists, so ``spendwatch.guard`` is the function
# even though importing the submodule first sets the attribute to the module.
try:
    from .guard import BudgetExceeded, guard
except ModuleNotFoundError as _exc:
    if _exc.name != f"{__name__}.guard":
        raise


__all__ = [
    "BudgetExceeded",
    "ConfigurationError",
    "InvalidEventError",
    "Settings",
    "SpendwatchError",
    "Stats",
    "Track",
    "aflush",
    "configure",
    "current_track",
    "flush",
    "guard",
    "instrument",
    "record",
    "shutdown",
    "stats",
    "track",
]
