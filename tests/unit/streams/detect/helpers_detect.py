"""Shared builders for the detector tests: explicit minutes from a fixed UTC origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.money import usd_to_nusd
from streams.detect import MinuteBucket

T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday, 00:00 UTC


def at(minute: int) -> datetime:
    """Start of minute ``minute`` after ``T0``."""
    return T0 + timedelta(minutes=minute)


def bucket(
    minute: int,
    usd: str,
    *,
    service: str = "svc",
    requests: int = 10,
    errors: int = 0,
    tokens: int = 0,
    provider: str = "",
    by_model: dict[str, int] | None = None,
    by_tag: dict[str, int] | None = None,
    expensive_requests: int = 0,
) -> MinuteBucket:
    spend = usd_to_nusd(usd)
    return MinuteBucket(
        service=service,
        minute_start=at(minute),
        spend_nusd=spend,
        requests=requests,
        errors=errors,
        tokens=tokens,
        by_model=by_model if by_model is not None else {"gpt-4o": spend},
        by_tag=by_tag or {},
        requests_by_provider={provider: requests} if provider and requests else {},
        errors_by_provider={provider: errors} if provider and errors else {},
        expensive_requests=expensive_requests,
    )


def normal_usd(minute: int) -> str:
    """Baseline spend: alternates $1.00 / $1.20 a minute (median 1.10, MAD 0.10)."""
    return "1.00" if minute % 2 == 0 else "1.20"
