"""instrument(client, guard=...): before_call may swap the model or block with BudgetExceeded
(which reaches the caller, no call made, no event); a broken guard never breaks the call."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
import spendwatch

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
BODY = {
    "id": "chatcmpl-G",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


class ScriptedGuard:
    """Degrades gpt-4o to gpt-4o-mini, blocks o1, crashes on 'broken'."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, str | None]] = []
        self.raised: Exception | None = None

    def before_call(self, provider, model, request_kwargs):
        self.seen.append((provider, model))
        if model == "o1":
            self.raised = spendwatch.BudgetExceeded(
                "growth-llm",
                spent_usd=Decimal("100.00"),
                limit_usd=Decimal("100.00"),
                reset_at=datetime(2026, 12, 1, tzinfo=UTC),
                provider=provider,
                model=model,
            )
            raise self.raised
        if model == "broken":
            raise RuntimeError("guard bug")
        if model == "gpt-4o":
            return {**request_kwargs, "model": "gpt-4o-mini"}
        return request_kwargs


def test_guard_degrades_blocks_and_fails_open(llm, reply, broker, topic, consume):
    spendwatch.configure(bootstrap_servers=broker.bootstrap_servers, service="guarded", topic=topic)
    guard = ScriptedGuard()
    client = spendwatch.instrument(
        openai.OpenAI(api_key="sk", base_url=f"{llm.base_url}/v1", max_retries=0), guard=guard
    )
    llm.script(CHAT, reply(body=BODY), reply(body=BODY))
    client.chat.completions.create(model="gpt-4o", messages=[])
    assert llm.requests[-1][1]["model"] == "gpt-4o-mini"  # what was actually sent
    with pytest.raises(spendwatch.BudgetExceeded) as blocked:
        client.chat.completions.create(model="o1", messages=[])
    assert blocked.value is guard.raised  # the guard's own exception object, unchanged
    assert len(llm.requests) == 1  # the blocked call never left the process
    client.chat.completions.create(model="broken", messages=[])
    assert llm.requests[-1][1]["model"] == "broken"
    assert guard.seen == [("openai", "gpt-4o"), ("openai", "o1"), ("openai", "broken")]
    assert spendwatch.flush(10)
    degraded, broken = consume(2)
    assert (degraded["model"], degraded["response_model"], degraded["input_tokens"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        12,
    )
    assert broken["model"] == "broken" and broken["status"] == "ok"
