"""Keep secret values out of every log line, whoever writes it.

Libraries log what they send: ``slack_sdk`` logs a webhook request's full URL at DEBUG, and
a Slack webhook URL *is* the credential. Each :class:`schemas.settings.Secret` registers its
value here (:func:`remember`); :func:`install` wraps the logging record factory once, so every
record of every logger - ours, Faust's, aiokafka's, slack_sdk's - has its message and its
formatted exception rewritten with ``[redacted]`` in place of a secret before any handler
sees it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Final
from urllib.parse import urlsplit

MASK: Final = "[redacted]"
_MIN_LEN: Final = 6  # shorter values would mask ordinary words
_MIN_PATH_LEN: Final = 12  # a secret URL's path (a Slack webhook's /services/T../B../...)

_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()
_lock = threading.Lock()
_installed = False


def remember(value: str) -> None:
    """Mask ``value`` in logs from now on (and the path of a secret ``http(s)`` URL, which
    libraries log on its own)."""
    global _ordered
    texts = {value} if len(value) >= _MIN_LEN else set()
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) >= _MIN_PATH_LEN:
            texts.add(tail)
    if texts - _secrets:
        with _lock:
            _secrets.update(texts)
            _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every remembered secret replaced by ``[redacted]``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def install() -> None:
    """Redact every log record from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if not _ordered:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as usual
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text, record.exc_info = redact(text), None
        return record

    logging.setLogRecordFactory(factory)
