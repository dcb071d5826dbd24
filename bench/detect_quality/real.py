"""Detection quality on real recorded series: the Numenta Anomaly Benchmark (NAB) corpus.

    .venv/bin/python -m bench.detect_quality.real [--nab DIR] [--verbose]

The 47 real series of NAB (``realAWSCloudwatch``, ``realAdExchange``,
``realKnownCause``, ``realTraffic``, ``realTweets``; 321k rows; server metrics, ad-exchange
prices, taxi demand, road sensors, tweet volumes) with their labelled anomaly windows
(``labels/combined_windows.json``). MIT licence (``LICENSE.txt`` of the NAB repository,
Numenta 2014-2024). Not shipped with spendwatch: get it with
``git clone https://github.com/numenta/NAB`` and pass ``--nab NAB`` (or set
``SPENDWATCH_NAB_DIR``). When it is absent this script says so and exits 0, so ``make
bench`` still runs everywhere.

Each file goes through exactly what ``spendwatch detect FILE --kind gauge`` runs (the same
reader: naive timestamps, repeated and unordered rows, irregular spacing; the same detector,
default settings), and through the reference rolling z-score (``reference.py``) on the same
rows. Scored per dataset with the NAB score (standard profile) and range-based precision /
recall (``measures.py``):

* *default*: each detector's own alert rule -- spendwatch's ``alert`` column (episodes that
  fired, ``sensitivity = 0.5``), the reference's ``|z| >= 3``;
* *best threshold*: NAB's own protocol -- one threshold per detector on the graded score,
  the one that scores best over the whole corpus.

Every figure is also given for two halves: the files of odd index (the half the detector's
changes were chosen on) and those of even index (held out), plus the held-out half scored at
the threshold that was best on the tune half.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.detect_quality import measures, reference
from streams.detect.exports import parse_rows, to_grid
from streams.detect.offline import detect_grid
from streams.detect.settings import DetectSettings

DEFAULT_DIRS = ("/work/shared/data/nab",)
CATEGORIES = (
    "realAWSCloudwatch",
    "realAdExchange",
    "realKnownCause",
    "realTraffic",
    "realTweets",
)
REFERENCE_WINDOWS = (100, 288, 1000, 6400)  # rows; 288 = a day of 5-minute rows
# The split the detector was tuned on: files of odd index (in the order ``load`` returns them)
# were looked at while choosing changes; those of even index are held out and reported apart.
TUNE = "tune half (odd files)"
HELD_OUT = "held-out half (even files)"


def find_nab(explicit: str | None) -> Path | None:
    for candidate in (explicit, os.environ.get("SPENDWATCH_NAB_DIR"), *DEFAULT_DIRS):
        if candidate and (Path(candidate) / "labels" / "combined_windows.json").exists():
            return Path(candidate)
    return None


@dataclass
class Series:
    name: str
    category: str
    values: list[float]
    windows: list[tuple[int, int]]  # inclusive row ranges
    lines: list[str] = field(repr=False, default_factory=list)


def load(nab: Path) -> list[Series]:
    labels = json.loads((nab / "labels" / "combined_windows.json").read_text())
    out: list[Series] = []
    for category in CATEGORIES:
        for path in sorted((nab / "data" / category).glob("*.csv")):
            key = f"{category}/{path.name}"
            lines = path.read_text().splitlines()
            stamps = [line.split(",")[0] for line in lines[1:]]
            index = {datetime.fromisoformat(t): i for i, t in enumerate(stamps)}
            windows = []
            for lo, hi in labels[key]:
                a, b = index[datetime.fromisoformat(lo)], index[datetime.fromisoformat(hi)]
                windows.append((a, b))
            values = [float(line.split(",")[1]) for line in lines[1:]]
            out.append(Series(key, category, values, windows, lines))
    return out


@dataclass
class Run:
    """One detector's output on one series: graded score, sweep key, default flags and the
    rows where an alert would page someone (an episode fires; a run of flags begins)."""

    scores: list[float]
    sweep: list[float]  # what the best-threshold sweep sorts by (monotone in the score)
    flags: list[bool]
    pages: list[bool]
    seconds: float


def onsets(flags: list[bool]) -> list[bool]:
    return [f and (i == 0 or not flags[i - 1]) for i, f in enumerate(flags)]


def run_spendwatch(series: Series, settings: DetectSettings) -> Run:
    t = time.perf_counter()
    rows = parse_rows(series.lines)
    grid = to_grid(rows, "gauge")
    result = detect_grid(grid, settings, kind="gauge")
    scores = [result.scores[k] for k in grid.row_steps]
    flags = [bool(result.alerts[k]) for k in grid.row_steps]
    fired = {e.fired for e in result.episodes}
    seen: set[int] = set()
    pages = []
    for k in grid.row_steps:  # the first row of the step an episode fired in
        pages.append(k in fired and k not in seen)
        seen.add(k)
    return Run(scores, scores, flags, pages, time.perf_counter() - t)


def run_reference(series: Series, window: int) -> Run:
    t = time.perf_counter()
    z = reference.zscores(series.values, window)
    absz = [0.0 if v != v else abs(v) for v in z.tolist()]
    scores, flags = reference.score(series.values, window)
    return Run(scores, absz, flags, onsets(flags), time.perf_counter() - t)


@dataclass
class Tally:
    points: list[measures.Point] = field(default_factory=list)
    default_points: list[measures.Point] = field(default_factory=list)
    page_points: list[measures.Point] = field(default_factory=list)
    ranges: measures.RangeCounts = field(default_factory=measures.RangeCounts)
    seconds: float = 0.0
    rows: int = 0


def tally(series: Series, run: Run, tally: Tally, first_id: int) -> None:
    tally.points += measures.points(run.sweep, series.windows, first_id)
    tally.default_points += measures.points(
        [1.0 if f else 0.0 for f in run.flags], series.windows, first_id
    )
    tally.page_points += measures.points(
        [1.0 if f else 0.0 for f in run.pages], series.windows, first_id
    )
    skip = measures.probation(len(run.flags))
    flags = [f and i >= skip for i, f in enumerate(run.flags)]
    real = [w for w in series.windows if w[1] >= skip]
    tally.ranges.add(real, measures.runs(flags))
    tally.seconds += run.seconds
    tally.rows += len(run.flags)


def table(results: dict[str, dict[str, Tally]], names: list[str]) -> list[str]:
    std = measures.PROFILES["standard"]
    head = (
        "| dataset | series / windows | detector | NAB, pages | NAB, flagged rows | "
        "NAB, best threshold | windows paged | false pages | range P | range R | range F1 |"
    )
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for dataset in [*CATEGORIES, "all real", TUNE, HELD_OUT]:
        for name in names:
            t = results[dataset][name]
            d = measures.nab_at(t.default_points, 0.5, std)
            p = measures.nab_at(t.page_points, 0.5, std)
            b = measures.nab_best(t.points, std)
            r = t.ranges
            windows = len({p.window for p in t.points if p.window >= 0})
            count = results[dataset]["_series"].rows
            lines.append(
                f"| {dataset} | {count} / {windows} | {name} | {p.score:.1f} | {d.score:.1f} | "
                f"{b.score:.1f} | {p.detected} | {p.false_rows} | "
                f"{r.precision:.2f} | {r.recall:.2f} | {r.f1:.2f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", default=None, help="NAB checkout (data/ and labels/)")
    parser.add_argument("--verbose", action="store_true", help="per-series NAB scores")
    args = parser.parse_args(argv)
    nab = find_nab(args.nab)
    if nab is None:
        print(
            "SKIPPED real-data benchmark: NAB not found (tried --nab, $SPENDWATCH_NAB_DIR, "
            f"{', '.join(DEFAULT_DIRS)}). Get it: git clone https://github.com/numenta/NAB "
            "&& SPENDWATCH_NAB_DIR=NAB .venv/bin/python -m bench.detect_quality.real",
            file=sys.stderr,
        )
        return 0
    t0 = time.perf_counter()
    corpus = load(nab)
    settings = DetectSettings()
    names = ["spendwatch", *(f"z-score w={w}" for w in REFERENCE_WINDOWS)]
    results: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    per_series: list[str] = []
    for i, series in enumerate(corpus):
        runs = {"spendwatch": run_spendwatch(series, settings)}
        for w in REFERENCE_WINDOWS:
            runs[f"z-score w={w}"] = run_reference(series, w)
        half = TUNE if i % 2 else HELD_OUT
        for dataset in (series.category, "all real", half):
            results[dataset]["_series"].rows += 1
            for name, run in runs.items():
                tally(series, run, results[dataset][name], first_id=i * 100)
        if args.verbose:
            std = measures.PROFILES["standard"]
            parts = []
            for name, run in runs.items():
                pts = measures.points([1.0 if f else 0.0 for f in run.flags], series.windows, 0)
                parts.append(f"{name} {measures.nab_at(pts, 0.5, std).score:.1f}")
            per_series.append(f"{series.name}: " + ", ".join(parts))
    print(f"NAB real series from {nab} ({len(corpus)} files)")
    print(
        f"machine: {platform.machine()}  python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs\n"
    )
    for line in table(results, names):
        print(line)
    print(
        "\nHeld out at the tune half's threshold (each detector's best threshold on the odd "
        "files, applied to the even ones):\n"
    )
    print("| detector | threshold (tune half) | NAB, tune half | NAB, held-out half |")
    print("|---|---:|---:|---:|")
    std = measures.PROFILES["standard"]
    for name in names:
        tuned = measures.nab_best(results[TUNE][name].points, std)
        held = measures.nab_at(results[HELD_OUT][name].points, tuned.threshold, std)
        print(f"| {name} | {tuned.threshold:.3g} | {tuned.score:.1f} | {held.score:.1f} |")
    sw = results["all real"]["spendwatch"]
    print(
        f"\nspendwatch: {sw.rows} rows in {sw.seconds:.1f} s ({1e6 * sw.seconds / sw.rows:.0f} "
        f"us/row incl. reading and resampling); total {time.perf_counter() - t0:.1f} s"
    )
    for line in per_series:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
