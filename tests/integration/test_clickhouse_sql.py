"""The read-only SQL endpoint and ``spendwatch sql`` against real chDB, over real loopback HTTP.

The module's chDB path holds a known data set; the expected answers are computed from it here.
``spendwatch sql`` runs as a subprocess (``python -m sinks.cli``), like a user's shell: first
through the endpoint this process serves (as while a worker holds the path), then directly on
the path once this process has let go of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from clickhouse_connect.driver import Client

from sinks.clickhouse import ClickHouseSink
from sinks.client import make_client
from sinks.http_endpoint import SqlEndpoint, start_sql_endpoint
from sinks.migrate import migrate
from sinks.rows import USAGE_EVENTS, usage_row
from sinks.settings import ClickHouseSettings
from streams.broker import free_port

pytestmark = pytest.mark.integration

N_EVENTS = 250
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Store:
    settings: ClickHouseSettings
    writer: Client
    reader: Client
    total_nusd: int
    per_service: dict[str, int]


def _events() -> list[dict[str, Any]]:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    return [
        {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=i + 1, version=4)),
            "ts": (base + timedelta(seconds=13 * i)).isoformat(),
            "service": ("billing", "search")[i % 2],
            "operation": "call",
            "status": "ok",
            "provider": "polygon",
            "unit": "request",
            "quantity": "1",
            "cost_nusd": 4_000_000 + 7 * i,
            "cost_source": "price_table",
        }
        for i in range(N_EVENTS)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("chdb-sql") / "data"
    settings = ClickHouseSettings(dsn=f"chdb://{path}", database="sw_sql")
    writer = make_client(settings)
    migrate(writer, settings)
    events = _events()

    async def load() -> None:
        sink = ClickHouseSink.for_table(writer, USAGE_EVENTS, settings)
        for event in events:
            await sink.add(usage_row(event))
        await sink.close()

    asyncio.run(load())
    per_service: dict[str, int] = {}
    for e in events:
        per_service[e["service"]] = per_service.get(e["service"], 0) + e["cost_nusd"]
    reader = make_client(settings, read_only=True)
    yield Store(settings, writer, reader, sum(e["cost_nusd"] for e in events), per_service)
    reader.close()
    writer.close()


@pytest.fixture(params=["read_only_client", "writer_client"])
async def endpoint(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[SqlEndpoint]:
    client = store.reader if request.param == "read_only_client" else store.writer
    running = await start_sql_endpoint(client, "127.0.0.1", 0)
    yield running
    await running.stop()


async def post(url: str, body: str | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"data": body}
        async with session.post(url, **kwargs) as response:
            return response.status, await response.json()


def usd(nusd: int) -> str:
    return format(Decimal(nusd) * Decimal("1e-9"), "f")


async def test_endpoint_answers_exact_json(store: Store, endpoint: SqlEndpoint) -> None:
    status, body = await post(
        endpoint.url,
        "SELECT service, count() AS n, sum(cost_usd) AS usd, max(ts) AS last "
        "FROM usage_events GROUP BY service ORDER BY service",
    )
    assert status == 200, body
    assert body["columns"] == ["service", "n", "usd", "last"]
    assert [r[:3] for r in body["rows"]] == [
        ["billing", N_EVENTS // 2, usd(store.per_service["billing"])],
        ["search", N_EVENTS // 2, usd(store.per_service["search"])],
    ]
    assert datetime.fromisoformat(body["rows"][0][3]).tzinfo is not None
    assert body["truncated"] is False

    status, body = await post(
        endpoint.url, {"query": "SELECT number FROM numbers(50)", "max_rows": 10}
    )
    assert status == 200
    assert body["rows"] == [[i] for i in range(10)] and body["truncated"] is True


async def test_endpoint_reads_with_final_and_readonly(endpoint: SqlEndpoint) -> None:
    status, body = await post(
        endpoint.url, "SELECT getSetting('final'), getSetting('readonly') > 0"
    )
    assert status == 200 and body["rows"] == [[True, True]]


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("DROP TABLE usage_events", "read_only_statement"),
        ("SELECT 1; DROP TABLE usage_events", "single_statement"),
        ("  insert into usage_events (service) values ('x')", "read_only_statement"),
        ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "no_external_access"),
        ("SELECT 1 INTO OUTFILE 'x.txt'", "no_outfile"),
    ],
)
async def test_endpoint_refuses_writes(
    store: Store, endpoint: SqlEndpoint, sql: str, rule: str
) -> None:
    status, body = await post(endpoint.url, sql)
    assert status == 400
    assert body["rule"] == rule and body["error"].startswith("refused: ")
    assert store.writer.query("SELECT count() FROM usage_events").result_rows == [(N_EVENTS,)]


async def test_endpoint_reports_clickhouse_errors_and_health(endpoint: SqlEndpoint) -> None:
    status, body = await post(endpoint.url, "SELECT * FROM no_such_table")
    assert status == 400 and body["code"] == 60
    health_url = endpoint.url.replace("/sql", "/health")
    async with aiohttp.ClientSession() as session, session.get(health_url) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"


async def run_cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SPENDWATCH_SQL_ENDPOINT", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sinks.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("endpoint", ["read_only_client"], indirect=True)
async def test_cli_through_the_endpoint(store: Store, endpoint: SqlEndpoint) -> None:
    query = (
        "SELECT service, sum(cost_usd) AS usd FROM usage_events GROUP BY service ORDER BY service"
    )
    # --dsn keeps the config file out of it; the endpoint answers, so the DSN is not opened.
    via = ("--endpoint", endpoint.url, "--dsn", store.settings.dsn)
    code, out, err = await run_cli(query, *via, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["rows"] == [
        ["billing", usd(store.per_service["billing"])],
        ["search", usd(store.per_service["search"])],
    ]
    code, out, _ = await run_cli(query, *via, "--format", "csv")
    assert out.splitlines() == [
        "service,usd",
        f"billing,{usd(store.per_service['billing'])}",
        f"search,{usd(store.per_service['search'])}",
    ]
    code, out, _ = await run_cli("SELECT count() AS n FROM usage_events", *via)
    assert out.splitlines() == ["  n", "---", str(N_EVENTS), "(1 row)"]
    code, out, err = await run_cli("DROP TABLE usage_events", *via)
    assert code == 2 and out == ""
    assert "refused (read_only_statement)" in err and "SELECT" in err


# -- hostile queries ------------------------------------------------------------------------------
SECRET = "sw-secret-file-contents-7f3a"
HOSTILE = [
    # settings changes
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT count() FROM usage_events SETTINGS final = 0",
    "SET readonly = 0",
    # table functions, plain and hidden behind quoting
    "SELECT * FROM file('{secret}', 'LineAsString')",
    "SELECT $$'$$ AS a, * FROM file('{secret}', 'LineAsString') AS b -- '",
    "SELECT * FROM `file`('{secret}', 'LineAsString')",
    "SELECT * FROM file/**/('{secret}', 'LineAsString')",
    "DESCRIBE (SELECT * FROM file('{secret}', 'LineAsString'))",
    "SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM merge('system', '^processes$')",
    # system tables beyond the allowed ones
    "SELECT * FROM system.processes",
    "SELECT * FROM `system`.`stack_trace`",
    "SELECT * FROM system.disks",
    "SHOW PROCESSLIST",
    "SHOW GRANTS",
    # writes in every disguise
    "SELECT 1 INTO OUTFILE '{outfile}'",
    "SELECT 1 INTO/**/OUTFILE '{outfile}'",
    "SELECT 1; DROP TABLE usage_events",
    "SELECT 1 /* /* */ ; DROP TABLE usage_events -- */",
    "SELECT 1 -- x\n; TRUNCATE TABLE usage_events",
    "WITH x AS (SELECT 1) INSERT INTO deadletter (topic) SELECT 'x'",
    "EXPLAIN PIPELINE INSERT INTO usage_events SELECT * FROM usage_events",
    "/* SELECT */ ALTER TABLE usage_events DELETE WHERE 1",
    "EXISTS TABLE usage_events; DROP TABLE alerts",
    "SELECT * FROM loop(usage_events)",
]
ANSWERED_WHERE_ALLOWED = {"SELECT * FROM loop(usage_events)"}


def table_counts(store: Store) -> dict[str, int]:
    rows = store.writer.query(
        "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
        "AND total_rows IS NOT NULL ORDER BY name"
    ).result_rows
    return {str(name): int(n) for name, n in rows}


@pytest.mark.parametrize("template", HOSTILE)
async def test_hostile_queries_are_refused_or_answered_read_only(
    store: Store, endpoint: SqlEndpoint, tmp_path: Path, template: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    outfile = tmp_path / "out.csv"
    before = table_counts(store)
    status, body = await post(endpoint.url, template.format(secret=secret, outfile=outfile))
    # Refused by the rule (400 with the rule) or by ClickHouse's read-only session (400 with
    # its code), never answered with anything read outside the database; a read without end
    # (loop() where the session allows it) is answered, cut at max_rows.
    if template in ANSWERED_WHERE_ALLOWED and status == 200:
        assert body["truncated"] is True and len(body["rows"]) == 10_000
    else:
        assert status == 400, body
        assert body.get("rule") or body.get("code") in (164, 497), body
    assert SECRET not in json.dumps(body)
    assert not outfile.exists()
    assert table_counts(store) == before
    assert before["usage_events"] == N_EVENTS


async def test_a_query_answering_without_end_is_cut_at_max_rows(endpoint: SqlEndpoint) -> None:
    status, body = await post(endpoint.url, {"query": "SELECT number FROM system.numbers"})
    assert status == 200
    assert body["truncated"] is True and len(body["rows"]) == 10_000
    assert body["rows"][-1] == [9_999]


async def test_one_megabyte_queries(store: Store, endpoint: SqlEndpoint) -> None:
    # ClickHouse parses at most max_query_size (256 KiB) of a query: a real query padded to
    # 200 KB is answered, padded to 1 MB it is refused with ClickHouse's code (62).
    head = "SELECT count() FROM usage_events /* "
    status, body = await post(endpoint.url, head + "x" * 200_000 + " */")
    assert status == 200 and body["rows"] == [[N_EVENTS]]
    pad = 1024 * 1024 - len(head) - len(" */") - 16
    status, body = await post(endpoint.url, head + "x" * pad + " */")
    assert status == 400 and body["code"] == 62 and "Max query size" in body["error"]
    # A 1 MB query whose statements are hidden in the bulk: refused by the rule.
    bulk = "SELECT 1 " + "-- x\n" * 200_000 + "; DROP TABLE usage_events"
    status, body = await post(endpoint.url, bulk)
    assert status == 400 and body["rule"] == "single_statement"
    # Over the limit: refused before ClickHouse sees it.
    async with (
        aiohttp.ClientSession() as session,
        session.post(endpoint.url, data="SELECT 1 --" + "x" * (1024 * 1024)) as response,
    ):
        assert response.status == 413
    assert table_counts(store)["usage_events"] == N_EVENTS


@pytest.mark.parametrize("endpoint", ["read_only_client"], indirect=True)
async def test_cli_refuses_hostile_queries(
    store: Store, endpoint: SqlEndpoint, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    via = ("--endpoint", endpoint.url, "--dsn", store.settings.dsn)
    for template, rule in [
        ("SELECT $$'$$ AS a, * FROM file('{secret}', 'LineAsString') AS b -- '", "no_external"),
        ("SELECT * FROM `file`('{secret}', 'LineAsString')", "no_external_access"),
        ("SELECT 1 SETTINGS readonly = 0", "no_settings"),
        ("SELECT * FROM system.processes", "system_table"),
        ("SELECT 1 /* /* */ ; DROP TABLE usage_events -- */", "single_statement"),
    ]:
        code, out, err = await run_cli(template.format(secret=secret), *via)
        assert code == 2 and out == "", (template, err)
        assert f"refused ({rule}" in err and SECRET not in err
    assert table_counts(store)["usage_events"] == N_EVENTS


# Last: it closes the module's clients to let the CLI open the path.
async def test_cli_direct_when_no_endpoint_answers(store: Store) -> None:
    dead = f"http://127.0.0.1:{free_port()}/sql"
    query = "SELECT count(), sum(cost_nusd) FROM usage_events"
    flags = (
        "--endpoint",
        dead,
        "--dsn",
        store.settings.dsn,
        "--database",
        "sw_sql",
        "--format",
        "json",
    )

    # This process holds the chDB path and serves no endpoint: the CLI cannot open it.
    code, out, err = await run_cli(query, *flags)
    assert code == 1 and "held by another process" in err

    store.reader.close()
    store.writer.close()
    code, out, err = await run_cli(query, *flags)
    assert code == 0, err
    assert json.loads(out)["rows"] == [[N_EVENTS, store.total_nusd]]
    code, out, err = await run_cli("SELECT 1; DROP TABLE usage_events", *flags)
    assert code == 2 and "single_statement" in err
