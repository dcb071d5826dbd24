"""File delivery log: durable entries, torn last line, restart index, compaction."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson

from alerting.deliverylog import FileDeliveryLog, Ledger
from alerting.notification import Notification
from tests.unit.alerting.factories import at, spike_alert, threshold_alert

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_entries_survive_reopen_and_index(tmp_path: Path) -> None:
    path = tmp_path / "state" / "log.jsonl"
    a = threshold_alert()
    ledger = Ledger(FileDeliveryLog(path))
    ledger.load()
    assert run(ledger.accept(a, at(0))) is True
    assert run(ledger.accept(a, at(1))) is False
    n = Notification("slack", "g", at(10), (a,))
    run(ledger.mark_sent(n, at(10)))
    ledger.log.close()
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line)["t"] for line in lines] == ["accepted", "sent"]

    again = Ledger(FileDeliveryLog(path))
    again.load()
    assert again.is_accepted(a)
    assert again.sent_at("slack", a.alert_id, "firing", 0) == at(10)
    assert again.last_seq("slack", a.alert_id, "firing") == 0
    assert again.sent_at("email", a.alert_id, "firing", 0) is None


def test_torn_last_line_is_skipped_and_appends_continue(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    a, b = threshold_alert(), spike_alert()
    ledger = Ledger(FileDeliveryLog(path))
    ledger.load()
    run(ledger.accept(a, at(0)))
    ledger.log.close()
    with open(path, "ab") as fh:
        fh.write(b'{"t": "accepted", "at": "2025-03')  # crash mid-write
    log = FileDeliveryLog(path)
    again = Ledger(log)
    again.load()
    assert log.skipped_lines == 1
    assert again.is_accepted(a)
    run(again.accept(b, at(1)))
    log.close()
    third = Ledger(FileDeliveryLog(path))
    third.load()
    assert third.is_accepted(a) and third.is_accepted(b)


def test_dead_letters_persist_until_sent_and_compaction(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    old, new = spike_alert(window="old"), spike_alert(window="new")
    ledger = Ledger(FileDeliveryLog(path))
    ledger.load()
    run(ledger.accept(old, at(0)))
    run(ledger.mark_sent(Notification("r", "g", at(1), (old,)), at(1)))
    run(ledger.accept(new, at(100)))
    dead = Notification("r", "g", at(100), (new,))
    run(ledger.mark_dead(dead, at(100)))
    ledger.log.close()

    again = Ledger(FileDeliveryLog(path))
    again.load()
    assert [d.notification for d in again.dead.values()] == [dead]
    kept = again.compact(at(150), retention_s=60)  # keeps entries from t >= 90
    assert kept == 2  # the accepted `new` and its dead letter
    again.log.close()
    third = Ledger(FileDeliveryLog(path))
    third.load()
    assert not third.is_accepted(old) and third.is_accepted(new)
    run(third.mark_sent(dead, at(200)))
    assert third.dead == {}
    third.log.close()
    fourth = Ledger(FileDeliveryLog(path))
    fourth.load()
    assert fourth.dead == {}
