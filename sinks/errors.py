"""Sink errors, and the one place that sorts a ClickHouse failure by whether a retry can help.

``classify(exc)`` returns:

* ``TRANSIENT`` - the server or the network may recover: connection errors, HTTP 5xx,
  timeouts, memory limits, too many parts / queries. Retry with backoff; never drop.
* ``DATA`` - the rows themselves are bad (client-side serialisation refused a value, or the
  server refused a value: constraint, parse, overflow). Split the batch, dead-letter the
  culprits, write the rest.
* ``FATAL`` - a bug or a broken deployment (unknown table or column, syntax, permissions):
  neither retrying nor splitting can help; raise to the caller with the rows kept.

Codes come from ClickHouse ``src/Common/ErrorCodes.cpp``; the HTTP and chDB clients both
attach them to ``clickhouse_connect`` exceptions as ``exc.code``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final, Literal

from clickhouse_connect.driver import exceptions as ch_exc

ErrorKind = Literal["transient", "data", "fatal"]
TRANSIENT: Final = "transient"
DATA: Final = "data"
FATAL: Final = "fatal"

# Server-side "try again later" codes.
TRANSIENT_CODES: Final = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE (connection cut mid-request)
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (replica temporarily read-only)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
    }
)

# Server-side "this value is wrong" codes.
DATA_CODES: Final = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        32,  # ATTEMPT_TO_READ_AFTER_EOF (truncated value)
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        376,  # CANNOT_PARSE_UUID
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
        691,  # UNKNOWN_ELEMENT_OF_ENUM
    }
)


class SinkError(Exception):
    """Base of the errors a sink raises to its caller.

    ``pending`` (when not ``None``) are the rows of the failed batch that were not written;
    the sink keeps exactly those buffered. ``__cause__`` is the underlying error.
    """

    def __init__(self, message: str, *, pending: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.pending = None if pending is None else list(pending)


class SinkUnavailableError(SinkError):
    """ClickHouse stayed unreachable past ``retry_deadline_s``. The rows are still buffered."""


class SinkFatalError(SinkError):
    """A write failed for a reason no retry or split can fix (schema, permissions, a bug).

    The batch is still buffered; ``__cause__`` is the ClickHouse error.
    """


class SinkClosedError(SinkError):
    """``add`` or ``flush`` after ``close``."""


class ChdbPathLockedError(SinkError):
    """Another process holds the chDB data directory (only one process may open a path)."""


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code carried by ``exc``, if any."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def classify(exc: BaseException) -> ErrorKind:
    """Sort a failed write by whether a retry can help (see the module docstring)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT
    if isinstance(exc, ch_exc.DataError):
        return DATA  # clickhouse-connect refused a value while serialising
    if isinstance(exc, (ValueError, TypeError, OverflowError, struct.error)):
        return DATA  # raised by the column serialisers for a value of the wrong type
    code = error_code(exc)
    if code in DATA_CODES:
        return DATA
    if code in TRANSIENT_CODES:
        return TRANSIENT
    if isinstance(exc, ch_exc.OperationalError):
        return TRANSIENT  # network errors and exhausted HTTP retries
    if isinstance(exc, ch_exc.DatabaseError) and code is None:
        text = str(exc)
        if "HTTP status 5" in text or "Network Error" in text or "timed out" in text:
            return TRANSIENT
    return FATAL
