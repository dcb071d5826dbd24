"""The shared delivery log in a topic on the real Tansu broker: entries come back per
partition, in order, and a reader reads to the end (one-record appends)."""

from __future__ import annotations

import asyncio

import pytest

from alerting.deliverylog import Ledger, MemoryDeliveryLog, TopicDeliveryLog, partition_for
from alerting.notification import Notification
from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.unit.alerting.factories import at, threshold_alert

pytestmark = pytest.mark.integration


def test_two_ledgers_share_what_was_accepted_and_sent() -> None:
    with TansuBroker() as broker:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, [topics.DELIVERIES], 2))

        async def scenario() -> None:
            names = {partition_for(f"b{i}".encode(), 2): f"b{i}" for i in range(10)}
            alerts = [threshold_alert(budget=names[p]) for p in (0, 1)]
            writer = Ledger(MemoryDeliveryLog(), TopicDeliveryLog(bootstrap, topics.DELIVERIES, 2))
            for a in alerts:
                assert await writer.accept(a, at(0))
            await writer.mark_sent(Notification("slack", "g", at(1), tuple(alerts)), at(1))
            assert writer.shared is not None
            await writer.shared.close()

            reader = Ledger(MemoryDeliveryLog(), TopicDeliveryLog(bootstrap, topics.DELIVERIES, 2))
            # partition 0 holds its alert's acceptance and the sent keys of that alert only
            assert await reader.merge({0}) == 2
            assert reader.is_accepted(alerts[0]) and not reader.is_accepted(alerts[1])
            assert reader.sent_at("slack", alerts[0].alert_id, "firing", 0) == at(1)
            assert reader.sent_at("slack", alerts[1].alert_id, "firing", 0) is None
            assert await reader.merge({1}) == 2
            assert reader.sent_at("slack", alerts[1].alert_id, "firing", 0) == at(1)
            assert await reader.merge(set()) == 0

        asyncio.run(scenario())
