"""A debug hook to locate memory growth in a worker: ``SPENDWATCH_MEMTRACE=[py:]<path>[@s]``.

When the variable is set (never in production), :func:`arm` starts a daemon thread that,
every ``s`` seconds (10 by default), appends one line to ``<path>`` (sizes in MB):

* ``rss`` / ``hwm``: resident and peak resident size of the process (``/proc/self/status``),
  ``anon`` / ``file``: the part of ``rss`` that is heap and stacks / mapped files (chDB's
  550 MB library is one);
* ``malloc_used`` / ``malloc_free``: what glibc's allocator has handed out and still holds
  (``mallinfo2``, all arenas): RSS that is ``malloc_free`` is freed memory the allocator
  keeps, not live data;
* ``obmalloc`` / ``obmalloc_hwm``: CPython's small-object arenas (1 MB each, not from
  malloc), now and at most: more arenas than live Python objects need is fragmentation;
* with an embedded chDB (which has its own jemalloc): what jemalloc has handed out and
  holds resident (``je_allocated`` / ``je_resident``), what ClickHouse's own tracker says it
  holds (``chdb``, of which
  ``merging``), its mark, primary-index and query-condition caches, the primary keys of the
  active parts, the active parts of ``usage_events`` and the merges running;
* with the ``burst:`` prefix, :mod:`tracemalloc` starts when the small-object arenas grow
  by 50 MB between two lines (so ``<path>.top`` shows where a burst of Python objects comes
  from without slowing the run down before it);
* with the ``py:`` prefix, :mod:`tracemalloc` is on (it slows Python down by about half):
  ``py`` / ``py_peak`` is the traced Python heap, and ``<path>.top`` is rewritten with the
  40 source lines holding the most of it whenever the heap is larger than it has been.

Unset (the default), :func:`arm` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Final

from schemas import environment
from sinks.settings import ClickHouseSettings

ENV: Final = environment.MEMTRACE.name
TOP_LINES: Final = 40
MB: Final = 1 << 20

# One row: chDB's tracked memory, of which merges, its caches, primary keys (MB), parts,
# merges, then jemalloc's allocated and resident bytes (MB).
CHDB_SQL: Final = """
SELECT
    sumIf(value, metric = 'MemoryTracking') / 1048576,
    sumIf(value, metric = 'MergesMutationsMemoryTracking') / 1048576,
    sumIf(value, metric = 'MarkCacheBytes') / 1048576,
    sumIf(value, metric = 'PrimaryIndexCacheBytes') / 1048576,
    sumIf(value, metric = 'QueryConditionCacheBytes') / 1048576,
    (SELECT sum(primary_key_bytes_in_memory_allocated) FROM system.parts WHERE active) / 1048576,
    (SELECT count() FROM system.parts WHERE active AND table = 'usage_events'),
    (SELECT count() FROM system.merges),
    (SELECT toUInt64OrZero(extract(any(*), 'Allocated: (\\d+)')) FROM system.jemalloc_stats)
        / 1048576,
    (SELECT toUInt64OrZero(extract(any(*), 'resident: (\\d+)')) FROM system.jemalloc_stats)
        / 1048576
FROM system.metrics
"""


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> tuple[float, float] | None:
    """``(used, free)`` MB of glibc's allocator, or None off glibc (or before 2.33)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        call = libc.mallinfo2
    except (OSError, AttributeError, TypeError):
        return None
    call.restype = _MallInfo2
    info = call()
    return (info.uordblks + info.hblkhd) / MB, info.fordblks / MB


def _obmalloc_mb() -> tuple[float, float] | None:
    """``(current, highwater)`` MB of CPython's small-object arenas (``sys._debugmallocstats``,
    which only writes to the C stderr: it is pointed at a file for the call, so another
    thread's stderr line written meanwhile lands there too)."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return None
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    found = dict(re.findall(r"# arenas (allocated current|highwater mark)\s*=\s*([\d,]+)", text))
    if len(found) < 2:
        return None
    # 1 MiB arenas (CPython 3.10+ on 64-bit)
    return float(found["allocated current"].replace(",", "")), float(
        found["highwater mark"].replace(",", "")
    )


def _status_mb() -> dict[str, float]:
    values = {}
    for text in Path("/proc/self/status").read_text().splitlines():
        key, _, value = text.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = int(value.split()[0]) / 1024
    return values


def _chdb_text(client: Any) -> str:
    try:
        row = client.query(CHDB_SQL).result_rows[0]
        tracked, merging, marks, pk_cache, conditions, keys, parts, merges, je, je_res = row
    except Exception as exc:  # a debug line: never a crash
        return f" chdb=? ({type(exc).__name__})"
    return (
        f" je_allocated={je:.0f} je_resident={je_res:.0f}"
        f" chdb={tracked:.0f} merging={merging:.0f} marks={marks:.0f} pk_cache={pk_cache:.0f} "
        f"conditions={conditions:.0f} pk={keys:.0f} parts={parts} merges={merges}"
    )


def line(started: float, client: Any) -> str:
    """One line of the log (see the module docstring)."""
    mb = _status_mb()
    text = (
        f"{time.monotonic() - started:.0f}s rss={mb.get('VmRSS', 0):.0f} "
        f"hwm={mb.get('VmHWM', 0):.0f} anon={mb.get('RssAnon', 0):.0f} "
        f"file={mb.get('RssFile', 0):.0f}"
    )
    heap = _mallinfo()
    if heap is not None:
        text += f" malloc_used={heap[0]:.0f} malloc_free={heap[1]:.0f}"
    arenas = _obmalloc_mb()
    if arenas is not None:
        text += f" obmalloc={arenas[0]:.0f} obmalloc_hwm={arenas[1]:.0f}"
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        text += f" py={current / MB:.0f} py_peak={peak / MB:.0f}"
    if client is not None:
        text += _chdb_text(client)
    return text + "\n"


def _top(path: Path, head: str) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    top = snapshot.statistics("lineno")[:TOP_LINES]
    Path(f"{path}.top").write_text(head + "".join(f"{stat}\n" for stat in top))


def arm(clickhouse: ClickHouseSettings | None = None, interval_s: float = 10.0) -> None:
    """Start the hook if ``SPENDWATCH_MEMTRACE`` is set (see the module docstring)."""
    target = os.environ.get(ENV, "")
    if not target:
        return
    burst = target.startswith("burst:")
    if burst:
        target = target[6:]
    elif target.startswith("py:"):
        target = target[3:]
        tracemalloc.start(1)
    target, _, every = target.partition("@")
    if every:
        interval_s = float(every)
    path = Path(target)
    started = time.monotonic()

    def loop() -> None:
        client = None
        top_mb = 0.0
        arenas_mb = None
        while True:
            time.sleep(interval_s)
            if client is None and clickhouse is not None and clickhouse.is_chdb:
                from sinks.client import make_client  # the engine is shared in-process

                client = make_client(clickhouse)
            if burst and not tracemalloc.is_tracing():
                now_mb = _obmalloc_mb()
                if now_mb is not None and arenas_mb is not None and now_mb[0] - arenas_mb >= 50:
                    tracemalloc.start(1)  # the objects allocated from now on
                arenas_mb = now_mb[0] if now_mb is not None else None
            text = line(started, client)
            with path.open("a") as out:
                out.write(text)
            if tracemalloc.is_tracing():
                current_mb = tracemalloc.get_traced_memory()[0] / MB
                if current_mb > top_mb:  # the heap at its largest so far
                    top_mb = current_mb
                    _top(path, text)

    threading.Thread(target=loop, name="memtrace", daemon=True).start()
