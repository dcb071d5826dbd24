"""Routing: which receivers an alert goes to, with which grouping parameters.

Routes are tried in order; the first match wins unless it says ``continue``, in which case
later routes are tried too. When no route matches, the default receivers get it. Then every
matching escalation *adds* its receivers (e.g. finance for ``emergency``). A receiver
reached by several routes is notified once, with the first route's grouping.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerting.policy.matchers import AlertMatch
from schemas.alerts import Alert


@dataclass(frozen=True, slots=True)
class GroupParams:
    """How alerts are batched for one receiver: labels forming the group key, the wait
    before a new group's first notification, the gap between updates, and the reminder
    interval for alerts still firing."""

    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float


@dataclass(frozen=True, slots=True)
class Route:
    match: AlertMatch
    receivers: tuple[str, ...]
    params: GroupParams
    continue_: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """One receiver an alert goes to; ``via`` names the route (``routes[0]``, ``default``,
    ``escalations[1]``)."""

    receiver: str
    params: GroupParams
    via: str


def route_alert(
    alert: Alert,
    routes: tuple[Route, ...],
    escalations: tuple[Route, ...],
    default_receivers: tuple[str, ...],
    default_params: GroupParams,
) -> tuple[RouteTarget, ...]:
    """The receivers for ``alert``, in order, each once."""
    targets: dict[str, RouteTarget] = {}

    def add(receivers: tuple[str, ...], params: GroupParams, via: str) -> None:
        for receiver in receivers:
            targets.setdefault(receiver, RouteTarget(receiver, params, via))

    matched = False
    for i, r in enumerate(routes):
        if r.match.matches(alert):
            matched = True
            add(r.receivers, r.params, r.name or f"routes[{i}]")
            if not r.continue_:
                break
    if not matched:
        add(default_receivers, default_params, "default")
    for i, e in enumerate(escalations):
        if e.match.matches(alert):
            add(e.receivers, e.params, e.name or f"escalations[{i}]")
    return tuple(targets.values())
