"""The console's HTTP side, installed into the worker's read-only endpoint (aiohttp).

* ``GET /`` - the page (static HTML, CSS, JS and the vendored uPlot under
  ``/console/static/``; no build step, nothing fetched from elsewhere).
* ``GET /console/api/snapshot?tag=team`` - everything the page shows, as JSON (see
  :mod:`streams.console.snapshot`). The page polls it every second. Behind the bearer token
  when ``[console] token`` is set (``Authorization: Bearer <token>``); the static files carry
  no data and are served to anyone who reaches the port.

Figures from ClickHouse are recomputed at most every ``refresh_s`` (one computation serves
every viewer), on the console's own read-only client so ad-hoc ``POST /sql`` never waits
behind it. Budgets come from :class:`spendwatch.status.BudgetStatusFollower`: the compacted
``spendwatch.budget-status.v1`` topic read from the beginning by a plain aiokafka consumer
with no group (latest record per budget), so every worker's console shows every budget.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from streams.console.settings import ConsoleSettings
from streams.console.snapshot import budget_rows, build_figures
from streams.report.settings import ReportSettings, check_tag_name

log = logging.getLogger("spendwatch.console")

STATIC: Final = Path(__file__).parent / "static"
_KEY: Final = web.AppKey("console", object)
_MAX_CACHED_TAGS: Final = 8


class Console:
    """The console of one worker: its ClickHouse client, the status follower and a cache of
    the latest figures per tag. ``start``/``stop`` run as the endpoint's startup/cleanup."""

    def __init__(
        self,
        settings: Any,
        client: Any = None,
        *,
        follower: Any = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.console: ConsoleSettings = getattr(settings, "console", None) or ConsoleSettings()
        self.report: ReportSettings = getattr(settings, "report", None) or ReportSettings()
        self.client = client
        self._own_client = client is None
        self.follower = follower
        self._now = now
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def start(self, app: web.Application | None = None) -> None:
        if self.client is None:
            from sinks.client import make_client

            self.client = await asyncio.to_thread(
                make_client, self.settings.clickhouse, read_only=True
            )
        if self.follower is None:
            from spendwatch.status import BudgetStatusFollower

            self.follower = BudgetStatusFollower(self.settings.kafka.bootstrap_servers)
        self.follower.start()

    async def stop(self, app: web.Application | None = None) -> None:
        if self.follower is not None:
            await asyncio.to_thread(self.follower.stop)
        if self._own_client and self.client is not None:
            await asyncio.to_thread(self.client.close)
            self.client = None

    def authorized(self, request: web.Request) -> bool:
        token = self.console.token
        if token is None:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.reveal().encode()
        )

    def _run(self, sql: str) -> list[list[Any]]:
        return [list(r) for r in self.client.query(sql).result_rows]

    async def figures(self, tag: str) -> dict[str, Any]:
        """The ClickHouse figures for ``tag``, at most ``refresh_s`` old."""
        cached = self._cache.get(tag)
        if cached and time.monotonic() - cached[0] < self.console.refresh_s:
            return cached[1]
        async with self._lock:
            cached = self._cache.get(tag)
            if cached and time.monotonic() - cached[0] < self.console.refresh_s:
                return cached[1]
            started = time.monotonic()
            figures = await asyncio.to_thread(
                build_figures, self._run, self._now(), tag, self.report
            )
            if len(self._cache) >= _MAX_CACHED_TAGS and tag not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[tag] = (started, figures)
            return figures

    async def snapshot(self, tag: str) -> dict[str, Any]:
        figures = await self.figures(tag)
        statuses = self.follower.statuses() if self.follower is not None else {}
        age = self.follower.age_s if self.follower is not None else None
        return {
            **figures,
            "budgets": budget_rows(statuses.values(), self._now()),
            "budgets_age_s": None if age is None else round(age, 1),
            "refresh_ms": int(self.console.refresh_s * 1000),
        }


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _snapshot(request: web.Request) -> web.Response:
    console: Console = request.app[_KEY]  # type: ignore[assignment]
    if not console.authorized(request):
        return _json({"error": "bearer token required"}, 401)
    tag = request.query.get("tag") or console.report.tag
    try:
        check_tag_name(tag)
    except ValueError as exc:
        return _json({"error": f"tag: {exc}"}, 400)
    try:
        return _json(await console.snapshot(tag))
    except Exception as exc:  # ClickHouse down or a bug: the page says so and keeps polling
        log.exception("console snapshot failed")
        return _json({"error": f"{type(exc).__name__}: {exc}"}, 503)


def console_app(
    settings: Any, client: Any = None, *, follower: Any = None
) -> Callable[[web.Application], None]:
    """An installer for the worker's endpoint app: routes, startup and cleanup of the console
    (nothing when ``[console] enabled = false``). Pass it as ``start_sql_endpoint(...,
    extend=console_app(settings))``."""

    def install(app: web.Application) -> None:
        console = Console(settings, client, follower=follower)
        if not console.console.enabled:
            return
        app[_KEY] = console
        app.router.add_get("/", _index)
        app.router.add_get("/console/api/snapshot", _snapshot)
        app.router.add_static("/console/static", STATIC, append_version=False)
        app.on_startup.append(console.start)
        app.on_cleanup.append(console.stop)

    return install
