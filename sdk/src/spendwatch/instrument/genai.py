"""Google Gen AI (``google-genai``): ``models.generate_content`` and
``models.generate_content_stream``, sync (``client.models``) and async (``client.aio.models``);
``client.chats`` goes through them.

One event per request the library sends: the per-request methods behind the public ones are
wrapped when the library has them (``_generate_content`` / ``_generate_content_stream``), so
each round of automatic function calling and each continuation hop is counted with its own
usage; otherwise the public methods are.

Provider ``gcp.gemini`` (Gemini API) or ``gcp.vertex_ai`` (Vertex AI), the OpenTelemetry names.
The request model loses its resource prefix (``models/``, ``publishers/google/models/``,
``projects/.../models/``, ``google/``) so that prices resolve; the response's
``model_version`` is ``response_model``. Tokens, as genai-prices reads ``usage_metadata``:

* ``input_tokens`` = ``prompt_token_count`` (cached included) + ``tool_use_prompt_token_count``
* ``cache_read_tokens`` = ``cached_content_token_count``
* ``output_tokens`` = ``candidates_token_count`` + ``thoughts_token_count`` (thinking is billed
  as output); ``reasoning_tokens`` = ``thoughts_token_count``

Streams: each chunk's ``usage_metadata`` replaces the one before (Gemini sends running
totals); the event is recorded when the stream ends, ``partial`` if it is closed or dropped
before its end or fails midway (then also ``status: error``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from .hooks import Guard, apply_guard
from .recorder import IN_CALL, CallRecorder, as_int
from .streams import _aiterate, _iterate

log = logging.getLogger("spendwatch")

OPERATION = "generate_content"


def provider_of(client: Any) -> str:
    api_client = getattr(client, "_api_client", None)
    return "gcp.vertex_ai" if getattr(api_client, "vertexai", False) else "gcp.gemini"


def model_name(model: Any) -> str | None:
    """``models/gemini-2.5-flash``, ``publishers/google/models/gemini-2.5-flash``, ... ->
    ``gemini-2.5-flash``; tuned models (``tunedModels/123``) are kept whole."""
    if not isinstance(model, str) or not model:
        return None
    if "models/" in model and not model.startswith("tunedModels/"):
        return model.rsplit("models/", 1)[1] or model
    if model.startswith("google/"):
        return model[len("google/") :] or model
    return model


def convert(usage: Any) -> dict[str, int]:
    """``usage_metadata`` -> event token fields (see the module docstring)."""
    prompt = as_int(getattr(usage, "prompt_token_count", None))
    tool_prompt = as_int(getattr(usage, "tool_use_prompt_token_count", None))
    cached = as_int(getattr(usage, "cached_content_token_count", None))
    candidates = as_int(getattr(usage, "candidates_token_count", None))
    thoughts = as_int(getattr(usage, "thoughts_token_count", None))
    result: dict[str, int] = {}
    if prompt is not None or tool_prompt is not None:
        result["input_tokens"] = (prompt or 0) + (tool_prompt or 0)
    if cached is not None:
        result["cache_read_tokens"] = cached
    if candidates is not None or thoughts is not None:
        result["output_tokens"] = (candidates or 0) + (thoughts or 0)
    if thoughts is not None:
        result["reasoning_tokens"] = thoughts
    return result


def read_response(rec: CallRecorder, response: Any) -> bool:
    """Take what one response (or stream chunk) says; True to pass it on to the caller."""
    version = getattr(response, "model_version", None)
    if isinstance(version, str) and version and rec.response_model is None:
        rec.response_model = version
    response_id = getattr(response, "response_id", None)
    if isinstance(response_id, str) and response_id and rec.response_id is None:
        rec.response_id = response_id
    usage = getattr(response, "usage_metadata", None)
    if usage is not None:
        rec.usage = convert(usage)
    return True


def _start(provider: str, guard: Guard | None, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    kwargs = apply_guard(guard, provider, kwargs)
    return kwargs, CallRecorder(provider, OPERATION, model_name(kwargs.get("model")))


def _finish(rec: CallRecorder, response: Any) -> None:
    try:
        read_response(rec, response)
    except Exception as exc:
        log.debug("spendwatch: could not read a generate_content response: %r", exc)
    rec.finish()


def _wrap_call(orig: Callable[..., Any], provider: str, guard: Guard | None) -> Any:
    @functools.wraps(orig)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs, rec = _start(provider, guard, kwargs)
        token = IN_CALL.set(True)
        try:
            response = orig(*args, **kwargs)
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        _finish(rec, response)
        return response

    return call


def _wrap_stream(orig: Callable[..., Any], provider: str, guard: Guard | None) -> Any:
    @functools.wraps(orig)
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs, rec = _start(provider, guard, kwargs)
        try:
            inner = orig(*args, **kwargs)  # a generator: the request is sent on first next()
        except BaseException as exc:
            rec.fail(exc)
            raise
        return _iterate(iter(inner), rec, read_response)

    return call


def _wrap_acall(orig: Callable[..., Any], provider: str, guard: Guard | None) -> Any:
    @functools.wraps(orig)
    async def call(*args: Any, **kwargs: Any) -> Any:
        kwargs, rec = _start(provider, guard, kwargs)
        token = IN_CALL.set(True)
        try:
            response = await orig(*args, **kwargs)
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        _finish(rec, response)
        return response

    return call


def _wrap_astream(orig: Callable[..., Any], provider: str, guard: Guard | None) -> Any:
    @functools.wraps(orig)
    async def call(*args: Any, **kwargs: Any) -> Any:
        kwargs, rec = _start(provider, guard, kwargs)
        token = IN_CALL.set(True)
        try:
            inner = await orig(*args, **kwargs)
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        return _aiterate(aiter(inner), rec, read_response)

    return call


def _mark_only(orig: Callable[..., Any], is_async: bool) -> Any:
    """A public method whose requests are recorded by the wrapped per-request method: only
    flag the call, so an OpenTelemetry span its own instrumentation starts is not counted."""
    if is_async:

        @functools.wraps(orig)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            token = IN_CALL.set(True)
            try:
                return await orig(*args, **kwargs)
            finally:
                IN_CALL.reset(token)

        return acall

    @functools.wraps(orig)
    def call(*args: Any, **kwargs: Any) -> Any:
        token = IN_CALL.set(True)
        try:
            return orig(*args, **kwargs)
        finally:
            IN_CALL.reset(token)

    return call


def _patch(models: Any, provider: str, guard: Guard | None, is_async: bool) -> None:
    if models is None:
        return
    wrap_call = _wrap_acall if is_async else _wrap_call
    wrap_stream = _wrap_astream if is_async else _wrap_stream
    for public, private, wrap in (
        ("generate_content", "_generate_content", wrap_call),
        ("generate_content_stream", "_generate_content_stream", wrap_stream),
    ):
        target = private if callable(getattr(models, private, None)) else public
        orig = getattr(models, target, None)
        if orig is None or hasattr(orig, "__spendwatch_wrapped__"):
            continue
        wrapped = wrap(orig, provider, guard)
        wrapped.__spendwatch_wrapped__ = orig
        setattr(models, target, wrapped)
        if target == private:
            outer = getattr(models, public, None)
            if outer is not None and not hasattr(outer, "__spendwatch_wrapped__"):
                marked = _mark_only(outer, is_async)
                marked.__spendwatch_wrapped__ = outer
                setattr(models, public, marked)


def instrument_client(client: Any, guard: Guard | None) -> None:
    """Patch ``client.models`` and ``client.aio.models`` in place (a ``google.genai.Client``)."""
    provider = provider_of(client)
    _patch(getattr(client, "models", None), provider, guard, is_async=False)
    aio = getattr(client, "aio", None)
    _patch(getattr(aio, "models", None), provider, guard, is_async=True)
