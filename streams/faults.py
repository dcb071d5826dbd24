"""Fault injection points, for the crash tests and ``make chaos`` (never set in production).

``SPENDWATCH_FAULTS="point@n,point@n"`` (read once at start-up) makes the ``n``-th pass
through ``point`` (1 by default) do what the point's name says:

* ``kill:<where>`` - the process kills itself with SIGKILL there (a crash, no clean-up);
* ``raise:<where>`` - a ``RuntimeError`` is raised there (a bug in that component).

``<where>`` is one of the names passed to :func:`point` (``hot.after_write``,
``hot.after_send``, ``hot.mid_send``, ``agent.budgets``). An unknown name is an error at
start-up, so a typo cannot make a crash test pass without crashing anything.
"""

from __future__ import annotations

import os
import signal
from typing import Final

from schemas import environment

ENV: Final = environment.FAULTS.name
POINTS: Final = frozenset({"hot.after_write", "hot.after_send", "hot.mid_send", "agent.budgets"})

_armed: dict[str, tuple[str, int]] = {}
_passes: dict[str, int] = {}


def arm(spec: str | None = None) -> None:
    """Read the faults from ``spec`` (default: the environment). Raises ``ValueError``."""
    _armed.clear()
    _passes.clear()
    text = os.environ.get(ENV, "") if spec is None else spec
    for item in filter(None, (part.strip() for part in text.split(","))):
        action_where, _, nth = item.partition("@")
        action, _, where = action_where.partition(":")
        if action not in ("kill", "raise") or where not in POINTS:
            raise ValueError(f"{ENV}: unknown fault {item!r} (points: {sorted(POINTS)})")
        _armed[where] = (action, int(nth or "1"))


def point(where: str) -> None:
    """A place where a fault may be injected; does nothing unless armed for ``where``."""
    if not _armed:
        return
    armed = _armed.get(where)
    if armed is None:
        return
    count = _passes[where] = _passes.get(where, 0) + 1
    action, nth = armed
    if count != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"fault injected at {where} (pass {count})")
