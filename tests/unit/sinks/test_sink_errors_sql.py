"""Error classification, the DDL splitter, JSON shaping and text rendering of results."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    OperationalError,
    ProgrammingError,
)

from sinks.errors import DATA, FATAL, TRANSIENT, classify
from sinks.migrate import load_migrations, split_statements
from sinks.query import QueryAnswer, jsonable
from sinks.sql import render


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OperationalError("Network Error"), TRANSIENT),
        (ConnectionRefusedError(), TRANSIENT),
        (TimeoutError(), TRANSIENT),
        (DatabaseError("too many parts", code=252), TRANSIENT),
        (DatabaseError("memory", code=241), TRANSIENT),
        (DatabaseError("HTTP driver received HTTP status 503"), TRANSIENT),
        (DatabaseError("constraint", code=469), DATA),
        (DatabaseError("parse", code=27), DATA),
        (DataError("Invalid None value"), DATA),
        (ValueError("invalid literal for int()"), DATA),
        (struct.error("argument out of range"), DATA),
        (DatabaseError("unknown table", code=60), FATAL),
        (DatabaseError("syntax", code=62), FATAL),
        (ProgrammingError("column count does not match"), FATAL),
        (RuntimeError("bug"), FATAL),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    assert classify(exc) == kind


def test_split_statements_ignores_semicolons_in_comments_and_strings() -> None:
    sql = "-- a; comment\nCREATE TABLE a (s String DEFAULT ';');\n/* b; */ SELECT 1;\n-- tail;\n"
    assert split_statements(sql) == [
        "-- a; comment\nCREATE TABLE a (s String DEFAULT ';')",
        "/* b; */ SELECT 1",
    ]


def test_migrations_are_numbered_and_render() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    for m in migrations:
        for statement in m.statements("db_x", 30):
            assert "${" not in statement
            # Idempotent: re-running a half-applied file must be harmless.
            assert "IF NOT EXISTS" in statement or "MODIFY SETTING" in statement


def test_jsonable_keeps_money_exact_and_times_iso() -> None:
    assert jsonable(Decimal("0.000000001")) == "0.000000001"
    assert jsonable(Decimal("0E-9")) == "0.000000000"
    assert jsonable(Decimal("12.345000000")) == "12.345000000"
    assert jsonable(datetime(2025, 6, 1, 1, 2, 3, tzinfo=UTC)) == "2025-06-01T01:02:03+00:00"
    assert jsonable(date(2025, 6, 1)) == "2025-06-01"
    assert jsonable(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert jsonable(2**70) == str(2**70)
    assert jsonable({"a": [1, (2, b"\xff")]}) == {"a": [1, [2, "ff"]]}
    assert jsonable(float("nan")) == "nan"


def _answer() -> QueryAnswer:
    return QueryAnswer(
        columns=["service", "cost_usd", "n", "tags"],
        types=["String", "Decimal(38, 9)", "UInt64", "Map(String, String)"],
        rows=[["support-bot", "12.500000000", 3, {"team": "cx"}], ["a,b", "0.000000001", 10, {}]],
    )


def test_render_table_aligns_and_right_aligns_numbers() -> None:
    assert render(_answer(), "table").splitlines() == [
        "service          cost_usd   n  tags",
        "-----------  ------------  --  -------------",
        'support-bot  12.500000000   3  {"team":"cx"}',
        "a,b           0.000000001  10  {}",
        "(2 rows)",
    ]


def test_render_csv_and_json() -> None:
    assert render(_answer(), "csv").splitlines() == [
        "service,cost_usd,n,tags",
        'support-bot,12.500000000,3,"{""team"":""cx""}"',
        '"a,b",0.000000001,10,{}',
    ]
    assert render(_answer(), "json").startswith('{"columns": ["service", "cost_usd", "n", "tags"]')
