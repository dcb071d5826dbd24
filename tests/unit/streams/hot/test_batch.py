"""One hot-path batch, record by record: what is stored, counted, dropped or dead-lettered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.config import load_settings
from streams.detect import DetectStream
from streams.hot.batch import BatchBuilder, Stored
from streams.hot.dedupe import StoredIds, id_key
from streams.pricing import Pricer

NOW = datetime(2026, 11, 23, 18, 0, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp()) * 1_000_000
CONFIG = """
[[prices]]
provider = "polygon"
unit = "request"
usd_per_unit = "0.004"

[[budgets]]
name = "all"
limit_usd = "100"

[[budgets]]
name = "bot"
limit_usd = "100"
per_request_limit_usd = "0.01"
match = { service = "support-bot" }

[[budgets]]
name = "team-a"
limit_usd = "100"
match = { tags = { team = "a*" } }
"""


def ts(delta_s: float = 0) -> str:
    return (NOW + timedelta(seconds=delta_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": ts(-1),
        "service": "market-data",
        "operation": "quote",
        "status": "ok",
        "provider": "polygon",
        "unit": "request",
        "quantity": "1",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC)


def records(*events: dict[str, Any] | bytes, partition: int = 0, first: int = 0) -> list[Any]:
    return [
        SimpleNamespace(
            topic="spendwatch.usage.v1",
            partition=partition,
            offset=first + i,
            key=b"k",
            value=e if isinstance(e, bytes) else orjson.dumps(e),
        )
        for i, e in enumerate(events)
    ]


@pytest.fixture
def builder() -> BatchBuilder:
    settings = load_settings(text=CONFIG)
    b = BatchBuilder(
        pricer=Pricer(settings.prices),
        budgets=settings.budgets,
        stored=StoredIds(window_s=3600, max_ids=100_000, skew_s=300),
        detect=DetectStream(settings.detect),
        ttl_days=90,
    )
    b.epoch = "e1"
    b.stored.reset(0, NOW_US - 3_600_000_000, [])
    return b


def build(b: BatchBuilder, recs: list[Any], existing: dict[str, Stored] | None = None) -> Any:
    return b.build(b.decode(recs), NOW_US, existing)


def test_new_events_become_rows_with_price_and_source_position(builder: BatchBuilder) -> None:
    e = event()
    batch = build(builder, records(e, first=40))
    [row] = batch.rows
    stored = orjson.loads(row.body)
    assert stored["cost_nusd"] == 4_000_000  # $0.004 from the price table
    assert stored["cost_source"] == "price_table"
    assert (stored["kafka_epoch"], stored["kafka_partition"], stored["kafka_offset"]) == (
        "e1",
        0,
        40,
    )
    assert stored["ingested_at"] == "2026-11-23 18:00:00.000000"
    assert stored["event_id"] == e["event_id"]
    assert instant(stored["ts"]) == instant(e["ts"])  # the SDK's form, or ClickHouse's
    assert batch.commit == {0: 41}
    assert (row.partition, row.offset, row.key) == (0, 40, id_key(e["event_id"]))


def test_each_event_is_stored_once_within_and_across_batches(builder: BatchBuilder) -> None:
    e, f = event(), event()
    first = build(builder, records(e, f, e))
    assert first.rows.keys == [id_key(e["event_id"]), id_key(f["event_id"])]
    assert first.repeats == 1
    again = build(builder, records(f, event(event_id=e["event_id"], quantity="9"), first=3))
    assert len(again.rows) == 0 and again.repeats == 2 and again.deltas == {}
    assert again.commit == {0: 5}


def test_a_replayed_record_is_counted_not_stored_again(builder: BatchBuilder) -> None:
    e = event()
    builder.replay[(0, 7)] = (id_key(e["event_id"]), Stored("e1", 0, 7, NOW_US - 5, 123))
    batch = build(builder, records(e, first=7))
    assert len(batch.rows) == 0 and batch.replayed == 1
    [delta] = batch.deltas["all"].build("e1")
    assert list(delta.events()) == [(0, 7, NOW_US - 5, 123, 0)]  # ClickHouse's cost and ts


def test_old_events_follow_clickhouse(builder: BatchBuilder) -> None:
    old = ts(-2 * 3600)  # before the window's horizon: the window cannot vouch
    mine, other, new = event(ts=old), event(ts=old), event(ts=old)
    recs = records(mine, other, new, first=10)
    assert builder.unsure(builder.decode(recs)) == [
        mine["event_id"],
        other["event_id"],
        new["event_id"],
    ]
    existing = {
        mine["event_id"]: Stored("e1", 0, 10, NOW_US - 7_200_000_000, 4_000_000),  # this record
        other["event_id"]: Stored("e0", 1, 3, NOW_US - 7_200_000_000, 4_000_000),  # earlier one
    }
    batch = build(builder, recs, existing)
    assert batch.rows.keys == [id_key(new["event_id"])]
    assert (batch.replayed, batch.repeats) == (1, 1)
    [delta] = batch.deltas["all"].build("e1")
    assert [(p, o) for p, o, *_ in delta.events()] == [(0, 10), (0, 12)]


def test_a_fast_clock_is_clamped_to_the_ingest_time(builder: BatchBuilder) -> None:
    batch = build(builder, records(event(ts=ts(300))))  # five minutes ahead
    [row] = batch.rows
    assert row.ts_us == NOW_US
    assert orjson.loads(row.body)["ts"] == "2026-11-23 18:00:00.000000"
    [delta] = batch.deltas["all"].build("e1")
    assert [t for _, _, t, _, _ in delta.events()] == [NOW_US]


def test_supplied_cost_and_odd_timestamps_take_the_field_by_field_row(
    builder: BatchBuilder,
) -> None:
    e = event(cost_usd="0.25", ts="2026-11-23T19:59:59.123456789+02:00")
    [row] = build(builder, records(e)).rows
    stored = orjson.loads(row.body)
    assert "cost_usd" not in stored
    assert stored["supplied_cost_usd"] == "0.25"
    assert stored["cost_nusd"] == 250_000_000 and stored["cost_source"] == "supplied"
    assert stored["ts"] == "2026-11-23 17:59:59.123456"  # UTC, nanoseconds truncated


def test_refused_and_expired_records_are_dead_letters(builder: BatchBuilder) -> None:
    batch = build(builder, records(b"{not json", event(status="maybe"), event(ts=ts(-100 * 86400))))
    assert [(x.offset, x.reason_code) for x in batch.letters] == [
        (0, "not_json"),
        (1, "schema"),
        (2, "expired"),
    ]
    assert len(batch.rows) == 0 and batch.commit == {0: 3}
    assert batch.letters[0].original == b"{not json"


def test_deltas_per_budget_in_batch_order_with_contributors(builder: BatchBuilder) -> None:
    a = event(service="support-bot", tags={"team": "alpha"})
    b = event(service="market-data", tags={"team": "beta"})
    c = event(service="support-bot", quantity="2")
    batch = build(builder, records(a, b, c))
    assert sorted(batch.deltas) == ["all", "bot", "team-a"]
    [everything] = batch.deltas["all"].build("e1")
    assert [(o, cost) for _, o, _, cost, _ in everything.events()] == [
        (0, 4_000_000),
        (1, 4_000_000),
        (2, 8_000_000),
    ]
    assert everything.tallies["service"] == {"support-bot": 12_000_000, "market-data": 4_000_000}
    assert everything.tallies["tag:team"] == {"alpha": 4_000_000, "beta": 4_000_000}
    [bot] = batch.deltas["bot"].build("e1")
    assert [o for _, o, _, _, _ in bot.events()] == [0, 2]
    [team] = batch.deltas["team-a"].build("e1")
    assert [o for _, o, _, _, _ in team.events()] == [0]
    assert batch.alerts == []  # $0.008 is within the bot's $0.01 per-request limit


def test_per_request_limit_and_unpriced_alerts(builder: BatchBuilder) -> None:
    big = event(service="support-bot", quantity="3")  # $0.012 > $0.01
    unknown = event(provider="nobody", unit="widget")
    batch = build(builder, records(big, unknown, event(provider="nobody", unit="widget")))
    kinds = sorted(x.kind for x in batch.alerts)
    assert kinds == ["per_request", "unpriced"]  # one unpriced alert per day and model
    per_request = next(x for x in batch.alerts if x.kind == "per_request")
    assert per_request.figures["event_id"] == big["event_id"]
    assert per_request.labels["budget"] == "bot"


def test_refused_positions_leave_the_deltas(builder: BatchBuilder) -> None:
    batch = build(builder, records(event(), event()))
    [delta] = batch.deltas["all"].build("e1", refused={(0, 0)})
    assert [o for _, o, _, _, _ in delta.events()] == [1]


def test_the_priced_export_is_off_unless_asked(builder: BatchBuilder) -> None:
    e = event()
    assert build(builder, records(e)).priced == []
    builder.export_priced = True
    batch = build(builder, records(event()))
    [(key, value)] = batch.priced
    assert key == b"market-data" and orjson.loads(value)["cost_nusd"] == 4_000_000
