"""The hot loop cuts a fetch where a partition's offsets stop increasing (a broker serving an
offset twice): each run is counted in an epoch of its own."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from streams.hot.loop import _increasing_runs


class Rec:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def offsets(runs: list[dict[TopicPartition, list[Rec]]]) -> list[dict[int, list[int]]]:
    return [{tp.partition: [r.offset for r in rs] for tp, rs in run.items()} for run in runs]


P0, P1 = TopicPartition("u", 0), TopicPartition("u", 1)


def test_a_sane_fetch_is_one_run() -> None:
    fetched = {P0: [Rec(3), Rec(4), Rec(9)], P1: [Rec(0)]}
    assert offsets(_increasing_runs(fetched)) == [{0: [3, 4, 9], 1: [0]}]


def test_repeated_and_decreasing_offsets_start_new_runs() -> None:
    fetched = {P0: [Rec(0), Rec(1), Rec(1), Rec(2), Rec(0)], P1: [Rec(5), Rec(6)]}
    assert offsets(_increasing_runs(fetched)) == [{0: [0, 1], 1: [5, 6]}, {0: [1, 2]}, {0: [0]}]


def test_nothing_fetched_is_no_run() -> None:
    assert _increasing_runs({P0: []}) == []
