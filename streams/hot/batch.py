"""One hot-path batch: raw usage records -> ClickHouse rows, dead letters, budget deltas,
detector minutes and alerts. No network and no clock here: ``now_us`` is passed in, and the
ClickHouse lookups a batch may need are the caller's (:meth:`BatchBuilder.unsure`).

Per record, in order:

1. decode and validate (``schemas.events.decode_event``); a refusal is a dead letter;
2. decide what the record is (see ``docs/exactly-once.md``): *new* (insert it and count it),
   *stored by this very record* (a replay after a crash: count it, do not insert it again),
   or a *repeat* of an event stored by another record (a retrying client: drop it);
3. price it, clamp its time to the ingest time, build its row;
4. feed the detector's minute windows; check per-request limits; collect one delta per
   matching budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, Protocol

import orjson
from msgspec import UNSET

from schemas.alerts import Alert
from schemas.events import Rejection, UsageEvent, decode_event
from streams.budgets.delta import DeltaBuilder
from streams.budgets.model import Budget
from streams.budgets.periods import period_bounds
from streams.budgets.spend import per_request_alert
from streams.detect import DetectStream
from streams.hot.dedupe import StoredIds
from streams.ingest import unpriced_alert
from streams.pricing import Pricer

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
Decoded = tuple[UsageEvent, int, int] | Rejection  # decode_event's answer
_UNPRICED_MEMORY: Final = 10_000


class Record(Protocol):
    """What the batch needs of an aiokafka ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Stored:
    """A usage row already in ClickHouse: where it came from, when, what it cost."""

    epoch: str
    partition: int
    offset: int
    ts_us: int
    cost_nusd: int


class Row(NamedTuple):
    """One ``usage_events`` row (a JSONEachRow line) and where it came from."""

    body: bytes
    partition: int
    offset: int
    key: int
    ts_us: int
    event_id: str


@dataclass(slots=True)
class Letter:
    """A record refused on the way in (dead-letter table and topic)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    reason_code: str
    reason: str
    original: bytes


@dataclass(slots=True)
class Batch:
    """What one batch produced; :meth:`deltas_for` after the rows are written."""

    epoch: str
    rows: list[Row] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    deltas: dict[str, DeltaBuilder] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    priced: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) export
    commit: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    records: int = 0
    repeats: int = 0
    replayed: int = 0

    def delta(self, budget: str) -> DeltaBuilder:
        builder = self.deltas.get(budget)
        if builder is None:
            builder = self.deltas[budget] = DeltaBuilder(budget)
        return builder


class BudgetRouter:
    """Which budgets cover an event: decided once per (service, provider, model); a budget
    that also matches on tags has only its tag patterns checked per event."""

    def __init__(self, budgets: Iterable[Budget]) -> None:
        self.budgets = tuple(budgets)
        self._cache: dict[tuple[str, str, str], tuple[tuple[Budget, ...], tuple[Budget, ...]]] = {}

    def route(self, event: UsageEvent) -> Sequence[Budget]:
        key = (event.service, event.provider or "", event.model or "")
        hit = self._cache.get(key)
        if hit is None:
            dims = {"service": key[0], "provider": key[1] or None, "model": key[2] or None}
            fits = [b for b in self.budgets if replace(b.match, tags=()).matches(dims)]
            if len(self._cache) >= 10_000:
                self._cache.clear()
            hit = self._cache[key] = (
                tuple(b for b in fits if not b.match.tags),
                tuple(b for b in fits if b.match.tags),
            )
        plain, tagged = hit
        if not tagged:
            return plain
        tags = {"tags": event.tags or {}}
        return plain + tuple(b for b in tagged if b.match.matches(tags, tags_only=True))


class BatchBuilder:
    """Builds batches for one worker; holds what outlives a batch (windows, caches)."""

    def __init__(
        self,
        *,
        pricer: Pricer,
        budgets: Iterable[Budget],
        stored: StoredIds,
        detect: DetectStream | None,
        ttl_days: int,
        export_priced: bool = False,
    ) -> None:
        self.pricer = pricer
        self.router = BudgetRouter(budgets)
        self.stored = stored
        self.detect = detect
        self.ttl_us = ttl_days * 86_400_000_000
        self.export_priced = export_priced
        self.epoch = ""
        # (partition, offset) -> (id key, Stored) of rows stored past the committed offset
        # (read at assignment): a replayed record finds itself here.
        self.replay: dict[tuple[int, int], tuple[int, Stored]] = {}
        self._unpriced: set[str] = set()

    # -- phase 1: decode ---------------------------------------------------------------------
    def decode(self, records: Iterable[Record]) -> list[tuple[Record, Decoded]]:
        return [(r, decode_event(r.value or b"")) for r in records]

    def unsure(self, decoded: Iterable[tuple[Record, Decoded]]) -> list[str]:
        """Event ids the in-memory window cannot vouch for (old events): ask ClickHouse."""
        ids = []
        for record, result in decoded:
            if isinstance(result, Rejection):
                continue
            event, ts_us, _ = result
            if (record.partition, record.offset) in self.replay:
                continue
            if not self.stored.is_sure(record.partition, ts_us):
                ids.append(event.event_id)
        return ids

    # -- phase 2: everything else --------------------------------------------------------------
    def build(
        self,
        decoded: Sequence[tuple[Record, Decoded]],
        now_us: int,
        existing: Mapping[str, Stored] | None = None,
    ) -> Batch:
        """The batch of ``decoded`` records at ingest time ``now_us``. ``existing`` maps the
        :meth:`unsure` ids found in ClickHouse to where they were stored."""
        batch = Batch(self.epoch)
        epoch = self.epoch
        now = _EPOCH + timedelta(microseconds=now_us)
        self._now = now
        ingested = b',"ingested_at":' + orjson.dumps(now.strftime("%Y-%m-%d %H:%M:%S.%f"))
        tails: dict[int, bytes] = {}  # partition -> the row's constant tail
        cutoff_us = now_us - self.ttl_us
        stored = self.stored
        replay = self.replay
        price = self.pricer.price
        minutes = self.detect.minutes.batch() if self.detect is not None else None
        account = self._accountant(batch)
        keys_here: dict[int, set[int]] = {}
        added: dict[int, list[tuple[int, int]]] = {}
        rows = batch.rows
        commit = batch.commit
        for record, result in decoded:
            partition, offset = record.partition, record.offset
            commit[partition] = offset + 1
            if isinstance(result, Rejection):
                batch.letters.append(
                    Letter(
                        record.topic,
                        partition,
                        offset,
                        record.key,
                        result.code,
                        str(result),
                        record.value or b"",
                    )
                )
                continue
            event, raw_us, key = result
            seen_here = keys_here.get(partition)
            if seen_here is None:
                seen_here = keys_here[partition] = set()
            if replay:
                mine = replay.pop((partition, offset), None)
                if mine is not None and mine[0] == key:
                    # Stored by this very record before a crash: count it, do not store it.
                    seen_here.add(key)
                    batch.replayed += 1
                    account(event, partition, offset, mine[1].ts_us, mine[1].cost_nusd)
                    continue
            if key in seen_here or stored.seen(partition, key):
                batch.repeats += 1
                continue
            if existing:
                found = existing.get(event.event_id)
                if found is not None:
                    seen_here.add(key)
                    if (found.epoch, found.partition, found.offset) == (epoch, partition, offset):
                        batch.replayed += 1
                        account(event, partition, offset, found.ts_us, found.cost_nusd)
                    else:
                        batch.repeats += 1
                    continue
            seen_here.add(key)
            ts_us = raw_us if raw_us <= now_us else now_us
            if ts_us < cutoff_us:
                batch.letters.append(
                    Letter(
                        record.topic,
                        partition,
                        offset,
                        record.key,
                        "expired",
                        f"expired: ts {event.ts} is older than the retention of usage_events",
                        record.value or b"",
                    )
                )
                continue
            priced = price(event)
            cost = priced.cost_nusd
            raw = record.value or b""
            ts = event.ts
            if (
                raw_us == ts_us
                and event.cost_usd is UNSET
                and len(ts) == 27  # the SDK's form (...ffffffZ), which ClickHouse parses as we do
                and ts[26] == "Z"
                and raw[-1:] == b"}"
                and not (priced.avoided_cost_nusd or priced.unpriced_reason)
            ):
                tail = tails.get(partition)
                if tail is None:
                    tail = tails[partition] = b'%s,"kafka_epoch":"%s","kafka_partition":%d' % (
                        ingested,
                        epoch.encode(),
                        partition,
                    )
                body = b"".join(
                    (
                        raw[:-1],
                        _SOURCES[priced.source],
                        str(cost).encode(),
                        tail,
                        b',"kafka_offset":',
                        str(offset).encode(),
                        b"}",
                    )
                )
            else:
                body = _row_json(event, ts_us, priced, now, epoch, partition, offset)
            rows.append(Row(body, partition, offset, key, ts_us, event.event_id))
            pairs = added.get(partition)
            if pairs is None:
                pairs = added[partition] = []
            pairs.append((ts_us, key))
            if priced.unpriced_reason is not None:
                self._unpriced_alert(batch, event, priced.unpriced_reason, now)
            if minutes is not None:
                minutes.add(
                    partition,
                    event.service,
                    ts_us,
                    cost,
                    (event.input_tokens or 0) + (event.output_tokens or 0),
                    event.model or event.unit or "(none)",
                    event.provider or "",
                    event.status == "error",
                    event.error_type or None,
                    event.tags or None,
                )
            if self.export_priced:
                batch.priced.append((event.service.encode(), body))
            account(event, partition, offset, ts_us, cost)
        batch.records = len(decoded)
        for partition, pairs in added.items():
            stored.add(partition, pairs)
        stored.trim(now_us)
        account.close()
        if minutes is not None and minutes.groups:
            assert self.detect is not None
            batch.alerts += self.detect.observe(self.detect.minutes.add_batch(minutes))
        return batch

    def _accountant(self, batch: Batch) -> _Accountant:
        return _Accountant(self, batch)

    def _unpriced_alert(
        self, batch: Batch, event: UsageEvent, reason: str | None, now: datetime
    ) -> None:
        alert = unpriced_alert({**event.to_dict(), "unpriced_reason": reason}, now)
        if alert.alert_id in self._unpriced:
            return
        if len(self._unpriced) >= _UNPRICED_MEMORY:
            self._unpriced.clear()
        self._unpriced.add(alert.alert_id)
        batch.alerts.append(alert)


class _Accountant:
    """A batch's budget side: each stored event goes to the delta of every budget that covers
    it (in batch order, so the ledger finds the exact crossing event) and is checked against
    per-request limits; contributors are summed per (service, provider, model, tags) and
    handed to the deltas once, at :meth:`close`."""

    __slots__ = ("_batch", "_builder", "_by_dims", "_spend")

    def __init__(self, builder: BatchBuilder, batch: Batch) -> None:
        self._builder = builder
        self._batch = batch
        # dims -> (budgets, their delta entry lists, any per-request limit)
        self._by_dims: dict[tuple[Any, ...], tuple[Sequence[Budget], list[list[Any]], bool]] = {}
        self._spend: dict[tuple[Any, ...], int] = {}

    def __call__(
        self, event: UsageEvent, partition: int, offset: int, ts_us: int, cost: int
    ) -> None:
        tags = event.tags
        dims = (event.service, event.provider, event.model, tuple(tags.items()) if tags else None)
        hit = self._by_dims.get(dims)
        if hit is None:
            budgets = self._builder.router.route(event)
            hit = self._by_dims[dims] = (
                budgets,
                [self._batch.delta(b.name).entries for b in budgets],
                any(b.per_request_limit_nusd is not None for b in budgets),
            )
        budgets, lists, limited = hit
        if not budgets:
            return
        entry = (
            partition,
            offset,
            ts_us,
            cost,
            (event.input_tokens or 0) + (event.output_tokens or 0),
        )
        for entries in lists:
            entries.append(entry)
        if cost:
            self._spend[dims] = self._spend.get(dims, 0) + cost
        if limited:
            for budget in budgets:
                limit = budget.per_request_limit_nusd
                if limit is not None and cost > limit:
                    ts = _EPOCH + timedelta(microseconds=ts_us)
                    start, _ = period_bounds(budget, ts)
                    self._batch.alerts.append(
                        per_request_alert(budget, start, event.to_dict(), cost, ts)
                    )

    def close(self) -> None:
        """Contributors per budget, from the spend summed per dims."""
        for dims, cost in self._spend.items():
            service, provider, model, tags = dims
            for budget in self._by_dims[dims][0]:
                builder = self._batch.delta(budget.name)
                builder.tally("service", service, cost)
                if provider:
                    builder.tally("provider", provider, cost)
                if model:
                    builder.tally("model", model, cost)
                if tags:
                    for name, value in sorted(tags):
                        builder.tally(f"tag:{name}", value, cost)


# The fixed part of a row's priced fields, by cost source (the cost follows).
_SOURCES: Final = {
    source: b',"cost_source":"%s","cost_nusd":' % source.encode()
    for source in ("supplied", "catalog", "price_table", "unpriced")
}


def _row_json(
    event: UsageEvent,
    ts_us: int,
    price: Any,
    now: datetime,
    epoch: str,
    partition: int,
    offset: int,
) -> bytes:
    """A row built field by field: clamped times, supplied cost, odd timestamp forms."""
    data: dict[str, Any] = event.to_dict()
    supplied = data.pop("cost_usd", None)
    if supplied is not None:
        data["supplied_cost_usd"] = supplied
    data["ts"] = (_EPOCH + timedelta(microseconds=ts_us)).strftime("%Y-%m-%d %H:%M:%S.%f")
    data["cost_nusd"] = price.cost_nusd
    data["avoided_cost_nusd"] = price.avoided_cost_nusd
    data["cost_source"] = price.source
    data["unpriced_reason"] = price.unpriced_reason or ""
    data["ingested_at"] = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    data["kafka_epoch"] = epoch
    data["kafka_partition"] = partition
    data["kafka_offset"] = offset
    return orjson.dumps(data)
