"""The hot path's ClickHouse writes on real chDB: exact values, refused rows, lost replies.

Rows are built by the real ``BatchBuilder`` and written by the real ``UsageWriter``; the
expected figures are computed here: LLM costs with ``genai_prices.calc_price``, metered and
supplied costs with ``Decimal``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver import Client
from clickhouse_connect.driver.exceptions import OperationalError
from genai_prices import Usage, calc_price

from sinks.client import make_client
from sinks.migrate import migrate
from sinks.settings import ClickHouseSettings
from streams.config import load_settings
from streams.hot.batch import Batch, BatchBuilder
from streams.hot.dedupe import StoredIds, id_key
from streams.hot.writer import INSERT_SETTINGS, UsageWriter
from streams.pricing import Pricer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
NOW_US = int(NOW.timestamp()) * 1_000_000
NANO = Decimal("1e-9")
CONFIG = """
[[prices]]
provider = "twilio"
unit = "minute"
usd_per_unit = "0.014"

[[budgets]]
name = "all"
limit_usd = "1000"
"""


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb-hot") / "data"


@pytest.fixture()
def client(chdb_path: Path) -> Iterator[Client]:
    settings = ClickHouseSettings(dsn=f"chdb://{chdb_path}", database=f"t_{uuid.uuid4().hex[:12]}")
    c = make_client(settings)
    migrate(c, settings)
    yield c
    c.command(f"DROP DATABASE IF EXISTS `{settings.database}`")
    c.close()


def ts(delta_s: float = 0) -> str:
    return (NOW + timedelta(seconds=delta_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": ts(-1),
        "service": "agents",
        "operation": "chat",
        "status": "ok",
    }
    base.update(over)
    return base


def builder() -> BatchBuilder:
    settings = load_settings(text=CONFIG)
    b = BatchBuilder(
        pricer=Pricer(settings.prices),
        budgets=settings.budgets,
        stored=StoredIds(window_s=3600, max_ids=100_000, skew_s=300),
        detect=None,
        ttl_days=90,
    )
    b.epoch = "e1"
    for partition in (0, 1):
        b.stored.reset(partition, NOW_US - 3_600_000_000, [])
    return b


def batch_of(b: BatchBuilder, values: list[bytes], partition: int = 0, first: int = 0) -> Batch:
    records = [
        SimpleNamespace(topic="usage", partition=partition, offset=first + i, key=None, value=v)
        for i, v in enumerate(values)
    ]
    return b.build(b.decode(records), NOW_US)


def nusd(usd: Decimal) -> int:
    return int(usd.quantize(NANO, rounding=ROUND_HALF_EVEN).scaleb(9))


def llm_cost(model: str, provider: str, **tokens: int) -> int:
    usage = Usage(
        input_tokens=tokens.get("input_tokens"),
        output_tokens=tokens.get("output_tokens"),
        cache_read_tokens=tokens.get("cache_read_tokens"),
    )
    return nusd(
        calc_price(usage, model, provider_id=provider, genai_request_timestamp=NOW).total_price
    )


def test_rows_round_trip_with_exact_values(client: Client) -> None:
    llm = event(
        provider="openai",
        model="gpt-4o",
        input_tokens=12_000,
        output_tokens=900,
        cache_read_tokens=4096,
        tags={"team": "growth", "note": 'a "quoted" <!channel> ünïcode'},
        latency_ms=812.5,
    )
    metered = event(provider="twilio", unit="minute", quantity="2.500000001", service="voice")
    supplied = event(provider="acme", unit="lookup", cost_usd="0.123456789", cache_hit=True)
    failed = event(provider="openai", model="gpt-4o", status="error", error_type="RateLimit")
    offset_ts = event(provider="twilio", unit="minute", ts="2026-11-23T20:00:00.5+02:00")
    fast_clock = event(provider="twilio", unit="minute", ts=ts(600))
    events = [llm, metered, supplied, failed, offset_ts, fast_clock]
    writer = UsageWriter(client)
    batch = batch_of(builder(), [orjson.dumps(e) for e in events], first=100)
    assert asyncio.run(writer.write(batch)) == set()
    rows = {
        str(r[0]): r[1:]
        for r in client.query(
            "SELECT toString(event_id), cost_nusd, avoided_cost_nusd, cost_source, "
            "toString(quantity), toString(supplied_cost_usd), tags, toUnixTimestamp64Micro(ts), "
            "kafka_epoch, kafka_partition, kafka_offset, error_type, latency_ms, "
            "toString(cost_usd) FROM usage_events"
        ).result_rows
    }
    assert len(rows) == 6
    expected_llm = llm_cost(
        "gpt-4o", "openai", input_tokens=12_000, output_tokens=900, cache_read_tokens=4096
    )
    assert rows[llm["event_id"]][0] == expected_llm
    assert rows[llm["event_id"]][5] == llm["tags"]
    assert rows[llm["event_id"]][11] == 812.5
    assert Decimal(rows[llm["event_id"]][12]) == Decimal(expected_llm).scaleb(-9)
    assert rows[metered["event_id"]][:4] == (
        nusd(Decimal("2.500000001") * Decimal("0.014")),
        0,
        "price_table",
        "2.500000001",
    )
    assert rows[supplied["event_id"]][:5] == (0, 123_456_789, "supplied", None, "0.123456789")
    assert rows[failed["event_id"]][0] == 0 and rows[failed["event_id"]][10] == "RateLimit"
    offset_us = int(datetime(2026, 11, 23, 18, 0, 0, 500000, tzinfo=UTC).timestamp() * 1e6)
    assert rows[offset_ts["event_id"]][6] == offset_us
    assert rows[fast_clock["event_id"]][6] == NOW_US  # clamped to the ingest time
    assert {r[7:10] for r in rows.values()} == {("e1", 0, 100 + i) for i in range(6)}
    [[minute_sum]] = client.query("SELECT sum(cost_nusd) FROM spend_by_minute").result_rows
    assert minute_sum == sum(r[0] for r in rows.values())


def test_the_arrow_block_stores_what_the_rows_json_lines_would(client: Client) -> None:
    """The writer's Arrow block (streams/hot/arrow.py) and the JSONEachRow lines of the same
    rows (``Rows.body``, what dead letters and the priced export carry) store the same value
    in every column: absent strings, counts, flags and nullables, unicode and control
    characters, decimals at full scale, supplied and avoided costs, clamped and odd times."""
    llm = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 90}
    values = [
        event(**llm),
        event(**llm, cache_read_tokens=1024, reasoning_tokens=10, response_model="gpt-4o-x"),
        event(**llm, tags={"team": "a\tb\n\u0000c", "quote": '"<!channel>" ünï 😀'}),
        event(**llm, cache_hit=True, partial=False, latency_ms=0.1, environment="prod"),
        event(**llm, status="error", error_type="RateLimit", request_id="req_1"),
        event(provider="twilio", unit="minute", quantity="9999999.999999999"),
        event(provider="twilio", unit="minute", quantity="0.000000001", partial=True),
        event(provider="acme", unit="lookup", cost_usd="123456.123456789"),
        event(provider="acme", unit="lookup"),  # unpriced: no price for it
        event(provider="openai", model="no-such-model", input_tokens=5, output_tokens=0),
        event(**llm, ts="2026-11-23T20:00:00.123456789+02:00"),
        event(**llm, ts=ts(900)),  # a fast clock: clamped to the ingest time
        event(**llm, latency_ms=86_400_000, tags={}),
    ]
    batch = batch_of(builder(), [orjson.dumps(e) for e in values], partition=1, first=7)
    assert len(batch.rows) == len(values) and batch.letters == []
    assert asyncio.run(UsageWriter(client).write(batch)) == set()
    client.command("CREATE TABLE from_json AS usage_events")
    client.raw_insert(
        "from_json",
        None,
        insert_block=b"\n".join(batch.rows.body(i) for i in range(len(batch.rows))),
        fmt="JSONEachRow",
        settings=INSERT_SETTINGS,
    )
    query = "SELECT * FROM {} ORDER BY kafka_offset FORMAT TabSeparatedWithNames"
    arrow_rows = client.raw_query(query.format("usage_events")).decode().splitlines()
    json_rows = client.raw_query(query.format("from_json")).decode().splitlines()
    assert len(arrow_rows) == len(values) + 1
    for got, want in zip(arrow_rows, json_rows, strict=True):
        assert got == want
    [[sources]] = client.query(
        "SELECT groupArray(cost_source) FROM (SELECT cost_source FROM usage_events "
        "ORDER BY kafka_offset)"
    ).result_rows
    assert (
        sources
        == ["catalog"] * 5
        + ["price_table"] * 2
        + ["supplied", "unpriced"]
        + ["unpriced"]
        + ["catalog"] * 3
    )


def test_a_refused_row_is_dead_lettered_and_the_rest_is_stored(client: Client) -> None:
    llm = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}
    values = [orjson.dumps(event(**llm)) for _ in range(5)]
    batch = batch_of(builder(), values)
    # A row ClickHouse refuses as data (a negative cost breaks the table's CHECK): the batch
    # builder never makes one, so the row is spoiled here, after it was built.
    batch.rows.costs[2] = -1
    writer = UsageWriter(client)
    refused = asyncio.run(writer.write(batch))
    assert refused == {(0, 2)}
    [[count, total]] = client.query("SELECT count(), sum(cost_nusd) FROM usage_events").result_rows
    assert (count, total) == (4, 4 * llm_cost("gpt-4o", "openai", input_tokens=10, output_tokens=5))
    [[code, reason, original]] = client.query(
        "SELECT reason_code, reason, original FROM deadletter"
    ).result_rows
    assert code == "insert_refused" and "money_not_negative" in reason
    assert orjson.loads(original)["cost_nusd"] == -1
    assert orjson.loads(original)["event_id"] == orjson.loads(values[2])["event_id"]


def test_events_clickhouse_would_read_otherwise_are_stored_as_decoded(client: Client) -> None:
    """Valid events whose bytes ClickHouse reads differently from the decoder - a key given
    twice (the last one counts, as in Python's json), an escaped key, -0 - are stored with
    the values they were priced with, none refused."""
    llm = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}
    plain = orjson.dumps(event(**llm))
    values = [
        plain.replace(b'"output_tokens":5', b'"output_tokens":7,"output_tokens":5'),
        orjson.dumps(event(**llm, tags={"a": "1"}))[:-1] + b',"tags":{"b":"2","b":"3"}}',
        orjson.dumps(event(**llm))[:-1] + b',"input\\u005ftokens":1000}',
        orjson.dumps(event(**llm)).replace(b'"input_tokens":10', b'"input_tokens":-0'),
    ]
    writer = UsageWriter(client)
    assert asyncio.run(writer.write(batch_of(builder(), values))) == set()
    rows = client.query(
        "SELECT kafka_offset, input_tokens, output_tokens, tags, cost_nusd FROM usage_events "
        "ORDER BY kafka_offset"
    ).result_rows
    expected = [orjson.loads(v.replace(b"\\u005f", b"_")) for v in values]
    assert [r[:4] for r in rows] == [
        (i, e["input_tokens"], e["output_tokens"], e.get("tags", {}))
        for i, e in enumerate(expected)
    ]
    assert [r[4] for r in rows] == [
        llm_cost("gpt-4o", "openai", input_tokens=e["input_tokens"], output_tokens=5)
        for e in expected
    ]
    [[letters]] = client.query("SELECT count() FROM deadletter").result_rows
    assert letters == 0


def test_an_event_costing_more_than_the_cap_is_dead_lettered(client: Client) -> None:
    """A metered quantity or a supplied cost that would wrap the Int64 money columns (or
    their sums) is refused with the reason; the money columns stay exact."""
    values = [
        orjson.dumps(event(provider="twilio", unit="minute", quantity="999999999999.999999999")),
        orjson.dumps(event(provider="acme", unit="call", cost_usd="999999999.999999999")),
        orjson.dumps(event(provider="acme", unit="call", cost_usd="1000000")),  # the cap
        orjson.dumps(event(provider="acme", unit="call", cost_usd="1000000.000000001")),
    ]
    b = builder()
    batch = batch_of(b, values)
    assert [(x.offset, x.reason_code) for x in batch.letters] == [
        (0, "out_of_range"),
        (1, "out_of_range"),
        (3, "out_of_range"),
    ]
    assert asyncio.run(UsageWriter(client).write(batch)) == set()
    assert client.query("SELECT kafka_offset, cost_nusd FROM usage_events").result_rows == [
        (2, 10**15)
    ]
    assert [e[3] for e in batch.deltas["all"].entries] == [10**15]


def apply_last_block(writer: UsageWriter) -> None:
    """Do what the writer was about to do (the insert, with its token), as a server would
    before the reply is lost."""
    block = writer.last_block
    assert block is not None
    writer.client.raw_insert(
        block.table,
        block.columns,
        insert_block=block.body,
        fmt=block.fmt,
        settings={**INSERT_SETTINGS, "insert_deduplication_token": block.token},
    )


def test_a_lost_reply_is_not_written_twice(client: Client) -> None:
    calls = {"n": 0}

    def lose_the_first_reply(table: str) -> None:
        calls["n"] += 1
        if table == "usage_events" and calls["n"] == 1:
            apply_last_block(writer)
            raise OperationalError("connection reset after the insert was applied")

    writer = UsageWriter(client, retry_initial_s=0.01, fault=lose_the_first_reply)
    batch = batch_of(
        builder(), [orjson.dumps(event(provider="twilio", unit="minute")) for _ in range(50)]
    )
    assert asyncio.run(writer.write(batch)) == set()
    assert writer.retries == 1
    [[count, minute_events]] = client.query(
        "SELECT (SELECT count() FROM usage_events), (SELECT sum(events) FROM spend_by_minute)"
    ).result_rows
    assert (count, minute_events) == (50, 50)


def test_a_rollup_that_missed_a_block_gets_it_on_the_retry(client: Client) -> None:
    """The insert reached usage_events and one rollup view, then failed: the retry (same
    block, same token) fills the other view and doubles nothing."""
    calls = {"n": 0}

    def fail_after_one_view(table: str) -> None:
        calls["n"] += 1
        if table == "usage_events" and calls["n"] == 1:
            apply_last_block(writer)
            client.command("TRUNCATE TABLE spend_by_day")  # as if its view's insert failed
            raise OperationalError("the day rollup's insert failed")

    writer = UsageWriter(client, retry_initial_s=0.01, fault=fail_after_one_view)
    batch = batch_of(
        builder(), [orjson.dumps(event(provider="twilio", unit="minute")) for _ in range(40)]
    )
    assert asyncio.run(writer.write(batch)) == set()
    [[count, minute_events, day_events]] = client.query(
        "SELECT (SELECT count() FROM usage_events), (SELECT sum(events) FROM spend_by_minute), "
        "(SELECT sum(events) FROM spend_by_day)"
    ).result_rows
    assert (count, minute_events, day_events) == (40, 40, 40)


def test_the_reads_of_an_assignment(client: Client) -> None:
    b = builder()
    # Services on both partitions of two (Kafka's default partitioner on the service).
    values = [
        orjson.dumps(event(provider="twilio", unit="minute", service=f"svc-{i}")) for i in range(20)
    ]
    batch = batch_of(b, values, first=10)
    writer = UsageWriter(client)
    asyncio.run(writer.write(batch))
    from aiokafka.partitioner import DefaultPartitioner

    part = DefaultPartitioner()
    expected: dict[int, set[int]] = {0: set(), 1: set()}
    for v in values:
        e = orjson.loads(v)
        expected[part(e["service"].encode(), [0, 1], [0, 1])].add(id_key(e["event_id"]))
    window = asyncio.run(writer.window([0, 1], 2, NOW_US - 60_000_000))
    assert {p: {k for _, k in rows} for p, rows in window.items()} == expected
    only_one = asyncio.run(writer.window([1], 2, NOW_US - 60_000_000))
    assert set(only_one) == {1}
    replay = asyncio.run(writer.replay("e1", {0: 25}))
    assert sorted(replay) == [(0, o) for o in range(25, 30)]
    first = orjson.loads(values[0])
    found = asyncio.run(writer.lookup([first["event_id"], str(uuid.uuid4())]))
    assert list(found) == [first["event_id"]]
    assert (found[first["event_id"]].epoch, found[first["event_id"]].offset) == ("e1", 10)
