"""Fault injection points, for the crash tests and ``make chaos`` (never set in production).

``SPENDWATCH_FAULTS="point@n,point@n"`` (read once at start-up) makes the ``n``-th pass
through ``point`` (1 by default) do what the point's name says:

* ``kill:<where>`` - the process kills itself with SIGKILL there (a crash, no clean-up);
* ``raise:<where>`` - a ``RuntimeError`` is raised there (a bug in that component).

``<where>`` is one of the names passed to :func:`point` (``hot.after_write``,
``hot.after_send``, ``hot.mid_send``, ``agent.budgets``). An unknown name is an error at
start-up, so a typo cannot make a crash test pass without crashing anything.

One fault is a window rather than a pass: ``chfail:hot.write@<when>`` makes every ClickHouse
write of the hot path (usage rows and dead letters) fail, before it reaches ClickHouse, with
the exception clickhouse-connect raises when the server is unreachable
(``OperationalError``, a transient error the writer retries). ``<when>`` is either
``<start_s>+<seconds>`` (seconds after :func:`arm`) or a file path: the writes fail while the
file exists (a harness toggles it).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from clickhouse_connect.driver.exceptions import OperationalError

from schemas import environment

ENV: Final = environment.FAULTS.name
POINTS: Final = frozenset({"hot.after_write", "hot.after_send", "hot.mid_send", "agent.budgets"})
WINDOWS: Final = frozenset({"hot.write"})

_armed: dict[str, tuple[str, int]] = {}
_passes: dict[str, int] = {}
_windows: dict[str, tuple[float, float] | Path] = {}
_failed: dict[str, int] = {}


def arm(spec: str | None = None) -> None:
    """Read the faults from ``spec`` (default: the environment). Raises ``ValueError``."""
    _armed.clear()
    _passes.clear()
    _windows.clear()
    _failed.clear()
    text = os.environ.get(ENV, "") if spec is None else spec
    for item in filter(None, (part.strip() for part in text.split(","))):
        action_where, _, nth = item.partition("@")
        action, _, where = action_where.partition(":")
        if action == "chfail" and where in WINDOWS and nth:
            start, plus, seconds = nth.partition("+")
            try:
                if plus:
                    began = time.monotonic() + float(start)
                    _windows[where] = (began, began + float(seconds))
                    continue
            except ValueError:
                raise ValueError(f"{ENV}: bad window in {item!r} (<start_s>+<seconds>)") from None
            _windows[where] = Path(nth)
            continue
        if action not in ("kill", "raise") or where not in POINTS:
            raise ValueError(
                f"{ENV}: unknown fault {item!r} (points: {sorted(POINTS)}, "
                f"windows: chfail:{'|'.join(sorted(WINDOWS))}@<start_s>+<seconds> or @<file>)"
            )
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


def window_open(where: str) -> bool:
    """Whether the failure window armed for ``where`` is open now."""
    window = _windows.get(where)
    if window is None:
        return False
    if isinstance(window, Path):
        return window.exists()
    began, ends = window
    return began <= time.monotonic() < ends


def clickhouse_write(table: str) -> None:
    """Called before each hot-path ClickHouse write; raises inside an open ``hot.write``
    window what clickhouse-connect raises when the server cannot be reached."""
    if not _windows or not window_open("hot.write"):
        return
    _failed[table] = _failed.get(table, 0) + 1
    raise OperationalError(
        f"Error HTTPConnectionPool: Max retries exceeded (fault injected: chfail:hot.write, "
        f"{table} write {_failed[table]})"
    )


def write_fault() -> Callable[[str], None] | None:
    """The writer's fault hook when a ``hot.write`` window is armed, else None."""
    return clickhouse_write if "hot.write" in _windows else None
