"""``instrument(client)``: one usage event per covered OpenAI / Anthropic / Google Gen AI /
Bedrock call, app unchanged (Gen AI and Bedrock: :mod:`.genai`, :mod:`.bedrock`).

    client = spendwatch.instrument(openai.OpenAI())        # or AsyncOpenAI, Anthropic, ...
    client.chat.completions.create(model="gpt-4o", messages=[...])   # recorded

The client object itself is returned: the covered methods are replaced on its (cached)
resource objects, so ``isinstance`` checks, type hints and every other method are untouched.
``client.with_options(...)`` / ``client.copy(...)`` return instrumented copies too.
``with_raw_response`` and ``with_streaming_response`` calls of the covered methods are
recorded too (see :mod:`spendwatch.instrument.raw`), also when those views were created
before ``instrument()``.

Each event: provider (``openai`` / ``anthropic``), operation (``chat``, ``responses``,
``embeddings``), request ``model``, ``response_model``, ``request_id`` (the provider's
request-id header, else the response id), latency, status / error_type, tokens with the
OpenTelemetry GenAI meaning, ``partial`` for streams not read to their end.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from typing import Any, TypeVar

from . import anthropic as anthropic_support
from . import openai as openai_support
from .hooks import Guard, Shapes, Spec, apply_guard, handle_result, wrap_async, wrap_sync
from .recorder import IN_CALL, CallRecorder

log = logging.getLogger("spendwatch")

C = TypeVar("C")
_MARK = "_spendwatch_instrumented"


def instrument(client: C, *, guard: Guard | None = None, stream_usage: bool = True) -> C:
    """Instrument an official ``openai`` or ``anthropic`` client (sync or async), a
    ``google.genai.Client`` (sync and ``.aio``) or a boto3 ``bedrock-runtime`` client in place
    and return it. Idempotent.

    ``guard``: an object with ``before_call(provider, model, request_kwargs) -> dict`` called
    before each covered call (see :class:`~spendwatch.instrument.hooks.Guard`): it may return
    changed kwargs (e.g. a cheaper model) or raise ``BudgetExceeded`` to the caller.
    ``stream_usage``: add ``stream_options={"include_usage": True}`` to OpenAI chat streams
    that did not set ``stream_options`` (the extra usage chunk is hidden from the caller);
    turn off for OpenAI-compatible servers that refuse ``stream_options``.

    Raises ``TypeError`` for an object that is neither kind of client.
    """
    if getattr(client, _MARK, False):
        return client
    module = type(client).__module__
    family = module.partition(".")[0]
    if module.startswith("google.genai"):
        from . import genai

        genai.instrument_client(client, guard)
        setattr(client, _MARK, True)
        return client
    if family == "botocore":
        from . import bedrock

        if not bedrock.is_bedrock_runtime(client):
            raise TypeError(
                "spendwatch.instrument() takes a boto3 'bedrock-runtime' client, got one for "
                f"{bedrock.service_name(client)!r}"
            )
        bedrock.instrument_client(client, guard)
        setattr(client, _MARK, True)
        return client
    if family == "openai":
        _patch_all(client, openai_support.specs(stream_usage), openai_support.shapes(), guard)
    elif family == "anthropic":
        _patch_all(client, anthropic_support.specs(), anthropic_support.shapes(), guard)
        _patch_anthropic_stream(client, guard)
    else:
        raise TypeError(
            "spendwatch.instrument() takes an openai, anthropic, google.genai or boto3 "
            f"bedrock-runtime client, got {type(client)!r}"
        )
    _patch_copy(client, guard, stream_usage)
    setattr(client, _MARK, True)
    return client


def _resource(client: Any, path: tuple[str, ...]) -> Any:
    obj = client
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def _patch_all(
    client: Any,
    specs: list[tuple[tuple[str, ...], str, Spec]],
    shapes: Shapes,
    guard: Guard | None,
) -> None:
    wrap = wrap_async if _is_async(client) else wrap_sync
    for path, method, spec in specs:
        resource = _resource(client, path)
        orig = getattr(resource, method, None) if resource is not None else None
        if orig is None or hasattr(orig, "__spendwatch_wrapped__"):
            continue
        setattr(resource, method, wrap(orig, spec, guard, shapes))
        _forget_raw_views(client, path)


_RAW_VIEWS = ("with_raw_response", "with_streaming_response")


def _forget_raw_views(client: Any, path: tuple[str, ...]) -> None:
    """Drop the raw-response views already built on the client and along ``path``.

    Each view (``functools.cached_property``, kept in the instance ``__dict__`` under its own
    name) captured the resource's bound methods when it was built: dropped, it is rebuilt on
    next access around the wrapped ones. ``client.with_raw_response.chat.completions`` goes
    through the client's and ``chat``'s views, hence every level. A view the app holds in a
    variable of its own keeps the original methods.
    """
    levels = [client]
    for name in path:
        levels.append(getattr(levels[-1], name, None))
    for obj in levels:
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for view in _RAW_VIEWS:
                attrs.pop(view, None)


def _is_async(client: Any) -> bool:
    # Both SDKs derive their async clients from ``AsyncAPIClient``; the resource methods are
    # wrapped by decorators, so ``iscoroutinefunction`` on them is not reliable.
    return any(cls.__name__ == "AsyncAPIClient" for cls in type(client).__mro__)


def _patch_copy(client: Any, guard: Guard | None, stream_usage: bool) -> None:
    cls_copy = getattr(type(client), "copy", None)
    if cls_copy is None:
        return
    ref = weakref.ref(client)

    def copy(*args: Any, **kwargs: Any) -> Any:
        target = ref()
        new = cls_copy(target, *args, **kwargs)
        return instrument(new, guard=guard, stream_usage=stream_usage)

    client.copy = copy
    client.with_options = copy


def _patch_anthropic_stream(client: Any, guard: Guard | None) -> None:
    """``messages.stream()`` posts directly (not through ``create``): wrap the request its
    stream manager makes on enter, and watch the raw stream it returns."""
    resource = _resource(client, ("messages",))
    orig = getattr(resource, "stream", None) if resource is not None else None
    if orig is None or hasattr(orig, "__spendwatch_wrapped__"):
        return
    spec = anthropic_support.MESSAGES
    stream_types = anthropic_support.shapes().streams
    is_async = _is_async(client)

    def stream(*args: Any, **kwargs: Any) -> Any:
        kwargs = apply_guard(guard, spec.provider, kwargs)
        manager = orig(*args, **kwargs)
        model = kwargs.get("model")
        try:
            if is_async:
                _hook_async_manager(manager, spec, model, stream_types)
            else:
                _hook_sync_manager(manager, spec, model, stream_types)
        except Exception as exc:
            log.debug("spendwatch: messages.stream not instrumented: %r", exc)
        return manager

    stream.__spendwatch_wrapped__ = orig  # type: ignore[attr-defined]
    stream.__doc__ = orig.__doc__
    resource.stream = stream


_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def _hook_sync_manager(
    manager: Any, spec: Spec, model: Any, stream_types: tuple[type, ...]
) -> None:
    api_request = getattr(manager, _SYNC_REQUEST, None)
    if not callable(api_request):
        log.debug("spendwatch: unknown MessageStreamManager shape; stream not instrumented")
        return

    def request() -> Any:
        rec = CallRecorder(spec.provider, spec.operation, model)
        rec.needs_terminal = spec.needs_terminal
        token = IN_CALL.set(True)
        try:
            raw = api_request()
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        handle_result(spec, rec, raw, stream_types, is_async=False)
        return raw

    setattr(manager, _SYNC_REQUEST, request)


def _hook_async_manager(
    manager: Any, spec: Spec, model: Any, stream_types: tuple[type, ...]
) -> None:
    api_request = getattr(manager, _ASYNC_REQUEST, None)
    if not inspect.isawaitable(api_request):
        log.debug("spendwatch: unknown AsyncMessageStreamManager shape; stream not instrumented")
        return

    async def request() -> Any:
        rec = CallRecorder(spec.provider, spec.operation, model)
        rec.needs_terminal = spec.needs_terminal
        token = IN_CALL.set(True)
        try:
            raw = await api_request
        except BaseException as exc:
            rec.fail(exc)
            raise
        finally:
            IN_CALL.reset(token)
        handle_result(spec, rec, raw, stream_types, is_async=True)
        return raw

    setattr(manager, _ASYNC_REQUEST, request())


__all__ = ["Guard", "instrument"]
