"""Names (database, table, column) that go into SQL text, checked against one rule.

Values are never written into SQL by hand: they are bound with clickhouse-connect
parameters (``client.query(sql, parameters=...)``). Names cannot always be bound (DDL,
``INSERT INTO``, ``ALTER TABLE``), so every name put into SQL text passes
:func:`quote_identifier`, which accepts only ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII).
"""

from __future__ import annotations

import re
from typing import Final

IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(value: str) -> str:
    """``value`` if it is a plain ClickHouse identifier; ``ValueError`` saying why if not."""
    if not value or not (value[0].isalpha() or value[0] == "_"):
        raise ValueError(f"must be a ClickHouse identifier, got {value!r}")
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"must be letters, digits and _ only, got {value!r}")
    return value


def quote_identifier(value: str) -> str:
    """``value`` back-quoted for SQL text, after :func:`check_identifier`."""
    return f"`{check_identifier(value)}`"
