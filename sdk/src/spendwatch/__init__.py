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
from typing import Any

from .config import Settings
from .errors import ConfigurationError, InvalidEventError, SpendwatchError
from .instrument import instrument
from .queue import Stats
from .runtime import configure, flush, record, shutdown, stats
from .track import Track, current_track, track

__version__ = "0.1.0"


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
