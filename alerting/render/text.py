"""Plain-text pieces shared by every notifier: headlines, figure formatting.

Figures arrive as display strings (``Alert.figures``: money as decimal USD strings); these
helpers format them for people, exactly (``Decimal``, never float).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from schemas.alerts import Alert
from schemas.events import parse_ts
from schemas.money import NANO_PER_USD, format_usd, usd_to_nusd

# Known figures in display order: key -> (label, kind).
KNOWN_FIGURES: Final[tuple[tuple[str, str, str], ...]] = (
    ("spent_usd", "Spent", "usd"),
    ("limit_usd", "Limit", "usd"),
    ("percent", "Used", "percent"),
    ("burn_rate_usd_per_h", "Burn rate", "usd_per_h"),
    ("runout_at", "Runs out", "time"),
    ("cost_usd", "Cost", "usd"),
    ("observed", "Observed", "raw"),
    ("baseline", "Baseline", "raw"),
)
_KNOWN_KEYS: Final = frozenset(k for k, _, _ in KNOWN_FIGURES)


def format_money(value: str) -> str:
    """``"1.9"`` -> ``"$1.90"``; sub-cent amounts keep 4 places (``"$0.0042"``).

    A value that is not a decimal number is returned unchanged (display only).
    """
    try:
        nusd = usd_to_nusd(value)
    except ValueError:
        return value
    return money_from_nusd(nusd)


def money_from_nusd(nusd: int) -> str:
    """:func:`format_money` for an amount already in nano-USD."""
    places = 2 if abs(nusd) >= NANO_PER_USD or nusd % 10_000_000 == 0 else 4
    return format_usd(nusd, places)


def format_percent(value: str) -> str:
    """``"95.00"`` -> ``"95%"``, ``"95.333"`` -> ``"95.3%"``."""
    try:
        dec = Decimal(value).quantize(Decimal("0.1"))
    except (InvalidOperation, ValueError):
        return f"{value}%"
    text = f"{dec.normalize():f}"
    return f"{text}%"


def format_time(value: str | datetime) -> str:
    """An ISO timestamp -> ``"2025-03-14 18:30 UTC"`` (always shown in UTC)."""
    try:
        ts = value if isinstance(value, datetime) else parse_ts(value)
    except (ValueError, TypeError):
        return str(value)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_figure(key: str, value: str) -> str:
    kind = next((k for fk, _, k in KNOWN_FIGURES if fk == key), "raw")
    if kind == "usd":
        return format_money(value)
    if kind == "usd_per_h":
        return f"{format_money(value)}/h"
    if kind == "percent":
        return format_percent(value)
    if kind == "time":
        return format_time(value)
    return value


def figure_lines(alert: Alert) -> list[tuple[str, str]]:
    """(label, formatted value) for every figure: known ones first in a fixed order, then the
    others sorted by key."""
    out = [
        (label, format_figure(key, alert.figures[key]))
        for key, label, _ in KNOWN_FIGURES
        if key in alert.figures
    ]
    for key in sorted(k for k in alert.figures if k not in _KNOWN_KEYS):
        out.append((key.replace("_", " ").capitalize(), alert.figures[key]))
    return out


def headline(alert: Alert) -> str:
    """One line naming what happened.

    A budget threshold alert with its figures reads ``budget fleet-daily at 95% ($1.90 of
    $2.00)``; every other alert uses its title.
    """
    budget = alert.labels.get("budget")
    f = alert.figures
    if alert.kind == "threshold" and budget and {"percent", "spent_usd", "limit_usd"} <= set(f):
        return (
            f"budget {budget} at {format_percent(f['percent'])} "
            f"({format_money(f['spent_usd'])} of {format_money(f['limit_usd'])})"
        )
    return alert.title


def status_tag(alert: Alert, reminder: bool = False) -> str:
    """``CRITICAL``, ``RESOLVED`` or ``CRITICAL reminder``."""
    if alert.status == "resolved":
        return "RESOLVED"
    tag = alert.severity.upper()
    return f"{tag} reminder" if reminder else tag


def contributor_line(dimension: str, name: str, cost_nusd: int, share: str) -> str:
    """``service checkout: $1.20 (62%)`` (share given as a decimal fraction string)."""
    text = f"{dimension} {name}"
    if cost_nusd:
        text += f": {money_from_nusd(cost_nusd)}"
    if share:
        with contextlib.suppress(InvalidOperation):
            text += f" ({format_percent(str(Decimal(share) * 100))})"
    return text


def one_line(text: str) -> str:
    """Collapse CR/LF and runs of whitespace: headers and console lines are single lines."""
    return " ".join(text.split())
