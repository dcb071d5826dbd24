"""The SDK under hypothesis: ``record()`` / ``track()`` never raise into the app, whatever it
passes; each call is accounted for exactly once (queued for sending, or counted as rejected
and logged), and everything it sends passes the pipeline's own validator. ``configure()``
still raises - only ``ConfigurationError`` - for a bad setting.

Values come from ``tests/support/fuzz_events.py``: plausible values next to anything at all
(None, NaN, Infinity, huge ints, naive and aware datetimes, bytes, lone surrogates, nested
lists and dicts, objects).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import spendwatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spendwatch import ConfigurationError

from tests.support.fuzz_events import MAX_TOKENS, MODELS, NASTY_TEXT, sdk_values

FUZZ = settings(
    max_examples=1500,
    database=None,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _plausible() -> dict[str, st.SearchStrategy[Any]]:
    now = datetime.now(UTC)
    tokens = st.integers(0, MAX_TOKENS)
    return {
        "status": st.sampled_from(["ok", "error"]),
        "provider": st.sampled_from([p for p, _ in MODELS]),
        "model": st.sampled_from([m for _, m in MODELS]),
        "input_tokens": tokens,
        "output_tokens": tokens,
        "cache_read_tokens": st.integers(0, 1000),
        "reasoning_tokens": st.integers(0, 1000),
        "unit": st.sampled_from(["minute", "request"]),
        "quantity": st.decimals(0, 10**6, places=3, allow_nan=False),
        "cost_usd": st.decimals(0, 100, places=9, allow_nan=False),
        "latency_ms": st.floats(0, 60_000),
        "error_type": st.sampled_from(["RateLimit", "Timeout"]),
        "cache_hit": st.booleans(),
        "request_id": st.text(max_size=20),
        "tags": st.dictionaries(st.sampled_from(["team", "feature"]), st.sampled_from(NASTY_TEXT)),
        "ts": st.integers(-3600, 0).map(lambda s: now + timedelta(seconds=s)),
        "service": st.sampled_from(["fuzz-svc", "other-svc"]),
    }


@st.composite
def record_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for ``record()``: each field absent, plausible or anything."""
    kwargs: dict[str, Any] = {}
    for name, plausible in _PLAUSIBLE.items():
        pick = draw(st.integers(0, 19))
        if pick < 10:
            continue
        kwargs[name] = draw(plausible) if pick < 19 else draw(sdk_values())
    return kwargs


_PLAUSIBLE = _plausible()
_OPERATION = st.one_of(*[st.sampled_from(["chat", "embed"])] * 4, sdk_values())


def accounted(stats: spendwatch.Stats) -> int:
    return stats.sent + stats.queued + stats.dropped + stats.failed + stats.rejected


def test_record_and_track_never_raise_and_account_for_every_call(
    broker: Any, topic: str, consume: Any, caplog: pytest.LogCaptureFixture
) -> None:
    spendwatch.configure(
        bootstrap_servers=broker.bootstrap_servers,
        service="fuzz-svc",
        topic=topic,
        queue_size=100_000,
    )
    calls = {"n": 0}

    @FUZZ
    @given(operation=_OPERATION, kwargs=record_kwargs(), how=st.sampled_from(["record", "track"]))
    def one_call(operation: Any, kwargs: dict[str, Any], how: str) -> None:
        before = accounted(spendwatch.stats())
        if how == "record":
            assert spendwatch.record(operation, **kwargs) is None
        else:
            usage = {
                k: kwargs.pop(k)
                for k in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
                if k in kwargs
            }
            for k in ("status", "latency_ms", "error_type", "ts", "service"):
                kwargs.pop(k, None)  # track() measures or takes these from the configuration
            with spendwatch.track(operation, **kwargs) as t:
                t.set_usage(**usage)
                t.set_tag("fuzz", kwargs.get("request_id", "x"))
        calls["n"] += 1
        assert accounted(spendwatch.stats()) == before + 1

    with caplog.at_level(logging.WARNING, logger="spendwatch"):
        one_call()
    assert spendwatch.flush(timeout_s=30)
    stats = spendwatch.stats()
    assert (stats.queued, stats.dropped, stats.failed) == (0, 0, 0)
    assert stats.sent + stats.rejected == calls["n"]
    # What was sent is exactly what the pipeline accepts (``consume`` validates each one).
    events = consume(stats.sent, timeout_s=60)
    assert len(events) == stats.sent
    # Refusals were reported, naming their field, and paced (not one line per event).
    refusals = [r for r in caplog.records if "not recorded" in r.getMessage()]
    assert refusals and len(refusals) < stats.rejected
    # Not vacuous: many calls were sent, many refused. (How many of the generated calls are
    # valid moves between runs of the whole suite - 87 to 121 seen - so the bar is lower.)
    assert stats.sent >= 50 and stats.rejected >= 100


@FUZZ
@given(
    bootstrap=st.one_of(st.just("127.0.0.1:9"), sdk_values()),
    service=st.one_of(st.just("svc"), sdk_values()),
    environment=st.one_of(st.none(), sdk_values()),
    tags=st.one_of(st.none(), sdk_values()),
    queue_size=st.one_of(st.just(100), sdk_values()),
    linger_ms=st.one_of(st.just(5), sdk_values()),
    exit_timeout_s=st.one_of(st.just(1.0), sdk_values()),
)
def test_configure_raises_only_configuration_errors(
    bootstrap: Any,
    service: Any,
    environment: Any,
    tags: Any,
    queue_size: Any,
    linger_ms: Any,
    exit_timeout_s: Any,
) -> None:
    try:
        spendwatch.configure(
            bootstrap_servers=bootstrap,
            service=service,
            environment=environment,
            tags=tags,
            queue_size=queue_size,
            linger_ms=linger_ms,
            exit_timeout_s=exit_timeout_s,
        )
    except ConfigurationError as exc:
        assert exc.field and exc.message
    finally:
        spendwatch.shutdown(timeout_s=0)


def test_configure_still_raises_on_bad_configuration() -> None:
    for kwargs, field in [
        ({"service": ""}, "service"),
        ({"service": "svc", "queue_size": -1}, "queue_size"),
        ({"service": "svc", "bootstrap_servers": 5}, "bootstrap_servers"),
        ({"service": "svc", "tags": {"bad key": "x"}}, "tags"),
    ]:
        with pytest.raises(ConfigurationError) as raised:
            spendwatch.configure(**kwargs)
        assert raised.value.field == field, kwargs
