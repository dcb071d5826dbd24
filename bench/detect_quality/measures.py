"""Standard time-series anomaly measures: the NAB score and range-based precision / recall.

* **NAB score** (Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection Algorithms -- the
  Numenta Anomaly Benchmark"; Ahmad et al. 2017): each labelled anomaly window is worth
  ``+tp`` when detected at its left edge, a scaled sigmoid less the later the first detection
  falls in it, ``-fn`` when missed; every detection outside a window costs up to ``fp`` (less
  just after a window). The first 15 % of a file (at most 750 rows) is a probation period and
  not scored. Normalised over a set of files: ``100 x (S - S_null) / (S_perfect - S_null)``,
  where the null detector never fires (0) and the perfect one catches every window at once
  (100). Written here from the published definition; the three published cost profiles are in
  ``PROFILES``.
* **Range-based precision / recall** (Tatbul et al., NeurIPS 2018, "Precision and Recall for
  Time Series"): real ranges are the labelled windows, predicted ranges the runs of
  consecutive flagged rows. Recall of a real range is ``alpha x existence + (1 - alpha) x
  overlap share x cardinality``; precision of a predicted range is its overlap share x
  cardinality; flat positional bias, cardinality ``1 / (number of ranges it overlaps)``.
  Averaged over ranges. ``RECALL_ALPHA = 0.5`` (a caught window earns half by existing, half
  by coverage); precision uses ``alpha = 0``, as the paper prescribes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PROBATION_SHARE = 0.15
PROBATION_MAX = 750  # 0.15 x 5000 rows
RECALL_ALPHA = 0.5


@dataclass(frozen=True, slots=True)
class Profile:
    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Profile(1.0, 0.11, 1.0),
    "reward_low_fp": Profile(1.0, 0.22, 1.0),
    "reward_low_fn": Profile(1.0, 0.11, 2.0),
}


def scaled_sigmoid(position: float) -> float:
    """NAB's reward by relative position: -1 = the window's left edge (0.987), 0 = its right
    edge (0), > 0 = past it (down to -1; -1 beyond 3 window lengths)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation(n: int) -> int:
    return int(min(math.floor(PROBATION_SHARE * n), PROBATION_SHARE * 5000))


@dataclass(frozen=True, slots=True)
class Point:
    """One scorable row: its detection score, the window it lies in (``-1``: none, with a
    file-unique id otherwise) and what a detection there is worth before weighting."""

    score: float
    window: int
    reward: float  # scaled sigmoid (in a window: / max, so the left edge is 1)


def points(
    scores: Sequence[float], windows: Sequence[tuple[int, int]], first_id: int
) -> list[Point]:
    """The scorable rows of one file. ``windows`` are inclusive row ranges, in order."""
    n = len(scores)
    skip = probation(n)
    max_tp = scaled_sigmoid(-1.0)
    inside = [-1] * n
    width = [0.0] * n
    right = [0] * n
    for k, (lo, hi) in enumerate(windows):
        for i in range(lo, hi + 1):
            inside[i] = first_id + k
            width[i] = float(hi - lo + 1)
            right[i] = hi
    out: list[Point] = []
    prev_right: int | None = None
    prev_width = 0.0
    for i in range(n):
        if inside[i] >= 0:
            reward = scaled_sigmoid(-(right[i] - i + 1) / width[i]) / max_tp
        elif prev_right is None:
            reward = -1.0
        else:
            reward = scaled_sigmoid(abs(prev_right - i) / max(prev_width - 1.0, 1.0))
        if i >= skip:
            out.append(Point(scores[i], inside[i], reward))
        if inside[i] >= 0 and i == right[i]:
            prev_right, prev_width = i, width[i]
    return out


@dataclass(frozen=True, slots=True)
class NabResult:
    score: float  # normalised: null 0, perfect 100
    raw: float
    threshold: float
    detected: int  # windows with a detection
    windows: int
    false_rows: int  # flagged rows outside every window


def nab_at(pts: Sequence[Point], threshold: float, profile: Profile) -> NabResult:
    """NAB score of the rows whose score is at least ``threshold``."""
    best: dict[int, float] = {}
    windows = {p.window for p in pts if p.window >= 0}
    fp_sum = 0.0
    false_rows = 0
    for p in pts:
        if p.score < threshold:
            continue
        if p.window >= 0:
            best[p.window] = max(best.get(p.window, -math.inf), p.reward * profile.tp)
        else:
            fp_sum += p.reward * profile.fp
            false_rows += 1
    raw = fp_sum + sum(best.values()) - profile.fn * (len(windows) - len(best))
    return NabResult(
        _normalise(raw, len(windows), profile), raw, threshold, len(best), len(windows), false_rows
    )


def nab_best(pts: Sequence[Point], profile: Profile) -> NabResult:
    """The best NAB score over every threshold (NAB's own protocol: one threshold per
    detector and profile, chosen on the whole corpus)."""
    ranked = sorted(pts, key=lambda p: -p.score)
    windows = {p.window for p in pts if p.window >= 0}
    best: dict[int, float] = {}
    total = -profile.fn * len(windows)
    fp_sum = 0.0
    false_rows = 0
    top = NabResult(_normalise(total, len(windows), profile), total, math.inf, 0, len(windows), 0)
    i = 0
    while i < len(ranked):
        threshold = ranked[i].score
        while i < len(ranked) and ranked[i].score == threshold:
            p = ranked[i]
            if p.window >= 0:
                old = best.get(p.window)
                new = p.reward * profile.tp
                if old is None:
                    total += new + profile.fn
                    best[p.window] = new
                elif new > old:
                    total += new - old
                    best[p.window] = new
            else:
                fp_sum += p.reward * profile.fp
                total += p.reward * profile.fp
                false_rows += 1
            i += 1
        if total > top.raw + 1e-12:
            top = NabResult(
                _normalise(total, len(windows), profile),
                total,
                threshold,
                len(best),
                len(windows),
                false_rows,
            )
    return top


def _normalise(raw: float, windows: int, profile: Profile) -> float:
    null = -profile.fn * windows
    perfect = profile.tp * windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs of ``True`` as inclusive ``(first, last)`` row ranges."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(flags) - 1))
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)


@dataclass
class RangeCounts:
    """Sums of per-range precision and recall, so files can be pooled."""

    precision_sum: float = 0.0
    predicted: int = 0
    recall_sum: float = 0.0
    real: int = 0

    def add(self, real: Sequence[tuple[int, int]], predicted: Sequence[tuple[int, int]]) -> None:
        for r in real:
            hits = [p for p in predicted if _overlap(r, p)]
            self.real += 1
            if not hits:
                continue
            share = sum(_overlap(r, p) for p in hits) / (r[1] - r[0] + 1)
            cardinality = 1.0 / len(hits)
            self.recall_sum += RECALL_ALPHA + (1 - RECALL_ALPHA) * share * cardinality
        for p in predicted:
            hits = [r for r in real if _overlap(r, p)]
            self.predicted += 1
            if not hits:
                continue
            share = sum(_overlap(r, p) for r in hits) / (p[1] - p[0] + 1)
            self.precision_sum += share / len(hits)

    @property
    def precision(self) -> float:
        return self.precision_sum / self.predicted if self.predicted else math.nan

    @property
    def recall(self) -> float:
        return self.recall_sum / self.real if self.real else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if math.isnan(p) or math.isnan(r) or p + r == 0:
            return 0.0
        return 2 * p * r / (p + r)
