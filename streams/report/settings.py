"""``[report]``: how spend is broken down (by the reports *and* the console) and when the weekly
and monthly reports go out.

    [report]
    tag = "team"                      # the tag spend is broken down by (console: the default)
    unit_tags = ["lead", "call_id"]   # cost per distinct value of each tag, beside cost per call
    timezone = "UTC"                  # the zone of days, weeks (Monday) and months
    at = "08:00"                      # local time the weekly / monthly report goes out
    weekly = true                     # Monday: the week that just ended
    monthly = true                    # the 1st: the month that just ended
    receivers = ["finance", "oncall-slack"]   # default: alerting.digest_receivers

    [report.tiers]                    # model tiers, in order; a model takes the first match
    "tier 1" = ["*haiku*", "gpt-4o-mini*"]   # fnmatch patterns on the model name
    "tier 2" = ["gpt-4o", "gpt-4o-2*", "*sonnet*"]

A bad value raises :class:`~schemas.errors.ConfigError` naming ``report.<field>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import time
from fnmatch import fnmatchcase
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from schemas.errors import ConfigError

UNTIERED: Final = "other models"
NOT_LLM: Final = "not an LLM"
_TAG_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


def check_tag_name(value: str) -> str:
    if not value or not set(value) <= _TAG_CHARS or len(value) > 64:
        raise ValueError("a tag name: 1-64 letters, digits, '_', '.', '-', ':'")
    return value


class ReportSettings(BaseModel):
    """The validated ``[report]`` section (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str = "team"
    unit_tags: tuple[str, ...] = ()
    tiers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    timezone: str = "UTC"
    at: time = time(8, 0)
    weekly: StrictBool = True
    monthly: StrictBool = True
    receivers: tuple[str, ...] | None = None

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, value: str) -> str:
        return check_tag_name(value)

    @field_validator("unit_tags")
    @classmethod
    def _check_unit_tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each unit tag once")
        return tuple(check_tag_name(v) for v in value)

    @field_validator("tiers")
    @classmethod
    def _check_tiers(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, patterns in value.items():
            if not name.strip() or name in (UNTIERED, NOT_LLM):
                raise ValueError(f"tier name {name!r} is empty or reserved")
            if not patterns or any(not p.strip() for p in patterns):
                raise ValueError(f"tier {name!r} needs non-empty model patterns")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("at", mode="before")
    @classmethod
    def _check_at(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                hours, minutes = (int(x) for x in value.split(":"))
                return time(hours, minutes)
            except ValueError:
                raise ValueError('must be "HH:MM"') from None
        return value

    def tier_of(self, model: str) -> str:
        """The tier a model belongs to: the first tier with a matching pattern;
        :data:`NOT_LLM` for events without a model, :data:`UNTIERED` for the rest."""
        if not model:
            return NOT_LLM
        for name, patterns in self.tiers.items():
            if any(fnmatchcase(model, p) for p in patterns):
                return name
        return UNTIERED

    @property
    def tier_names(self) -> tuple[str, ...]:
        """Tiers in display order, then the two catch-alls."""
        return (*self.tiers, UNTIERED, NOT_LLM)

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | None,
        receiver_names: Sequence[str] = (),
        path: str = "report",
    ) -> ReportSettings:
        """Validate the ``[report]`` table; ``receivers`` must name configured receivers."""
        try:
            settings = cls.model_validate(dict(section or {}))
        except ValidationError as exc:
            raise config_error(exc, path) from None
        for i, name in enumerate(settings.receivers or ()):
            if name not in receiver_names:
                raise ConfigError(
                    f"{path}.receivers[{i}]",
                    f"unknown receiver {name!r} (have {list(receiver_names)})",
                )
        return settings


def config_error(exc: ValidationError, path: str) -> ConfigError:
    """The first pydantic error as a :class:`ConfigError` naming ``path.field``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return ConfigError(f"{path}.{where}" if where else path, message)
