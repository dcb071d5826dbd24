"""Warm start: the detector's history read back from ClickHouse's per-minute rollups.

Detector state lives in memory, so a restarted worker would start cold: no relative spike
alerts for ``min_history_min`` minutes, no time-of-day baseline for ``seasonal_min_days``
days. At start-up the worker calls :func:`read_history` (in a thread): the last
``history_min`` minutes of ``spend_by_minute`` (kept by a materialized view on every stored
event), summed per service and minute by ClickHouse, with the calls per provider for the
last ``window_min`` minutes only (the error-rate series look no further back).
:class:`~streams.detect.stream.DetectStream` seeds a service the first time it shows up in
the live stream, so a worker only ever seeds the services of its own partitions and a service
that never shows up cannot be taken for one that went silent.

A service's history is held as int64 numpy arrays (56 bytes a minute, about 0.6 MB for seven
days) until it is seeded. What the rollup cannot give exactly: it groups by model, so "call on
an expensive model" is decided per (minute, provider, model) group from its average cost per
token instead of per call (the same when a model has one price, the usual case); breakdowns by
model, tag and error type are not needed for history (alerts name the contributors of live
minutes only).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from clickhouse_connect.driver.binding import format_query_value

from schemas.alerts import Alert
from streams.detect.bucket import MinuteBucket, minute_index, minute_start
from streams.detect.settings import DetectSettings

IntArray = npt.NDArray[np.int64]
# Rows of ``ServiceHistory.values``.
SPEND, REQUESTS, ERRORS, TOKENS, EXPENSIVE_SPEND, EXPENSIVE_REQUESTS = range(6)

_WINDOW = "minute >= toDateTime({first}, 'UTC') AND minute < toDateTime({end}, 'UTC')"
_MODELS_SQL = "SELECT DISTINCT model FROM spend_by_minute WHERE {window}"
# Per (minute, provider, model) group first, so the expensive rule sees one model's average
# price per token, as close to the live per-call rule as a rollup gets.
_MINUTES_SQL = """
SELECT service, m, sum(cost) AS spend_nusd, sum(ev) AS calls, sum(er) AS failed,
       sum(tok) AS tokens, sumIf(cost, dear) AS dear_nusd, sumIf(ev, dear) AS dear_calls
FROM (
    SELECT service, intDiv(toUnixTimestamp(minute), 60) AS m, provider, model,
           sum(events) AS ev, sum(errors) AS er,
           sum(input_tokens) + sum(output_tokens) AS tok, sum(cost_nusd) AS cost,
           ({expensive}) AS dear
    FROM spend_by_minute WHERE {window}
    GROUP BY service, m, provider, model
)
WHERE ev > 0
GROUP BY service, m ORDER BY service, m
"""
_PROVIDERS_SQL = """
SELECT service, intDiv(toUnixTimestamp(minute), 60) AS m, provider,
       sum(events) AS ev, sum(errors) AS er
FROM spend_by_minute WHERE {window}
GROUP BY service, m, provider HAVING ev > 0 ORDER BY service, m, provider
"""

QueryNp = Callable[[str], Any]  # SQL -> numpy structured array (clickhouse-connect query_np)
QueryRows = Callable[[str], Sequence[Sequence[Any]]]  # SQL -> rows

# Detector alerts whose firing row is stored and whose resolved row is not.
_OPEN_ALERTS_SQL = """
SELECT alert_id, kind, severity, title, summary, fired_at, labels, figures, contributors
FROM alerts
WHERE status = 'firing' AND kind IN ('spike', 'failure')
  AND labels['detector'] IN ('spike', 'traffic_drop', 'spend_drop', 'error_rate')
  AND fired_at >= toDateTime({first}, 'UTC')
  AND alert_id NOT IN (SELECT alert_id FROM alerts WHERE status = 'resolved'
                       AND fired_at >= toDateTime({first}, 'UTC'))
ORDER BY fired_at, alert_id
"""


@dataclass(frozen=True, slots=True)
class ServiceHistory:
    """One service's minutes: ``minutes`` ascending (minute indexes since the epoch),
    ``values`` shaped ``(6, len(minutes))`` in the row order ``SPEND ... EXPENSIVE_REQUESTS``,
    and ``{minute: (requests, errors) by provider}`` for the most recent minutes."""

    minutes: IntArray
    values: IntArray
    providers: Mapping[int, tuple[dict[str, int], dict[str, int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.minutes)

    @classmethod
    def from_buckets(cls, buckets: Iterable[MinuteBucket]) -> ServiceHistory:
        """From buckets in minute order (tests, backfills)."""
        listed = list(buckets)
        columns = [
            (b.spend_nusd, b.requests, b.errors, b.tokens, b.expensive_spend_nusd,
             b.expensive_requests)
            for b in listed
        ]  # fmt: skip
        providers = {
            b.index: (dict(b.requests_by_provider), dict(b.errors_by_provider))
            for b in listed
            if b.requests_by_provider
        }
        return cls(
            np.array([b.index for b in listed], dtype=np.int64),
            np.array(columns, dtype=np.int64).reshape(-1, 6).T,
            providers,
        )

    def buckets(self, service: str, before: int) -> Iterator[MinuteBucket]:
        """The minutes before minute index ``before``, as buckets in minute order. Minutes
        without a provider split (older than the error-rate window) carry none."""
        for i in range(int(np.searchsorted(self.minutes, before))):
            m = int(self.minutes[i])
            spend, requests, errors, tokens, dear_spend, dear_requests = (
                int(v) for v in self.values[:, i]
            )
            by_provider, errors_by_provider = self.providers.get(m, ({}, {}))
            yield MinuteBucket(
                service=service,
                minute_start=minute_start(m),
                spend_nusd=spend,
                requests=requests,
                errors=min(errors, requests),
                tokens=tokens,
                expensive_spend_nusd=dear_spend,
                expensive_requests=dear_requests,
                requests_by_provider=by_provider,
                errors_by_provider=errors_by_provider,
            )


def history_window(settings: DetectSettings, now: datetime) -> tuple[int, int]:
    """Minute indexes ``[first, end)`` to load at ``now``: as many minutes as the detector
    keeps, ending before the current minute (which the live stream is still filling)."""
    end = minute_index(now)
    return end - settings.history_min, end


def _window(first: int, end: int) -> str:
    return _WINDOW.format(first=first * 60, end=end * 60)


def expensive_sql(settings: DetectSettings, pattern_models: Iterable[str]) -> str:
    """The per-group expensive rule as a ClickHouse boolean expression over ``model``,
    ``tok`` and ``cost`` (the same integer comparison as ``ExpensiveRule``)."""
    rules = []
    models = sorted(set(pattern_models))
    if models:
        rules.append(f"model IN {format_query_value(tuple(models))}")
    if settings.expensive_nusd_per_mtok > 0:
        rules.append(
            f"(tok > 0 AND toInt128(cost) * 1000000 >= "
            f"toInt128({settings.expensive_nusd_per_mtok}) * tok)"
        )
    return " OR ".join(rules) or "0"


def read_history(
    query_np: QueryNp, settings: DetectSettings, now: datetime
) -> dict[str, ServiceHistory]:
    """Each service's history for the detector at ``now`` (blocking: run it in a thread)."""
    first, end = history_window(settings, now)
    patterns: list[str] = []
    if settings.expensive_models:
        models = query_np(_MODELS_SQL.format(window=_window(first, end)))
        # one column comes back as a plain array, several as a structured one
        for model in models["model"] if models.dtype.names else models.ravel():
            name = str(model) or "(none)"
            if any(fnmatch.fnmatchcase(name, p) for p in settings.expensive_models):
                patterns.append(str(model))
    rows = query_np(
        _MINUTES_SQL.format(expensive=expensive_sql(settings, patterns), window=_window(first, end))
    )
    recent = query_np(
        _PROVIDERS_SQL.format(window=_window(max(first, end - settings.window_min - 1), end))
    )
    providers: dict[str, dict[int, tuple[dict[str, int], dict[str, int]]]] = {}
    for service, m, provider, events, errors in recent.tolist():
        split = providers.setdefault(service, {}).setdefault(int(m), ({}, {}))
        split[0][provider] = int(events)
        if errors:
            split[1][provider] = int(errors)
    out: dict[str, ServiceHistory] = {}
    if len(rows) == 0:
        return out
    services = rows["service"]
    starts = np.flatnonzero(np.r_[True, services[1:] != services[:-1]])
    stops = np.r_[starts[1:], len(rows)]
    columns = ("spend_nusd", "calls", "failed", "tokens", "dear_nusd", "dear_calls")
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        part = rows[start:stop]
        service = str(part["service"][0])
        out[service] = ServiceHistory(
            part["m"].astype(np.int64),
            np.stack([part[c].astype(np.int64) for c in columns]),
            providers.get(service, {}),
        )
    return out


def read_open_alerts(query: QueryRows, settings: DetectSettings, now: datetime) -> list[Alert]:
    """Detector alerts of the history window still firing (no resolved row): the episodes a
    restarted worker continues (``SpikeMonitor.restore``), in firing order."""
    first, _ = history_window(settings, now)
    alerts = []
    for row in query(_OPEN_ALERTS_SQL.format(first=first * 60)):
        aid, kind, severity, title, summary, fired_at, labels, figures, contributors = row
        alerts.append(
            Alert.from_dict(
                {
                    "alert_id": aid,
                    "kind": kind,
                    "severity": severity,
                    "title": title,
                    "summary": summary,
                    "fired_at": fired_at.isoformat(),
                    "labels": labels,
                    "figures": figures,
                    "contributors": orjson.loads(contributors or "[]"),
                }
            )
        )
    return alerts
