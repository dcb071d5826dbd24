"""The shared delivery log: dispatchers on different "workers" (own local logs, one shared
log) hand alert partitions over without repeating or losing a notification."""

from __future__ import annotations

from alerting.delivery import AlertDispatcher
from alerting.deliverylog import Ledger, MemoryDeliveryLog, MemorySharedLog, partition_for
from alerting.digest import DigestSummary
from alerting.errors import TransientDeliveryError
from alerting.notification import Notification
from alerting.notifiers.recording import RecordingNotifier
from schemas.alerts import Alert
from tests.unit.alerting.factories import T0, at, threshold_alert
from tests.unit.alerting.test_dispatcher import settings

PARTITIONS = 2


def budget_on(partition: int) -> str:
    """A budget name whose alerts land on ``partition`` (the producers' partitioner)."""
    for i in range(100):
        name = f"budget-{i}"
        if partition_for(name.encode(), PARTITIONS) == partition:
            return name
    raise AssertionError("no name found")


class Worker:
    """One worker's dispatcher: its own local log (its disk), the group's shared log."""

    def __init__(self, shared: MemorySharedLog, local: MemoryDeliveryLog | None = None) -> None:
        self.cfg = settings(group_wait_s=0, default_inhibit=False)
        self.notifiers = {r: RecordingNotifier(r) for r in self.cfg.receiver_names}
        self.local = local or MemoryDeliveryLog()
        self.d = AlertDispatcher(self.cfg, self.notifiers, self.local, shared=shared)

    def keys(self, receiver: str = "a") -> list[str]:
        return self.notifiers[receiver].delivered_keys


def key(alert: Alert) -> str:
    return f"{alert.alert_id}:{alert.status}:0"


async def test_new_owner_neither_repeats_sent_nor_loses_accepted() -> None:
    shared = MemorySharedLog(PARTITIONS)
    name = budget_on(0)
    sent = threshold_alert(budget=name, threshold="0.5", severity="info")
    unsent = threshold_alert(budget=name, threshold="0.8", severity="warning")
    one = Worker(shared)
    await one.d.assign({0, 1}, at(0))
    await one.d.submit(sent, at(0))
    await one.d.tick(at(0))
    assert one.keys() == [key(sent)]
    one.notifiers["a"].script(*[TransientDeliveryError("a", "HTTP 500")] * 3)
    await one.d.submit(unsent, at(1))
    await one.d.tick(at(60))  # the group's next flush: a fails (retrying), b gets it
    assert one.keys() == [key(sent)] and one.keys("b") == [key(sent), key(unsent)]
    await one.d.release({0})  # partition 0 goes to the other worker
    await one.d.tick(at(200))  # nothing of partition 0 is attempted here any more
    assert one.keys() == [key(sent)]

    two = Worker(shared)  # another disk: knows only what the shared log says
    await two.d.assign({0}, at(201))
    for t in (201, 300, 3000):
        await two.d.tick(at(t))
    assert two.keys() == [key(unsent)]  # the accepted one, once
    assert two.keys("b") == []  # b had both: nothing again
    # a replay of both alerts on the new owner adds nothing
    await two.d.submit(sent, at(3001))
    await two.d.submit(unsent, at(3001))
    await two.d.tick(at(3002))
    assert two.keys() == [key(unsent)] and two.keys("b") == []


async def test_lost_disk_restart_reads_the_shared_log() -> None:
    shared = MemorySharedLog(PARTITIONS)
    alerts = [threshold_alert(budget=budget_on(p)) for p in (0, 1)]
    first = Worker(shared)
    await first.d.assign({0, 1}, at(0))
    for a in alerts:
        await first.d.submit(a, at(0))
    await first.d.tick(at(0))
    assert sorted(first.keys()) == sorted(key(a) for a in alerts)
    await first.d.close()
    again = Worker(shared)  # same worker, empty state dir
    await again.d.assign({0, 1}, at(10))
    for a in alerts:
        await again.d.submit(a, at(10))
    for t in (10, 100, 3000):
        await again.d.tick(at(t))
    assert again.keys() == [] and again.keys("b") == []


async def test_partitions_not_owned_are_not_restored() -> None:
    shared = MemorySharedLog(PARTITIONS)
    alert = threshold_alert(budget=budget_on(1))
    one = Worker(shared)
    await one.d.assign({1}, at(0))
    one.notifiers["a"].script(*[TransientDeliveryError("a", "HTTP 500")] * 3)
    one.notifiers["b"].script(*[TransientDeliveryError("b", "HTTP 500")] * 3)
    await one.d.submit(alert, at(0))
    await one.d.tick(at(0))
    await one.d.close()
    other = Worker(shared)
    await other.d.assign({0}, at(5))  # owns partition 0 only
    await other.d.tick(at(100))
    assert other.keys() == [] and other.keys("b") == []
    await other.d.assign({0, 1}, at(101))  # now it gets partition 1: delivers, once each
    for t in (101, 102, 200):
        await other.d.tick(at(t))
    assert other.keys() == [key(alert)] and other.keys("b") == [key(alert)]


async def test_digest_is_not_repeated_by_a_new_leader() -> None:
    shared = MemorySharedLog(PARTITIONS)
    summary = DigestSummary(
        day=T0.date(),
        timezone="UTC",
        total_cost_nusd=1_500_000_000,
        by_service=(),
        by_model=(),
        budgets=(),
        alerts=(),
    )
    leader = Worker(shared)
    await leader.d.assign({0}, at(0))
    await leader.d.send_digest(summary, at(0))
    assert len(leader.notifiers["a"].sent) == 1
    new_leader = Worker(shared)  # owns other partitions, another disk
    await new_leader.d.assign({1}, at(30))
    await new_leader.d.send_digest(summary, at(30))
    assert new_leader.notifiers["a"].sent == [] and new_leader.notifiers["b"].sent == []


class Unreachable(MemorySharedLog):
    async def read(self, partitions: object) -> list[dict[str, object]]:
        raise ConnectionError("broker away")


async def test_unreadable_shared_log_falls_back_to_the_local_log() -> None:
    shared = Unreachable(PARTITIONS)
    alert = threshold_alert(budget=budget_on(0))
    worker = Worker(shared)
    await worker.d.assign({0, 1}, at(0))  # reading fails: counted, not fatal
    assert worker.d.shared_read_failures == 1
    await worker.d.submit(alert, at(0))
    await worker.d.tick(at(0))
    assert worker.keys() == [key(alert)]


async def test_a_notification_spanning_partitions_is_shared_per_partition() -> None:
    shared = MemorySharedLog(PARTITIONS)
    north, south = threshold_alert(budget=budget_on(0)), threshold_alert(budget=budget_on(1))
    ledger = Ledger(MemoryDeliveryLog(), shared)
    for a in (north, south):
        assert await ledger.accept(a, at(0))
    n = Notification("a", "g", at(1), (north, south))
    await ledger.mark_sent(n, at(1))
    for partition, alert in ((0, north), (1, south)):
        entries = await shared.read({partition})
        assert [(e["t"], e.get("keys")) for e in entries] == [
            ("accepted", None),
            ("sent", [key(alert)]),
        ]
        assert [k for k, _ in shared.records[partition]] == [
            f"accepted:{alert.alert_id}:firing".encode(),
            f"sent:a:{n.notification_id}".encode(),
        ]
