"""Reading the series people export: a ``timestamp,value`` CSV onto a regular grid of steps.

Exports from spreadsheets, pandas, billing consoles and monitoring tools are rarely tidy:

* timestamps without an offset (``2015-02-26 21:42:53``) are read in ``tz`` (UTC unless
  told otherwise); ISO 8601 with ``T`` or a space, fractions of a second and date-only rows
  are all accepted;
* rows may repeat a timestamp or come out of time order: they are placed by time, and rows
  falling in the same step are combined (summed for amounts, averaged for readings);
* spacing may be irregular or have gaps: the series is resampled onto its dominant step (the
  most common gap), each row going to the nearest step;
* values may be negative (credits and refunds).

What was done is returned as ``notes`` for the caller to print. Every row keeps its place:
``row_steps[i]`` is the step of input row ``i``, so a result can be written back one line per
input line, in input order.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Literal

Kind = Literal["spend", "count", "gauge"]
KINDS: tuple[Kind, ...] = ("spend", "count", "gauge")
HEADER_NAMES = {"timestamp", "ts", "time", "date", "datetime"}


@dataclass(frozen=True, slots=True)
class Rows:
    """The rows of a file as read: raw strings (echoed back unchanged) and parsed values."""

    raw_ts: list[str]
    raw_values: list[str]
    stamps: list[datetime]
    values: list[Decimal]
    naive: int  # rows whose timestamp had no offset
    zone: str = "UTC"  # the zone those were read in


@dataclass(frozen=True, slots=True)
class Grid:
    """A regular series: ``values[k]`` is step ``k`` (at ``start + k x step_s``), ``None``
    where no row fell (a gauge's gap; amounts count a gap as 0 instead)."""

    step_s: int
    start: datetime
    values: list[Decimal | None]
    row_steps: list[int]
    missing: int  # steps no row fell in
    notes: list[str] = field(default_factory=list)


def parse_rows(lines: Iterable[str], tz: tzinfo = UTC) -> Rows:
    """Parse ``timestamp,value`` CSV lines (a header row is optional; more columns are
    ignored). Raises ``ValueError`` naming the line for anything unreadable."""
    raw_ts: list[str] = []
    raw_values: list[str] = []
    stamps: list[datetime] = []
    values: list[Decimal] = []
    naive = 0
    for number, parts in enumerate(csv.reader(lines), start=1):
        parts = [p.strip() for p in parts]
        if not parts or not any(parts):
            continue
        if len(parts) < 2:
            raise ValueError(f"line {number}: expected 'timestamp,value'")
        if not stamps and parts[0].lower() in HEADER_NAMES:
            continue
        try:
            ts = datetime.fromisoformat(parts[0].replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"line {number}: bad timestamp {parts[0]!r}: {exc}") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=tz)
            naive += 1
        try:
            value = Decimal(parts[1])
        except InvalidOperation:
            raise ValueError(f"line {number}: bad value {parts[1]!r}") from None
        if not value.is_finite():
            raise ValueError(f"line {number}: value must be a finite number, got {parts[1]!r}")
        raw_ts.append(parts[0])
        raw_values.append(parts[1])
        stamps.append(ts.astimezone(UTC))
        values.append(value)
    if len(stamps) < 2:
        raise ValueError("need at least two rows to infer the interval")
    return Rows(raw_ts, raw_values, stamps, values, naive, str(tz))


def dominant_step_s(stamps: Sequence[datetime]) -> int:
    """The most common gap between consecutive distinct timestamps (in time order), in whole
    seconds (the smaller one on a tie). Raises ``ValueError`` when all rows share one
    time."""
    ordered = sorted(set(stamps))
    if len(ordered) < 2:
        raise ValueError("every row has the same timestamp: no interval to infer")
    gaps = Counter(max(1, round((b - a).total_seconds())) for a, b in itertools.pairwise(ordered))
    top = max(gaps.values())
    return min(g for g, n in gaps.items() if n == top)


def to_grid(rows: Rows, kind: Kind) -> Grid:
    """Place ``rows`` on the grid of their dominant step (see the module docstring)."""
    stamps, values = rows.stamps, rows.values
    step = dominant_step_s(stamps)
    first = min(stamps)
    # The grid's phase: the offset most rows share (the first row may be the jittered one).
    offsets = [(t - first).total_seconds() for t in stamps]
    phase = Counter(round(o) % step for o in offsets).most_common(1)[0][0]
    positions = [round((o - phase) / step) for o in offsets]
    lowest = min(positions)
    row_steps = [p - lowest for p in positions]
    t0 = first + timedelta(seconds=phase + lowest * step)
    n = max(row_steps) + 1
    sums: list[Decimal | None] = [None] * n
    counts = [0] * n
    for k, v in zip(row_steps, values, strict=True):
        prev = sums[k]
        sums[k] = v if prev is None else prev + v
        counts[k] += 1
    notes: list[str] = []
    if rows.naive:
        hint = " (--timezone to change)" if rows.zone == "UTC" else ""
        notes.append(f"{rows.naive} timestamps without an offset read as {rows.zone}{hint}")
    backwards = sum(1 for a, b in itertools.pairwise(stamps) if b < a)
    if backwards:
        notes.append(f"{backwards} rows earlier than the row before them: scored in time order")
    off_grid = sum(
        1 for t, k in zip(stamps, row_steps, strict=True) if (t - t0).total_seconds() != k * step
    )
    if off_grid:
        notes.append(
            f"{off_grid} rows off the dominant {step}s step: each moved to the nearest step"
        )
    shared = sum(c for c in counts if c > 1)
    if shared:
        how = "averaged" if kind == "gauge" else "summed"
        notes.append(
            f"{shared} rows share a step with another row: {how}, each row keeps its score"
        )
    if kind == "gauge":
        grid_values = [None if s is None else s / counts[k] for k, s in enumerate(sums)]
    else:
        grid_values = [Decimal(0) if s is None else s for s in sums]
    missing = sum(1 for c in counts if c == 0)
    return Grid(step, t0, grid_values, row_steps, missing, notes)
