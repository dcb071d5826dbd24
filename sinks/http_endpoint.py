"""The worker's read-only SQL endpoint (aiohttp), so analysts can query while it holds chDB.

Only one process may open a chDB path, so while the worker runs, ``spendwatch sql`` asks the
worker. Bind it to 127.0.0.1: it has no authentication.

* ``POST /sql`` - body: the query text (``text/plain``), or JSON ``{"query": "...",
  "max_rows": N}``. 200 -> ``{"columns", "types", "rows", "truncated", "elapsed_ms"}``
  (Decimals as strings, datetimes ISO 8601). 400 -> ``{"error", "rule"}`` for a query the
  read-only rule refuses, ``{"error", "code"}`` for one ClickHouse refuses; 503 when
  ClickHouse is unreachable; 413 for a body over 1 MiB.
* ``GET /health`` - 200 ``{"status": "ok", ...}`` plus whatever the ``health`` callback adds
  (components, sink stats, lag); 503 when ClickHouse does not answer (``"unavailable"``) or
  the callback reports another status (e.g. ``"crashed"``).
* whatever ``extend`` adds (the worker adds the console: ``GET /`` and ``/console/...``).

Queries run in worker threads (``asyncio.to_thread``), at most ``max_concurrent`` at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import orjson
from aiohttp import web
from clickhouse_connect.driver import Client

from sinks.errors import TRANSIENT, classify, error_code
from sinks.query import DEFAULT_MAX_ROWS, run_read_only
from sinks.readonly import ReadOnlyQueryError

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1024 * 1024
HARD_MAX_ROWS: Final = 1_000_000
# ClickHouse codes a write path retries but which, for an ad-hoc query, are the query's own
# doing: READONLY (it tried to write), TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED. A 400, not
# "ClickHouse unavailable".
QUERY_FAULT_CODES: Final = frozenset({164, 159, 241})
_CLIENT: Final = web.AppKey("client", Client)
_HEALTH: Final = web.AppKey("health", object)
_SEMAPHORE: Final = web.AppKey("semaphore", asyncio.Semaphore)


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _sql(request: web.Request) -> web.Response:
    raw = await request.read()
    max_rows = DEFAULT_MAX_ROWS
    if request.content_type == "application/json":
        try:
            payload = orjson.loads(raw)
            query = payload["query"]
            max_rows = int(payload.get("max_rows", DEFAULT_MAX_ROWS))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _json({"error": 'JSON body must be {"query": "...", "max_rows": N}'}, 400)
    else:
        try:
            query = raw.decode()
        except UnicodeDecodeError:
            return _json({"error": "query text must be UTF-8"}, 400)
        if "max_rows" in request.query:
            try:
                max_rows = int(request.query["max_rows"])
            except ValueError:
                return _json({"error": "max_rows must be an integer"}, 400)
    if not isinstance(query, str) or not 1 <= max_rows <= HARD_MAX_ROWS:
        return _json({"error": f"query must be text and max_rows 1..{HARD_MAX_ROWS}"}, 400)
    client = request.app[_CLIENT]
    try:
        async with request.app[_SEMAPHORE]:
            answer = await asyncio.to_thread(run_read_only, client, query, max_rows=max_rows)
    except ReadOnlyQueryError as exc:
        return _json({"error": f"refused: {exc}", "rule": exc.rule}, 400)
    except UnicodeDecodeError as exc:
        return _json({"error": f"result is not UTF-8 ({exc}); alias the columns"}, 400)
    except Exception as exc:
        if error_code(exc) in QUERY_FAULT_CODES:
            return _json({"error": str(exc), "code": error_code(exc)}, 400)
        if classify(exc) == TRANSIENT:
            log.warning("SQL endpoint: ClickHouse unavailable: %s", exc)
            return _json({"error": f"ClickHouse unavailable: {exc}"}, 503)
        code = error_code(exc)
        if code is None:
            log.exception("SQL endpoint: query failed")
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 500)
        return _json({"error": str(exc), "code": code}, 400)
    return _json(answer.to_dict())


_NOTES: dict[str, Any] = {}


def set_health_note(key: str, value: Any) -> None:
    """Add ``key: value`` to every ``/health`` answer of this process (facts known before
    the worker starts, e.g. the receivers the configuration disabled)."""
    _NOTES[key] = value


async def _health(request: web.Request) -> web.Response:
    client = request.app[_CLIENT]
    alive = await asyncio.to_thread(client.ping)
    body: dict[str, Any] = {"status": "ok" if alive else "unavailable", **_NOTES}
    health = request.app[_HEALTH]
    if callable(health):
        try:
            body.update(health())
        except Exception as exc:  # a broken health hook must not hide the answer
            body["health_error"] = str(exc)
    if not alive:
        body["status"] = "unavailable"
    return _json(body, 200 if body["status"] == "ok" else 503)


def make_app(
    client: Client,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    max_concurrent: int = 4,
    extend: Callable[[web.Application], None] | None = None,
) -> web.Application:
    """The aiohttp application (for embedding in another app or testing). ``extend`` gets
    the app before it starts, to add routes and startup/cleanup hooks."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_CLIENT] = client
    app[_HEALTH] = health
    app[_SEMAPHORE] = asyncio.Semaphore(max_concurrent)
    app.router.add_post("/sql", _sql)
    app.router.add_get("/health", _health)
    if extend is not None:
        extend(app)
    return app


class SqlEndpoint:
    """A running endpoint: :attr:`url` to query it, :meth:`stop` to release the port."""

    def __init__(self, runner: web.AppRunner) -> None:
        self.runner = runner
        host, port = runner.addresses[0][:2]
        self.host: str = host
        self.port: int = port

    @property
    def url(self) -> str:
        """``http://host:port/sql``."""
        return f"http://{self.host}:{self.port}/sql"

    async def stop(self) -> None:
        """Stop serving and release the port (in-flight requests finish first). Idempotent."""
        await self.runner.cleanup()


async def start_sql_endpoint(
    client: Client,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    max_concurrent: int = 4,
    extend: Callable[[web.Application], None] | None = None,
) -> SqlEndpoint:
    """Serve ``POST /sql`` and ``GET /health`` on ``host:port`` (``port=0``: any free port;
    read it back from ``.port`` / ``.url``). Stop with ``await endpoint.stop()``.

    ``client`` should be its own ``make_client(settings, read_only=True)``: queries then do
    not queue behind the sink's inserts, and the session itself is read-only. Any client
    works (the read-only rule is checked and ``readonly``/``final`` ride with each query).
    ``extend(app)`` may add routes and hooks (see :func:`make_app`). Raises ``OSError`` when
    the port is taken.
    """
    runner = web.AppRunner(
        make_app(client, health=health, max_concurrent=max_concurrent, extend=extend),
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    endpoint = SqlEndpoint(runner)
    log.info("SQL endpoint on %s", endpoint.url)
    return endpoint


async def stop_sql_endpoint(endpoint: SqlEndpoint) -> None:
    """Same as ``await endpoint.stop()``."""
    await endpoint.stop()
