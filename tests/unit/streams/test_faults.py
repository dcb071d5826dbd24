"""The fault-injection windows of ``streams.faults`` (``chfail:hot.write``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from sinks.errors import TRANSIENT, classify
from streams import faults


@pytest.fixture(autouse=True)
def disarm() -> object:
    yield
    faults.arm("")


def test_a_file_window_fails_writes_while_the_file_exists(tmp_path: Path) -> None:
    flag = tmp_path / "chfail"
    faults.arm(f"chfail:hot.write@{flag}")
    hook = faults.write_fault()
    assert hook is not None
    hook("usage_events")  # no file: passes
    flag.touch()
    with pytest.raises(OperationalError) as caught:
        hook("usage_events")
    assert classify(caught.value) == TRANSIENT  # the writer retries it (backpressure)
    flag.unlink()
    hook("usage_events")


def test_a_timed_window_opens_and_closes() -> None:
    faults.arm("chfail:hot.write@0+0.3")
    assert faults.window_open("hot.write")
    time.sleep(0.35)
    assert not faults.window_open("hot.write")


def test_no_window_no_hook_and_typos_refused() -> None:
    faults.arm("kill:hot.after_write@2")
    assert faults.write_fault() is None
    with pytest.raises(ValueError, match="unknown fault"):
        faults.arm("chfail:hot.wirte@0+1")
    with pytest.raises(ValueError, match="bad window"):
        faults.arm("chfail:hot.write@x+1")
