"""A debug hook to locate memory growth in a worker: ``SPENDWATCH_MEMTRACE=<path>``.

When the variable is set (never in production: tracemalloc slows Python down by about half),
:func:`arm` starts :mod:`tracemalloc` and a daemon thread that, every ``interval_s``:

* appends one line to ``<path>``: seconds since start, RSS and peak RSS of the process
  (``/proc/self/status``), and the Python heap tracemalloc traces (current and peak), all MB;
  RSS minus the traced heap is native memory (chDB, librdkafka-free aiokafka buffers, the
  allocator's slack);
* with an embedded chDB, adds what ClickHouse's own tracker says it holds
  (``MemoryTracking``, of which merges), its mark, primary-index and query-condition
  caches, the primary keys of the active parts, the active parts of ``usage_events`` and the
  merges running (MB and counts);
* rewrites ``<path>.top`` with the 40 source lines holding the most traced memory.

Unset (the default), :func:`arm` does nothing.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Final

from schemas import environment
from sinks.settings import ClickHouseSettings

ENV: Final = environment.MEMTRACE.name
TOP_LINES: Final = 40


def _status_mb() -> tuple[float, float]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


# One row: chDB's tracked memory, caches and primary keys (MB), active parts, merges.
CHDB_SQL: Final = """
SELECT
    sumIf(value, metric = 'MemoryTracking') / 1048576,
    sumIf(value, metric = 'MergesMutationsMemoryTracking') / 1048576,
    sumIf(value, metric = 'MarkCacheBytes') / 1048576,
    sumIf(value, metric = 'PrimaryIndexCacheBytes') / 1048576,
    sumIf(value, metric = 'QueryConditionCacheBytes') / 1048576,
    (SELECT sum(primary_key_bytes_in_memory_allocated) FROM system.parts WHERE active) / 1048576,
    (SELECT count() FROM system.parts WHERE active AND table = 'usage_events'),
    (SELECT count() FROM system.merges)
FROM system.metrics
"""


def _chdb_line(client: Any) -> str:
    try:
        tracked, merging, marks, pk_cache, conditions, keys, parts, merges = client.query(
            CHDB_SQL
        ).result_rows[0]
    except Exception as exc:  # a debug line: never a crash
        return f" chdb=? ({type(exc).__name__})"
    return (
        f" chdb={tracked:.0f} merging={merging:.0f} marks={marks:.0f} pk_cache={pk_cache:.0f} "
        f"conditions={conditions:.0f} pk={keys:.0f} parts={parts} merges={merges}"
    )


def _write(path: Path, started: float, client: Any) -> None:
    current, peak = tracemalloc.get_traced_memory()
    rss, hwm = _status_mb()
    line = (
        f"{time.monotonic() - started:.0f}s rss={rss:.0f} hwm={hwm:.0f} "
        f"py={current / 2**20:.0f} py_peak={peak / 2**20:.0f}"
        + (_chdb_line(client) if client is not None else "")
        + "\n"
    )
    with path.open("a") as out:
        out.write(line)
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    top = snapshot.statistics("lineno")[:TOP_LINES]
    Path(f"{path}.top").write_text(line + "".join(f"{stat}\n" for stat in top))


def arm(clickhouse: ClickHouseSettings | None = None, interval_s: float = 10.0) -> None:
    """Start tracing if ``SPENDWATCH_MEMTRACE`` is set (see the module docstring)."""
    target = os.environ.get(ENV, "")
    if not target:
        return
    path = Path(target)
    tracemalloc.start(1)
    started = time.monotonic()

    def loop() -> None:
        client = None
        while True:
            time.sleep(interval_s)
            if client is None and clickhouse is not None and clickhouse.is_chdb:
                from sinks.client import make_client  # the engine is shared in-process

                client = make_client(clickhouse)
            _write(path, started, client)

    threading.Thread(target=loop, name="memtrace", daemon=True).start()
