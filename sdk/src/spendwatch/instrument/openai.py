"""OpenAI: ``chat.completions.create`` (and ``.parse``, and ``.stream`` which goes through
``create``), ``responses.create`` (and ``.stream``), ``embeddings.create``.

Token meaning (already the OpenTelemetry GenAI one): ``prompt_tokens`` / ``input_tokens``
include the cached tokens, ``completion_tokens`` / ``output_tokens`` include the reasoning
tokens. OpenAI reports no cache-write tokens.

Chat streams carry usage only in an extra last chunk, sent when the request has
``stream_options={"include_usage": True}``. When the caller did not set ``stream_options``
(and ``stream_usage`` is on), the SDK adds it **and hides that extra chunk** (empty
``choices``) from the caller, so code indexing ``chunk.choices[0]`` keeps working. A caller
who sets ``stream_options`` gets exactly what they asked for (usage recorded if it comes).
"""

from __future__ import annotations

from typing import Any

from .hooks import Shapes, Spec
from .recorder import CallRecorder, put

PROVIDER = "openai"


def _given(value: Any) -> bool:
    # openai's ``omit`` / ``not_given`` sentinels (what its own helpers pass) and None mean unset.
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def prepare_chat(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    if kwargs.get("stream") is not True:
        return kwargs, False
    if _given(kwargs.get("stream_options")):
        return kwargs, False
    return {**kwargs, "stream_options": {"include_usage": True}}, True


def no_stream_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    return kwargs, False


def chat_usage(usage: Any) -> dict[str, int]:
    result: dict[str, int] = {}
    put(result, "input_tokens", getattr(usage, "prompt_tokens", None))
    put(result, "output_tokens", getattr(usage, "completion_tokens", None))
    put(
        result,
        "cache_read_tokens",
        getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None),
    )
    put(
        result,
        "reasoning_tokens",
        getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None),
    )
    return result


def responses_usage(usage: Any) -> dict[str, int]:
    result: dict[str, int] = {}
    put(result, "input_tokens", getattr(usage, "input_tokens", None))
    put(result, "output_tokens", getattr(usage, "output_tokens", None))
    put(
        result,
        "cache_read_tokens",
        getattr(getattr(usage, "input_tokens_details", None), "cached_tokens", None),
    )
    put(
        result,
        "reasoning_tokens",
        getattr(getattr(usage, "output_tokens_details", None), "reasoning_tokens", None),
    )
    return result


def _identify(rec: CallRecorder, obj: Any) -> None:
    model = getattr(obj, "model", None)
    if isinstance(model, str) and model and rec.response_model is None:
        rec.response_model = model
    response_id = getattr(obj, "id", None)
    if isinstance(response_id, str) and response_id and rec.response_id is None:
        rec.response_id = response_id


def read_chat(rec: CallRecorder, result: Any) -> None:
    _identify(rec, result)
    usage = getattr(result, "usage", None)
    if usage is not None:
        rec.usage = chat_usage(usage)


def observe_chat(rec: CallRecorder, chunk: Any) -> bool:
    _identify(rec, chunk)
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        rec.usage = chat_usage(usage)  # the last word wins (some servers repeat it)
        if rec.hide_usage_chunk and not getattr(chunk, "choices", None):
            return False
    return True


def read_responses(rec: CallRecorder, result: Any) -> None:
    _identify(rec, result)
    usage = getattr(result, "usage", None)
    if usage is not None:
        rec.usage = responses_usage(usage)
    if getattr(result, "status", None) == "failed":
        rec.error_type = _response_error(result)


def _response_error(response: Any) -> str:
    code = getattr(getattr(response, "error", None), "code", None)
    return code if isinstance(code, str) and code else "response.failed"


_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def observe_responses(rec: CallRecorder, event: Any) -> bool:
    kind = getattr(event, "type", None)
    response = getattr(event, "response", None)
    if response is not None:
        _identify(rec, response)
        usage = getattr(response, "usage", None)
        if usage is not None:
            rec.usage = responses_usage(usage)
    if kind in _TERMINAL:
        rec.saw_terminal = True
        if kind == "response.failed":
            rec.error_type = _response_error(response)
    elif kind == "error":
        code = getattr(event, "code", None)
        rec.error_type = code if isinstance(code, str) and code else "error"
    return True


def read_embeddings(rec: CallRecorder, result: Any) -> None:
    _identify(rec, result)
    usage = getattr(result, "usage", None)
    if usage is not None:
        tokens: dict[str, int] = {}
        put(tokens, "input_tokens", getattr(usage, "prompt_tokens", None))
        rec.usage = tokens


def specs(stream_usage: bool) -> list[tuple[tuple[str, ...], str, Spec]]:
    """(path to the resource, method name, spec) for each covered method."""
    chat = Spec(
        PROVIDER,
        "chat",
        read_chat,
        observe_chat,
        prepare=prepare_chat if stream_usage else no_stream_usage,
    )
    chat_parse = Spec(PROVIDER, "chat", read_chat)
    responses = Spec(PROVIDER, "responses", read_responses, observe_responses, needs_terminal=True)
    embeddings = Spec(PROVIDER, "embeddings", read_embeddings)
    return [
        (("chat", "completions"), "create", chat),
        (("chat", "completions"), "parse", chat_parse),
        (("responses",), "create", responses),
        (("embeddings",), "create", embeddings),
    ]


def shapes() -> Shapes:
    import openai

    responses: tuple[type, ...] = (openai.APIResponse, openai.AsyncAPIResponse)
    try:  # what ``with_raw_response`` returns (the module is private; its name may change)
        from openai._legacy_response import LegacyAPIResponse
    except ImportError:
        pass
    else:
        responses = (LegacyAPIResponse, *responses)
    return Shapes(streams=(openai.Stream, openai.AsyncStream), responses=responses)
