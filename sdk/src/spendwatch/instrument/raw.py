"""Raw responses: calls made through ``with_raw_response`` and ``with_streaming_response``.

Both libraries build these views around the resource's (here wrapped) method and call it with
the ``X-Stainless-Raw-Response`` request header, so the wrapper gets back the library's raw
response object (openai ``LegacyAPIResponse`` / ``APIResponse`` / ``AsyncAPIResponse``,
anthropic ``APIResponse`` / ``AsyncAPIResponse``) instead of the parsed model. That object is
returned to the caller unchanged; the call's event is recorded from it this way:

* ``with_raw_response`` (header ``true`` or ``raw``: the library has read the body): its
  ``parse()`` is called now and the parsed object goes the plain call's way. Both libraries
  cache ``parse()`` per target type, so the caller's own ``parse()`` returns the very same
  object; a stream (``stream=True``) is watched in place, like a plain stream.
* ``with_streaming_response`` (header ``stream``: nothing is read until the caller reads):
  nothing is read here. The instance's ``parse`` is hooked so that the caller's first
  ``parse()`` is recorded like a plain call; a response never parsed (``iter_lines()``,
  ``read()``, ...) is recorded once, ``partial=True``, when it is closed (also by leaving its
  ``with``) or garbage collected.

Never raises into the caller: a response that cannot be read (``parse()`` raising, an unknown
shape) is logged at debug level and recorded without what could not be read.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any

from .recorder import CallRecorder
from .streams import finish_on_close

log = logging.getLogger("spendwatch")

RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"  # openai/_constants.py, anthropic/_constants.py
_READ = ("true", "raw")  # the values for which the library reads the body before returning

Record = Callable[[Any], None]  # takes the parsed object; records or watches; never raises


def _is_read(response: Any) -> bool:
    """Whether the library read the body already (``with_raw_response``). Anything unknown
    counts as not read: reading a body the caller means to stream would break the caller."""
    return response.http_request.headers.get(RAW_RESPONSE_HEADER) in _READ


def _request_id(response: Any, header: str) -> str | None:
    try:
        value = response.headers.get(header)
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def read_sync(response: Any, rec: CallRecorder, request_id_header: str, record: Record) -> None:
    """Record a raw response returned by a sync client's method (see the module docstring)."""
    rec.request_id = _request_id(response, request_id_header)
    try:
        if not _is_read(response):
            _hook(response, rec, record)
            return
        parsed = response.parse()
    except Exception as exc:
        log.debug("spendwatch: could not read %s raw response: %r", rec.operation, exc)
        rec.finish()
        return
    record(parsed)


async def read_async(
    response: Any, rec: CallRecorder, request_id_header: str, record: Record
) -> None:
    """``read_sync`` for an async client: ``parse()`` is a coroutine on ``AsyncAPIResponse``
    (not on openai's ``LegacyAPIResponse``, which async clients return too)."""
    rec.request_id = _request_id(response, request_id_header)
    try:
        if not _is_read(response):
            _hook(response, rec, record)
            return
        parsed = response.parse()
        if inspect.isawaitable(parsed):
            parsed = await parsed
    except Exception as exc:
        log.debug("spendwatch: could not read %s raw response: %r", rec.operation, exc)
        rec.finish()
        return
    except BaseException:
        rec.finish()  # cancelled while parsing: the call was still made
        raise
    record(parsed)


def _hook(response: Any, rec: CallRecorder, record: Record) -> None:
    """Record on the caller's first ``parse()``; else ``partial`` on close or collection.

    The hooks reach the response through a weak reference, so that a dropped response stays
    collectable by reference counting (and its connection is released as the library means).
    """
    cls = type(response)
    cls_parse = cls.parse
    ref = weakref.ref(response)
    collected = weakref.finalize(response, rec.finish, partial=True)

    def parsed_once(target: Any, parsed: Any) -> None:
        # A parsed stream is watched by its own finalizer from here on; the response's close
        # hook stays, since closing the response ends that stream too.
        vars(target).pop("parse", None)
        collected.detach()
        record(parsed)

    if inspect.iscoroutinefunction(cls_parse):

        async def aparse(*args: Any, **kwargs: Any) -> Any:
            target = ref()
            parsed = await cls_parse(target, *args, **kwargs)
            parsed_once(target, parsed)
            return parsed

        response.parse = aparse
    else:

        def parse(*args: Any, **kwargs: Any) -> Any:
            target = ref()
            parsed = cls_parse(target, *args, **kwargs)
            parsed_once(target, parsed)
            return parsed

        response.parse = parse

    finish_on_close(response, rec)
