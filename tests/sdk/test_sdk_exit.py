"""At interpreter exit the queue is flushed (atexit), within ``exit_timeout_s``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from streams.broker import free_port

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import sys, spendwatch
    spendwatch.configure(bootstrap_servers=sys.argv[1], service="short-lived", topic=sys.argv[2],
                         exit_timeout_s=float(sys.argv[3]))
    for i in range(25):
        spendwatch.record("job", request_id=str(i))
    # no flush(): the SDK's atexit hook sends what is queued
    """
)


def test_events_are_flushed_at_exit(broker, topic, consume):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, broker.bootstrap_servers, topic, "10"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    events = consume(25)
    assert [e["request_id"] for e in events] == [str(i) for i in range(25)]


def test_exit_with_broker_unreachable_gives_up_after_the_timeout(topic):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"127.0.0.1:{free_port()}", topic, "0.3"],
        capture_output=True,
        timeout=60,  # generous: this asserts that it exits, not how fast
        text=True,
    )
    assert done.returncode == 0
    assert "25 events not delivered at exit" in done.stderr
