"""Grouping keys, Alertmanager timing and ``due_for`` decisions, with explicit times."""

from __future__ import annotations

from datetime import datetime

from alerting.policy.grouping import Due, Group, due_for, group_key
from alerting.policy.routing import GroupParams
from tests.unit.alerting.factories import at, resolved, spike_alert, threshold_alert

P = GroupParams(("kind", "budget"), 10, 60, 3600)


class Sent:
    """A tiny SentView: {(receiver, alert_id, status, seq): sent_at}."""

    def __init__(self, entries: dict[tuple[str, str, str, int], datetime]) -> None:
        self.entries = entries

    def sent_at(self, receiver: str, alert_id: str, status: str, seq: int) -> datetime | None:
        return self.entries.get((receiver, alert_id, status, seq))

    def last_seq(self, receiver: str, alert_id: str, status: str) -> int | None:
        seqs = [k[3] for k in self.entries if k[:3] == (receiver, alert_id, status)]
        return max(seqs) if seqs else None


def test_group_key_uses_group_by_labels_missing_as_empty() -> None:
    assert (
        group_key("slack", P, threshold_alert()) == 'slack{kind="threshold",budget="fleet-daily"}'
    )
    assert group_key("slack", P, spike_alert()) == 'slack{kind="spike",budget=""}'
    assert group_key("slack", GroupParams((), 0, 1, 1), spike_alert()) == "slack{}"


def test_group_timing_wait_then_interval() -> None:
    g = Group.start("k", "r", P, at(0))
    assert not g.is_due(at(9.999))
    assert g.is_due(at(10))
    g.flushed(at(10.5))
    assert not g.is_due(at(70.4))
    assert g.is_due(at(70.5))


def test_group_keeps_latest_state_but_never_unresolves() -> None:
    g = Group.start("k", "r", P, at(0))
    a = spike_alert()
    g.add(a)
    g.add(resolved(a))
    g.add(a)  # replayed firing copy after the resolution
    assert g.alerts[a.alert_id].status == "resolved"


def test_due_for_first_notice_and_in_flight() -> None:
    a = spike_alert()
    assert due_for(a, "r", at(0), 3600, Sent({}), set()) == Due("send", 0)
    assert due_for(a, "r", at(0), 3600, Sent({}), {f"{a.alert_id}:firing:0"}) == Due("wait")


def test_due_for_repeat_interval() -> None:
    a = spike_alert()
    sent = Sent({("r", a.alert_id, "firing", 0): at(10)})
    assert due_for(a, "r", at(3609.999), 3600, sent, set()) == Due("wait")
    assert due_for(a, "r", at(3610), 3600, sent, set()) == Due("send", 1)
    sent.entries[("r", a.alert_id, "firing", 1)] = at(3610)
    assert due_for(a, "r", at(7210), 3600, sent, set()) == Due("send", 2)
    assert due_for(a, "other", at(7210), 3600, sent, set()) == Due("send", 0)


def test_due_for_resolved() -> None:
    a = spike_alert()
    r = resolved(a)
    # never notified as firing: nothing to resolve
    assert due_for(r, "r", at(0), 3600, Sent({}), set()) == Due("drop")
    # firing still on its way (retrying / dead letter): the resolution waits behind it
    assert due_for(r, "r", at(0), 3600, Sent({}), {f"{a.alert_id}:firing:0"}) == Due("wait")
    sent = Sent({("r", a.alert_id, "firing", 0): at(0)})
    assert due_for(r, "r", at(5), 3600, sent, set()) == Due("send", 0)
    sent.entries[("r", a.alert_id, "resolved", 0)] = at(5)
    assert due_for(r, "r", at(6), 3600, sent, set()) == Due("done")
    assert due_for(a, "r", at(9999), 3600, sent, set()) == Due("done")  # no reminder after
