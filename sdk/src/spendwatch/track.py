"""``track()``: time any metered call and record one usage event for it.

Works as a context manager (sync and async) and as a decorator of sync and async functions::

    with spendwatch.track("chat", provider="openai", model="gpt-4o") as t:
        reply = call()
        t.set_usage(input_tokens=..., output_tokens=...)

    @spendwatch.track("geocode", provider="mapbox", unit="request", quantity=1)
    async def geocode(q): ...

On exit it records ``latency_ms``, ``status`` (``ok`` / ``error``) and, on an exception,
``error_type`` (the exception's class name); the exception propagates unchanged. Nothing here
raises into the caller: a value the schema refuses (in the arguments or a setter) makes the
event unsendable, and at exit it is counted in ``stats().rejected`` and logged instead.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from . import fields, runtime
from .event import build

log = logging.getLogger("spendwatch")

P = ParamSpec("P")
R = TypeVar("R")

_active: ContextVar[Track | None] = ContextVar("spendwatch_track", default=None)


def current_track() -> Track | None:
    """The innermost ``track()`` active in this thread / task, e.g. inside a decorated function."""
    return _active.get()


class Track:
    """One tracked call. Set usage inside the block; the event is recorded on exit."""

    __slots__ = (
        "_problem",
        "_start_ns",
        "_tags",
        "_token",
        "cache_hit",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd_str",
        "input_tokens",
        "model",
        "operation",
        "output_tokens",
        "partial",
        "provider",
        "quantity_str",
        "reasoning_tokens",
        "request_id",
        "response_model",
        "unit",
    )

    def __init__(
        self,
        operation: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        response_model: str | None = None,
        unit: str | None = None,
        quantity: object = None,
        cost_usd: object = None,
        cache_hit: bool = False,
        request_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self._problem: BaseException | None = None
        self.operation: Any = operation
        self.provider = provider
        self.model = model
        self.response_model = response_model
        self.unit: str | None = None
        self.quantity_str: str | None = None
        self.cost_usd_str: str | None = None
        self.cache_hit = False
        self.partial = False
        self.request_id = request_id
        self._tags: dict[str, str] | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self._start_ns = 0
        self._token: Token[Track | None] | None = None
        try:
            self.operation = fields.text("operation", operation, max_len=128)
            self.cache_hit = bool(cache_hit)
            self.unit = None if unit is None else fields.unit(unit)
            self.quantity_str = None if quantity is None else fields.quantity(quantity)
            self.cost_usd_str = None if cost_usd is None else fields.cost_usd(cost_usd)
            self._tags = None if tags is None else fields.tags("tags", tags)
        except Exception as exc:
            self._problem = exc

    def _check(self, apply: Callable[[], None]) -> None:
        """Run a setter's check; a refused value spoils the event (reported at exit)."""
        try:
            apply()
        except Exception as exc:
            if self._problem is None:
                self._problem = exc

    # -- usage setters (checked at once; a refused value spoils the event) -----------------

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Token counts with the OpenTelemetry GenAI meaning: ``input_tokens`` includes cached
        tokens, ``output_tokens`` includes reasoning tokens. ``None`` leaves a count unchanged."""

        def apply() -> None:
            if input_tokens is not None:
                self.input_tokens = fields.tokens("input_tokens", input_tokens)
            if output_tokens is not None:
                self.output_tokens = fields.tokens("output_tokens", output_tokens)
            if cache_read_tokens is not None:
                self.cache_read_tokens = fields.tokens("cache_read_tokens", cache_read_tokens)
            if cache_write_tokens is not None:
                self.cache_write_tokens = fields.tokens("cache_write_tokens", cache_write_tokens)
            if reasoning_tokens is not None:
                self.reasoning_tokens = fields.tokens("reasoning_tokens", reasoning_tokens)

        self._check(apply)

    @property
    def quantity(self) -> str | None:
        """Units consumed, as the decimal string that will be sent."""
        return self.quantity_str

    @quantity.setter
    def quantity(self, value: object) -> None:
        def apply() -> None:
            self.quantity_str = None if value is None else fields.quantity(value)

        self._check(apply)

    @property
    def cost_usd(self) -> str | None:
        """Cost supplied by the caller, as the decimal string that will be sent."""
        return self.cost_usd_str

    @cost_usd.setter
    def cost_usd(self, value: object) -> None:
        def apply() -> None:
            self.cost_usd_str = None if value is None else fields.cost_usd(value)

        self._check(apply)

    def set_tag(self, key: str, value: str) -> None:
        """Add one tag to this event (on top of the configured tags)."""

        def apply() -> None:
            self._tags = fields.tags("tags", {**(self._tags or {}), key: value})

        self._check(apply)

    # -- context manager -----------------------------------------------------------------

    def __enter__(self) -> Track:
        self._token = _active.set(self)
        self._start_ns = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        latency_ms = (time.perf_counter_ns() - self._start_ns) / 1e6
        token, self._token = self._token, None
        if token is not None:
            try:  # noqa: SIM105  (hot path: cheaper than contextlib.suppress)
                _active.reset(token)
            except ValueError:  # exited in another context than entered; harmless
                pass
        self._emit(latency_ms, None if exc_type is None else exc_type.__name__)

    async def __aenter__(self) -> Track:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _emit(self, latency_ms: float, error_type: str | None) -> None:
        if self._problem is not None:
            runtime.refuse(self.operation, self._problem)
            return
        try:
            rt = runtime.current()
            if rt is None:
                runtime.reject()
                return
            event = build(  # positionally, in build's order (hot path: see build)
                rt.base,
                self.operation,
                "ok" if error_type is None else "error",
                self.provider,
                self.model,
                self.response_model,
                self.input_tokens,
                self.output_tokens,
                self.cache_read_tokens,
                self.cache_write_tokens,
                self.reasoning_tokens,
                self.unit,
                self.quantity_str,
                self.cost_usd_str,
                latency_ms,
                error_type,
                self.cache_hit,
                self.partial,
                self.request_id,
                self._tags,
            )
            rt.submit(event)
        except Exception as exc:  # never raise into the caller's block
            runtime.refuse(self.operation, exc)

    # -- decorator -----------------------------------------------------------------------

    def _fresh(self) -> Track:
        clone = Track.__new__(Track)
        for name in Track.__slots__:
            setattr(clone, name, getattr(self, name))
        clone._token = None
        return clone

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function: each call is tracked with a fresh copy of this
        ``Track`` (reach it inside the function with ``spendwatch.current_track()``)."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self._fresh():
                    return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


track = Track
