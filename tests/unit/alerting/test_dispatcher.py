"""AlertDispatcher with recording notifiers and explicit times: grouping, once-per-key,
restarts, retries, dead letters, silences, inhibition, repeats, resolved notices."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import MemoryDeliveryLog
from alerting.errors import PermanentDeliveryError, TransientDeliveryError
from alerting.notifiers.recording import RecordingNotifier
from alerting.policy.matchers import Matcher
from alerting.policy.silences import Silence
from alerting.records import AlertRecord, DeliveryRecord
from alerting.silence_store import MemorySilenceStore
from tests.unit.alerting.factories import T0, at, resolved, spike_alert, threshold_alert


def settings(**extra: Any) -> AlertingSettings:
    section: dict[str, Any] = {
        "group_wait_s": 10,
        "group_interval_s": 60,
        "repeat_interval_s": 3600,
        "receivers": [{"name": "a", "type": "console"}, {"name": "b", "type": "console"}],
        "retry": {"max_attempts": 3, "initial_backoff_s": 1, "dead_letter_retry_s": 600},
    }
    section.update(extra)
    return AlertingSettings.from_config(section)


class Rig:
    def __init__(
        self,
        cfg: AlertingSettings | None = None,
        log: MemoryDeliveryLog | None = None,
        silences: MemorySilenceStore | None = None,
    ) -> None:
        self.cfg = cfg or settings()
        self.log = log or MemoryDeliveryLog()
        self.silences = silences or MemorySilenceStore()
        self.notifiers = {r: RecordingNotifier(r) for r in self.cfg.receiver_names}
        self.a = self.notifiers["a"]
        self.b = self.notifiers["b"]
        self.rows: list[Any] = []

        async def recorder(row: Any) -> None:
            self.rows.append(row)

        self.d = AlertDispatcher(self.cfg, self.notifiers, self.log, self.silences, recorder)

    def deliveries(self, outcome: str | None = None) -> list[DeliveryRecord]:
        return [
            r
            for r in self.rows
            if isinstance(r, DeliveryRecord) and (outcome is None or r.outcome == outcome)
        ]


async def test_group_wait_batches_then_sends_once() -> None:
    rig = Rig()
    a1 = threshold_alert(budget="b1")
    a2 = spike_alert()
    await rig.d.submit(a1, at(0))
    await rig.d.tick(at(9.9))
    assert rig.a.sent == []
    await rig.d.submit(threshold_alert(budget="b1", threshold="0.8", severity="warning"), at(5))
    await rig.d.tick(at(10))
    # the 0.8 threshold is inhibited by 0.95 (same budget + period): one message, one alert
    assert rig.a.delivered_keys == [f"{a1.alert_id}:firing:0"]
    assert rig.b.delivered_keys == [f"{a1.alert_id}:firing:0"]
    assert len(rig.deliveries("inhibited")) == 2
    await rig.d.submit(a2, at(11))
    await rig.d.tick(at(20))  # new group -> its own group_wait
    assert len(rig.a.sent) == 1
    await rig.d.tick(at(21))
    assert rig.a.delivered_keys[-1] == f"{a2.alert_id}:firing:0"
    # replay of both alerts: nothing new
    await rig.d.submit(a1, at(30))
    await rig.d.submit(a2, at(30))
    for t in (100, 200, 300):
        await rig.d.tick(at(t))
    assert len(rig.a.sent) == 2 and len(rig.b.sent) == 2
    alert_rows = [r for r in rig.rows if isinstance(r, AlertRecord)]
    assert len(alert_rows) == 3  # three distinct (alert_id, status)
    assert len(rig.deliveries("sent")) == 4


async def test_restart_with_same_log_sends_nothing_again() -> None:
    log = MemoryDeliveryLog()
    rig = Rig(log=log)
    alerts = [threshold_alert(budget=f"b{i}") for i in range(3)]
    for a in alerts:
        await rig.d.submit(a, at(0))
    await rig.d.tick(at(10))
    assert sorted(rig.a.delivered_keys) == sorted(f"{a.alert_id}:firing:0" for a in alerts)
    await rig.d.close()

    rig2 = Rig(log=log)
    for a in alerts:
        await rig2.d.submit(a, at(100))
    for t in (110, 200, 3000):  # past group_wait and group_interval, before a repeat
        await rig2.d.tick(at(t))
    assert rig2.a.sent == [] and rig2.b.sent == []
    assert not any(isinstance(r, AlertRecord) for r in rig2.rows)  # replays are not re-recorded


async def test_accepted_but_unsent_alert_survives_restart() -> None:
    log = MemoryDeliveryLog()
    rig = Rig(log=log)
    alert = threshold_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.close()  # "crash" before group_wait elapsed
    rig2 = Rig(log=log)
    await rig2.d.tick(at(5))  # restore: new group waits group_wait from now
    assert rig2.a.sent == []
    await rig2.d.tick(at(15))
    assert rig2.a.delivered_keys == [f"{alert.alert_id}:firing:0"]


async def test_transient_retries_with_backoff_then_delivers_once() -> None:
    rig = Rig()
    rig.a.script(
        TransientDeliveryError("a", "HTTP 500"),
        TransientDeliveryError("a", "HTTP 429", retry_after_s=5),
    )
    alert = threshold_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.tick(at(10))  # attempt 1 fails -> backoff 1 s
    assert rig.a.attempts == 1
    await rig.d.tick(at(10.5))
    assert rig.a.attempts == 1
    await rig.d.tick(at(11))  # attempt 2: 429, Retry-After 5 s beats the 2 s backoff
    assert rig.a.attempts == 2
    await rig.d.tick(at(15.9))
    assert rig.a.attempts == 2
    await rig.d.tick(at(16))
    assert rig.a.attempts == 3
    assert rig.a.delivered_keys == [f"{alert.alert_id}:firing:0"]
    retry_rows = rig.deliveries("retry")
    assert [(r.attempt, r.next_attempt_at) for r in retry_rows] == [(1, at(11)), (2, at(16))]
    await rig.d.tick(at(100))
    assert rig.a.attempts == 3


async def test_dead_letter_raises_pipeline_alert_to_the_other_receiver() -> None:
    rig = Rig()
    rig.a.script(*(TransientDeliveryError("a", "connection refused") for _ in range(3)))
    alert = threshold_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.tick(at(10))  # attempt 1 (b gets it)
    await rig.d.tick(at(11))  # attempt 2
    await rig.d.tick(at(13))  # attempt 3 -> dead letter, pipeline alert queued (wait 0)
    assert rig.a.attempts == 3
    assert [n.notification_id for n in rig.d.dead_letters] == [
        rig.deliveries("dead_letter")[0].notification_id
    ]
    await rig.d.tick(at(14))
    pipeline = [n for n in rig.b.sent if n.alerts[0].kind == "pipeline"]
    assert len(pipeline) == 1
    p = pipeline[0].alerts[0]
    assert p.labels["receiver"] == "a" and p.severity == "critical"
    assert "after 3 attempt(s): TransientDeliveryError: a: connection refused" in p.summary
    assert rig.a.attempts == 3  # the failure notice never goes to the failing receiver
    # slow cadence: next try 600 s after dead-lettering, which now succeeds
    await rig.d.tick(at(612))
    assert rig.a.attempts == 3
    await rig.d.tick(at(613))
    assert rig.a.delivered_keys == [f"{alert.alert_id}:firing:0"]
    assert rig.d.dead_letters == ()
    # ... and the pipeline alert resolves on b at its group's next flush (612 + 60)
    await rig.d.tick(at(671))
    assert len(rig.b.sent) == 2
    await rig.d.tick(at(672))
    assert [n.alerts[0].status for n in rig.b.sent if n.alerts[0].kind == "pipeline"] == [
        "firing",
        "resolved",
    ]


async def test_permanent_error_dead_letters_at_once() -> None:
    rig = Rig()
    rig.a.script(PermanentDeliveryError("a", "HTTP 404 no_service"))
    await rig.d.submit(threshold_alert(), at(0))
    await rig.d.tick(at(10))
    assert rig.a.attempts == 1 and len(rig.d.dead_letters) == 1
    assert (
        rig.deliveries("dead_letter")[0].error == "PermanentDeliveryError: a: HTTP 404 no_service"
    )


async def test_dead_letter_survives_restart_and_is_retried() -> None:
    log = MemoryDeliveryLog()
    rig = Rig(log=log)
    rig.a.script(PermanentDeliveryError("a", "HTTP 403 invalid_token"))
    alert = threshold_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.tick(at(10))
    await rig.d.close()
    rig2 = Rig(log=log)
    await rig2.d.tick(at(20))  # restored dead letter is retried at once after a restart
    assert rig2.a.delivered_keys == [f"{alert.alert_id}:firing:0"]
    # b had the alert before the restart; the pipeline alert raised just before the
    # "crash" was accepted but not yet sent, so the restored dispatcher sends it now
    assert [(n.alerts[0].kind, n.alerts[0].status) for n in rig2.b.sent] == [("pipeline", "firing")]
    await rig2.d.tick(at(80))  # and resolves it at the group's next flush
    assert [(n.alerts[0].kind, n.alerts[0].status) for n in rig2.b.sent] == [
        ("pipeline", "firing"),
        ("pipeline", "resolved"),
    ]


async def test_resolved_notice_same_alert_id() -> None:
    rig = Rig()
    alert = spike_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.tick(at(10))
    await rig.d.submit(resolved(alert), at(30))
    await rig.d.tick(at(69))
    assert len(rig.a.sent) == 1
    await rig.d.tick(at(70))  # group_interval after the first flush
    assert rig.a.delivered_keys == [f"{alert.alert_id}:firing:0", f"{alert.alert_id}:resolved:0"]
    # a replayed firing copy after the resolution is stale
    await rig.d.submit(alert, at(80))
    await rig.d.tick(at(200))
    assert len(rig.a.sent) == 2


async def test_resolved_before_first_notice_is_dropped_not_sent() -> None:
    rig = Rig()
    alert = spike_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.submit(resolved(alert), at(5))
    await rig.d.tick(at(10))
    assert rig.a.sent == []
    assert [r.error for r in rig.deliveries("dropped")] == ["resolved before notified"] * 2


async def test_repeat_interval_reminds_while_firing() -> None:
    rig = Rig()
    alert = spike_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.tick(at(10))
    for t in range(70, 3600, 60):
        await rig.d.tick(at(t))
    assert len(rig.a.sent) == 1
    await rig.d.tick(at(3610))  # first group check >= 10 + 3600
    assert rig.a.delivered_keys == [f"{alert.alert_id}:firing:0", f"{alert.alert_id}:firing:1"]
    assert rig.a.sent[1].is_reminder(0)


async def test_silenced_alert_is_recorded_not_sent_until_silence_ends() -> None:
    silence = Silence.create(
        [Matcher.parse("service=search")],
        now=T0,
        duration=timedelta(seconds=100),
        comment="deploy",
        created_by="me",
    )
    rig = Rig(silences=MemorySilenceStore((silence,)))
    alert = spike_alert()
    await rig.d.submit(alert, at(0))
    await rig.d.tick(at(10))
    assert rig.a.sent == []
    rows = rig.deliveries("silenced")
    assert [(r.receiver, r.error) for r in rows] == [("a", silence.id), ("b", silence.id)]
    alert_row = next(r for r in rig.rows if isinstance(r, AlertRecord))
    assert alert_row.silenced_by == (silence.id,)
    await rig.d.tick(at(70))
    assert rig.a.sent == []
    await rig.d.tick(at(130))  # silence over, still firing: now it goes out
    assert rig.a.delivered_keys == [f"{alert.alert_id}:firing:0"]


async def test_routes_continue_and_escalation() -> None:
    cfg = settings(
        receivers=[{"name": n, "type": "console"} for n in ("a", "b", "c")],
        routes=[
            {"match": {"kind": "threshold"}, "receivers": ["a"], "continue": True},
            {"match": {"severity": "critical"}, "receivers": ["b"]},
        ],
        escalations=[{"match": {"severity": "emergency"}, "receivers": ["c"]}],
    )
    rig = Rig(cfg)
    c = rig.notifiers["c"]
    await rig.d.submit(threshold_alert(), at(0))  # critical threshold: a (continue) + b
    await rig.d.submit(threshold_alert(budget="x", threshold="1.0", severity="emergency"), at(0))
    await rig.d.submit(spike_alert(severity="info"), at(0))  # no route: default = all
    await rig.d.tick(at(10))
    assert sorted(a.labels.get("budget", "-") for n in rig.a.sent for a in n.alerts) == [
        "-",
        "fleet-daily",
        "x",
    ]
    assert sorted(a.labels.get("budget", "-") for n in rig.b.sent for a in n.alerts) == [
        "-",
        "fleet-daily",
    ]
    assert sorted(a.labels.get("budget", "-") for n in c.sent for a in n.alerts) == ["-", "x"]


async def test_contract_errors() -> None:
    import pytest

    from alerting.notifiers.recording import RecordingNotifier as R

    cfg = settings()
    with pytest.raises(ValueError, match=r"no notifier for receivers \['b'\]"):
        AlertDispatcher(cfg, {"a": R("a")}, MemoryDeliveryLog())
    rig = Rig()
    with pytest.raises(ValueError, match="timezone-aware"):
        await rig.d.tick(T0.replace(tzinfo=None))
    await rig.d.close()
    with pytest.raises(RuntimeError, match="closed"):
        await rig.d.submit(spike_alert(), at(0))
