"""Secrets are masked in every log record once ``schemas.redact.install()`` ran."""

from __future__ import annotations

import logging

import pytest

from schemas import redact
from schemas.settings import resolve_secret


def test_a_secret_is_masked_in_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redact.install()
    url = resolve_secret("https://hooks.slack.com/services/T01/B02/unit-test-secret-x9").reveal()
    token = resolve_secret("env:SW_UNIT_TOKEN", {"SW_UNIT_TOKEN": "xoxb-unit-test-token"})
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG, logger="some.library"):
        log.debug("Sending a request - url: %s", url)
        log.warning("POST /services/T01/B02/unit-test-secret-x9 failed")
        log.info(f"token {token.reveal()} refused")
        try:
            raise RuntimeError(f"cannot reach {url}")
        except RuntimeError:
            log.exception("delivery failed")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "unit-test-secret-x9" not in text and "xoxb-unit-test-token" not in text
    assert [r.getMessage() for r in caplog.records] == [
        "Sending a request - url: [redacted]",
        "POST [redacted] failed",
        "token [redacted] refused",
        "delivery failed",
    ]
    assert "RuntimeError: cannot reach [redacted]" in caplog.text


def test_short_values_are_not_masked() -> None:
    assert resolve_secret("abc").reveal() == "abc"
    assert redact.redact("abc def") == "abc def"
