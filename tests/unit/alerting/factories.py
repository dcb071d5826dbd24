"""Alert builders shared by the alerting tests (unit and integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.alerts import Alert, Contributor, Severity, alert_id_for

T0 = datetime(2025, 3, 14, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 + seconds."""
    return T0 + timedelta(seconds=seconds)


def threshold_alert(
    *,
    budget: str = "fleet-daily",
    period: str = "2025-03-14",
    threshold: str = "0.95",
    severity: Severity = "critical",
    spent: str = "1.90",
    limit: str = "2.00",
    status: str = "firing",
    fired_at: datetime = T0,
    service: str | None = None,
) -> Alert:
    percent = str(Decimal(threshold) * 100)
    labels = {"budget": budget, "period": period, "threshold": threshold}
    if service:
        labels["service"] = service
    return Alert(
        alert_id=alert_id_for("threshold", budget, period, threshold),
        kind="threshold",
        severity=severity,
        title=f"Budget {budget} reached {percent}%",
        summary=f"Spent ${spent} of ${limit} in period {period}.",
        fired_at=fired_at,
        status=status,  # type: ignore[arg-type]
        labels=labels,
        figures={
            "spent_usd": spent,
            "limit_usd": limit,
            "percent": percent,
            "burn_rate_usd_per_h": "0.40",
            "runout_at": "2025-03-14T10:15:00+00:00",
        },
        contributors=(
            Contributor("service", "checkout", 1_200_000_000, "0.63"),
            Contributor("model", "gpt-4o", 700_000_000, "0.37"),
        ),
    )


def spike_alert(
    *,
    service: str = "search",
    severity: Severity = "warning",
    status: str = "firing",
    fired_at: datetime = T0,
    window: str = "2025-03-14T09:59",
) -> Alert:
    return Alert(
        alert_id=alert_id_for("spike", service, window),
        kind="spike",
        severity=severity,
        title=f"Spend spike on {service}",
        summary=f"{service} spent 8x its baseline in the last minute.",
        fired_at=fired_at,
        status=status,  # type: ignore[arg-type]
        labels={"service": service},
        figures={"observed": "0.80", "baseline": "0.10"},
    )


def resolved(alert: Alert, fired_at: datetime | None = None) -> Alert:
    return Alert(
        alert_id=alert.alert_id,
        kind=alert.kind,
        severity=alert.severity,
        title=alert.title,
        summary=alert.summary,
        fired_at=fired_at or alert.fired_at,
        status="resolved",
        labels=dict(alert.labels),
        figures=dict(alert.figures),
        contributors=alert.contributors,
    )
