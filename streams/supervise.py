"""No worker runs half-dead: every agent, task and timer runs under :meth:`Supervisor.guard`.

A component that raises is recorded as crashed (``/health`` shows it, with the reason), the
reason is logged, and the whole worker stops with exit code 1 - so a supervisor (systemd,
Kubernetes, ``restart: unless-stopped``) restarts it, and the restarted worker continues
exactly where ClickHouse and the committed offsets say. A budget agent that crash-loops while
the process stays up would leave budgets silently frozen; an exit cannot be missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Literal, TypeVar

log = logging.getLogger("spendwatch.worker")

CRASH_GRACE_S = 2.0

State = Literal["starting", "running", "stopped", "crashed"]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(slots=True)
class Component:
    name: str
    state: State = "starting"
    error: str | None = None
    since: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state, "since": round(self.since, 3)}
        if self.error:
            data["error"] = self.error
        return data


class Supervisor:
    """Component states for ``/health`` and the stop-on-crash rule."""

    def __init__(self, stop: Callable[[], None] | None = None) -> None:
        self.components: dict[str, Component] = {}
        self.exit_code = 0
        self.crash_reason: str | None = None
        self._stop = stop or _terminate_self

    def component(self, name: str) -> Component:
        found = self.components.get(name)
        if found is None:
            found = self.components[name] = Component(name)
        return found

    def set(self, name: str, state: State, error: str | None = None) -> None:
        component = self.component(name)
        component.state = state
        component.error = error
        component.since = time.time()

    def crashed(self, name: str, exc: BaseException) -> None:
        """Record the crash and stop the worker (once)."""
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        self.set(name, "crashed", reason)
        log.critical("%s crashed, stopping the worker: %s", name, reason, exc_info=exc)
        if self.crash_reason is None:
            self.crash_reason = f"{name}: {reason}"
            self.exit_code = 1
            try:  # /health answers "crashed" for a moment, then the worker stops
                asyncio.get_running_loop().call_later(CRASH_GRACE_S, self._stop)
            except RuntimeError:
                self._stop()

    def guard(self, name: str, *, loops: bool = True) -> Callable[[F], F]:
        """Decorate an agent / task (``loops=True``: it runs until the worker stops) or a
        timer body (``loops=False``: each call runs and returns)."""

        def decorate(fn: F) -> F:
            @wraps(fn)
            async def run(*args: Any, **kwargs: Any) -> Any:
                component = self.component(name)
                if component.state != "running":
                    self.set(name, "running")
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    self.crashed(name, exc)
                    return None
                if loops:
                    self.set(name, "stopped")
                return result

            return run  # type: ignore[return-value]

        return decorate

    @property
    def healthy(self) -> bool:
        return self.crash_reason is None

    def as_dict(self) -> dict[str, Any]:
        return {name: c.as_dict() for name, c in sorted(self.components.items())}


def _terminate_self() -> None:
    """Ask the worker to stop the way an operator's SIGTERM does (a clean shutdown)."""
    os.kill(os.getpid(), signal.SIGTERM)
