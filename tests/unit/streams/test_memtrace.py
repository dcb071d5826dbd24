"""The SPENDWATCH_MEMTRACE debug hook: off unless set; the fields of one line."""

from __future__ import annotations

import re
import threading
import time

import pytest

from streams import memtrace


def test_unset_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memtrace.ENV, raising=False)
    memtrace.arm()
    assert [t for t in threading.enumerate() if t.name == "memtrace"] == []


def test_a_line_without_chdb_or_tracemalloc() -> None:
    text = memtrace.line(time.monotonic(), None)
    assert text.endswith("\n")
    names = re.findall(r"(\w+)=\d+", text)
    assert names == [
        "rss",
        "hwm",
        "anon",
        "file",
        "malloc_used",
        "malloc_free",
        "obmalloc",
        "obmalloc_hwm",
    ]
