"""``BudgetDelta``: one budget's share of one hot-path batch, the only input of a ledger.

The hot path sends one delta per (budget, batch) to ``spendwatch.budget-deltas.v1`` (key =
budget), after the batch's rows are in ClickHouse and before its offsets are committed. It
carries, for each stored event the budget covers, in batch order:

- the event's source position ``(partition, offset)`` in the usage topic of ``epoch``: the
  ledger counts each position once (see docs/exactly-once.md);
- its time (µs, clamped to ingest time) and cost, so the exact crossing event is found;
- its tokens, for the quotas;

and the batch's contributors per dimension (service, provider, model, ``tag:<key>``) for the
usage analysis. Lists are delta-encoded (each value minus the previous) to keep a 5,000-event
delta near 100 KB of JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final

import msgspec

DELTA_VERSION: Final = 1
MAX_EVENTS: Final = 10_000  # per delta message (~250 KB of JSON), far under Kafka's 1 MB
MAX_NAMES: Final = 50  # contributors per dimension in one delta; the rest go to "(other)"
OTHER: Final = "(other)"


class BudgetDelta(msgspec.Struct, omit_defaults=True, gc=False):
    """See the module docstring. Build with :class:`DeltaBuilder`; read with :meth:`events`."""

    budget: str
    epoch: str
    partition: list[int]  # delta-encoded
    offset: list[int]  # delta-encoded
    ts_us: list[int]  # delta-encoded
    cost_nusd: list[int]
    tokens: list[int]
    tallies: dict[str, dict[str, int]] = {}
    schema_version: int = DELTA_VERSION

    def events(self) -> Iterator[tuple[int, int, int, int, int]]:
        """``(partition, offset, ts_us, cost_nusd, tokens)`` per event, in batch order."""
        return zip(
            accumulate(self.partition),
            accumulate(self.offset),
            accumulate(self.ts_us),
            self.cost_nusd,
            self.tokens,
            strict=True,
        )

    @property
    def size(self) -> int:
        return len(self.cost_nusd)


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(BudgetDelta)


def encode_delta(delta: BudgetDelta) -> bytes:
    return _ENCODER.encode(delta)


def decode_delta(raw: bytes) -> BudgetDelta:
    """Raises ``msgspec.DecodeError`` for anything but a v1 delta."""
    return _DECODER.decode(raw)


@dataclass(slots=True)
class DeltaBuilder:
    """Collects one budget's events of a batch; :meth:`build` skips positions refused."""

    budget: str
    entries: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    tallies: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, entry: tuple[int, int, int, int, int]) -> None:
        """``(partition, offset, ts_us, cost_nusd, tokens)``."""
        self.entries.append(entry)

    def tally(self, dimension: str, name: str, cost_nusd: int) -> None:
        names = self.tallies.get(dimension)
        if names is None:
            names = self.tallies[dimension] = {}
        if name not in names and len(names) >= MAX_NAMES:
            name = OTHER
        names[name] = names.get(name, 0) + cost_nusd

    def build(
        self, epoch: str, refused: set[tuple[int, int]] | frozenset[tuple[int, int]] = frozenset()
    ) -> list[BudgetDelta]:
        """The deltas (one, or one per ``MAX_EVENTS`` events; contributors go with the
        last). ``refused`` positions (rows ClickHouse dead-lettered) are not counted: the
        ledger counts only what is stored."""
        entries = self.entries
        if refused:
            entries = [e for e in entries if (e[0], e[1]) not in refused]
        chunks = [entries[i : i + MAX_EVENTS] for i in range(0, len(entries), MAX_EVENTS)]
        tallies = {d: {n: v for n, v in names.items() if v} for d, names in self.tallies.items()}
        return [
            self._delta(epoch, chunk, tallies if i == len(chunks) - 1 else {})
            for i, chunk in enumerate(chunks)
        ]

    def _delta(
        self,
        epoch: str,
        entries: list[tuple[int, int, int, int, int]],
        tallies: dict[str, dict[str, int]],
    ) -> BudgetDelta:
        if entries:
            partitions, offsets, times, cost, tokens = map(list, zip(*entries, strict=True))
        else:
            partitions = offsets = times = cost = tokens = []
        partition, offset, ts_us = _deltas(partitions), _deltas(offsets), _deltas(times)
        return BudgetDelta(
            budget=self.budget,
            epoch=epoch,
            partition=partition,
            offset=offset,
            ts_us=ts_us,
            cost_nusd=cost,
            tokens=tokens,
            tallies=tallies,
        )


def _deltas(values: list[int]) -> list[int]:
    """Each value minus the one before it (the first minus 0)."""
    return [b - a for a, b in zip([0, *values[:-1]], values, strict=True)]
