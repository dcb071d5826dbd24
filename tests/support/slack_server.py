"""A loopback HTTP server speaking the Slack API, for tests.

Endpoints:
- ``POST /webhook/<anything>`` — incoming webhook: answers ``200 ok`` (text/plain) like
  ``hooks.slack.com``;
- ``POST /api/chat.postMessage`` — answers ``{"ok": true, "channel": ..., "ts": ...}``; a
  missing/empty bearer token gets ``{"ok": false, "error": "not_authed"}``.

Every request is recorded (``requests``; ``delivered`` holds the ones answered with
success), with its parsed JSON body and headers. Failures are scripted in order, per
endpoint or for any endpoint::

    server.script(rate_limited(retry_after_s=1), server_error(500), OK)           # any
    server.script(api_error("channel_not_found"), endpoint="chat.postMessage")
    server.script(drop_connection(), endpoint="webhook")
    server.outage(30, server_error(500), rate_limited(2))  # a time window, cycling answers

Use it in the test's loop (``async with SlackServer() as server``) or, for code running
its own loop elsewhere, in a thread (``with SlackServer().running_in_thread() as server``).
Binds 127.0.0.1 on a free port; ``stop`` closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

Endpoint = Literal["webhook", "chat.postMessage"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` None means the endpoint's normal success body."""

    status: int = 200
    body: str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    delay_s: float = 0.0

    @property
    def label(self) -> str:
        return "drop" if self.drop else str(self.status)


OK = Reply()


def rate_limited(retry_after_s: int = 1) -> Reply:
    """429 with ``Retry-After`` (webhook body ``rate_limited``; API ``ratelimited``)."""
    return Reply(429, None, {"Retry-After": str(retry_after_s)})


def server_error(status: int = 500) -> Reply:
    return Reply(status, "internal_error")


def drop_connection() -> Reply:
    return Reply(drop=True)


def api_error(error: str = "channel_not_found") -> Reply:
    """chat.postMessage: HTTP 200 with ``{"ok": false, "error": error}``."""
    return Reply(200, {"ok": False, "error": error})


@dataclass(frozen=True)
class SlackRequest:
    endpoint: Endpoint
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answer: str  # "200", "429", "drop" ...
    received_monotonic: float
    success: bool  # answered 200 (and, for the API, "ok": true)

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.body.get("blocks") or [])


class SlackServer:
    """See the module docstring."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[SlackRequest] = []
        self._scripts: dict[str | None, deque[Reply]] = {}
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ts = 0
        self._lock = threading.Lock()
        self._outage: tuple[float, tuple[Reply, ...]] | None = None
        self._outage_answers = 0

    # -- addresses

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def webhook_url(self, name: str = "T000/B000/XXXX") -> str:
        return f"{self.url}/webhook/{name}"

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/api/"

    # -- scripting and inspection

    def script(self, *replies: Reply, endpoint: Endpoint | None = None) -> None:
        """Queue answers, used in order by the next requests (to ``endpoint`` or any)."""
        with self._lock:
            self._scripts.setdefault(endpoint, deque()).extend(replies)

    @property
    def delivered(self) -> list[SlackRequest]:
        return [r for r in self.requests if r.success]

    def answers(self) -> list[str]:
        return [r.answer for r in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()

    def outage(self, duration_s: float, *replies: Reply) -> None:
        """For the next ``duration_s`` seconds answer every request with ``replies`` in turn
        (cycling), before any scripted answer; then answer normally again."""
        with self._lock:
            self._outage = (time.monotonic() + duration_s, replies)
            self._outage_answers = 0

    def unscript(self) -> None:
        """Drop the answers still queued (the server answers normally again); keeps
        ``requests``."""
        with self._lock:
            self._scripts.clear()

    def _next_reply(self, endpoint: Endpoint) -> Reply:
        with self._lock:
            if self._outage is not None:
                until, replies = self._outage
                if time.monotonic() < until:
                    self._outage_answers += 1
                    return replies[(self._outage_answers - 1) % len(replies)]
                self._outage = None
            for key in (endpoint, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return OK

    # -- handlers

    async def _handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = dict(await request.post()) if raw else {}
        reply = self._next_reply(endpoint)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        success = not reply.drop and reply.status == 200
        if endpoint == "chat.postMessage" and success:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if isinstance(reply.body, dict) and reply.body.get("ok") is False:
                success = False
            elif not token:
                success = False
                reply = Reply(200, {"ok": False, "error": "not_authed"})
        record = SlackRequest(
            endpoint=endpoint,
            path=request.path,
            headers=dict(request.headers),
            body=body if isinstance(body, dict) else {"_": body},
            answer=reply.label,
            received_monotonic=time.monotonic(),
            success=success,
        )
        with self._lock:
            self.requests.append(record)
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing may be written on an aborted connection
        if endpoint == "webhook":
            text = reply.body if isinstance(reply.body, str) else None
            if text is None:
                text = (
                    "ok"
                    if reply.status == 200
                    else "rate_limited"
                    if reply.status == 429
                    else "error"
                )
            return web.Response(status=reply.status, text=text, headers=reply.headers)
        if reply.body is None or isinstance(reply.body, str):
            if reply.status == 200:
                self._ts += 1
                payload: Any = {
                    "ok": True,
                    "channel": body.get("channel", ""),
                    "ts": f"1700000000.{self._ts:06d}",
                    "message": {"text": body.get("text", "")},
                }
            elif reply.status == 429:
                payload = {"ok": False, "error": "ratelimited"}
            else:
                return web.Response(
                    status=reply.status, text=reply.body or "error", headers=reply.headers
                )
        else:
            payload = reply.body
        return web.json_response(payload, status=reply.status, headers=reply.headers)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "webhook")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "chat.postMessage")

    # -- lifecycle in the current loop

    async def start(self) -> SlackServer:
        app = web.Application()
        app.router.add_post("/webhook/{tail:.*}", self._webhook)
        app.router.add_post("/api/chat.postMessage", self._chat)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- lifecycle in a thread of its own

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[SlackServer]:
        """Serve from a private loop in a daemon thread (for code that runs its own loop)."""
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="slack-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError("slack test server did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
            self._thread = None
            self._loop = None
