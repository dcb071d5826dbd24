"""Fixtures for the SDK tests: a real Tansu broker, a fresh topic per test and a consumer that
reads back exactly what the SDK produced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import spendwatch
from aiokafka.structs import ConsumerRecord

from schemas.events import validate_event
from streams.broker import TansuBroker
from tests.support.topic import read_topic

# litellm downloads its price map at import unless told not to: 20 s of retries without network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as running:
        yield running


@pytest.fixture
def topic() -> str:
    return f"sdk-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _sdk_reset() -> Iterator[None]:
    """Every test starts unconfigured and leaves no sender thread behind."""
    spendwatch.shutdown(timeout_s=0)
    yield
    spendwatch.shutdown(timeout_s=0)


def decode_valid(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    """Each record's event, asserting it passes the pipeline's own validator."""
    events = []
    for record in records:
        event, rejection = validate_event(record.value)
        assert rejection is None, (rejection, record.value)
        assert event is not None
        events.append(event)
    return events


@pytest.fixture
def consume(broker: TansuBroker, topic: str) -> Callable[..., list[dict[str, Any]]]:
    """``consume(expected)`` -> the validated events on this test's topic (sync tests)."""

    def run(
        expected: int, *, timeout_s: float = 15.0, bootstrap: str | None = None
    ) -> list[dict[str, Any]]:
        records = asyncio.run(
            read_topic(bootstrap or broker.bootstrap_servers, topic, expected, timeout_s)
        )
        for record in records:
            assert record.key == orjson.loads(record.value)["service"].encode()
        return decode_valid(records)

    return run


@pytest.fixture
def stable() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The event without the fields that differ on every run (id, time, latency)."""

    def strip(event: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in event.items() if k not in ("event_id", "ts", "latency_ms")}

    return strip


# -- a loopback HTTP server speaking the OpenAI / Anthropic wire formats -------------------


class Reply:
    """One scripted answer: JSON, or SSE events (optionally cut off mid-stream)."""

    def __init__(
        self,
        *,
        status: int = 200,
        body: Any = None,
        events: list[tuple[str | None, Any]] | None = None,
        headers: dict[str, str] | None = None,
        cut_after: int | None = None,
        delay_s: float = 0.0,
        raw: bytes | None = None,
    ) -> None:
        self.raw = raw  # sent as is (with ``headers``): e.g. an AWS event stream
        self.status = status
        self.body = body
        self.events = events
        self.headers = headers or {}
        self.cut_after = cut_after
        self.delay_s = delay_s


class FakeLLM:
    """``ThreadingHTTPServer`` on 127.0.0.1: each request to a path pops the next scripted
    ``Reply`` for that path; requests (path, JSON body) are kept for assertions."""

    def __init__(self) -> None:
        import http.server
        import threading
        from collections import defaultdict, deque

        self.replies: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = orjson.loads(self.rfile.read(length)) if length else {}
                fake.requests.append((self.path, body))
                queue = fake.replies[self.path]
                reply = (
                    queue.popleft() if queue else Reply(status=500, body={"error": "unscripted"})
                )
                # The client may have gone (timeout test): nothing to answer then.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake.answer(self, reply, body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, path: str, *replies: Reply) -> None:
        self.replies[path].extend(replies)

    def answer(self, handler: Any, reply: Reply, request: dict[str, Any]) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.events is None:
            data = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
            handler.send_response(reply.status)
            if "Content-Type" not in reply.headers:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        events = reply.events
        if callable(events):
            events = events(request)
        for index, (name, payload) in enumerate(events):
            if reply.cut_after is not None and index >= reply.cut_after:
                handler.wfile.flush()
                handler.close_connection = True
                # Drop the connection without the final zero-length chunk: a network failure.
                import socket

                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            text = "" if name is None else f"event: {name}\n"
            data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
            chunk = f"{text}data: {data}\n\n".encode()
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture
def reply() -> type[Reply]:
    return Reply
