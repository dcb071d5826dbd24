"""A run of hot-path rows as one Arrow block for ``usage_events``.

ClickHouse takes a columnar block for about half the CPU per row of the same rows as
``JSONEachRow`` (bench/bench_insert_formats.py: Arrow and Native against JSON, measured on the
embedded chDB), and the worker builds the columns from the decoded events with list
comprehensions, one C-level conversion per column, instead of one JSON line per row.

What each column holds is what a JSONEachRow line of the same row would store (a test
inserts both and compares every column): an absent optional string is ``''``, an absent
count ``0``, an absent flag ``false``, an absent ``quantity``, supplied cost or latency
``NULL``; ``ts`` is the time clamped to the ingest time; decimals travel as the decimal
strings the event carried and ClickHouse converts them as it would from JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa
from msgspec import UNSET

from schemas.events import TOKEN_FIELDS
from streams.hot.batch import Rows

_UTC_US: Final = pa.timestamp("us", tz="UTC")
# Fields with few distinct combinations in a batch: read together, numbered per combination,
# and each column expanded from its combinations by Arrow (``take``).
_FEW: Final = (
    "service",
    "operation",
    "status",
    "provider",
    "model",
    "response_model",
    "unit",
    "error_type",
    "environment",
    "cache_hit",
    "partial",
)
_FLAGS: Final = frozenset({"cache_hit", "partial"})
_few = attrgetter(*_FEW)
FORMAT: Final = "ArrowStream"


def usage_block(rows: Rows, piece: Sequence[int]) -> tuple[list[str], bytes]:
    """The column names and the Arrow IPC stream of rows ``piece`` (in that order)."""
    if isinstance(piece, range) and piece.step == 1:
        start, stop = piece.start, piece.stop
        events = rows.events[start:stop]
        costs = rows.costs[start:stop]
        ts_us = rows.ts_us[start:stop]
        partitions = rows.partitions[start:stop]
        offsets = rows.offsets[start:stop]
    else:
        events = [rows.events[i] for i in piece]
        costs = [rows.costs[i] for i in piece]
        ts_us = [rows.ts_us[i] for i in piece]
        partitions = [rows.partitions[i] for i in piece]
        offsets = [rows.offsets[i] for i in piece]
    n = len(events)
    priced = rows.priced
    if priced:
        sources = [rows.source(i) for i in piece]
        avoided = pa.array([s[0] for s in sources], pa.int64())
        cost_source = pa.array([s[1] for s in sources], pa.string())
        unpriced = pa.array([s[2] for s in sources], pa.string())
    else:
        avoided = pa.array(np.zeros(n, dtype=np.int64))
        cost_source = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array(["catalog"])
        )
        unpriced = pa.array([""] * n, pa.string())
    columns: dict[str, pa.Array] = {
        "event_id": pa.array([e.event_id for e in events], pa.string()),
        "ts": pa.array(np.array(ts_us, dtype=np.int64), _UTC_US),
        "schema_version": pa.array(np.ones(n, dtype=np.uint8)),
    }
    few = list(map(_few, events))
    combos = {c: i for i, c in enumerate(dict.fromkeys(few))}
    codes = pa.array(np.fromiter(map(combos.__getitem__, few), np.int32, count=n))
    for k, name in enumerate(_FEW):
        if name in _FLAGS:
            values = pa.array([c[k] is True for c in combos], pa.bool_())
        else:
            values = pa.array([c[k] or "" for c in combos], pa.string())
        columns[name] = values.take(codes)
    columns["request_id"] = pa.array([e.request_id or "" for e in events], pa.string())
    for name in TOKEN_FIELDS:
        columns[name] = pa.array([getattr(e, name) or 0 for e in events], pa.uint32())
    columns["quantity"] = pa.array([e.quantity or None for e in events], pa.string())
    columns["supplied_cost_usd"] = pa.array([e.cost_usd or None for e in events], pa.string())
    columns["latency_ms"] = pa.array(
        [None if e.latency_ms is UNSET else e.latency_ms for e in events], pa.float64()
    )
    columns["tags"] = _tags([e.tags for e in events])
    columns["cost_nusd"] = pa.array(costs, pa.int64())
    columns["avoided_cost_nusd"] = avoided
    columns["cost_source"] = cost_source
    columns["unpriced_reason"] = unpriced
    columns["ingested_at"] = pa.array(np.full(n, rows.ingested_us, dtype=np.int64), _UTC_US)
    columns["kafka_epoch"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([rows.epoch])
    )
    columns["kafka_partition"] = pa.array(partitions, pa.int32())
    columns["kafka_offset"] = pa.array(offsets, pa.int64())
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return table.column_names, sink.getvalue().to_pybytes()


def _tags(tags: list[Any]) -> pa.Array:
    """``Map(String, String)`` from each row's tags (a dict, or UNSET: an empty map)."""
    offsets = [0]
    keys: list[str] = []
    values: list[str] = []
    end = 0
    for row in tags:
        if row:
            keys.extend(row)
            values.extend(row.values())
            end += len(row)
        offsets.append(end)
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(keys, pa.string()), pa.array(values, pa.string())
    )
