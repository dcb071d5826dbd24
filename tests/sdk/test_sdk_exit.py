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


def test_shutdown_spends_at_most_the_timeout_in_all(monkeypatch: pytest.MonkeyPatch, topic) -> None:
    """Flush and stopping the sender share one budget: the sender is never waited for past
    the flush timeout (it is a daemon thread; exit does not wait for it)."""
    import spendwatch
    from spendwatch import runtime, sender

    waits: list[float] = []
    original = sender.Sender.stop

    def recording_stop(self: sender.Sender, timeout_s: float) -> None:
        waits.append(timeout_s)
        original(self, timeout_s)

    monkeypatch.setattr(sender.Sender, "stop", recording_stop)
    spendwatch.configure(bootstrap_servers=f"127.0.0.1:{free_port()}", service="s", topic=topic)
    spendwatch.record("job")
    active = runtime._runtime
    assert active is not None
    assert spendwatch.shutdown(0.4) is False  # nothing can be delivered
    assert len(waits) == 1 and 0.0 <= waits[0] <= 0.4
    assert active._sender is not None and active._sender._thread.daemon
