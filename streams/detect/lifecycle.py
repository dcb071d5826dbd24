"""The alert lifecycle: confirm, fire once, resolve with hysteresis; what each step does to
the baselines and which alerts it sends.

``Episode`` is the state machine of one detector on one series: ``idle -> pending`` on an
anomalous minute; ``pending -> firing`` after ``confirm`` consecutive anomalous minutes (the
alert fires once); a normal minute while pending drops back to idle; ``firing -> idle`` after
``resolve`` consecutive normal minutes (the alert resolves). A minute without evidence
(``None``: e.g. no requests, so no error rate; a missing reading) changes nothing.

The ``*_step`` functions advance one detector of one service by one minute: they keep the
episode's running figures, take the minutes of a *confirmed* episode out of the baselines
(excluding every single exceedance would truncate the noise distribution and breed more
exceedances), absorb a spike or a fall still going after ``relearn_after_min`` as the new
baseline, and render the firing and resolved alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from schemas.alerts import Alert, Severity
from streams.detect import render
from streams.detect.baseline import SPEND

if TYPE_CHECKING:
    from streams.detect.settings import DetectSettings
    from streams.detect.state import Open, RateSeries, ServiceState

Transition = Literal["fire", "resolve"]


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    """A transition: ``start`` is the first anomalous minute (the episode's identity)."""

    kind: Transition
    start: int
    minute: int


@dataclass(slots=True)
class Episode:
    """Mutable lifecycle state of one detector on one series."""

    confirm: int
    resolve: int
    start: int | None = None
    run: int = 0
    calm: int = 0
    firing: bool = False

    def step(self, minute: int, anomalous: bool | None, span: int = 1) -> EpisodeEvent | None:
        """Advance by one closed minute; return the transition it causes, if any.

        ``span`` is how many minutes ending at ``minute`` the verdict vouches for: a rule
        judging the last two minutes together (``span=2``) makes both of them anomalous, so
        the episode may start at ``minute - span + 1`` and confirm at once.
        """
        if anomalous is None:
            return None
        if anomalous:
            self.calm = 0
            if self.firing:
                return None
            if self.start is None:
                self.start, self.run = minute - span + 1, 0
            self.run = max(self.run, span - 1) + 1
            if self.run >= self.confirm:
                self.firing = True
                return EpisodeEvent("fire", self.start, minute)
            return None
        if self.firing:
            self.calm += 1
            if self.calm >= self.resolve:
                start = self.start
                assert start is not None
                self.reset()
                return EpisodeEvent("resolve", start, minute)
            return None
        self.start, self.run = None, 0
        return None

    def reset(self) -> None:
        self.start, self.run, self.calm, self.firing = None, 0, 0, False

    @property
    def pending(self) -> bool:
        return self.start is not None and not self.firing


def _open(stats_start: int) -> Open:
    from streams.detect.state import Open

    return Open(render.EpisodeStats(stats_start))


def spike_step(
    st: ServiceState,
    m: int,
    anomalous: bool | None,
    spend: float,
    levels: dict[str, float],
    cause: str,
    span: int,
    s: DetectSettings,
) -> list[Alert]:
    """The spend-spike episode of ``st`` at minute ``m``."""
    if anomalous:
        start = st.spike.start if st.spike.start is not None else m - span + 1
        if st.spike_open is None or st.spike_open.stats.start != start:
            st.spike_open = _open(start)
            if start < m:  # the two-minute rule vouches for the previous minute too
                st.spike_open.stats.add(st.ring.value(SPEND, m - 1), levels["spend"])
        st.spike_open.stats.add(spend, levels["spend"])
    event = st.spike.step(m, anomalous, span)
    if not st.adapting:
        if event is not None and event.kind == "fire":
            st.exclude_range(event.start, m + 1)
        elif anomalous and st.spike.firing:
            st.exclude(m)
    alerts: list[Alert] = []
    if event is not None and event.kind == "fire":
        st.fired.append(event.start)
    if event is not None and event.kind == "fire" and st.spike_open is not None:
        window = [b for b in st.recent if b.index >= event.start]
        ratio = st.spike_open.stats.peak_ratio
        severity: Severity = "critical" if ratio >= s.critical_ratio else "warning"
        st.spike_open.alert = render.spike_alert(
            service=st.name,
            start=event.start,
            minute=m,
            window=window or None,
            stats=st.spike_open.stats,
            levels=levels,
            cause=cause,
            severity=severity,
            max_contributors=s.max_contributors,
        )
        st.spike_open.levels = levels
        alerts.append(st.spike_open.alert)
    elif event is not None and event.kind == "resolve":
        reason: render.Resolution = "baseline_adapted" if st.adapting else "returned_to_baseline"
        alerts += resolve(st.spike_open, event, reason, spend, levels["spend"])
        st.spike_open = None
        st.adapting = False
    if (
        s.relearn_after_min
        and st.spike.firing
        and not st.adapting
        and st.spike.start is not None
        and m - st.spike.start + 1 >= s.relearn_after_min
    ):
        # Still high after relearn_after_min: treat it as a level shift. Its minutes enter
        # the baseline, which catches up, and the alert resolves as "baseline_adapted".
        st.adapting = True
        st.ring.exclude_range(st.spike.start, m + 1, flag=False)
    return alerts


def fall_step(
    st: ServiceState,
    m: int,
    anomalous: bool | None,
    observed: float,
    baseline: float,
    s: DetectSettings,
) -> list[Alert]:
    """The spend-drop episode of ``st`` at minute ``m`` (``observed``: the median of the
    last ``shift_min`` minutes; ``baseline``: the level it fell from)."""
    if anomalous:
        start = st.fall.start if st.fall.start is not None else m
        if st.fall_open is None or st.fall_open.stats.start != start:
            st.fall_open = _open(start)
        st.fall_open.stats.add(observed, baseline)
        st.fall_open.levels["shortfall"] = st.fall_open.levels.get("shortfall", 0.0) + max(
            baseline - observed, 0.0
        )
    event = st.fall.step(m, anomalous)
    adapting = bool(st.fall_open is not None and st.fall_open.levels.get("adapting"))
    if not adapting:
        if event is not None and event.kind == "fire":
            st.exclude_range(event.start, m + 1)
        elif anomalous and st.fall.firing:
            st.exclude(m)
    alerts: list[Alert] = []
    if event is not None and event.kind == "fire":
        st.fired.append(event.start)
    if event is not None and event.kind == "fire" and st.fall_open is not None:
        st.fall_open.alert = render.spend_drop_alert(
            service=st.name, start=event.start, minute=m, observed=observed, baseline=baseline
        )
        st.fall_open.levels["baseline"] = baseline
        alerts.append(st.fall_open.alert)
    elif event is not None and event.kind == "resolve":
        reason: render.Resolution = "baseline_adapted" if adapting else "returned_to_baseline"
        alerts += resolve(st.fall_open, event, reason, None, baseline)
        st.fall_open = None
    if (
        s.relearn_after_min
        and st.fall.firing
        and st.fall.start is not None
        and st.fall_open is not None
        and not adapting
        and m - st.fall.start + 1 >= s.relearn_after_min
    ):
        st.fall_open.levels["adapting"] = 1.0
        st.ring.exclude_range(st.fall.start, m + 1, flag=False)
    return alerts


def traffic_step(st: ServiceState, m: int, anomalous: bool, baseline: float) -> list[Alert]:
    """The traffic-drop (no calls at all) episode of ``st`` at minute ``m``."""
    if anomalous:
        start = st.drop.start if st.drop.start is not None else m
        if st.drop_open is None or st.drop_open.stats.start != start:
            st.drop_open = _open(start)
        st.drop_open.stats.add(0.0, baseline)
    event = st.drop.step(m, anomalous)
    if event is not None and event.kind == "fire":
        st.exclude_range(event.start, m + 1)
    elif anomalous and st.drop.firing:
        st.exclude(m)
    if event is None:
        return []
    if event.kind == "fire":
        assert st.drop_open is not None
        st.drop_open.alert = render.drop_alert(
            service=st.name, start=event.start, minute=m, baseline=baseline
        )
        return [st.drop_open.alert]
    alerts = resolve(st.drop_open, event, "returned_to_baseline", None, baseline)
    st.drop_open = None
    return alerts


def rate_step(
    st: ServiceState,
    rs: RateSeries,
    provider: str,
    m: int,
    anomalous: bool | None,
    rate: float,
    level: float,
    outage: bool,
    calls: int,
    errors: int,
    s: DetectSettings,
) -> list[Alert]:
    """The error-rate episode of one provider series of ``st`` at minute ``m``."""
    if anomalous:
        start = rs.episode.start if rs.episode.start is not None else m
        if rs.open is None or rs.open.stats.start != start:
            rs.open = _open(start)
        rs.open.stats.add(rate, 0.0 if level != level else level)
        rs.open.levels["outage"] = max(rs.open.levels.get("outage", 0.0), float(outage))
    event = rs.episode.step(m, anomalous)
    if event is not None and event.kind == "fire":
        rs.ring.exclude_range(event.start, m + 1)
    elif anomalous and rs.episode.firing:
        rs.ring.exclude(m)
    if event is None:
        return []
    if event.kind == "fire" and rs.open is not None:
        window = [b for b in st.recent if b.index >= event.start]
        pc = [counts_for(st, b, provider) for b in window]
        rs.open.alert = render.error_rate_alert(
            service=st.name,
            provider=provider,
            start=event.start,
            minute=m,
            window=window,
            errors=sum(c[1] for c in pc),
            requests=sum(c[0] for c in pc),
            baseline=level,
            outage=bool(rs.open.levels.get("outage")),
            max_contributors=s.max_contributors,
        )
        return [rs.open.alert]
    alerts: list[Alert] = []
    if event.kind == "resolve":
        figures = {"observed": render.share(errors, calls) or "0"} if calls else {}
        if rs.open is not None and rs.open.alert is not None:
            alerts.append(
                render.resolved(
                    rs.open.alert,
                    minute=m,
                    stats=rs.open.stats,
                    reason="returned_to_baseline",
                    figures=figures,
                )
            )
        rs.open = None
    return alerts


def counts_for(st: ServiceState, bucket: object, provider: str) -> tuple[int, int]:
    """``(calls, errors)`` of ``bucket`` via ``provider`` (``(other)``: providers without a
    series of their own)."""
    from streams.detect.state import OTHER

    requests_by = getattr(bucket, "requests_by_provider", {})
    errors_by = getattr(bucket, "errors_by_provider", {})
    if not requests_by:
        return getattr(bucket, "requests", 0), getattr(bucket, "errors", 0)
    if provider != OTHER:
        return requests_by.get(provider, 0), errors_by.get(provider, 0)
    known = set(st.rates)
    n = sum(v for k, v in requests_by.items() if k not in known)
    e = sum(v for k, v in errors_by.items() if k not in known)
    return n, e


def resolve(
    opened: Open | None,
    event: EpisodeEvent,
    reason: render.Resolution,
    observed: float | None,
    baseline: float,
) -> list[Alert]:
    """The resolved notice of an episode that fired (none for one that never did)."""
    if opened is None or opened.alert is None:
        return []
    figures: dict[str, str] = {}
    if opened.alert.labels.get("detector") == "spike" and observed is not None:
        figures = {"observed": render.usd(observed), "baseline": render.usd(baseline)}
    return [
        render.resolved(
            opened.alert, minute=event.minute, stats=opened.stats, reason=reason, figures=figures
        )
    ]


def expire(st: ServiceState, final: int) -> list[Alert]:
    """Resolve every firing alert of a service dropped for silence (``expired``)."""
    alerts: list[Alert] = []
    for opened, episode in (
        (st.spike_open, st.spike),
        (st.drop_open, st.drop),
        (st.fall_open, st.fall),
        *((rs.open, rs.episode) for rs in st.rates.values()),
    ):
        if episode.firing and opened is not None and opened.alert is not None:
            alerts.append(
                render.resolved(
                    opened.alert, minute=final, stats=opened.stats, reason="expired", figures={}
                )
            )
    return alerts
