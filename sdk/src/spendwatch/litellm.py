"""Spend from the LiteLLM SDK: one callback, every provider LiteLLM routes to.

    pip install "spendwatch[litellm]"

    import litellm, spendwatch
    from spendwatch.litellm import SpendwatchLogger

    spendwatch.configure(bootstrap_servers="kafka:9092", service="checkout")
    litellm.callbacks = [SpendwatchLogger()]

Each finished ``completion`` / ``acompletion`` / ``embedding`` (streams once they end) is one
usage event, recorded from LiteLLM's own logging hooks (``log_success_event`` /
``log_failure_event`` and their async twins; LiteLLM calls exactly one of each pair per call):

* ``provider``: LiteLLM's ``custom_llm_provider`` mapped to the OpenTelemetry name the
  pricer resolves (``bedrock`` -> ``aws.bedrock``, ``vertex_ai`` -> ``gcp.vertex_ai``,
  ``gemini`` -> ``gcp.gemini``, ``azure`` -> ``azure.ai.openai``, ``mistral`` ->
  ``mistral_ai``, ...; others unchanged), ``model`` without LiteLLM's provider prefix,
  ``response_model`` and ``request_id`` from the response;
* tokens from LiteLLM's normalised ``usage``: ``prompt_tokens`` (cache reads and writes
  included, for Anthropic too), ``completion_tokens`` (reasoning included),
  ``prompt_tokens_details.cached_tokens`` / ``cache_read_input_tokens``,
  ``cache_creation_input_tokens``, ``completion_tokens_details.reasoning_tokens``;
* a response served from LiteLLM's cache is ``cache_hit`` (no spend; the avoided cost is
  recorded); a failure records ``status: error`` and LiteLLM's error class.

Prices come from spendwatch's catalog like every other event. ``use_litellm_cost=True``
sends LiteLLM's ``response_cost`` as ``cost_usd`` instead (supplied cost wins), for models
only LiteLLM knows a price for.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

from litellm.integrations.custom_logger import CustomLogger

from . import runtime
from .event import build
from .instrument.recorder import as_int

log = logging.getLogger("spendwatch")

PROVIDERS: Final = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "sagemaker": "aws.sagemaker",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
_OPERATIONS: Final = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "responses": "responses",
    "aresponses": "responses",
}


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_tokens(usage: Any) -> dict[str, int]:
    """LiteLLM's ``Usage`` (object or dict) -> event token fields."""
    result: dict[str, int] = {}
    prompt = as_int(_get(usage, "prompt_tokens"))
    completion = as_int(_get(usage, "completion_tokens"))
    if prompt is not None:
        result["input_tokens"] = prompt
    if completion is not None:
        result["output_tokens"] = completion
    read = as_int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
    if read is None:
        read = as_int(_get(usage, "cache_read_input_tokens"))
    write = as_int(_get(usage, "cache_creation_input_tokens"))
    reasoning = as_int(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"))
    if read:
        result["cache_read_tokens"] = read
    if write:
        result["cache_write_tokens"] = write
    if reasoning:
        result["reasoning_tokens"] = reasoning
    return result


def _latency_ms(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return min(max((end - start).total_seconds() * 1000, 0.0), 86_400_000.0)
    if isinstance(start, int | float) and isinstance(end, int | float):
        return min(max((end - start) * 1000.0, 0.0), 86_400_000.0)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class SpendwatchLogger(CustomLogger):  # type: ignore[misc]
    """A LiteLLM ``CustomLogger`` recording one spendwatch usage event per call.

    ``use_litellm_cost``: send LiteLLM's ``response_cost`` as the supplied ``cost_usd``.
    ``service`` / ``tags``: the service named on these events (default: the configured one)
    and tags added to each. Never raises into LiteLLM (a failure is logged and counted in
    ``spendwatch.stats().rejected``).
    """

    def __init__(
        self,
        *,
        use_litellm_cost: bool = False,
        service: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.use_litellm_cost = use_litellm_cost
        self.service = service
        self.tags = dict(tags) if tags else None

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._safely(kwargs, response_obj, start_time, end_time, failed=True)

    def _safely(self, kwargs: Any, response: Any, start: Any, end: Any, *, failed: bool) -> None:
        try:
            self._record(kwargs if isinstance(kwargs, dict) else {}, response, start, end, failed)
        except Exception as exc:
            runtime.reject()
            log.warning("spendwatch: LiteLLM call not recorded: %s", exc)

    def _record(
        self, kwargs: dict[str, Any], response: Any, start: Any, end: Any, failed: bool
    ) -> None:
        rt = runtime.current()
        if rt is None:
            runtime.reject()
            return
        payload = kwargs.get("standard_logging_object") or {}
        provider = _text(payload.get("custom_llm_provider")) or _text(
            _get(kwargs.get("litellm_params"), "custom_llm_provider")
        )
        model = _text(payload.get("model")) or _text(kwargs.get("model"))
        call_type = _text(payload.get("call_type")) or _text(kwargs.get("call_type")) or ""
        fields: dict[str, Any] = {
            "provider": PROVIDERS.get(provider, provider) if provider else None,
            "model": model,
            "latency_ms": _latency_ms(start, end),
        }
        if failed:
            exception = kwargs.get("exception")
            info = payload.get("error_information") or {}
            fields["status"] = "error"
            fields["error_type"] = _text(info.get("error_class")) or (
                type(exception).__name__ if exception is not None else "error"
            )
        else:
            fields["response_model"] = _text(_get(response, "model"))
            fields["request_id"] = _text(_get(response, "id")) or _text(payload.get("id"))
            usage = _get(response, "usage")
            if usage is not None and model:
                fields.update(usage_tokens(usage))
            if payload.get("cache_hit") is True:
                fields["cache_hit"] = True
            cost = payload.get("response_cost", kwargs.get("response_cost"))
            if self.use_litellm_cost and isinstance(cost, int | float) and cost >= 0:
                fields["cost_usd"] = cost
        if fields.get("request_id"):
            fields["request_id"] = fields["request_id"][:256]
        operation = _OPERATIONS.get(call_type, call_type or "chat")
        event = build(
            rt.base,
            operation,
            service=self.service,
            tags=self.tags,
            **{k: v for k, v in fields.items() if v is not None},
        )
        rt.submit(event)


__all__ = ["PROVIDERS", "SpendwatchLogger"]
