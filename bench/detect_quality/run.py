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
    alert: Alert


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
            s.false.append(f"{f.kind} {f.service} at {_hhmm(f.start)}: {f.alert.title}")
    return s


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
    scores = [score(sc, *replay(sc, settings)) for sc in scenarios]
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
