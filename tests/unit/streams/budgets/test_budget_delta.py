"""Budget deltas: the wire form, counting each source position once, and the same ledger and
alerts as counting the events one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.budgets import apply_delta, apply_spend, load_budgets
from streams.budgets.delta import MAX_EVENTS, DeltaBuilder, decode_delta, encode_delta

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
USD = 1_000_000_000
[BUDGET] = load_budgets([{"name": "daily", "limit_usd": "10", "requests_per_minute": 50}], "")


def delta(entries: list[tuple[int, int, int, int, int]], epoch: str = "e1") -> object:
    builder = DeltaBuilder("daily")
    for entry in entries:
        builder.add(entry)
    [built] = builder.build(epoch)
    return built


def test_wire_form_round_trips_delta_encoded() -> None:
    builder = DeltaBuilder("daily")
    entries = [(0, 10, T0_US + 5, 7, 100), (1, 3, T0_US + 2, 0, 0), (0, 11, T0_US + 9, 1, 1)]
    for entry in entries:
        builder.add(entry)
    builder.tally("service", "bot", 8)
    [built] = builder.build("e1")
    again = decode_delta(encode_delta(built))
    assert list(again.events()) == entries
    assert again.tallies == {"service": {"bot": 8}}
    assert again.offset == [10, -7, 8]  # delta-encoded


def test_large_batches_split_into_several_deltas() -> None:
    builder = DeltaBuilder("daily")
    for i in range(MAX_EVENTS + 5):
        builder.add((0, i, T0_US + i, 1, 0))
    builder.tally("model", "m", MAX_EVENTS + 5)
    first, second = builder.build("e1")
    assert (first.size, second.size) == (MAX_EVENTS, 5)
    assert (first.tallies, second.tallies) == ({}, {"model": {"m": MAX_EVENTS + 5}})


def test_each_source_position_counts_once() -> None:
    one = delta([(0, 0, T0_US + 1, 3 * USD, 0), (0, 1, T0_US + 2, 3 * USD, 0)])
    state, alerts = apply_delta(BUDGET, None, one)
    assert state.spent_nusd == 6 * USD and [a.labels["threshold"] for a in alerts] == ["0.5"]
    state, again = apply_delta(BUDGET, state, one)  # the same delta resent
    assert state.spent_nusd == 6 * USD and again == []
    overlap = delta([(0, 1, T0_US + 2, 3 * USD, 0), (0, 2, T0_US + 3, 1 * USD, 0)])
    state, _ = apply_delta(BUDGET, state, overlap)  # a replay re-batched differently
    assert state.spent_nusd == 7 * USD
    other_epoch = delta([(0, 0, T0_US + 4, 1 * USD, 0)], epoch="e2")  # a new broker
    state, _ = apply_delta(BUDGET, state, other_epoch)
    assert state.spent_nusd == 8 * USD
    assert state.positions == {"e1:0": 2, "e2:0": 0}


def test_a_seeded_position_hides_what_the_snapshot_already_counted() -> None:
    state, _ = apply_delta(BUDGET, None, delta([(1, 0, T0_US, 0, 0)]))
    state.spent_nusd = 4 * USD  # as a ClickHouse snapshot would seed it
    state.positions = {"e1:1": 41}
    state, _ = apply_delta(
        BUDGET, state, delta([(1, 40, T0_US + 1, 9 * USD, 0), (1, 42, T0_US + 2, USD, 0)])
    )
    assert state.spent_nusd == 5 * USD


def test_the_crossing_event_is_found_inside_a_delta() -> None:
    entries = [(0, i, T0_US + i * 1_000_000, USD, 0) for i in range(12)]
    _, alerts = apply_delta(BUDGET, None, delta(entries))
    fired = {a.labels["threshold"]: a.fired_at for a in alerts if a.kind == "threshold"}
    # $1 a second: 50 % at the 5th event (t=4 s), 80 % at the 8th, 95 % and 100 % at the 10th
    assert fired == {
        "0.5": T0 + timedelta(seconds=4),
        "0.8": T0 + timedelta(seconds=7),
        "0.95": T0 + timedelta(seconds=9),
        "1": T0 + timedelta(seconds=9),
    }


events = st.lists(
    st.tuples(
        st.integers(0, 3 * 86400 * 1_000_000),  # up to three days: rollovers
        st.integers(0, 2 * USD),
        st.integers(0, 5000),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events, st.integers(1, 25))
def test_a_delta_counts_like_its_events_one_by_one(
    spec: list[tuple[int, int, int]], cut: int
) -> None:
    """Ledger state and alerts equal :func:`apply_spend` per event, however the events are
    split into deltas (contributors aside: a delta carries them per batch)."""
    entries = [(0, i, T0_US + t, cost, tok) for i, (t, cost, tok) in enumerate(spec)]
    one_by_one, expected = None, []
    for _, _, t, cost, tok in entries:
        ts = T0 + timedelta(microseconds=t - T0_US)
        one_by_one, alerts = apply_spend(
            BUDGET, one_by_one, event={"input_tokens": tok}, cost_nusd=cost, ts=ts
        )
        expected += alerts
    batched, got = None, []
    for start in range(0, len(entries), cut):
        batched, alerts = apply_delta(BUDGET, batched, delta(entries[start : start + cut]))
        got += alerts
    if not entries:
        return
    assert batched is not None and one_by_one is not None
    for name in ("spent_nusd", "events", "fired", "late_nusd", "period_start", "burn"):
        assert getattr(batched, name) == getattr(one_by_one, name), name
    assert [(a.alert_id, a.fired_at, a.figures) for a in got] == [
        (a.alert_id, a.fired_at, a.figures) for a in expected
    ]


def test_ledger_tag_tallies_stay_bounded_over_100k_distinct_values() -> None:
    """A client sending a distinct ``customer`` tag on every event (issue 12): after 100,000
    values in 50 deltas of 2,000 events, the ledger keeps exactly MAX_NAMES_PER_DIMENSION
    names plus "(other)", and the tallies still add up to the spend, to the nano-dollar."""
    from streams.budgets.ledger import MAX_NAMES_PER_DIMENSION, OTHER

    [budget] = load_budgets([{"name": "daily", "limit_usd": "1000000"}], "")
    state = None
    offset = 0
    for _ in range(50):
        builder = DeltaBuilder("daily")
        for _ in range(2_000):
            cost = offset % 997 + 1  # 1 .. 997 nUSD, every value distinct per event
            builder.add((0, offset, T0_US + offset, cost, 0))
            builder.tally("tag:customer", f"cust-{offset}", cost)
            offset += 1
        [built] = builder.build("e1")
        state, _ = apply_delta(budget, state, decode_delta(encode_delta(built)))
    assert state is not None
    customers = state.tallies["tag:customer"]
    total = sum(i % 997 + 1 for i in range(100_000))
    assert len(customers) == MAX_NAMES_PER_DIMENSION + 1 == 51
    # The first delta's first 50 events keep their names; everything after is "(other)".
    assert {n: c for n, c in customers.items() if n != OTHER} == {
        f"cust-{i}": i % 997 + 1 for i in range(50)
    }
    assert customers[OTHER] == total - sum(i % 997 + 1 for i in range(50))
    assert sum(customers.values()) == state.spent_nusd == total
    assert state.events == 100_000
