"""AWS Bedrock Runtime (a boto3 ``bedrock-runtime`` client): ``converse``, ``converse_stream``
and ``invoke_model`` (Anthropic models' Messages bodies; other models through Bedrock's token
count headers).

Provider ``aws.bedrock`` (the OpenTelemetry name), model = ``modelId`` (model ids and inference
profiles such as ``us.anthropic.claude-...`` resolve to Bedrock's prices), ``request_id`` =
the AWS request id. Tokens with the OpenTelemetry meaning:

* Converse ``usage``: ``input_tokens`` = ``inputTokens + cacheReadInputTokens +
  cacheWriteInputTokens`` (Bedrock's ``inputTokens`` leaves the cache out),
  ``output_tokens`` = ``outputTokens``, ``cache_read_tokens`` / ``cache_write_tokens``.
* ``invoke_model``: an Anthropic Messages body is read as Anthropic's own API is (see
  :mod:`spendwatch.instrument.anthropic`); the body is read once and handed back to the caller
  as a fresh ``StreamingBody`` holding the same bytes. Other bodies are left unread and the
  ``X-Amzn-Bedrock-Input-Token-Count`` / ``-Output-Token-Count`` headers give the counts.
* ``converse_stream``: the ``metadata`` event (the last one) carries usage; the event is
  recorded then. A stream closed or dropped before it is ``partial``; an error event from the
  stream records ``status: error`` and reaches the caller unchanged.

Errors (``ClientError`` and its modelled subclasses such as ``ThrottlingException``) are
recorded with their class name and re-raised unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from . import anthropic as anthropic_support
from .hooks import Guard, apply_guard
from .recorder import IN_CALL, CallRecorder, as_int
from .streams import finish_on_close

log = logging.getLogger("spendwatch")

PROVIDER = "aws.bedrock"
_HEADER_IN = "x-amzn-bedrock-input-token-count"
_HEADER_OUT = "x-amzn-bedrock-output-token-count"


def converse_usage(usage: Any) -> dict[str, int]:
    """A Converse ``usage`` dict -> event token fields."""
    if not isinstance(usage, dict):
        return {}
    raw_in = as_int(usage.get("inputTokens"))
    read = as_int(usage.get("cacheReadInputTokens"))
    write = as_int(usage.get("cacheWriteInputTokens"))
    out = as_int(usage.get("outputTokens"))
    result: dict[str, int] = {}
    if raw_in is not None:
        result["input_tokens"] = raw_in + (read or 0) + (write or 0)
    if out is not None:
        result["output_tokens"] = out
    if read is not None:
        result["cache_read_tokens"] = read
    if write is not None:
        result["cache_write_tokens"] = write
    return result


def _request_id(response: Any) -> str | None:
    meta = response.get("ResponseMetadata") if isinstance(response, dict) else None
    value = meta.get("RequestId") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def read_converse(rec: CallRecorder, response: Any) -> None:
    rec.request_id = _request_id(response)
    rec.usage = converse_usage(response.get("usage"))


def read_invoke(rec: CallRecorder, response: Any) -> None:
    rec.request_id = _request_id(response)
    body = response.get("body")
    data = body.read() if hasattr(body, "read") else None
    if data is not None:
        from botocore.response import StreamingBody

        response["body"] = StreamingBody(io.BytesIO(data), len(data))
        message = _json(data)
        usage = message.get("usage") if isinstance(message, dict) else None
        if isinstance(usage, dict) and "input_tokens" in usage:  # an Anthropic Messages body
            raw = {k: v for k, v in usage.items() if as_int(v) is not None}
            rec.usage = anthropic_support.convert(raw)
            model = message.get("model")
            if isinstance(model, str) and model:
                rec.response_model = model
            message_id = message.get("id")
            if isinstance(message_id, str) and message_id:
                rec.response_id = message_id
            return
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    counts = {"input_tokens": headers.get(_HEADER_IN), "output_tokens": headers.get(_HEADER_OUT)}
    rec.usage = {k: int(v) for k, v in counts.items() if isinstance(v, str) and v.isdigit()}


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def watch_converse_stream(rec: CallRecorder, response: Any) -> None:
    """Attach ``rec`` to the ``EventStream`` in ``response["stream"]``, in place."""
    rec.request_id = _request_id(response)
    stream = response.get("stream")
    parse = getattr(stream, "_parse_event", None)
    events = getattr(stream, "_event_generator", None)
    if stream is None or not callable(parse) or events is None:
        log.debug("spendwatch: unknown Bedrock EventStream shape; stream not watched")
        rec.finish(partial=True)
        return

    def parse_event(raw: Any) -> Any:
        try:
            parsed = parse(raw)
        except BaseException as exc:  # an error event: EventStreamError for the caller
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            rec.finish(error_type=code or type(exc).__name__, partial=True)
            raise
        with contextlib.suppress(Exception):
            metadata = parsed.get("metadata") if isinstance(parsed, dict) else None
            if isinstance(metadata, dict):
                rec.usage = converse_usage(metadata.get("usage"))
                rec.saw_terminal = True
        return parsed

    stream._parse_event = parse_event
    stream._event_generator = _events(events, rec)
    finish_on_close(stream, rec)
    weakref.finalize(stream, rec.finish, partial=True)


def _events(inner: Iterator[Any], rec: CallRecorder) -> Iterator[Any]:
    try:
        yield from inner
    except GeneratorExit:
        rec.finish(partial=True)
        raise
    except BaseException as exc:
        rec.finish(error_type=type(exc).__name__, partial=True)
        raise
    rec.end_of_stream()


def _guarded(guard: Guard | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The guard sees ``model`` (Bedrock's ``modelId``); a model it changes goes back there."""
    if guard is None:
        return kwargs
    view = {**kwargs, "model": kwargs.get("modelId")}
    changed = apply_guard(guard, PROVIDER, view)
    result = {k: v for k, v in changed.items() if k != "model"}
    if changed.get("model") is not None:
        result["modelId"] = changed["model"]
    return result


def _wrap(
    orig: Callable[..., Any],
    read: Callable[[CallRecorder, Any], None],
    guard: Guard | None,
    *,
    stream: bool = False,
) -> Any:
    @functools.wraps(orig)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs = _guarded(guard, kwargs)
        rec = CallRecorder(PROVIDER, "chat", kwargs.get("modelId"))
        rec.needs_terminal = stream
        token = IN_CALL.set(True)
        try:
            response = orig(*args, **kwargs)
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        try:
            read(rec, response)
        except Exception as exc:
            log.debug("spendwatch: could not read a Bedrock response: %r", exc)
            rec.finish()
            return response
        if not stream:
            rec.finish()
        return response

    call.__spendwatch_wrapped__ = orig  # type: ignore[attr-defined]
    return call


def service_name(client: Any) -> str | None:
    model = getattr(getattr(client, "meta", None), "service_model", None)
    name = getattr(model, "service_name", None)
    return name if isinstance(name, str) else None


def is_bedrock_runtime(client: Any) -> bool:
    return service_name(client) == "bedrock-runtime"


def instrument_client(client: Any, guard: Guard | None) -> None:
    """Patch ``converse``, ``converse_stream`` and ``invoke_model`` on a boto3
    ``bedrock-runtime`` client (the instance only)."""
    for name, read, stream in (
        ("converse", read_converse, False),
        ("converse_stream", watch_converse_stream, True),
        ("invoke_model", read_invoke, False),
    ):
        orig = getattr(client, name, None)
        if orig is None or hasattr(orig, "__spendwatch_wrapped__"):
            continue
        setattr(client, name, _wrap(orig, read, guard, stream=stream))
