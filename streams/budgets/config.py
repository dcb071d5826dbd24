"""``[[budgets]]`` in ``spendwatch.toml`` -> validated :class:`Budget` objects.

Example::

    [[budgets]]
    name = "growth-llm"
    match = { service = "chat-*", model = ["gpt-4o", "gpt-4o-mini"], tags = { team = "growth" } }
    period = "month"                 # day | week (Monday) | month | rolling (+ rolling_hours)
    timezone = "America/New_York"    # IANA name, default UTC; the period resets at local midnight
    limit_usd = "5000"               # decimal string or number
    thresholds = [0.5, 0.8, { at = 0.95, severity = "critical" }, 1.0]
    per_request_limit_usd = "2.50"
    requests_per_minute = 600
    labels = { team = "growth" }
    degrade_to = { "gpt-4o" = "gpt-4o-mini" }
    on_exhausted = "degrade"         # block | degrade | allow (what the SDK guard does)

Every problem raises :class:`schemas.errors.ConfigError` naming the field path
(``budgets[2].limit_usd``) and, when the file text is given, its line.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.alerts import SEVERITIES, Severity
from schemas.errors import ConfigError
from schemas.money import usd_to_nusd
from streams.budgets.model import (
    DEFAULT_THRESHOLDS,
    PERIODS,
    Budget,
    Match,
    OnExhausted,
    PeriodKind,
    Threshold,
)

_KEYS: Final = frozenset(
    {
        "name",
        "match",
        "period",
        "rolling_hours",
        "timezone",
        "limit_usd",
        "thresholds",
        "per_request_limit_usd",
        "per_request_severity",
        "requests_per_minute",
        "requests_per_day",
        "tokens_per_minute",
        "tokens_per_day",
        "labels",
        "receivers",
        "degrade_to",
        "on_exhausted",
    }
)
_MATCH_KEYS: Final = frozenset({"service", "provider", "model", "tags"})
_THRESHOLD_KEYS: Final = frozenset({"at", "severity"})
_QUOTAS: Final = ("requests_per_minute", "requests_per_day", "tokens_per_minute", "tokens_per_day")
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_MAX_ROLLING_HOURS: Final = 24 * 366


class _Locator:
    """Finds the line of a field in the TOML text, for error messages."""

    _HEADER = re.compile(r"^\s*\[\[\s*budgets\s*\]\]", re.M)
    _ANY_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]", re.M)
    _ANY_TABLE_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$", re.M)

    def __init__(self, text: str | None) -> None:
        self.text = text

    def _block(self, index: int) -> tuple[int, int] | None:
        """Character span of the ``index``-th ``[[budgets]]`` block (header to next section)."""
        if not self.text:
            return None
        headers = list(self._HEADER.finditer(self.text))
        if index >= len(headers):
            return None
        start = headers[index].start()
        end = len(self.text)
        after = headers[index].end()
        for pattern in (self._ANY_ARRAY_HEADER, self._ANY_TABLE_HEADER):
            for m in pattern.finditer(self.text, after):
                name = m.group(1).strip()
                # Sub-tables of this budget ([budgets.match], [budgets.labels]) stay inside.
                if not name.startswith("budgets."):
                    end = min(end, m.start())
                    break
        return start, end

    def line(self, index: int, keys: tuple[str, ...]) -> int | None:
        """Line of the first of ``keys`` found as ``key =`` in the block, else the header's."""
        span = self._block(index)
        if span is None or self.text is None:
            return None
        start, end = span
        for key in keys:
            pattern = re.compile(
                rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=", re.M
            )
            m = pattern.search(self.text, start, end)
            if m:
                return self.text.count("\n", 0, m.start()) + 1
            sub = re.compile(rf"^\s*\[\s*budgets\.{re.escape(key)}\s*\]", re.M).search(
                self.text, start, end
            )
            if sub:
                return self.text.count("\n", 0, sub.start()) + 1
        return self.text.count("\n", 0, start) + 1


class _Reader:
    """Reads one ``[[budgets]]`` table; every error names ``budgets[i].<field>`` and its line."""

    def __init__(self, index: int, item: dict[str, Any], locator: _Locator) -> None:
        self.index = index
        self.item = item
        self.locator = locator

    def error(self, path: tuple[str, ...], message: str) -> ConfigError:
        field = f"budgets[{self.index}]" + "".join(f".{p}" for p in path)
        # Try the innermost key first (e.g. `model = ...` under [budgets.match]), then outward.
        line = self.locator.line(self.index, tuple(reversed(path)))
        return ConfigError(field, message, line=line)

    def money(self, key: str) -> int | None:
        raw = self.item.get(key)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
            raise self.error((key,), "must be a decimal string or a number of USD")
        try:
            amount = Decimal(str(raw).strip())
        except InvalidOperation:
            raise self.error((key,), f"{raw!r} is not a decimal amount") from None
        if not amount.is_finite():
            raise self.error((key,), f"{raw!r} is not a finite amount")
        if amount <= 0:
            raise self.error((key,), f"must be positive, got {raw!r}")
        nusd = usd_to_nusd(amount)
        if nusd <= 0:
            raise self.error((key,), f"{raw!r} rounds to zero nano-USD")
        return nusd

    def positive_int(self, key: str) -> int | None:
        raw = self.item.get(key)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
            raise self.error((key,), f"must be a positive integer, got {raw!r}")
        return raw

    def string(self, key: str, default: str) -> str:
        raw = self.item.get(key, default)
        if not isinstance(raw, str) or not raw:
            raise self.error((key,), f"must be a non-empty string, got {raw!r}")
        return raw

    def patterns(self, key: str, raw: Any) -> tuple[str, ...]:
        values = [raw] if isinstance(raw, str) else raw
        if not isinstance(values, list) or not values:
            raise self.error(("match", key), "must be a string or a non-empty list of strings")
        for value in values:
            if not isinstance(value, str) or not value:
                raise self.error(("match", key), f"{value!r} is not a non-empty string")
            if "*" in value[:-1]:
                raise self.error(("match", key), f"{value!r}: only a trailing '*' is supported")
        return tuple(values)

    def string_map(self, path: tuple[str, ...], raw: Any) -> tuple[tuple[str, str], ...]:
        if not isinstance(raw, dict):
            raise self.error(path, "must be a table of strings")
        for key, value in raw.items():
            if not isinstance(value, str) or not value:
                raise self.error((*path, key), f"must be a non-empty string, got {value!r}")
        return tuple(sorted(raw.items()))

    def match(self) -> Match:
        raw = self.item.get("match", {})
        if not isinstance(raw, dict):
            raise self.error(("match",), 'must be a table, e.g. { service = "chat-api" }')
        for key in raw:
            if key not in _MATCH_KEYS:
                raise self.error(
                    ("match", key), f"unknown key (expected one of {sorted(_MATCH_KEYS)})"
                )
        tags: tuple[tuple[str, str], ...] = ()
        if "tags" in raw:
            tags = self.string_map(("match", "tags"), raw["tags"])
            for key, value in tags:
                if "*" in value[:-1]:
                    raise self.error(
                        ("match", "tags", key), f"{value!r}: only a trailing '*' is supported"
                    )
        return Match(
            services=self.patterns("service", raw["service"]) if "service" in raw else (),
            providers=self.patterns("provider", raw["provider"]) if "provider" in raw else (),
            models=self.patterns("model", raw["model"]) if "model" in raw else (),
            tags=tags,
        )

    def thresholds(self) -> tuple[Threshold, ...]:
        raw = self.item.get("thresholds", list(DEFAULT_THRESHOLDS))
        if not isinstance(raw, list) or not raw:
            raise self.error(
                ("thresholds",), "must be a non-empty list of fractions, e.g. [0.5, 0.8, 1.0]"
            )
        ats: list[Decimal] = []
        explicit: list[Severity | None] = []
        for i, entry in enumerate(raw):
            severity: Severity | None = None
            if isinstance(entry, dict):
                for key in entry:
                    if key not in _THRESHOLD_KEYS:
                        raise self.error(
                            ("thresholds",), f"[{i}].{key}: unknown key (expected at, severity)"
                        )
                if "at" not in entry:
                    raise self.error(("thresholds",), f"[{i}] needs 'at'")
                sev = entry.get("severity")
                if sev is not None:
                    if sev not in SEVERITIES:
                        raise self.error(
                            ("thresholds",), f"[{i}].severity must be one of {list(SEVERITIES)}"
                        )
                    severity = cast(Severity, sev)
                entry = entry["at"]
            if isinstance(entry, bool) or not isinstance(entry, str | int | float):
                raise self.error(("thresholds",), f"[{i}] = {entry!r} is not a number")
            try:
                at = Decimal(str(entry))
            except InvalidOperation:
                raise self.error(("thresholds",), f"[{i}] = {entry!r} is not a number") from None
            if not at.is_finite() or at <= 0:
                raise self.error(("thresholds",), f"[{i}] = {entry!r} must be a fraction above 0")
            if ats and at <= ats[-1]:
                raise self.error(
                    ("thresholds",), f"must be strictly increasing ({ats[-1]} then {at})"
                )
            ats.append(at)
            explicit.append(severity)
        defaults = _default_severities(ats)
        return tuple(
            Threshold(at, sev if sev is not None else default)
            for at, sev, default in zip(ats, explicit, defaults, strict=True)
        )

    def build(self, seen: set[str]) -> Budget:
        for key in self.item:
            if key not in _KEYS:
                raise self.error((key,), f"unknown key (expected one of {sorted(_KEYS)})")
        if "name" not in self.item:
            raise self.error(("name",), "is required")
        name = self.string("name", "")
        if not _NAME_RE.match(name):
            raise self.error(("name",), f"{name!r}: use letters, digits and . _ : / - (max 128)")
        if name in seen:
            raise self.error(("name",), f"duplicate budget name {name!r}")
        seen.add(name)

        period = self.string("period", "day")
        if period not in PERIODS:
            raise self.error(("period",), f"{period!r} is not one of {list(PERIODS)}")
        rolling_hours = self.positive_int("rolling_hours")
        if period == "rolling":
            if rolling_hours is None:
                raise self.error(("rolling_hours",), 'is required when period = "rolling"')
            if rolling_hours > _MAX_ROLLING_HOURS:
                raise self.error(("rolling_hours",), f"must be at most {_MAX_ROLLING_HOURS}")
        elif rolling_hours is not None:
            raise self.error(("rolling_hours",), 'only applies to period = "rolling"')

        timezone = self.string("timezone", "UTC")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.error(
                ("timezone",), f"unknown time zone {timezone!r} (use an IANA name)"
            ) from None

        if "limit_usd" not in self.item:
            raise self.error(("limit_usd",), "is required")
        limit_nusd = self.money("limit_usd")
        assert limit_nusd is not None

        per_request_severity = self.string("per_request_severity", "warning")
        if per_request_severity not in SEVERITIES:
            raise self.error(("per_request_severity",), f"must be one of {list(SEVERITIES)}")

        labels = self.string_map(("labels",), self.item.get("labels", {}))
        receivers_raw = self.item.get("receivers", [])
        if isinstance(receivers_raw, str):
            receivers_raw = [receivers_raw]
        if not isinstance(receivers_raw, list) or not all(
            isinstance(r, str) and r for r in receivers_raw
        ):
            raise self.error(("receivers",), "must be a list of receiver names")
        degrade_to = self.string_map(("degrade_to",), self.item.get("degrade_to", {}))
        on_exhausted = self.string("on_exhausted", "block")
        if on_exhausted not in ("block", "degrade", "allow"):
            raise self.error(("on_exhausted",), f"{on_exhausted!r} is not block, degrade or allow")
        if on_exhausted == "degrade" and not degrade_to:
            raise self.error(("degrade_to",), 'is required when on_exhausted = "degrade"')

        quotas = {key: self.positive_int(key) for key in _QUOTAS}
        return Budget(
            name=name,
            limit_nusd=limit_nusd,
            match=self.match(),
            period=cast(PeriodKind, period),
            rolling_hours=rolling_hours,
            timezone=timezone,
            thresholds=self.thresholds(),
            per_request_limit_nusd=self.money("per_request_limit_usd"),
            per_request_severity=cast(Severity, per_request_severity),
            labels=labels,
            receivers=tuple(receivers_raw),
            degrade_to=degrade_to,
            on_exhausted=cast(OnExhausted, on_exhausted),
            **quotas,
        )


def _default_severities(ats: list[Decimal]) -> list[Severity]:
    """Severities by position, counted from the top.

    A threshold at or above 1.0 (100 %) is ``emergency``; below 1.0 the highest is
    ``critical``, the next ``warning``, all lower ones ``info``. The defaults
    0.5/0.8/0.95/1.0 thus give info/warning/critical/emergency.
    """
    below = [a for a in ats if a < 1]
    ladder: list[Severity] = ["critical", "warning"]
    result: list[Severity] = []
    for at in ats:
        if at >= 1:
            result.append("emergency")
        else:
            rank_from_top = len(below) - 1 - below.index(at)
            result.append(ladder[rank_from_top] if rank_from_top < len(ladder) else "info")
    return result


def load_budgets(items: list[dict[str, Any]], source_text: str | None = None) -> tuple[Budget, ...]:
    """Validate the ``[[budgets]]`` array of tables (as parsed by tomllib).

    ``source_text`` is the TOML file text; when given, errors carry the line of the offending
    key within the N-th ``[[budgets]]`` block. Raises :class:`ConfigError`; returns every
    budget or none.
    """
    if not isinstance(items, list):
        raise ConfigError("budgets", "must be an array of tables ([[budgets]])")
    locator = _Locator(source_text)
    seen: set[str] = set()
    budgets: list[Budget] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"budgets[{index}]", "must be a table", line=locator.line(index, ()))
        budgets.append(_Reader(index, item, locator).build(seen))
    return tuple(budgets)
