"""Wrapping one resource method of a provider client (sync or async) and the guard hook."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import SpendwatchError
from . import raw
from .recorder import IN_CALL, CallRecorder
from .streams import Observe, watch_async, watch_sync

log = logging.getLogger("spendwatch")


class Guard(Protocol):
    """What ``instrument(client, guard=...)`` calls before each covered call.

    Returns the request kwargs to use (possibly changed, e.g. a cheaper ``model``), or raises
    a ``SpendwatchError`` such as the guard's ``BudgetExceeded``, which reaches the caller
    unchanged (no usage event: no call was made). Any other exception from the guard is logged
    and the call proceeds unchanged (a broken guard never breaks the app).
    """

    def before_call(
        self, provider: str | None, model: str | None, request_kwargs: dict[str, Any]
    ) -> dict[str, Any]: ...


def apply_guard(guard: Guard | None, provider: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if guard is None:
        return kwargs
    model = kwargs.get("model")
    try:
        changed = guard.before_call(provider, model if isinstance(model, str) else None, kwargs)
    except SpendwatchError:
        raise  # the guard's decision (BudgetExceeded, PerRequestLimitExceeded) for the caller
    except Exception as exc:
        log.warning("spendwatch: guard failed, call proceeds unchanged: %r", exc)
        return kwargs
    return kwargs if changed is None else changed


@dataclass(frozen=True, slots=True)
class Spec:
    """How one API's calls are read."""

    provider: str
    operation: str
    read_result: Callable[[CallRecorder, Any], None]
    observe: Observe | None = None  # None: the API has no streaming
    needs_terminal: bool = False
    prepare: Callable[[dict[str, Any]], tuple[dict[str, Any], bool]] | None = None
    request_id_header: str = "x-request-id"


@dataclass(frozen=True, slots=True)
class Shapes:
    """The provider library's classes a covered method returns instead of a parsed model."""

    streams: tuple[type, ...]  # ``stream=True``
    responses: tuple[type, ...] = ()  # raw responses: with_raw_response / with_streaming_response


def _start(spec: Spec, kwargs: dict[str, Any]) -> tuple[dict[str, Any], CallRecorder]:
    hide = False
    if spec.prepare is not None:
        try:
            kwargs, hide = spec.prepare(kwargs)
        except Exception as exc:
            log.debug("spendwatch: request not prepared: %r", exc)
    rec = CallRecorder(spec.provider, spec.operation, kwargs.get("model"))
    rec.hide_usage_chunk = hide
    rec.needs_terminal = spec.needs_terminal
    return kwargs, rec


def _stream_request_id(stream: Any, header: str) -> str | None:
    try:
        value = stream.response.headers.get(header)
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def handle_result(
    spec: Spec, rec: CallRecorder, result: Any, stream_types: tuple[type, ...], is_async: bool
) -> None:
    """Read a non-stream response and record, or attach to a stream. Never raises."""
    try:
        if stream_types and isinstance(result, stream_types) and spec.observe is not None:
            rec.request_id = _stream_request_id(result, spec.request_id_header) or rec.request_id
            watch = watch_async if is_async else watch_sync
            if not watch(result, rec, spec.observe):
                rec.finish(partial=True)
            return
        spec.read_result(rec, result)
        request_id = getattr(result, "_request_id", None)
        if isinstance(request_id, str) and request_id:
            rec.request_id = request_id
    except Exception as exc:
        log.debug("spendwatch: could not read %s response: %r", spec.operation, exc)
    rec.finish()


def _reader(
    spec: Spec, rec: CallRecorder, stream_types: tuple[type, ...], is_async: bool
) -> Callable[[Any], None]:
    """What a raw response's parsed object goes through: the plain call's path."""
    return functools.partial(handle_result, spec, rec, stream_types=stream_types, is_async=is_async)


def wrap_sync(
    orig: Callable[..., Any], spec: Spec, guard: Guard | None, shapes: Shapes
) -> Callable[..., Any]:
    @functools.wraps(orig)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs = apply_guard(guard, spec.provider, kwargs)
        kwargs, rec = _start(spec, kwargs)
        token = IN_CALL.set(True)
        try:
            result = orig(*args, **kwargs)
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        if isinstance(result, shapes.responses):
            record = _reader(spec, rec, shapes.streams, is_async=False)
            raw.read_sync(result, rec, spec.request_id_header, record)
        else:
            handle_result(spec, rec, result, shapes.streams, is_async=False)
        return result

    call.__spendwatch_wrapped__ = orig  # type: ignore[attr-defined]
    return call


def wrap_async(
    orig: Callable[..., Any], spec: Spec, guard: Guard | None, shapes: Shapes
) -> Callable[..., Any]:
    @functools.wraps(orig)
    async def call(*args: Any, **kwargs: Any) -> Any:
        kwargs = apply_guard(guard, spec.provider, kwargs)
        kwargs, rec = _start(spec, kwargs)
        token = IN_CALL.set(True)
        try:
            result = await orig(*args, **kwargs)
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        if isinstance(result, shapes.responses):
            record = _reader(spec, rec, shapes.streams, is_async=True)
            await raw.read_async(result, rec, spec.request_id_header, record)
        else:
            handle_result(spec, rec, result, shapes.streams, is_async=True)
        return result

    call.__spendwatch_wrapped__ = orig  # type: ignore[attr-defined]
    return call
