"""One hot-path batch: raw usage records -> ClickHouse rows, dead letters, budget deltas,
detector minutes and alerts. No network and no clock here: ``now_us`` is passed in, and the
ClickHouse lookups a batch may need are the caller's (:meth:`BatchBuilder.unsure`).

Per record, in order:

1. decode and validate (:meth:`BatchBuilder.decode`, the same rules as
   ``schemas.events.decode_event``, which gives the reason of every refusal); a refusal is a
   dead letter;
2. decide what the record is (see ``docs/exactly-once.md``): *new* (insert it and count it),
   *stored by this very record* (a replay after a crash: count it, do not insert it again),
   or a *repeat* of an event stored by another record (a retrying client: drop it);
3. price it, clamp its time to the ingest time, build its row;
4. feed the detector's minute windows; check per-request limits; collect one delta per
   matching budget.

This runs for every event at tens of thousands a second, so the common case (an SDK event:
known service and tag names, the SDK's timestamp form, an LLM call with one price) is
written out inline, and anything else takes the general code path of the same rules.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, Protocol

import msgspec
import orjson

from schemas import events as contract
from schemas.alerts import Alert
from schemas.events import Rejection, UsageEvent
from streams.budgets.delta import DeltaBuilder
from streams.budgets.model import Budget
from streams.budgets.periods import period_bounds
from streams.budgets.spend import per_request_alert
from streams.detect import DetectStream
from streams.hot.dedupe import StoredIds
from streams.ingest import unpriced_alert
from streams.pricing import Pricer

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_UNPRICED_MEMORY: Final = 10_000
_US_PER_MINUTE: Final = 60_000_000


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
    """One ``usage_events`` row (as a JSONEachRow line) and where it came from."""

    body: bytes
    partition: int
    offset: int
    key: int
    ts_us: int


@dataclass(slots=True)
class Rows:
    """A batch's rows, column by column: each row's event and what the hot path adds (cost,
    time clamped to the ingest time, source position, id key). A row not priced from the
    catalog also has its avoided cost, cost source and unpriced reason in ``priced``. The
    writer turns a run of rows into one Arrow block (:mod:`streams.hot.arrow`)."""

    epoch: str = ""
    ingested_us: int = 0
    events: list[UsageEvent] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    priced: dict[int, tuple[int, str, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> Row:
        return Row(self.body(i), self.partitions[i], self.offsets[i], self.keys[i], self.ts_us[i])

    def __iter__(self) -> Iterator[Row]:
        return (self[i] for i in range(len(self.events)))

    def source(self, i: int) -> tuple[int, str, str]:
        """``(avoided_cost_nusd, cost_source, unpriced_reason)`` of row ``i``."""
        return self.priced.get(i) or _CATALOG

    def body(self, i: int) -> bytes:
        """Row ``i`` as a JSONEachRow line, the values it is stored with (for dead letters,
        the optional priced export and reading)."""
        avoided, source, reason = self.source(i)
        return _row_json(
            self.events[i],
            self.ts_us[i],
            self.costs[i],
            avoided,
            source,
            reason,
            self.ingested_us,
            self.epoch,
            self.partitions[i],
            self.offsets[i],
        )


_CATALOG: Final = (0, "catalog", "")


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
    """What one batch produced; the deltas are built once the rows are written."""

    epoch: str
    rows: Rows = field(default_factory=Rows)
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


@dataclass(slots=True)
class Decoded:
    """A batch's records decoded: per record, the event or the refusal, its time (µs) and
    its event id as an integer (events only)."""

    records: list[Record]
    results: list[UsageEvent | Rejection]
    ts_us: list[int]
    keys: list[int]

    def __len__(self) -> int:
        return len(self.records)


class BudgetRouter:
    """Which budgets cover an event: decided once per (service, provider, model); a budget
    that also matches on tags has only its tag patterns checked per event."""

    def __init__(self, budgets: Iterable[Budget]) -> None:
        self.budgets = tuple(budgets)
        self.tagged = any(b.match.tags for b in self.budgets)
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
        self._expensive: dict[str, bool] = {}  # model -> matches [detect] expensive_models

    # -- phase 1: decode ---------------------------------------------------------------------
    def decode(self, records: Iterable[Record]) -> Decoded:
        """Decode and validate every record (``schemas.events`` rules: a record refused here
        gets its reason from ``decode_event``)."""
        records = list(records)
        results: list[UsageEvent | Rejection] = []
        ts_out: list[int] = []
        keys: list[int] = []
        decode = contract._DECODER.decode
        uuid_match = contract._UUID_RE.match
        seconds = contract._seconds
        services = contract._services.names
        tag_keys = contract._tag_keys.names
        max_bytes = contract.MAX_EVENT_BYTES
        for record in records:
            raw = record.value or b""
            event: Any = None
            if len(raw) <= max_bytes:
                try:
                    event = decode(raw)
                except msgspec.DecodeError:
                    event = None
            if event is not None:
                eid = event.event_id
                ts = event.ts
                tags = event.tags
                secs = seconds.get(ts[:19]) if len(ts) == 27 and ts[26] == "Z" else None
                if (
                    secs is not None
                    and ts[19] == "."
                    and uuid_match(eid) is not None
                    and event.service in services
                    and (not tags or tags.keys() <= tag_keys)
                    and not (event.unit or event.quantity or event.cost_usd)
                    and (event.model or not contract.has_tokens(event))
                    and (event.cache_read_tokens or 0) + (event.cache_write_tokens or 0)
                    <= (event.input_tokens or 0)
                    and (event.reasoning_tokens or 0) <= (event.output_tokens or 0)
                ):
                    frac = ts[20:26]
                    if frac.isdigit() and frac.isascii():
                        results.append(event)
                        ts_out.append(secs * 1_000_000 + int(frac))
                        keys.append(int(eid.replace("-", ""), 16))
                        continue
            # Anything else: the general path, with the reason of a refusal.
            answer = contract.decode_event(raw) if event is None else contract.check(event)
            if isinstance(answer, Rejection):
                results.append(answer)
                ts_out.append(0)
                keys.append(-1)
            else:
                results.append(answer[0])
                ts_out.append(answer[1])
                keys.append(answer[2])
        return Decoded(records, results, ts_out, keys)

    def unsure(self, decoded: Decoded) -> list[str]:
        """Event ids the in-memory window cannot vouch for (old events): ask ClickHouse."""
        ids = []
        is_sure = self.stored.is_sure
        replay = self.replay
        for record, result, ts_us in zip(
            decoded.records, decoded.results, decoded.ts_us, strict=True
        ):
            if isinstance(result, Rejection):
                continue
            if replay and (record.partition, record.offset) in replay:
                continue
            if not is_sure(record.partition, ts_us):
                ids.append(result.event_id)
        return ids

    # -- phase 2: everything else --------------------------------------------------------------
    def build(
        self,
        decoded: Decoded,
        now_us: int,
        existing: Mapping[str, Stored] | None = None,
    ) -> Batch:
        """The batch of ``decoded`` records at ingest time ``now_us``. ``existing`` maps the
        :meth:`unsure` ids found in ClickHouse to where they were stored."""
        batch = Batch(self.epoch)
        epoch = self.epoch
        now = _EPOCH + timedelta(microseconds=now_us)
        batch.rows.epoch = epoch
        batch.rows.ingested_us = now_us
        cutoff_us = now_us - self.ttl_us
        stored = self.stored
        windows = stored.partitions
        replay = self.replay
        pricer = self.pricer
        fast_price = pricer.price_llm_fast
        rows = batch.rows
        row_events, row_costs = rows.events, rows.costs
        row_parts, row_offsets = rows.partitions, rows.offsets
        row_keys, row_ts = rows.keys, rows.ts_us
        row_priced = rows.priced
        commit = batch.commit
        # detector: events summed per minute group (MinuteBatch's key, built inline)
        detect = self.detect
        groups: dict[tuple[Any, ...], list[int]] = {}
        max_us: dict[int, int] = {}
        if detect is not None:
            ds = detect.settings
            tag_keys = ds.tag_keys
            per_mtok = ds.expensive_nusd_per_mtok
            patterns = bool(ds.expensive_models)
            expensive_model = self._expensive_model
        # budgets: routes and delta entry lists per (service, provider, model, tags)
        account = _Accountant(self, batch)
        by_dims = account.by_dims
        spend = account.spend
        keys_here: dict[int, set[int]] = {}
        added: dict[int, list[tuple[int, int]]] = {}
        export = self.export_priced
        max_cost = contract.MAX_EVENT_COST_NUSD
        event: Any
        for record, event, raw_us, key in zip(
            decoded.records, decoded.results, decoded.ts_us, decoded.keys, strict=True
        ):
            partition, offset = record.partition, record.offset
            commit[partition] = offset + 1
            if type(event) is Rejection:
                batch.letters.append(
                    Letter(
                        record.topic,
                        partition,
                        offset,
                        record.key,
                        event.code,
                        str(event),
                        record.value or b"",
                    )
                )
                continue
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
            window = windows.get(partition)
            if key in seen_here or (window is not None and key in window.ids):
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
            # -- price and row
            cost = fast_price(event)
            if cost is None or cost > max_cost:
                priced = pricer.price(event)
                cost = priced.cost_nusd
                if cost > max_cost or priced.avoided_cost_nusd > max_cost:
                    # Out of range: stored, it would wrap the Int64 money columns or their sums.
                    batch.letters.append(
                        Letter(
                            record.topic,
                            partition,
                            offset,
                            record.key,
                            contract.OUT_OF_RANGE,
                            f"{contract.OUT_OF_RANGE}: the event costs (or saves) "
                            f"{max(cost, priced.avoided_cost_nusd)} nano-USD, more than "
                            f"{max_cost} (the most one event may)",
                            record.value or b"",
                        )
                    )
                    seen_here.discard(key)
                    continue
                if priced.source != "catalog" or priced.avoided_cost_nusd or priced.unpriced_reason:
                    row_priced[len(row_events)] = (
                        priced.avoided_cost_nusd,
                        priced.source,
                        priced.unpriced_reason or "",
                    )
                if priced.unpriced_reason is not None:
                    self._unpriced_alert(batch, event, priced.unpriced_reason, now)
            row_events.append(event)
            row_costs.append(cost)
            row_parts.append(partition)
            row_offsets.append(offset)
            row_keys.append(key)
            row_ts.append(ts_us)
            pairs = added.get(partition)
            if pairs is None:
                pairs = added[partition] = []
            pairs.append((ts_us, key))
            # -- detector minute groups
            tags = event.tags
            if detect is not None:
                tokens = (event.input_tokens or 0) + (event.output_tokens or 0)
                model = event.model or event.unit or "(none)"
                failed = event.status == "error"
                gkey = (
                    partition,
                    ts_us // _US_PER_MINUTE,
                    event.service,
                    model,
                    event.provider or "",
                    failed,
                    (event.error_type or None) if failed else None,
                    (patterns and expensive_model(model))
                    or (per_mtok > 0 and tokens > 0 and cost * 1_000_000 >= per_mtok * tokens),
                    tuple(map(tags.get, tag_keys)) if tags else None,
                )
                group = groups.get(gkey)
                if group is None:
                    groups[gkey] = [1, cost, tokens]
                else:
                    group[0] += 1
                    group[1] += cost
                    group[2] += tokens
                top = max_us.get(partition)
                if top is None or ts_us > top:
                    max_us[partition] = ts_us
            if export:
                batch.priced.append((event.service.encode(), rows.body(len(row_events) - 1)))
            # -- budgets (inline form of _Accountant.__call__)
            dims = (
                event.service,
                event.provider,
                event.model,
                tuple(tags.items()) if tags else None,
            )
            hit = by_dims.get(dims)
            if hit is None:
                hit = account.route(event, dims)
            budgets, lists, limited = hit
            if budgets:
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
                    spend[dims] = spend.get(dims, 0) + cost
                if limited:
                    account.check_limits(event, budgets, ts_us, cost)
        batch.records = len(decoded)
        for partition, pairs in added.items():
            stored.add(partition, pairs)
        stored.trim(now_us)
        account.close()
        if detect is not None and groups:
            minutes = detect.minutes.batch()
            minutes.groups = groups
            minutes.max_us = max_us
            batch.alerts += detect.observe(detect.minutes.add_batch(minutes))
        return batch

    def _expensive_model(self, model: str) -> bool:
        hit = self._expensive.get(model)
        if hit is None:
            assert self.detect is not None
            patterns = self.detect.settings.expensive_models
            hit = any(fnmatch.fnmatchcase(model, p) for p in patterns)
            if len(self._expensive) < 10_000:
                self._expensive[model] = hit
        return hit

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

    __slots__ = ("_batch", "_builder", "by_dims", "spend")

    def __init__(self, builder: BatchBuilder, batch: Batch) -> None:
        self._builder = builder
        self._batch = batch
        # dims -> (budgets, their delta entry lists, any per-request limit)
        self.by_dims: dict[tuple[Any, ...], tuple[Sequence[Budget], list[list[Any]], bool]] = {}
        self.spend: dict[tuple[Any, ...], int] = {}

    def route(
        self, event: UsageEvent, dims: tuple[Any, ...]
    ) -> tuple[Sequence[Budget], list[list[Any]], bool]:
        budgets = self._builder.router.route(event)
        hit = self.by_dims[dims] = (
            budgets,
            [self._batch.delta(b.name).entries for b in budgets],
            any(b.per_request_limit_nusd is not None for b in budgets),
        )
        return hit

    def __call__(
        self, event: UsageEvent, partition: int, offset: int, ts_us: int, cost: int
    ) -> None:
        """One stored event (a replayed one: the hot loop inlines this for new events)."""
        tags = event.tags
        dims = (event.service, event.provider, event.model, tuple(tags.items()) if tags else None)
        budgets, lists, limited = self.by_dims.get(dims) or self.route(event, dims)
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
            self.spend[dims] = self.spend.get(dims, 0) + cost
        if limited:
            self.check_limits(event, budgets, ts_us, cost)

    def check_limits(
        self, event: UsageEvent, budgets: Sequence[Budget], ts_us: int, cost: int
    ) -> None:
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
        for dims, cost in self.spend.items():
            service, provider, model, tags = dims
            for budget in self.by_dims[dims][0]:
                builder = self._batch.delta(budget.name)
                builder.tally("service", service, cost)
                if provider:
                    builder.tally("provider", provider, cost)
                if model:
                    builder.tally("model", model, cost)
                if tags:
                    for name, value in sorted(tags):
                        builder.tally(f"tag:{name}", value, cost)


def _row_json(
    event: UsageEvent,
    ts_us: int,
    cost_nusd: int,
    avoided_cost_nusd: int,
    cost_source: str,
    unpriced_reason: str,
    ingested_us: int,
    epoch: str,
    partition: int,
    offset: int,
) -> bytes:
    """A row as a JSONEachRow line: the event's fields (``cost_usd`` stored as
    ``supplied_cost_usd``), its clamped time, price and source position."""
    data: dict[str, Any] = event.to_dict()
    supplied = data.pop("cost_usd", None)
    if supplied is not None:
        data["supplied_cost_usd"] = supplied
    data["ts"] = _clickhouse_time(ts_us)
    data["cost_nusd"] = cost_nusd
    data["avoided_cost_nusd"] = avoided_cost_nusd
    data["cost_source"] = cost_source
    data["unpriced_reason"] = unpriced_reason
    data["ingested_at"] = _clickhouse_time(ingested_us)
    data["kafka_epoch"] = epoch
    data["kafka_partition"] = partition
    data["kafka_offset"] = offset
    return orjson.dumps(data)


def _clickhouse_time(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%d %H:%M:%S.%f")
