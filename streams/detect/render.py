"""Detector episodes -> :class:`schemas.alerts.Alert` records (titles, figures, contributors).

Figures are display strings: money as decimal USD strings with nine places (``"0.050000000"``),
ratios and rates as short decimals. Statistics are float64 over nano-USD counts; they are
rounded to whole nano-USD before they become money strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from schemas.alerts import Alert, Contributor, Severity, alert_id_for
from schemas.money import NANO_PER_USD, format_usd, nusd_to_usd
from streams.detect.bucket import MINUTE, MinuteBucket, minute_start

Resolution = Literal["returned_to_baseline", "baseline_adapted", "expired"]

_RESOLUTION_TEXT: dict[str, str] = {
    "returned_to_baseline": "back to its baseline",
    "baseline_adapted": "accepted as the new baseline after persisting",
    "expired": "no data for the whole history window; detector state dropped",
}


def episode_id(kind: str, service: str, series: str, start: int) -> str:
    """``alert_id_for(kind, service, series, episode_start_iso)``: replays give the same id."""
    return alert_id_for(kind, service, series, minute_start(start).isoformat())


def usd(nusd: float) -> str:
    """Nano-USD (possibly a float statistic) as an exact USD decimal string, 9 places."""
    return str(nusd_to_usd(round(nusd)))


def money_text(nusd: float) -> str:
    """Human money for titles: 2 places from $1, else 4 (``$0.0500``)."""
    value = round(nusd)
    return format_usd(value, 2 if abs(value) >= NANO_PER_USD else 4)


def dec(value: float, places: int) -> str:
    """A float statistic as a fixed-point decimal string (``"3.25"``); ``"inf"`` if unbounded."""
    if math.isinf(value) or math.isnan(value):
        return "inf" if value > 0 else "n/a"
    q = Decimal(1).scaleb(-places)
    return str(Decimal(repr(float(value))).quantize(q, rounding=ROUND_HALF_EVEN))


def share(part: int, whole: int) -> str:
    if whole <= 0:
        return ""
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def top_contributors(
    buckets: Iterable[MinuteBucket], limit: int, *, errors: bool = False
) -> tuple[Contributor, ...]:
    """Top models and tags by spend (or error types by count when ``errors``) over ``buckets``."""
    buckets = list(buckets)
    out: list[Contributor] = []
    if errors:
        counts = _sum_maps(b.errors_by_type for b in buckets)
        total = sum(counts.values())
        for name, n in _top(counts, limit):
            out.append(Contributor("error_type", name, 0, share(n, total)))
        return tuple(out)
    total = sum(b.spend_nusd for b in buckets)
    for name, cost in _top(_sum_maps(b.by_model for b in buckets), limit):
        out.append(Contributor("model", name, cost, share(cost, total)))
    by_key: dict[str, dict[str, int]] = {}
    for tag, cost in _sum_maps(b.by_tag for b in buckets).items():
        key, _, value = tag.partition(":")
        by_key.setdefault(key, {})[value] = cost
    for key in sorted(by_key):
        for name, cost in _top(by_key[key], limit):
            out.append(Contributor(f"tag:{key}", name, cost, share(cost, total)))
    return tuple(out)


def _sum_maps(maps: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in maps:
        for k, v in m.items():
            total[k] = total.get(k, 0) + v
    return total


def _top(counts: Mapping[str, int], limit: int) -> list[tuple[str, int]]:
    ranked = sorted(((v, k) for k, v in counts.items() if v > 0), key=lambda t: (-t[0], t[1]))
    return [(k, v) for v, k in ranked[:limit]]


@dataclass(slots=True)
class EpisodeStats:
    """Running figures of one episode, for the fire and resolve notices."""

    start: int
    minutes: int = 0  # anomalous minutes
    peak: float = 0.0  # largest observed value
    peak_ratio: float = 0.0
    excess: float = 0.0  # sum of (observed - baseline) over anomalous minutes
    total: float = 0.0  # sum of observed over anomalous minutes
    extra: dict[str, str] = field(default_factory=dict)

    def add(self, observed: float, baseline: float) -> None:
        self.minutes += 1
        self.total += observed
        self.peak = max(self.peak, observed)
        ratio = observed / baseline if baseline > 0 else math.inf
        self.peak_ratio = max(self.peak_ratio, ratio)
        self.excess += max(observed - max(baseline, 0.0), 0.0)


def resolved(
    fired: Alert,
    *,
    minute: int,
    stats: EpisodeStats | None,
    reason: Resolution,
    figures: Mapping[str, str],
) -> Alert:
    """The resolved notice of ``fired``: same id, status ``resolved``, at the end of ``minute``."""
    episode_min = minute - (stats.start if stats else minute) + 1
    figs = {**fired.figures, **figures, "resolution": reason, "episode_minutes": str(episode_min)}
    if stats is not None and fired.labels.get("detector") == "spike":
        figs["excess_usd"] = usd(stats.excess)
        figs["peak_ratio"] = dec(stats.peak_ratio, 2)
    return replace(
        fired,
        status="resolved",
        fired_at=minute_start(minute) + MINUTE,
        title=f"Resolved: {fired.title}",
        summary=f"{fired.labels.get('service', '')}: {_RESOLUTION_TEXT[reason]} "
        f"({episode_min} min since the episode began).",
        figures=figs,
    )


def spike_alert(
    *,
    service: str,
    start: int,
    minute: int,
    window: list[MinuteBucket] | None,
    levels: Mapping[str, float],
    cause: str,
    severity: Severity,
    max_contributors: int,
    stats: EpisodeStats | None = None,
) -> Alert:
    """Firing spend-spike alert; ``window`` is the buckets of the anomalous minutes so far
    (``None`` for a spend-only series, whose figures come from ``stats``), ``levels`` the
    baselines per minute (spend nano-USD, requests, tokens, share of calls on expensive
    models)."""
    if window is None:
        n = max(stats.minutes if stats else 1, 1)
        window = []
        spend = (stats.total if stats else 0.0) / n
    else:
        n = max(len(window), 1)
        spend = sum(b.spend_nusd for b in window) / n
    requests = sum(b.requests for b in window) / n
    tokens = sum(b.tokens for b in window) / n
    total_spend = sum(b.spend_nusd for b in window)
    expensive = sum(b.expensive_spend_nusd for b in window)
    mix = expensive / total_spend if total_spend else 0.0
    total_calls = sum(b.requests for b in window)
    call_mix = sum(b.expensive_requests for b in window) / total_calls if total_calls else 0.0
    base = levels["spend"]
    ratio = spend / base if base > 0 else math.inf
    figures = {
        "metric": "spend",
        "unit": "usd_per_min",
        "observed": usd(spend),
        "baseline": usd(base),
        "ratio": dec(ratio, 2),
        "excess_usd": usd(max(spend - base, 0.0) * n),
        "episode_start": minute_start(start).isoformat(),
        "window_minutes": str(n),
        "requests_per_min": dec(requests, 1),
        "requests_baseline": dec(levels["requests"], 1),
        "tokens_per_min": dec(tokens, 0),
        "tokens_baseline": dec(levels["tokens"], 0),
        "expensive_spend_share": dec(mix, 2),
        "expensive_call_share": dec(call_mix, 2),
        "expensive_call_share_baseline": dec(levels["expensive_call_share"], 2),
    }
    contributors = top_contributors(window, max_contributors)
    top = ", ".join(f"{c.dimension} {c.name} {c.share}" for c in contributors[:2])
    return Alert(
        alert_id=episode_id("spike", service, "spend", start),
        kind="spike",
        severity=severity,
        title=f"{service}: spend {money_text(spend)}/min with no baseline yet"
        if math.isinf(ratio)
        else f"{service}: spend {ratio:.1f}x baseline "
        f"({money_text(spend)}/min vs {money_text(base)}/min)",
        summary=f"{service} spent {money_text(spend)}/min over the last {n} min against a "
        f"baseline of {money_text(base)}/min; requests {requests:.0f}/min "
        f"(usually {levels['requests']:.0f}), calls on expensive models {call_mix:.0%} "
        f"(usually {levels['expensive_call_share']:.0%}, {mix:.0%} of spend). Likely cause: "
        f"{cause.replace('_', ' ')}." + (f" Top: {top}." if top else ""),
        fired_at=minute_start(minute) + MINUTE,
        labels={"service": service, "metric": "spend", "detector": "spike", "cause": cause},
        figures=figures,
        contributors=contributors,
    )


def error_rate_alert(
    *,
    service: str,
    provider: str,
    start: int,
    minute: int,
    window: list[MinuteBucket],
    errors: int,
    requests: int,
    baseline: float,
    outage: bool,
    max_contributors: int,
) -> Alert:
    """Firing error-rate (or outage) alert for ``service`` via ``provider`` ("" = any)."""
    rate = errors / requests if requests else 0.0
    series = f"error_rate:{provider}" if provider else "error_rate"
    via = f" via {provider}" if provider else ""
    what = "outage" if outage else "error-rate spike"
    labels = {"service": service, "metric": "error_rate", "detector": "error_rate"}
    if provider:
        labels["provider"] = provider
    base_text = "unknown" if math.isnan(baseline) else f"{baseline:.1%}"
    return Alert(
        alert_id=episode_id("failure", service, series, start),
        kind="failure",
        severity="critical" if outage else "warning",
        title=f"{service}: {what}{via}, {rate:.0%} of calls failing (baseline {base_text})",
        summary=f"{errors} of {requests} calls from {service}{via} failed over the last "
        f"{len(window)} min ({rate:.1%}); the usual error rate is {base_text}.",
        fired_at=minute_start(minute) + MINUTE,
        labels=labels,
        figures={
            "metric": "error_rate",
            "unit": "fraction",
            "observed": share(errors, requests) or "0",
            "baseline": "n/a" if math.isnan(baseline) else dec(baseline, 4),
            "errors": str(errors),
            "requests": str(requests),
            "episode_start": minute_start(start).isoformat(),
            "window_minutes": str(len(window)),
        },
        contributors=top_contributors(window, max_contributors, errors=True),
    )


def spend_drop_alert(
    *, service: str, start: int, minute: int, observed: float, baseline: float
) -> Alert:
    """Firing spend-drop alert: ``service`` has spent about ``observed`` a minute (median of
    the last minutes, nano-USD) since ``start`` against its usual ``baseline``."""
    ratio = observed / baseline if baseline > 0 else 0.0
    return Alert(
        alert_id=episode_id("failure", service, "spend_drop", start),
        kind="failure",
        severity="warning",
        title=f"{service}: spend fell to {ratio:.0%} of its baseline "
        f"({money_text(observed)}/min vs {money_text(baseline)}/min)",
        summary=f"{service} has spent about {money_text(observed)}/min since "
        f"{minute_start(start).strftime('%Y-%m-%d %H:%M UTC')}, against a usual "
        f"{money_text(baseline)}/min at this time: a part of it may be failing quietly "
        "(calls erroring out early, an agent or a job that stopped).",
        fired_at=minute_start(minute) + MINUTE,
        labels={"service": service, "metric": "spend", "detector": "spend_drop"},
        figures={
            "metric": "spend",
            "unit": "usd_per_min",
            "observed": usd(observed),
            "baseline": usd(baseline),
            "ratio": dec(ratio, 2),
            "episode_start": minute_start(start).isoformat(),
        },
    )


def drop_alert(*, service: str, start: int, minute: int, baseline: float) -> Alert:
    """Firing traffic-drop alert: a busy ``service`` sent nothing since minute ``start``."""
    silent = minute - start + 1
    return Alert(
        alert_id=episode_id("failure", service, "traffic", start),
        kind="failure",
        severity="critical",
        title=f"{service}: traffic stopped, no calls for {silent} min (usually {baseline:.0f}/min)",
        summary=f"{service} usually makes {baseline:.1f} calls a minute and has sent none since "
        f"{minute_start(start).strftime('%Y-%m-%d %H:%M UTC')}: the app, its SDK hook or the "
        "pipeline in front of spendwatch may be down.",
        fired_at=minute_start(minute) + MINUTE,
        labels={"service": service, "metric": "requests", "detector": "traffic_drop"},
        figures={
            "metric": "requests",
            "unit": "requests_per_min",
            "observed": "0",
            "baseline": dec(baseline, 1),
            "silent_since": minute_start(start).isoformat(),
            "episode_start": minute_start(start).isoformat(),
        },
    )
