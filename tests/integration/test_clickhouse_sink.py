"""ClickHouse sink against the real chDB engine: exact counts and sums under replay, rollups,
dead letters, alerts, migrations.

One fresh chDB path for this module (chDB allows one engine path per process at a time, so
the module closes every client at the end) and one fresh database per test. Expected figures
are computed here from the generated events, independently of ClickHouse.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver import Client

from schemas.alerts import Alert
from sinks.batching import DeadLetter
from sinks.clickhouse import EXPIRED, INSERT_REFUSED, ClickHouseSink
from sinks.client import make_client
from sinks.migrate import load_migrations, migrate, rebuild_rollups
from sinks.query import run_read_only
from sinks.rows import (
    ALERT_DELIVERIES,
    ALERTS,
    DEADLETTER,
    USAGE_COLUMNS,
    USAGE_EVENTS,
    alert_delivery_row,
    alert_row,
    deadletter_row,
    row_json,
    usage_row,
)
from sinks.settings import ClickHouseSettings

pytestmark = pytest.mark.integration

NANO = Decimal("1e-9")
SERVICES = ("support-bot", "research-agent", "lead-enricher")
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"))


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("chdb-sink") / "data"
    yield path


@pytest.fixture()
def env(chdb_path: Path) -> Iterator[tuple[ClickHouseSettings, Client]]:
    settings = ClickHouseSettings(
        dsn=f"chdb://{chdb_path}",
        database=f"t_{uuid.uuid4().hex[:12]}",
        batch_rows=500,
        retry_initial_s=0.01,
    )
    client = make_client(settings)
    migrate(client, settings)
    yield settings, client
    client.command(f"DROP DATABASE IF EXISTS `{settings.database}`")
    client.close()


def make_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Priced events over the last two days (inside the default 395-day TTL)."""
    rng = random.Random(seed)
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    events = []
    for i in range(n):
        provider, model = MODELS[i % 2]
        ts = base + timedelta(
            seconds=rng.randrange(0, 2 * 86400), microseconds=rng.randrange(10**6)
        )
        cache_hit = i % 17 == 0
        cost = 0 if cache_hit else rng.randrange(1, 5_000_000_000)
        events.append(
            {
                "schema_version": 1,
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "service": SERVICES[i % 3],
                "operation": "chat",
                "status": "error" if i % 11 == 0 else "ok",
                "provider": provider,
                "model": model,
                "input_tokens": rng.randrange(0, 50_000),
                "output_tokens": rng.randrange(0, 5_000),
                "cache_hit": cache_hit,
                "cost_nusd": cost,
                "avoided_cost_nusd": 123_456_789 if cache_hit else 0,
                "cost_source": "catalog",
                "tags": {"team": f"t{i % 4}"},
                "ingested_at": (ts + timedelta(seconds=1)).isoformat(),
            }
        )
    return events


def scalar(client: Client, sql: str, **settings: Any) -> Any:
    return client.query(sql, settings=settings or None).result_rows[0][0]


async def write(sink: ClickHouseSink, events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        await sink.add(usage_row(event))
    await sink.flush()


async def test_replayed_events_never_double_a_sum(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    settings, client = env
    events = make_events(3000)
    total_nusd = sum(e["cost_nusd"] for e in events)
    # Replays inside the first run: the same event twice in one batch and a few batches later.
    first_run = events[:1500] + events[100:150] + events[1500:] + events[10:20]

    sink = ClickHouseSink.for_table(client, USAGE_EVENTS, settings)
    await write(sink, first_run)
    await sink.close()
    assert sink.stats.rows_written == 3000
    assert sink.stats.rows_skipped_duplicate == 60

    # A restarted worker replays an uncommitted stretch: the sink finds them already stored.
    restarted = ClickHouseSink.for_table(client, USAGE_EVENTS, settings)
    await write(restarted, events[1000:1800])
    await restarted.close()
    assert restarted.stats.rows_written == 0
    assert restarted.stats.rows_skipped_duplicate == 800

    # Not one duplicate reached the table, so the materialized views saw each event once.
    assert scalar(client, "SELECT count() FROM usage_events") == 3000
    assert scalar(client, "SELECT count() FROM usage_events", final=1) == 3000
    assert scalar(client, "SELECT sum(cost_nusd) FROM usage_events") == total_nusd
    assert scalar(client, "SELECT sum(cost_usd) FROM usage_events") == Decimal(total_nusd) * NANO
    avoided = sum(e["avoided_cost_nusd"] for e in events)
    assert scalar(client, "SELECT sum(avoided_cost_usd) FROM usage_events") == avoided * NANO

    expected_day: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    expected_minute: Counter[tuple[str, str]] = Counter()
    for e in events:
        ts = datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        key = (e["service"], ts.date().isoformat(), e["model"])
        acc = expected_day[key]
        acc[0] += 1
        acc[1] += e["cost_nusd"]
        acc[2] += e["status"] == "error"
        acc[3] += e["input_tokens"]
        expected_minute[(e["service"], ts.strftime("%Y-%m-%d %H:%M"))] += e["cost_nusd"]
    got_day = {
        (s, d.isoformat(), m): [n, c, err, tok]
        for s, d, m, n, c, err, tok in client.query(
            "SELECT service, day, model, sum(events), sum(cost_nusd), sum(errors), "
            "sum(input_tokens) FROM spend_by_day GROUP BY service, day, model"
        ).result_rows
    }
    assert got_day == expected_day
    got_minute = {
        (s, m.strftime("%Y-%m-%d %H:%M")): c
        for s, m, c in client.query(
            "SELECT service, minute, sum(cost_nusd) FROM spend_by_minute GROUP BY service, minute"
        ).result_rows
    }
    assert got_minute == {k: v for k, v in expected_minute.items()}
    assert scalar(client, "SELECT sum(cost_usd) FROM spend_by_day") == Decimal(total_nusd) * NANO


async def test_duplicates_written_past_the_sink_stay_exact_with_final(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    """A writer without the sink's dedupe (or a concurrent replay) puts duplicates on disk:
    queries through FINAL (our SQL paths) stay exact and rebuild_rollups repairs the rollups."""
    settings, client = env
    client.command("SYSTEM STOP MERGES usage_events")  # keep the duplicates on disk meanwhile
    events = make_events(1000, seed=11)
    total_nusd = sum(e["cost_nusd"] for e in events)
    await write(ClickHouseSink.for_table(client, USAGE_EVENTS, settings), events)
    raw = ClickHouseSink(client, "usage_events", USAGE_COLUMNS, batch_rows=1000)
    await write(raw, events[:250])
    await raw.close()

    assert scalar(client, "SELECT count() FROM usage_events") == 1250  # before any merge
    answer = run_read_only(
        client, "SELECT count(), sum(cost_nusd), sum(cost_usd) FROM usage_events"
    )
    assert answer.rows == [[1000, total_nusd, format(Decimal(total_nusd) * NANO, "f")]]
    assert scalar(client, "SELECT count() FROM usage_events_dedup") == 1000
    double = sum(e["cost_nusd"] for e in events[:250])
    assert scalar(client, "SELECT sum(cost_nusd) FROM spend_by_day") == total_nusd + double

    rebuild_rollups(client, settings)
    assert scalar(client, "SELECT sum(cost_nusd) FROM spend_by_day") == total_nusd
    assert scalar(client, "SELECT sum(events) FROM spend_by_minute") == 1000


async def test_refused_rows_become_dead_letters_and_the_rest_is_written(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    settings, client = env
    events = make_events(40, seed=3)
    dead_sink = ClickHouseSink.for_table(client, DEADLETTER, settings)
    received_at = datetime.now(UTC).replace(microsecond=0)

    async def to_deadletter(letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            await dead_sink.add(
                deadletter_row(
                    received_at=received_at,
                    topic=f"clickhouse:{letter.table}",
                    partition=-1,
                    offset=-1,
                    reason_code=letter.reason_code,
                    reason=letter.reason,
                    original=row_json(letter.columns, letter.row),
                )
            )
        await dead_sink.flush()

    sink = ClickHouseSink.for_table(client, USAGE_EVENTS, settings, on_dead_letter=to_deadletter)
    rows = [usage_row(e) for e in events]
    col = {name: i for i, name in enumerate(USAGE_COLUMNS)}
    # Values only the server refuses (CHECK constraints), one the client refuses, one expired.
    bad = list(rows[5])
    bad[col["status"]] = "maybe"
    rows[5] = tuple(bad)
    bad = list(rows[17])
    bad[col["cost_nusd"]] = -5
    rows[17] = tuple(bad)
    bad = list(rows[30])
    bad[col["input_tokens"]] = "many"
    rows[30] = tuple(bad)
    bad = list(rows[33])
    bad[col["ts"]] = datetime.now(UTC) - timedelta(days=settings.ttl_days + 1)
    rows[33] = tuple(bad)
    for row in rows:
        await sink.add(row)
    await sink.flush()

    good = [e for i, e in enumerate(events) if i not in (5, 17, 30, 33)]
    assert scalar(client, "SELECT count() FROM usage_events") == 36
    assert scalar(client, "SELECT sum(cost_nusd) FROM usage_events") == sum(
        e["cost_nusd"] for e in good
    )
    letters = client.query(
        "SELECT reason_code, reason, original FROM deadletter ORDER BY reason_code, reason"
    ).result_rows
    assert len(letters) == 4
    by_event = {orjson.loads(o)["event_id"]: (code, reason) for code, reason, o in letters}
    assert set(by_event) == {events[i]["event_id"] for i in (5, 17, 30, 33)}
    assert by_event[events[5]["event_id"]][0] == INSERT_REFUSED
    assert "known_status" in by_event[events[5]["event_id"]][1]
    assert "money_not_negative" in by_event[events[17]["event_id"]][1]
    assert by_event[events[30]["event_id"]][0] == INSERT_REFUSED
    assert by_event[events[33]["event_id"]][0] == EXPIRED
    await sink.close()
    await dead_sink.close()


async def test_deadletter_keeps_raw_bytes_and_collapses_replays(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    settings, client = env
    at = datetime.now(UTC).replace(microsecond=0)
    originals = [b"\xff\xfe not json", b"[1,2]", b'{"event_id": 1}', b"", b"\x00" * 10]
    rows = [
        deadletter_row(
            received_at=at,
            topic="spendwatch.usage.v1",
            partition=0,
            offset=100 + i,
            reason_code="not_json",
            reason=f"bad {i}",
            original=raw,
            key=None if i % 2 else f"svc{i}",
        )
        for i, raw in enumerate(originals)
    ]
    for _ in range(2):  # the second pass is a replay of the same messages
        sink = ClickHouseSink.for_table(client, DEADLETTER, settings)
        for row in rows:
            await sink.add(row)
        await sink.close()
    assert scalar(client, "SELECT count() FROM deadletter", final=1) == 5
    stored = client.query(
        "SELECT offset, original, key FROM deadletter FINAL ORDER BY offset",
        query_formats={"String": "bytes"},
    ).result_rows
    assert [(o, raw) for o, raw, _ in stored] == [(100 + i, b) for i, b in enumerate(originals)]
    assert [k for _, _, k in stored] == [b"svc0", None, b"svc2", None, b"svc4"]


async def test_alerts_and_deliveries_are_replay_safe(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    settings, client = env
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    firing = Alert(
        alert_id="7c3b1c9e-0000-5000-8000-000000000001",
        kind="threshold",
        severity="critical",
        title="95% of budget org-monthly",
        summary="spent $95.00 of $100.00",
        fired_at=fired,
        labels={"budget": "org-monthly"},
        figures={"spent_usd": "95.00", "limit_usd": "100.00"},
    )
    resolved = Alert(
        **{**firing.to_dict(), "fired_at": fired, "status": "resolved", "contributors": ()}
    )
    alert_sink = ClickHouseSink.for_table(client, ALERTS, settings)
    delivery_sink = ClickHouseSink.for_table(client, ALERT_DELIVERIES, settings)
    for recorded in (fired, fired + timedelta(minutes=5)):  # re-emitted after a restart
        await alert_sink.add(alert_row(firing, recorded_at=recorded))
    await alert_sink.add(alert_row(resolved, recorded_at=fired + timedelta(minutes=9)))
    for attempt, outcome in ((1, "failed"), (2, "delivered"), (2, "delivered")):
        await delivery_sink.add(
            alert_delivery_row(
                alert_id=firing.alert_id,
                receiver="slack:#spend",
                attempt=attempt,
                outcome=outcome,
                at=fired + timedelta(seconds=attempt),
                error="HTTP 503" if outcome == "failed" else "",
            )
        )
    await alert_sink.close()
    await delivery_sink.close()
    assert client.query(
        "SELECT status, severity, figures['spent_usd'], recorded_at FROM alerts ORDER BY status",
        settings={"final": 1},
    ).result_rows == [
        ("firing", "critical", "95.00", fired + timedelta(minutes=5)),
        ("resolved", "critical", "95.00", fired + timedelta(minutes=9)),
    ]
    assert client.query(
        "SELECT attempt, outcome FROM alert_deliveries ORDER BY attempt", settings={"final": 1}
    ).result_rows == [(1, "failed"), (2, "delivered")]


def test_migrations_are_idempotent_and_follow_ttl_days(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    settings, client = env
    versions = [m.version for m in load_migrations()]
    recorded = client.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in recorded.result_rows] == versions
    assert migrate(client, settings) == []
    shorter = ClickHouseSettings(dsn=settings.dsn, database=settings.database, ttl_days=30)
    assert migrate(client, shorter) == []
    engines = dict(
        client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    )
    for table in ("usage_events", "spend_by_day", "spend_by_minute", "deadletter", "alerts"):
        assert "toIntervalDay(30)" in engines[table], table
    assert scalar(client, "SELECT count() FROM schema_migrations", final=1) == len(versions)


async def test_lookup_binds_keys_and_bounds_with_quotes_and_microseconds(
    env: tuple[ClickHouseSettings, Client],
) -> None:
    """The "already written?" lookup binds its values: a key holding a quote and a backslash
    is found, and a row whose stamp is the batch's latest to the microsecond is skipped."""
    _, client = env
    client.command(
        "CREATE TABLE keyed (k String, ts DateTime64(6, 'UTC'), v UInt8) "
        "ENGINE = MergeTree ORDER BY k"
    )
    odd = "o'brien\\"
    t0 = datetime(2026, 11, 23, 18, 0, 0, 1, tzinfo=UTC)
    t1 = t0 + timedelta(microseconds=998_998)
    client.insert("keyed", [[odd, t0, 1], ["late", t1, 1]], column_names=["k", "ts", "v"])
    sink = ClickHouseSink(
        client, "keyed", ("k", "ts", "v"), dedupe_column="k", prune_column="ts", batch_rows=100
    )
    await sink.add_many([(odd, t0, 2), ("new", t0, 2), ("late", t1, 2)])
    await sink.flush()
    rows = client.query("SELECT k, v FROM keyed ORDER BY k, v").result_rows
    assert rows == [("late", 1), ("new", 2), (odd, 1)]
    assert sink.stats.rows_skipped_duplicate == 2 and sink.stats.rows_written == 1
    with pytest.raises(ValueError, match="letters, digits and _ only"):
        ClickHouseSink(client, "keyed; DROP TABLE keyed", ("k",))
