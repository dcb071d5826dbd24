"""Watching a provider's ``Stream`` / ``AsyncStream`` without changing what the caller gets.

The stream object itself is returned (same class, same methods). Its ``_iterator`` (the
generator both SDKs iterate in ``__next__`` / ``__iter__``) is replaced by one that shows each
item to ``observe`` first, and its ``close`` by one that also ends the record. The event is
recorded once, when the first of these happens:

* the iterator ends by itself: ``partial`` only if a stream that has an explicit last event
  (Anthropic ``message_stop``, Responses ``response.completed``) ended without it;
* an exception midway: ``status="error"``, ``error_type``, ``partial=True``, then re-raised;
* ``close()`` (also via ``with``), the iterator being closed, or the stream being garbage
  collected before its end: ``partial=True`` with the usage seen so far.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .recorder import CallRecorder

log = logging.getLogger("spendwatch")

Observe = Callable[[CallRecorder, Any], bool]  # returns False to hide the item from the caller


def _safe_observe(observe: Observe, rec: CallRecorder, item: Any) -> bool:
    try:
        return observe(rec, item)
    except Exception as exc:  # a surprising item shape must not break the caller's loop
        log.debug("spendwatch: could not read stream item %r: %s", type(item).__name__, exc)
        return True


def _iterate(inner: Iterator[Any], rec: CallRecorder, observe: Observe) -> Iterator[Any]:
    try:
        for item in inner:
            if _safe_observe(observe, rec, item):
                yield item
    except GeneratorExit:
        rec.finish(partial=True)
        with contextlib.suppress(Exception):
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        raise
    except BaseException as exc:
        rec.finish(error_type=type(exc).__name__, partial=True)
        raise
    rec.end_of_stream()


async def _aiterate(
    inner: AsyncIterator[Any], rec: CallRecorder, observe: Observe
) -> AsyncIterator[Any]:
    try:
        async for item in inner:
            if _safe_observe(observe, rec, item):
                yield item
    except GeneratorExit:
        rec.finish(partial=True)
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        raise
    except BaseException as exc:
        rec.finish(error_type=type(exc).__name__, partial=True)
        raise
    rec.end_of_stream()


def watch_sync(stream: Any, rec: CallRecorder, observe: Observe) -> bool:
    """Attach ``rec`` to a sync provider stream; False (stream untouched) if its shape is
    not the one both SDKs have had so far."""
    inner = getattr(stream, "_iterator", None)
    if inner is None or not callable(getattr(stream, "close", None)):
        return False
    stream._iterator = _iterate(inner, rec, observe)
    finish_on_close(stream, rec)
    weakref.finalize(stream, rec.finish, partial=True)
    return True


def watch_async(stream: Any, rec: CallRecorder, observe: Observe) -> bool:
    """``watch_sync`` for ``AsyncStream`` (``close`` is a coroutine there)."""
    inner = getattr(stream, "_iterator", None)
    if inner is None or not callable(getattr(stream, "close", None)):
        return False
    stream._iterator = _aiterate(inner, rec, observe)
    finish_on_close(stream, rec)
    weakref.finalize(stream, rec.finish, partial=True)
    return True


def finish_on_close(obj: Any, rec: CallRecorder) -> None:
    """Make ``obj.close()`` (a method or a coroutine) also end the record, ``partial``.

    Through a weak reference: the object must stay collectable by reference counting
    (Anthropic's streams are built to avoid cycles so that a dropped stream closes its
    connection)."""
    ref = weakref.ref(obj)
    cls_close = type(obj).close
    if inspect.iscoroutinefunction(cls_close):

        async def aclose() -> None:
            target = ref()
            try:
                if target is not None:
                    await cls_close(target)
            finally:
                rec.finish(partial=True)

        obj.close = aclose
        return

    def close() -> None:
        target = ref()
        try:
            if target is not None:
                cls_close(target)
        finally:
            rec.finish(partial=True)

    obj.close = close
