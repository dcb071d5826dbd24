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

:class:`BudgetConfig` is the pydantic model of one table; :func:`load_budgets` validates the
array and raises :class:`schemas.errors.ConfigError` naming the field path
(``budgets[2].limit_usd``) and, when the file text is given, its line.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from schemas.alerts import SEVERITIES, Severity
from schemas.settings import (
    FieldError,
    OneOrMany,
    PositiveMoney,
    Section,
    Text,
    TimeZone,
    config_error,
    unique_names,
)
from schemas.tomlpos import key_lines
from streams.budgets.model import DEFAULT_THRESHOLDS, Budget, Match, Threshold

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_MAX_ROLLING_HOURS: Final = 24 * 366


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"{value!r}: use letters, digits and . _ : / - (max 128)")
    return value


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return value


def _patterns(raw: Any) -> tuple[str, ...]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise ValueError("must be a string or a non-empty list of strings")
    for value in values:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{value!r} is not a non-empty string")
        if "*" in value[:-1]:
            raise ValueError(f"{value!r}: only a trailing '*' is supported")
    return tuple(values)


def _tag_patterns(tags: dict[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        if "*" in value[:-1]:
            raise FieldError((key,), f"{value!r}: only a trailing '*' is supported")
    return tags


Patterns = Annotated[tuple[str, ...], PlainValidator(_patterns)]
Quota = Annotated[StrictInt, AfterValidator(_positive)]


class MatchConfig(Section):
    """A budget's scope: every field given must match; a list within a field is an OR."""

    service: Patterns = ()
    provider: Patterns = ()
    model: Patterns = ()
    tags: Annotated[dict[str, Text], AfterValidator(_tag_patterns)] = {}

    def build(self) -> Match:
        return Match(self.service, self.provider, self.model, tuple(sorted(self.tags.items())))


def _thresholds(raw: Any) -> tuple[Threshold, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError("must be a non-empty list of fractions, e.g. [0.5, 0.8, 1.0]")
    ats: list[Decimal] = []
    explicit: list[Severity | None] = []
    for i, entry in enumerate(raw):
        severity: Severity | None = None
        if isinstance(entry, dict):
            for key in entry:
                if key not in ("at", "severity"):
                    raise ValueError(f"[{i}].{key}: unknown key (expected at, severity)")
            if "at" not in entry:
                raise ValueError(f"[{i}] needs 'at'")
            sev = entry.get("severity")
            if sev is not None:
                if sev not in SEVERITIES:
                    raise ValueError(f"[{i}].severity must be one of {list(SEVERITIES)}")
                severity = cast(Severity, sev)
            entry = entry["at"]
        if isinstance(entry, bool) or not isinstance(entry, str | int | float | Decimal):
            raise ValueError(f"[{i}] = {entry!r} is not a number")
        try:
            at = Decimal(str(entry))
        except InvalidOperation:
            raise ValueError(f"[{i}] = {entry!r} is not a number") from None
        if not at.is_finite() or at <= 0:
            raise ValueError(f"[{i}] = {entry!r} must be a fraction above 0")
        if ats and at <= ats[-1]:
            raise ValueError(f"must be strictly increasing ({ats[-1]} then {at})")
        ats.append(at)
        explicit.append(severity)
    defaults = _default_severities(ats)
    return tuple(
        Threshold(at, sev if sev is not None else default)
        for at, sev, default in zip(ats, explicit, defaults, strict=True)
    )


class BudgetConfig(Section):
    """One ``[[budgets]]`` table as written in the file (see the module docstring)."""

    name: Annotated[Text, AfterValidator(_name)]
    limit_usd: PositiveMoney
    match: MatchConfig = MatchConfig()
    period: Literal["day", "week", "month", "rolling"] = "day"
    rolling_hours: Quota | None = None
    timezone: TimeZone = "UTC"
    thresholds: Annotated[tuple[Threshold, ...], PlainValidator(_thresholds)] = Field(
        default_factory=lambda: _thresholds(list(DEFAULT_THRESHOLDS))
    )
    per_request_limit_usd: PositiveMoney | None = None
    per_request_severity: Severity = "warning"
    requests_per_minute: Quota | None = None
    requests_per_day: Quota | None = None
    tokens_per_minute: Quota | None = None
    tokens_per_day: Quota | None = None
    labels: dict[str, Text] = {}
    receivers: Annotated[tuple[Text, ...], OneOrMany] = ()
    degrade_to: dict[str, Text] = {}
    on_exhausted: Literal["block", "degrade", "allow"] = "block"

    @model_validator(mode="after")
    def _cross_checks(self) -> BudgetConfig:
        if self.period == "rolling":
            if self.rolling_hours is None:
                raise FieldError(("rolling_hours",), 'is required when period = "rolling"')
            if self.rolling_hours > _MAX_ROLLING_HOURS:
                raise FieldError(("rolling_hours",), f"must be at most {_MAX_ROLLING_HOURS}")
        elif self.rolling_hours is not None:
            raise FieldError(("rolling_hours",), 'only applies to period = "rolling"')
        if self.on_exhausted == "degrade" and not self.degrade_to:
            raise FieldError(("degrade_to",), 'is required when on_exhausted = "degrade"')
        return self

    def build(self) -> Budget:
        return Budget(
            name=self.name,
            limit_nusd=self.limit_usd,
            match=self.match.build(),
            period=self.period,
            rolling_hours=self.rolling_hours,
            timezone=self.timezone,
            thresholds=self.thresholds,
            per_request_limit_nusd=self.per_request_limit_usd,
            per_request_severity=self.per_request_severity,
            requests_per_minute=self.requests_per_minute,
            requests_per_day=self.requests_per_day,
            tokens_per_minute=self.tokens_per_minute,
            tokens_per_day=self.tokens_per_day,
            labels=tuple(sorted(self.labels.items())),
            receivers=self.receivers,
            degrade_to=tuple(sorted(self.degrade_to.items())),
            on_exhausted=self.on_exhausted,
        )


BudgetConfigs = Annotated[list[BudgetConfig], unique_names("budget name")]
"""The ``[[budgets]]`` array: budgets with distinct names."""
_BUDGETS: Final = TypeAdapter(BudgetConfigs)


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
    try:
        configs = _BUDGETS.validate_python(items)
    except ValidationError as exc:
        lines = key_lines(source_text) if source_text else None
        raise config_error(exc, BudgetConfigs, lines=lines, prefix=("budgets",)) from None
    return tuple(c.build() for c in configs)
