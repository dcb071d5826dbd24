"""The read-only rule for ad-hoc SQL (``spendwatch sql`` and the worker's ``POST /sql``).

:func:`check_read_only` is the first of two locks: it refuses anything but one SELECT / WITH /
SHOW / DESCRIBE / EXPLAIN / EXISTS statement, plus the read-only statements that still touch
the outside world (``INTO OUTFILE``, table functions reading files, URLs or other servers).
The second lock is the session itself: the query client runs with ClickHouse's ``readonly``
setting (see :func:`sinks.client.make_client` with ``read_only=True``).
"""

from __future__ import annotations

import re
from typing import Final

ALLOWED_FIRST_WORDS: Final = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"}
)
# Table functions (and the file() scalar) that read or write outside the database.
EXTERNAL_FUNCTIONS: Final = frozenset(
    {
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "azureblobstorage",
        "azureblobstoragecluster",
        "hdfs",
        "hdfscluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "executable",
        "input",
        "iceberg",
        "icebergs3",
        "deltalake",
        "hudi",
        "arrowflight",
        "ytsaurus",
        "merge",  # reads the tables of any database by name, system's too
    }
)
# System tables a user may read; the others show other sessions' queries, stack traces,
# server paths, users and grants (``system.processes``, ``system.stack_trace``,
# ``system.disks``...).
ALLOWED_SYSTEM_TABLES: Final = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "databases",
        "tables",
        "columns",
        "parts",
        "functions",
        "table_functions",
        "formats",
        "data_type_families",
        "time_zones",
        "settings",
    }
)
_WORD_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CALL_RE: Final = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_OUTFILE_RE: Final = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)
_SETTINGS_RE: Final = re.compile(r"\bSETTINGS\s+[A-Za-z_][A-Za-z0-9_]*\s*=", re.IGNORECASE)
_SYSTEM_RE: Final = re.compile(r"\bsystem\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_SHOW_SYSTEM_RE: Final = re.compile(
    r"^SHOW\s+(PROCESSLIST|GRANTS|USERS|ROLES|ENABLED\s+ROLES|CURRENT\s+ROLES|QUOTAS?|PROFILES|"
    r"SETTINGS\s+PROFILES|POLICIES|ROW\s+POLICIES|ACCESS|PRIVILEGES|CLUSTERS?|FILESYSTEM|"
    r"CREATE\s+(USER|ROLE|QUOTA|PROFILE|SETTINGS\s+PROFILE|POLICY|ROW\s+POLICY))\b",
    re.IGNORECASE,
)
_BARE_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC_RE: Final = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


class ReadOnlyQueryError(ValueError):
    """The query breaks the read-only rule. ``rule`` is a stable id, the message says why."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(message)


def check_read_only(sql: str) -> None:
    """Raise :class:`ReadOnlyQueryError` unless ``sql`` is one read-only statement.

    Comments (``--``, ``#``, ``/* */``) and string literals (``'...'`` and heredocs
    ``$tag$...$tag$``) are ignored when looking for keywords; a quoted identifier that is a
    plain name (`` `file` ``, ``"system"``) counts as that name. One trailing ``;`` is
    allowed. Rules (``rule`` attribute): ``empty``, ``single_statement``,
    ``read_only_statement``, ``no_outfile``, ``no_external_access``, ``no_settings`` (a
    ``SETTINGS`` clause: the session's settings are fixed), ``system_table`` (system tables
    beyond :data:`ALLOWED_SYSTEM_TABLES`, and the ``SHOW`` forms that read the others),
    ``unterminated``.
    """
    code = _code_only(sql)
    statements = [s for s in code.split(";") if s.strip()]
    if not statements:
        raise ReadOnlyQueryError("empty", "empty query: nothing to run")
    if len(statements) > 1:
        raise ReadOnlyQueryError(
            "single_statement",
            f"one statement per query, found {len(statements)} separated by ';'",
        )
    body = statements[0].lstrip().lstrip("(").lstrip()
    match = _WORD_RE.match(body)
    first = match.group(0).upper() if match else body[:20]
    if first not in ALLOWED_FIRST_WORDS:
        allowed = ", ".join(sorted(ALLOWED_FIRST_WORDS - {"DESC"}))
        raise ReadOnlyQueryError(
            "read_only_statement",
            f"only read-only statements are allowed ({allowed}); this one starts with {first}",
        )
    if _OUTFILE_RE.search(body):
        raise ReadOnlyQueryError("no_outfile", "INTO OUTFILE is refused: it writes a file")
    if _SETTINGS_RE.search(body):
        raise ReadOnlyQueryError(
            "no_settings", "a SETTINGS clause is refused: the query session's settings are fixed"
        )
    show = _SHOW_SYSTEM_RE.match(body)
    if show:
        raise ReadOnlyQueryError(
            "system_table", f"SHOW {show.group(1).upper()} is refused: it reads server internals"
        )
    for table in _SYSTEM_RE.finditer(body):
        if table.group(1).lower() not in ALLOWED_SYSTEM_TABLES:
            allowed = ", ".join(sorted(ALLOWED_SYSTEM_TABLES))
            raise ReadOnlyQueryError(
                "system_table",
                f"system.{table.group(1)} is refused; the system tables allowed are {allowed}",
            )
    for call in _CALL_RE.finditer(body):
        if call.group(1).lower() in EXTERNAL_FUNCTIONS:
            raise ReadOnlyQueryError(
                "no_external_access",
                f"{call.group(1)}() is refused: it reaches outside the spendwatch database",
            )


def strip_trailing_semicolon(sql: str) -> str:
    """The query without trailing whitespace and ``;`` (clients append SETTINGS / FORMAT)."""
    text = sql.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _code_only(sql: str) -> str:
    """``sql`` with comments removed and quoted text blanked (keywords inside them vanish)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"', "`"):
            end = _closing_quote(sql, i)
            if end < 0:
                raise ReadOnlyQueryError("unterminated", f"unterminated {ch} quote")
            inner = sql[i + 1 : end]
            if ch == "'":
                out.append("''")
            elif _BARE_IDENTIFIER_RE.fullmatch(inner):
                out.append(inner)  # `file`( is file(, "system".x is system.x
            else:
                out.append(f"{ch}q{ch}")
            i = end + 1
        elif ch == "$" and (heredoc := _HEREDOC_RE.match(sql, i)):
            # A heredoc string $tag$...$tag$: ClickHouse reads it as one literal.
            tag = heredoc.group(0)
            end = sql.find(tag, heredoc.end())
            if end < 0:
                raise ReadOnlyQueryError("unterminated", f"unterminated {tag} heredoc")
            out.append("''")
            i = end + len(tag)
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ReadOnlyQueryError("unterminated", "unterminated /* comment")
            i = end + 2
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _closing_quote(sql: str, start: int) -> int:
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # doubled quote escapes itself
                i += 2
                continue
            return i
        i += 1
    return -1
