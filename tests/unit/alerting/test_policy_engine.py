"""The pure policy: alerts and ``now`` in, notifications and decisions out (no I/O)."""

from __future__ import annotations

from datetime import datetime

from alerting.policy.engine import PolicyState
from tests.unit.alerting.factories import at, resolved, threshold_alert
from tests.unit.alerting.test_dispatcher import settings


class Sent:
    """A SentView over a dict: (receiver, alert_id, status, seq) -> when."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str, str, int], datetime] = {}

    def sent_at(self, receiver: str, alert_id: str, status: str, seq: int) -> datetime | None:
        return self.at.get((receiver, alert_id, status, seq))

    def last_seq(self, receiver: str, alert_id: str, status: str) -> int | None:
        seqs = [k[3] for k in self.at if k[:3] == (receiver, alert_id, status)]
        return max(seqs) if seqs else None


def test_higher_threshold_inhibits_the_lower_one_in_the_same_flush() -> None:
    policy = PolicyState(settings())
    sent = Sent()
    low = threshold_alert(threshold="0.8", severity="warning")
    high = threshold_alert(threshold="1", severity="emergency")
    for a in (low, high):
        policy.track(a, at(0), policy.targets(a))
    assert policy.flush_due(at(9), (), sent, {}) == ([], [])  # group_wait is 10 s
    notifications, decisions = policy.flush_due(at(10), (), sent, {})
    assert [(n.receiver, n.delivery_keys) for n in notifications] == [
        ("a", (f"{high.alert_id}:firing:0",)),
        ("b", (f"{high.alert_id}:firing:0",)),
    ]
    assert [(d.receiver, d.alert.alert_id, d.outcome, d.why) for d in decisions] == [
        ("a", low.alert_id, "inhibited", high.alert_id),
        ("b", low.alert_id, "inhibited", high.alert_id),
    ]
    # in flight: nothing queued twice; the inhibition is recorded once
    in_flight = {n.receiver: set(n.delivery_keys) for n in notifications}
    assert policy.flush_due(at(70), (), sent, in_flight) == ([], [])


def test_resolved_before_notified_is_dropped_and_settled() -> None:
    policy = PolicyState(settings())
    alert = threshold_alert()
    policy.track(alert, at(0), policy.targets(alert))
    policy.track(resolved(alert), at(1), policy.targets(alert))
    notifications, decisions = policy.flush_due(at(10), (), Sent(), {})
    assert notifications == []
    assert [(d.receiver, d.outcome) for d in decisions] == [("a", "dropped"), ("b", "dropped")]
    assert policy.groups == {}


def test_forget_where_closes_groups() -> None:
    policy = PolicyState(settings())
    north, south = threshold_alert(budget="north"), threshold_alert(budget="south")
    for a in (north, south):
        policy.track(a, at(0), policy.targets(a))
    policy.forget_where(lambda a: a.labels["budget"] == "north")
    assert sorted(policy.active) == [south.alert_id]
    notifications, _ = policy.flush_due(at(10), (), Sent(), {})
    assert {k for n in notifications for k in n.delivery_keys} == {f"{south.alert_id}:firing:0"}
