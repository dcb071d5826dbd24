"""Detection quality of ``streams.detect`` on the labelled synthetic scenarios.

    .venv/bin/python -m bench.detect_quality.run [--seed N] [--markdown]

Replays every scenario minute by minute through one :class:`SpikeMonitor` per scenario, the
way the worker drives it (buckets of the minute, then ``close_idle`` at the minute's end), and
prints per scenario and overall: precision, recall, detection delay (minutes from the onset
minute to the close of the minute that fired), false alerts per service-day.

Matching: a firing alert matches a positive truth of the same service and kind when its
episode starts within [truth start - 2, truth end + 1]. Any other firing alert is false
(including alerts on negative truths: one-minute spikes, cents). Alerts whose episode starts
in a scenario's learning period are listed apart and not scored.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from bench.detect_quality import reference
from bench.detect_quality.scenarios import DAY, Scenario, Truth, generate_all
from schemas.alerts import Alert
from schemas.events import parse_ts
from streams.detect import DetectSettings, SpikeMonitor, minute_index, minute_start

MATCH_BEFORE = 2
MATCH_AFTER = 1


@dataclass
class Fired:
    service: str
    kind: str
    start: int
    fired: int
    alert: Alert | None


@dataclass
class Score:
    name: str
    service_days: float = 0.0
    positives: int = 0
    detected: int = 0
    alerts: int = 0
    true_alerts: int = 0
    false_alerts: int = 0
    learning_alerts: int = 0
    resolved: int = 0
    delays: list[int] = field(default_factory=list)
    runaways: int = 0  # injected runaways >= 3x for >= 2 min (scored)
    runaway_delays: list[int] = field(default_factory=list)  # ... of those detected
    missed: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)
    buckets: int = 0
    seconds: float = 0.0


def replay(sc: Scenario, settings: DetectSettings) -> tuple[list[Fired], int, float]:
    """Drive a monitor like the worker does; return firing alerts, resolves and CPU time."""
    monitor = SpikeMonitor(settings)
    fired: list[Fired] = []
    resolved = 0
    by_minute: dict[int, list] = defaultdict(list)
    for b in sc.buckets:
        by_minute[b.index].append(b)
    t = time.perf_counter()
    for m in range(sc.start, sc.start + sc.minutes):
        alerts: list[Alert] = []
        for bucket in by_minute.get(m, ()):
            alerts += monitor.observe(bucket)
        alerts += monitor.close_idle(minute_start(m + 1))
        for a in alerts:
            if a.status == "resolved":
                resolved += 1
                continue
            start = minute_index(parse_ts(a.figures["episode_start"]))
            fired.append(Fired(a.labels["service"], a.kind, start, m, a))
    return fired, resolved, time.perf_counter() - t


def score(sc: Scenario, fired: list[Fired], resolved: int, seconds: float) -> Score:
    s = Score(sc.name, buckets=len(sc.buckets), seconds=seconds, resolved=resolved)
    scored_minutes = sc.start + sc.minutes - sc.warmup_until
    s.service_days = len(sc.services) * scored_minutes / DAY
    positives = [t for t in sc.truths if t.positive and t.start >= sc.warmup_until]
    s.positives = len(positives)
    used: set[int] = set()
    for truth in positives:
        big_runaway = (
            truth.label == "runaway" and truth.factor >= 3 and truth.end - truth.start + 1 >= 2
        )
        s.runaways += big_runaway
        hits = [(i, f) for i, f in enumerate(fired) if _matches(f, truth)]
        if not hits:
            s.missed.append(f"{truth.label} at {_hhmm(truth.start)} x{truth.factor:g}")
            continue
        s.detected += 1
        first = min(f.fired for _, f in hits)
        delay = first - truth.start + 1
        s.delays.append(delay)
        if big_runaway:
            s.runaway_delays.append(delay)
        used.update(i for i, _ in hits)
    for i, f in enumerate(fired):
        if f.start < sc.warmup_until:
            s.learning_alerts += 1
            continue
        s.alerts += 1
        if i in used:
            s.true_alerts += 1
        else:
            s.false_alerts += 1
            title = f.alert.title if f.alert else "|z| >= 3"
            s.false.append(f"{f.kind} {f.service} at {_hhmm(f.start)}: {title}")
    return s


REFERENCE_WINDOWS = (60, 1440)  # the detector's own trailing hour; a day


def replay_reference(sc: Scenario, window: int) -> list[Fired]:
    """The rolling z-score on each service's spend per minute (0 for a minute without calls):
    an alert wherever a run of ``|z| >= 3`` minutes begins."""
    fired: list[Fired] = []
    for service in sc.services:
        spend = np.zeros(sc.minutes)
        for b in sc.buckets:
            if b.service == service:
                spend[b.index - sc.start] = b.spend_nusd / 1e9
        _, flags = reference.score(spend.tolist(), window)
        for i, flag in enumerate(flags):
            if flag and (i == 0 or not flags[i - 1]):
                fired.append(Fired(service, "spike", sc.start + i, sc.start + i, None))
    return fired


def speed_10k() -> str:
    """Offline scoring of a 10,000-row minute series (daily cycle, noise, three runaways):
    ``detect_grid`` against the reference on the same values, in the same run."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from streams.detect.exports import Grid
    from streams.detect.offline import detect_grid

    rng = np.random.default_rng(11)
    n = 10_000
    tod = np.arange(n) % DAY
    usd = 0.5 + 1.5 * (0.5 + 0.5 * np.cos(2 * np.pi * (tod - 900) / DAY))
    usd *= rng.gamma(8.0, 1 / 8.0, n)
    for start in (2000, 5200, 8800):
        usd[start : start + 10] *= 3
    values: list[Decimal | None] = [Decimal(f"{v:.6f}") for v in usd]
    grid = Grid(60, datetime(2025, 3, 3, tzinfo=UTC), values, list(range(n)), 0)
    t = time.perf_counter()
    result = detect_grid(grid)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    reference.score(usd.tolist(), 60)
    ref = time.perf_counter() - t
    return (
        f"offline: a {n:,}-row series scored in {ours:.2f} s ({1e6 * ours / n:.0f} us/row, "
        f"{len(result.episodes)} episodes); the reference z-score on the same rows "
        f"{ref * 1000:.0f} ms (x{ours / ref:.0f})"
    )


def _matches(f: Fired, truth: Truth) -> bool:
    return (
        f.service == truth.service
        and f.kind == truth.kind
        and truth.start - MATCH_BEFORE <= f.start <= truth.end + MATCH_AFTER
    )


def _hhmm(minute: int) -> str:
    return minute_start(minute).strftime("%a %H:%M")


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def table(scores: list[Score]) -> list[str]:
    head = (
        "| scenario | service-days | positives | detected | recall | alerts | false | "
        "precision | false/service-day | delay min (mean/max) | learning alerts |"
    )
    lines = [head, "|" + "---|" * 11]
    for s in [*scores, _total(scores)]:
        delay = f"{np.mean(s.delays):.1f} / {max(s.delays)}" if s.delays else "-"
        lines.append(
            f"| {s.name} | {s.service_days:.1f} | {s.positives} | {s.detected} | "
            f"{_ratio(s.detected, s.positives)} | {s.alerts} | {s.false_alerts} | "
            f"{_ratio(s.true_alerts, s.alerts)} | {s.false_alerts / s.service_days:.2f} | "
            f"{delay} | {s.learning_alerts} |"
        )
    return lines


def _total(scores: list[Score]) -> Score:
    t = Score("**overall**")
    for s in scores:
        t.service_days += s.service_days
        t.positives += s.positives
        t.detected += s.detected
        t.alerts += s.alerts
        t.true_alerts += s.true_alerts
        t.false_alerts += s.false_alerts
        t.learning_alerts += s.learning_alerts
        t.delays += s.delays
        t.runaway_delays += s.runaway_delays
        t.runaways += s.runaways
        t.buckets += s.buckets
        t.seconds += s.seconds
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20250303)
    parser.add_argument("--verbose", action="store_true", help="list misses and false alerts")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    scenarios = generate_all(args.seed)
    gen_s = time.perf_counter() - t0
    settings = DetectSettings()
    fired_by: dict[str, list[Fired]] = {}
    scores = []
    for sc in scenarios:
        fired, resolved, seconds = replay(sc, settings)
        fired_by[sc.name] = fired
        scores.append(score(sc, fired, resolved, seconds))
    total = _total(scores)
    print(f"# detect quality: seed {args.seed}, default DetectSettings")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python "
        f"{platform.python_version()} numpy {np.__version__}, {_cpus()} CPUs"
    )
    print()
    print("\n".join(table(scores)))
    print()
    for label, group in (
        ("all scenarios", scores),
        ("excluding runaway_heavy_tail", [s for s in scores if s.name != "runaway_heavy_tail"]),
    ):
        rd = [d for s in group for d in s.runaway_delays]
        print(
            f"runaways >= 3x for >= 2 min ({label}): {sum(s.runaways for s in group)}, "
            f"caught {len(rd)}, within 2 min {sum(d <= 2 for d in rd)}, "
            f"max delay {max(rd) if rd else '-'} min"
        )
    clean = [s for s in scores if s.positives == 0]
    clean_days = sum(s.service_days for s in clean)
    clean_false = sum(s.false_alerts for s in clean)
    print(
        f"clean-traffic scenarios: {clean_false} false alerts over {clean_days:.1f} "
        f"service-days = {clean_false / clean_days:.2f} per service-day"
    )
    print(
        f"speed: {total.buckets} buckets in {total.seconds:.1f} s "
        f"({1e6 * total.seconds / max(total.buckets, 1):.0f} us/bucket incl. close_idle), "
        f"generation {gen_s:.1f} s, total {time.perf_counter() - t0:.1f} s"
    )
    print(speed_10k())
    print()
    print("reference: rolling z-score on spend per minute, an alert where |z| >= 3 begins")
    print("| window | runaways >= 3x caught / within 2 min | spike positives caught | "
          "false alerts | clean traffic, false per service-day |")  # fmt: skip
    print("|---|---|---|---|---|")
    spike_total = sum(
        1 for sc in scenarios for t in sc.truths
        if t.positive and t.kind == "spike" and t.start >= sc.warmup_until
    )  # fmt: skip
    ours_spikes = sum(
        1 for sc in scenarios for t in sc.truths
        if t.positive and t.kind == "spike" and t.start >= sc.warmup_until
        and any(_matches(f, t) for f in fired_by[sc.name])
    )  # fmt: skip
    rd = [d for s in scores for d in s.runaway_delays]
    print(
        f"| spendwatch | {len(rd)}/{total.runaways} / {sum(d <= 2 for d in rd)} | "
        f"{ours_spikes}/{spike_total} | {total.false_alerts} | "
        f"{clean_false / clean_days:.2f} |"
    )
    for window in REFERENCE_WINDOWS:
        ref_scores = [score(sc, replay_reference(sc, window), 0, 0.0) for sc in scenarios]
        ref_total = _total(ref_scores)
        ref_rd = [d for s in ref_scores for d in s.runaway_delays]
        ref_clean = sum(s.false_alerts for s in ref_scores if s.positives == 0)
        ref_spikes = ref_total.detected  # the reference only ever matches spike truths
        print(
            f"| z-score w={window} | {len(ref_rd)}/{ref_total.runaways} / "
            f"{sum(d <= 2 for d in ref_rd)} | {ref_spikes}/{spike_total} | "
            f"{ref_total.false_alerts} | {ref_clean / clean_days:.2f} |"
        )
    if args.verbose:
        for s in scores:
            for line in s.missed:
                print(f"MISSED  {s.name}: {line}")
            for line in s.false:
                print(f"FALSE   {s.name}: {line}")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
