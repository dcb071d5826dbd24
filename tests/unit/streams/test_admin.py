"""The worker's topic plan: what it creates, what it accepts, what stops the start-up."""

from __future__ import annotations

import pytest

from streams import topics
from streams.admin import TopicLayoutError, plan


def counts(new: list) -> dict[str, int]:  # type: ignore[type-arg]
    return {t.name: t.num_partitions for t in new}


def test_a_fresh_broker_gets_every_topic_with_the_configured_partitions() -> None:
    new = plan(topics.SPECS, 2, {})
    assert counts(new) == {
        spec.name: (1 if spec.name == topics.META else 2) for spec in topics.SPECS
    }
    status = next(t for t in new if t.name == topics.BUDGET_STATUS)
    assert status.topic_configs == {"cleanup.policy": "compact"}


def test_existing_topics_are_used_as_they_are() -> None:
    new = plan(topics.SPECS, 2, {topics.USAGE: 4, topics.BUDGET_STATUS: 1})
    assert topics.USAGE not in counts(new) and topics.BUDGET_STATUS not in counts(new)


def test_new_members_of_a_group_follow_the_existing_ones() -> None:
    new = counts(plan(topics.SPECS, 2, {topics.BUDGET_DELTAS: 3}))
    assert new[topics.CONTROL] == 3 and new[topics.ALERTS] == 3
    assert new[topics.USAGE] == 2


def test_a_group_with_two_counts_stops_the_start_up_naming_both() -> None:
    with pytest.raises(TopicLayoutError) as caught:
        plan(topics.SPECS, 2, {topics.BUDGET_DELTAS: 3, topics.CONTROL: 2})
    text = str(caught.value)
    assert f"{topics.BUDGET_DELTAS} has 3" in text and f"{topics.CONTROL} has 2" in text
    assert "same count" in text
