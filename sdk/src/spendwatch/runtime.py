"""The process-wide SDK state behind ``configure`` / ``record`` / ``flush`` / ``shutdown``.

One :class:`Runtime` per process: its settings, the bounded queue and the sender thread (started
on the first event). After ``os.fork`` the child gets a fresh queue and its own sender, started
lazily; the events its parent had queued stay the parent's to send. At interpreter exit the
queue is flushed for up to ``exit_timeout_s``.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import config
from .errors import ConfigurationError, InvalidEventError
from .event import build
from .queue import EventQueue, Stats
from .sender import Sender

log = logging.getLogger("spendwatch")


class Runtime:
    """Settings + queue + (lazily started) sender for one configuration in one process."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.queue = EventQueue(settings.queue_size)
        self.base: dict[str, Any] = {"service": settings.service}
        if settings.environment is not None:
            self.base["environment"] = settings.environment
        if settings.tags:
            self.base["tags"] = dict(settings.tags)
        self._sender: Sender | None = None
        self._start_lock = threading.Lock()
        self.closed = False

    def submit(self, event: dict[str, Any]) -> None:
        """Queue a built event (never blocks, never raises)."""
        if self.closed:
            self.queue.reject()
            return
        if self._sender is None:
            self._start_sender()
        self.queue.put(event)

    def _start_sender(self) -> None:
        # Non-blocking: if the lock is held, a sender is being started right now (possibly by
        # this very thread, re-entered from the garbage collector recording an abandoned
        # stream); the event is queued either way and that sender will send it.
        if not self._start_lock.acquire(blocking=False):
            return
        try:
            if self._sender is None and not self.closed:
                sender = Sender(self.settings, self.queue)
                sender.start()
                self._sender = sender
        finally:
            self._start_lock.release()

    def flush(self, timeout_s: float) -> bool:
        if self._sender is None:
            return self.queue.empty()
        return self.queue.wait_resolved(timeout_s)

    def shutdown(self, timeout_s: float) -> bool:
        """Flush, then stop the sender, all within ``timeout_s``; later events are rejected.

        The sender is a daemon thread: one still connecting to an unreachable broker when the
        time is up is left behind rather than holding the caller (or the exit) any longer."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        flushed = self.flush(timeout_s)
        self.closed = True
        if self._sender is not None:
            self._sender.stop(timeout_s=max(deadline - time.monotonic(), 0.0))
        return flushed

    def stats(self) -> Stats:
        sender = self._sender
        return self.queue.stats(connected=sender is not None and sender.connected)

    def after_fork_in_child(self) -> None:
        # The parent still owns (and will send) what was queued before the fork; the child's
        # copy of the sender thread does not exist, so a new one starts on the first event.
        # The dead sender (its loop, sockets) is kept referenced: finalising it here could
        # touch state shared with the parent.
        if self._sender is not None:
            _fork_orphans.append(self._sender)
        self.queue = EventQueue(self.settings.queue_size)
        self._sender = None
        self._start_lock = threading.Lock()


_fork_orphans: list[Sender] = []
_lock = threading.Lock()
_runtime: Runtime | None = None
_warned_unconfigured = False


def configure(
    bootstrap_servers: str | Sequence[str] | None = None,
    service: str | None = None,
    environment: str | None = None,
    tags: Mapping[str, str] | None = None,
    topic: str = config.DEFAULT_TOPIC,
    queue_size: int = 10_000,
    *,
    acks: int | str = 1,
    linger_ms: int = 5,
    compression_type: str | None = None,
    request_timeout_ms: int = 30_000,
    retry_backoff_max_ms: int = 2_000,
    batch_events: int = 1_000,
    exit_timeout_s: float = 5.0,
    producer_options: Mapping[str, Any] | None = None,
) -> config.Settings:
    """Set up the SDK for this process; returns the resolved settings.

    Explicit arguments beat ``SPENDWATCH_*`` environment variables beat defaults. Raises
    ``ConfigurationError`` at once for a missing service name or a malformed setting (an
    unreachable broker is not an error: events wait for it within ``queue_size``). Calling it
    again replaces the configuration after flushing the previous queue for up to 1 s.
    ``producer_options`` are passed to ``AIOKafkaProducer`` (TLS, SASL...).
    """
    global _runtime
    settings = config.resolve(
        bootstrap_servers=bootstrap_servers,
        service=service,
        environment=environment,
        tags=tags,
        topic=topic,
        queue_size=queue_size,
        acks=acks,
        linger_ms=linger_ms,
        compression_type=compression_type,
        request_timeout_ms=request_timeout_ms,
        retry_backoff_max_ms=retry_backoff_max_ms,
        batch_events=batch_events,
        exit_timeout_s=exit_timeout_s,
        producer_options=producer_options,
    )
    with _lock:
        previous, _runtime = _runtime, Runtime(settings)
    if previous is not None:
        previous.shutdown(timeout_s=1.0)
    return settings


def current() -> Runtime | None:
    """The active runtime, configuring from the environment on first use if possible."""
    global _warned_unconfigured
    runtime = _runtime
    if runtime is not None:
        return runtime
    if os.environ.get(config.ENV_SERVICE):
        return _configure_from_env()
    if not _warned_unconfigured:
        _warned_unconfigured = True
        problem = f"{config.ENV_SERVICE} is not set"
        try:
            config.resolve()
        except ConfigurationError as exc:  # names the variable and what is wrong with it
            if exc.field != "service":
                problem = f"{exc.field}: {exc.message}"
        log.warning(
            "spendwatch: not configured (%s): call spendwatch.configure(service=...) or set "
            "the SPENDWATCH_* variables; events discarded",
            problem,
        )
    return None


def _configure_from_env() -> Runtime | None:
    global _runtime, _warned_unconfigured
    with _lock:
        if _runtime is None:
            try:
                _runtime = Runtime(config.resolve())
            except Exception as exc:
                if not _warned_unconfigured:
                    _warned_unconfigured = True
                    log.warning("spendwatch: environment configuration is invalid: %s", exc)
        return _runtime


_orphan_rejects = 0  # events offered before any configuration; reported by stats()


def submit(event: dict[str, Any]) -> None:
    """Queue an event dict. Built events come from ``record``/``track``; a dict that did not
    (no internal timestamp) is sent unchanged and unchecked, e.g. to forward events from
    another producer - the pipeline validates it and dead-letters it if it is malformed."""
    global _orphan_rejects
    runtime = current()
    if runtime is None:
        _orphan_rejects += 1
        return
    runtime.submit(event)


def reject() -> None:
    """Count an event an instrumented call could not build (never raised to the caller)."""
    global _orphan_rejects
    runtime = _runtime
    if runtime is None:
        _orphan_rejects += 1
    else:
        runtime.queue.reject()


_refused: dict[str, int] = {}  # field -> events refused for it (for the log's pacing)


def refuse(operation: object, exc: BaseException) -> None:
    """Count an event ``record()`` / ``track()`` could not build from the caller's values (in
    ``stats().rejected``) and log why: the first time for each field, then at the 10th,
    100th... Never raises."""
    reject()
    try:
        field = exc.field if isinstance(exc, InvalidEventError) else type(exc).__name__
        count = _refused[field] = _refused.get(field, 0) + 1
        if str(count).rstrip("0") == "1":
            name = operation if isinstance(operation, str) else type(operation).__name__
            log.warning(
                "spendwatch: event %r not recorded (%d so far for %s): %s",
                name[:128],
                count,
                field,
                str(exc)[:300],
            )
    except Exception:  # an unprintable value must not turn the report into a raise
        pass


def record(
    operation: str,
    *,
    status: str = "ok",
    provider: str | None = None,
    model: str | None = None,
    response_model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    unit: str | None = None,
    quantity: object = None,
    cost_usd: object = None,
    latency_ms: float | None = None,
    error_type: str | None = None,
    cache_hit: bool = False,
    partial: bool = False,
    request_id: str | None = None,
    tags: dict[str, str] | None = None,
    ts: datetime | None = None,
    service: str | None = None,
) -> None:
    """Record one finished call (``None`` = field absent); returns at once.

    ``service`` overrides the configured service for this event (a process running a
    fleet of agents); it is also the event's Kafka message key.

    ``quantity`` / ``cost_usd`` accept ``Decimal``, ``int``, ``str`` (kept exactly) or ``float``
    (read via ``Decimal(str(x))``, rounded to 9 places). ``ts`` (timezone-aware) defaults to
    now. Never raises: an event with a value the schema refuses is not sent, it is counted
    in ``stats().rejected`` and logged (``spendwatch`` logger, naming the field); otherwise it
    is queued (or counted in ``stats().rejected`` if the SDK is not configured). A full queue
    (e.g. the broker unreachable) drops its oldest event, counted in ``stats().dropped``.
    """
    # Hot path, run after every instrumented call: no forwarding of the keywords through
    # another layer, and ``build`` takes them positionally (in its order).
    runtime = current()
    try:
        event = build(
            _NO_BASE if runtime is None else runtime.base,
            operation,
            status,
            provider,
            model,
            response_model,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            unit,
            quantity,
            cost_usd,
            latency_ms,
            error_type,
            cache_hit,
            partial,
            request_id,
            tags,
            ts,
            service,
        )
    except Exception as exc:
        refuse(operation, exc)
        return
    if runtime is None:
        reject()
        return
    runtime.submit(event)


_NO_BASE: dict[str, Any] = {}  # ``build`` copies its base, never changes it


def flush(timeout_s: float = 5.0) -> bool:
    """Wait until every event recorded before the call is sent (or dropped/failed).

    Returns False if that did not happen within ``timeout_s`` (e.g. broker unreachable).
    Blocks the calling thread: from asyncio code use ``await spendwatch.aflush()``.
    """
    runtime = _runtime
    return True if runtime is None else runtime.flush(timeout_s)


def shutdown(timeout_s: float = 5.0) -> bool:
    """Flush for up to ``timeout_s``, stop the sender and forget the configuration.
    Returns whether everything was flushed. ``configure()`` may be called again later."""
    global _runtime, _orphan_rejects
    with _lock:
        runtime, _runtime = _runtime, None
        _orphan_rejects = 0
        _refused.clear()
    if runtime is None:
        return True
    return runtime.shutdown(timeout_s)


def stats() -> Stats:
    """Counters of the active configuration; when not configured, only ``rejected`` (events
    offered since the last ``shutdown()`` or start-up) can be non-zero."""
    runtime = _runtime
    if runtime is None:
        return Stats(rejected=_orphan_rejects)
    return runtime.stats()


def _after_fork_in_child() -> None:
    global _lock, _orphan_rejects
    _lock = threading.Lock()
    _orphan_rejects = 0
    runtime = _runtime
    if runtime is not None:
        runtime.after_fork_in_child()


def _at_exit() -> None:
    runtime = _runtime
    if runtime is not None and not runtime.closed:
        try:
            if not runtime.shutdown(runtime.settings.exit_timeout_s):
                log.warning(
                    "spendwatch: %d events not delivered at exit", runtime.queue.stats().queued
                )
        except Exception:  # never fail the interpreter's exit
            pass


class _MultiprocessingHook:
    """multiprocessing children leave through ``os._exit`` (no atexit): flush there via a
    multiprocessing finalizer, registered after the child clears its parent's finalizers."""

    def __call__(self, _obj: object) -> None:
        multiprocessing.util.Finalize(None, _at_exit, exitpriority=10)


_mp_hook = _MultiprocessingHook()
os.register_at_fork(after_in_child=_after_fork_in_child)
multiprocessing.util.register_after_fork(_mp_hook, _mp_hook)
atexit.register(_at_exit)

__all__ = ["InvalidEventError", "configure", "flush", "record", "shutdown", "stats"]
