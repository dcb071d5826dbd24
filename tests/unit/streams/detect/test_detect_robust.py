from __future__ import annotations

import math

import numpy as np

from streams.detect.lifecycle import Episode, EpisodeEvent
from streams.detect.robust import HeldRange, median_mad, robust_stats, score_of, upward_margin


def test_median_mad_skips_unusable_points_per_row() -> None:
    values = np.array([[1.0, 2.0, 3.0, 100.0, np.nan], [5.0, 5.0, 5.0, 5.0, 5.0]])
    usable = np.array([[True, True, True, False, False], [True, True, False, False, False]])
    med, mad, count = median_mad(values, usable)
    assert med.tolist() == [2.0, 5.0]
    assert mad.tolist() == [1.0, 0.0]
    assert count.tolist() == [3.0, 2.0]


def test_empty_row_gives_nan() -> None:
    med, mad, count = median_mad(np.array([[1.0, 2.0]]), np.array([[False, False]]))
    assert math.isnan(med[0]) and math.isnan(mad[0]) and count[0] == 0


def test_upper_scale_sees_the_right_tail() -> None:
    # 9 cheap minutes and one dear one: the MAD ignores the tail, the 90th percentile doesn't.
    values = np.array([[1.0] * 9 + [10.0]] * 1 + [[1.0] * 8 + [10.0, 10.0]])
    med, mad, upper, count = robust_stats(values, np.ones_like(values, dtype=bool))
    assert med.tolist() == [1.0, 1.0]
    assert mad.tolist() == [0.0, 0.0]
    # q90 index floor(0.9 * 9) = 8: the 9th smallest value
    assert upper[0] == 0.0
    assert upper[1] == (10.0 - 1.0) / 1.2816
    assert count.tolist() == [10.0, 10.0]


def test_upward_margin_is_the_tightest_rule() -> None:
    # excess 3: delta rule 3/1 = 3, z rule 3/(3*0.5) = 2, ratio rule (4/1 - 1)/(2 - 1) = 3
    assert upward_margin(4.0, 1.0, 0.5, z=3.0, min_delta=1.0, min_ratio=2.0) == 2.0
    assert upward_margin(1.5, 1.0, 0.0, z=3.0, min_delta=1.0, min_ratio=2.0) == 0.5
    assert upward_margin(0.5, 1.0, 0.1, z=3.0, min_delta=1.0, min_ratio=2.0) == 0.0
    assert upward_margin(float("nan"), 1.0, 0.1, z=3.0, min_delta=1.0, min_ratio=None) == 0.0
    # zero baseline: only the absolute delta can hold the spike back
    assert upward_margin(3.0, 0.0, 0.0, z=3.0, min_delta=1.0, min_ratio=2.0) == 3.0


def test_score_maps_margin_one_to_one_half() -> None:
    assert score_of(0.0) == 0.0
    assert score_of(-2.0) == 0.0
    assert score_of(1.0) == 0.5
    assert score_of(3.0) == 0.75
    assert score_of(math.inf) == 1.0


def test_episode_confirms_fires_once_and_resolves_with_hysteresis() -> None:
    ep = Episode(confirm=2, resolve=3)
    flags: list[bool | None] = [True, False, True, True, True, False, None, True, False, False]
    flags += [False]
    events = [ep.step(m, a) for m, a in enumerate(flags)]
    assert events[3] == EpisodeEvent("fire", 2, 3)
    assert events[10] == EpisodeEvent("resolve", 2, 10)
    assert [e for e in events if e is not None] == [events[3], events[10]]
    assert not ep.firing and ep.start is None


def test_episode_two_minute_verdict_starts_a_minute_earlier_and_confirms_at_once() -> None:
    ep = Episode(confirm=2, resolve=3)
    assert ep.step(10, False) is None
    assert ep.step(11, True, span=2) == EpisodeEvent("fire", 10, 11)
    pending = Episode(confirm=3, resolve=3)
    assert pending.step(5, True) is None
    # already pending since 5: the two-minute verdict at 6 makes two minutes, not three
    assert pending.step(6, True, span=2) is None
    assert pending.step(7, True, span=2) == EpisodeEvent("fire", 5, 7)


def test_held_range_grades_a_reading_past_its_edge_by_rarity() -> None:
    # 1,000 readings 0..999 held, in any order; the range is their 0.5th-99.5th percentile
    held = HeldRange(np.array([float(v) for v in reversed(range(1000))]), 0.005)
    assert (held.low, held.top) == (0.005 * 999, 0.995 * 999)
    # inside the range: the share of the way from the level to the edge (linear, as before)
    assert held.rise(700.0, 500.0, math.inf) == 200.0 / (0.995 * 999 - 500.0)
    # past the edge: log(share at least as high) / log(0.005); 998 and 999 are 2 of 1,000
    assert held.rise(998.0, 500.0, math.inf) == math.log(2 / 1000) / math.log(0.005)
    assert held.fall(1.0, 500.0, math.inf) == math.log(2 / 1000) / math.log(0.005)
    # past the most extreme reading: an exponential tail, its scale the mean excess of the top
    # 1 % (990..999, mean 994.5) over the 99th percentile (989.01)
    scale = 994.5 - 0.99 * 999
    far = held.rise(999.0 + scale, 500.0, math.inf)
    assert far == (math.log(1 / 1000) - 1.0) / math.log(0.005)
    assert 1.0 < held.rise(996.0, 500.0, math.inf) < held.rise(998.0, 500.0, math.inf) < far
    # the noise rules' own margin still caps it, and a range below the level limits nothing
    assert held.rise(998.0, 500.0, 0.7) == 0.7
    assert held.rise(2000.0, 999.5, 3.0) == 3.0
