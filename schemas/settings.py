"""The pieces every settings model is built from, and the one way a validation error becomes
a :class:`~schemas.errors.ConfigError` naming the line and the field.

Each section of ``spendwatch.toml`` is a pydantic model deriving from :class:`Section`
(unknown keys refused, frozen). Scalars are strict (``"10"`` is not a number, ``true`` is not
an integer); money is an exact integer of nano-USD read from a decimal string or a TOML
number, never a float; secrets are :class:`Secret` values, inline or ``env:VAR_NAME``.

:func:`config_error` turns the first error of a :class:`pydantic.ValidationError` into
``line 4: budgets[0].limit_usd: must be positive, got '-2'``: the location is printed as the
file spells it (aliases, ``[i]`` for array elements, no union tags) and its line comes from
:func:`schemas.tomlpos.key_lines`.
"""

from __future__ import annotations

import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    SecretStr,
    StrictStr,
    ValidationError,
    ValidationInfo,
)

from schemas import redact
from schemas.errors import ConfigError
from schemas.money import usd_to_nusd
from schemas.tomlpos import Loc, line_of

ENV_PREFIX: Final = "env:"


class Section(BaseModel):
    """Base of every settings model: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldError(ValueError):
    """Raised by a validator to point below the value it checks: ``FieldError(("name",),
    "duplicate budget name 'a'")`` in a validator of ``budgets[2]`` reports
    ``budgets[2].name``."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


# -- scalars ---------------------------------------------------------------------------------


def _in_range(low: float, high: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {value!r}")
        return value

    return check


def Range(low: float, high: float) -> AfterValidator:
    """Metadata for ``Annotated[StrictInt, Range(1, 256)]``: a value from ``low`` to ``high``."""
    return AfterValidator(_in_range(low, high))


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


Text = Annotated[StrictStr, AfterValidator(_non_empty)]
"""A non-empty string (surrounding blanks removed)."""


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
    return value


TimeZone = Annotated[Text, AfterValidator(_zone)]
"""An IANA time zone name (``UTC``, ``America/New_York``)."""


def unique_names(label: str = "name") -> AfterValidator:
    """Metadata for a list of items with a ``name``: a repeated name is an error at
    ``[i].name`` (``duplicate budget name 'a'``)."""

    def check(items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for index, item in enumerate(items):
            if item.name in seen:
                raise FieldError((index, "name"), f"duplicate {label} {item.name!r}")
            seen.add(item.name)
        return items

    return AfterValidator(check)


# -- money -----------------------------------------------------------------------------------


def _nusd(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError('must be a decimal string or a number of USD, e.g. "2.50"')
    try:
        # TOML floats go through str(): 0.1 stays 0.1, never binary float arithmetic.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    if amount < 0:
        raise ValueError(f"must be positive, got {value!r}")
    return usd_to_nusd(amount)


def _positive_nusd(value: Any) -> int:
    nusd = _nusd(value)
    if nusd == 0:
        raise ValueError(
            f"must be positive, got {value!r}"
            if _is_zero(value)
            else f"{value!r} rounds to zero nano-USD"
        )
    return nusd


def _is_zero(value: Any) -> bool:
    try:
        return Decimal(str(value).strip()) == 0
    except InvalidOperation:
        return False


Money = Annotated[int, PlainValidator(_nusd)]
"""USD as a decimal string or a TOML number, held as exact integer nano-USD (>= 0)."""
PositiveMoney = Annotated[int, PlainValidator(_positive_nusd)]
"""Like :data:`Money`, above zero."""


# -- secrets ---------------------------------------------------------------------------------


class Secret(SecretStr):
    """A secret value. ``repr``/``str`` show only where it came from (``env:SLACK_URL`` or
    ``inline``); call :meth:`reveal` at the single place that needs the value.

    ``missing`` names the environment variable when an ``env:`` reference was unset: the
    model holding it decides whether that is an error or disables what needs it. The value is
    masked in log records once :func:`schemas.redact.install` ran (the worker does)."""

    def __init__(self, value: str, source: str = "inline", missing: str | None = None) -> None:
        super().__init__(value)
        self.source = source
        self.missing = missing
        redact.remember(value)  # masked in every log line from now on

    def reveal(self) -> str:
        return self.get_secret_value()

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.source, self.reveal()) == (
            other.source,
            other.reveal(),
        )

    def __hash__(self) -> int:
        return hash((self.source, self.reveal()))


def resolve_secret(raw: Any, environ: Mapping[str, str] | None = None) -> Secret:
    """``"env:VAR"`` -> the variable's value (a :class:`Secret` with ``missing="VAR"`` when
    it is unset or empty); any other non-empty string is an inline secret."""
    if isinstance(raw, Secret):
        return raw
    env = os.environ if environ is None else environ
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be a non-empty string or an env:VAR_NAME reference")
    if raw.startswith(ENV_PREFIX):
        var = raw[len(ENV_PREFIX) :].strip()
        if not var:
            raise ValueError("env: reference needs a variable name")
        value = env.get(var, "")
        return Secret(value, f"env:{var}", missing=None if value else var)
    return Secret(raw)


def _secret(raw: Any, info: ValidationInfo) -> Secret:
    context = info.context or {}
    return resolve_secret(raw, context.get("environ"))


SecretRef = Annotated[Secret, PlainValidator(_secret)]
"""A secret written inline or as ``env:VAR_NAME`` (resolved from the validation context's
``environ``, else ``os.environ``)."""


def one_or_many(value: Any) -> Any:
    """``"a"`` -> ``["a"]``: a field that takes one name or a list of names."""
    return [value] if isinstance(value, str) else value


OneOrMany = BeforeValidator(one_or_many)


# -- errors ----------------------------------------------------------------------------------


def config_error(
    exc: ValidationError,
    model: Any,
    *,
    lines: Mapping[Loc, int] | None = None,
    prefix: Loc = (),
    outside: Mapping[Loc, str] | None = None,
) -> ConfigError:
    """The first error of ``exc`` (raised validating ``model``, a model class or a type such
    as ``list[PriceEntry]``) as a :class:`ConfigError`.

    ``prefix`` is where the validated value sits in the file (``("alerting",)``); ``lines``
    maps file locations to lines (:func:`schemas.tomlpos.key_lines`); ``outside`` marks the
    locations whose value came from elsewhere (``$VARIABLE`` or ``--flag``: named in the
    message, no line).
    """
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    path, parent = _walk(model, tuple(error["loc"]))
    cause = ctx.get("error")
    if isinstance(cause, FieldError):
        path = (*path, *cause.loc)
        message = cause.message
    elif isinstance(cause, ConfigError):  # from a model constructed inside a validator
        path = (*path, *(cause.loc or ()))
        message = cause.message
    elif kind in ("value_error", "assertion_error") and cause is not None:
        message = str(cause)
    elif kind == "extra_forbidden":
        allowed = _field_names(parent)
        what = "section" if getattr(parent, "is_whole_file", False) else "setting"
        message = f"unknown {what}" + (f" (expected one of {allowed})" if allowed else "")
    elif kind == "missing":
        message = "is required"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        path = (*path, ctx.get("discriminator", "type").strip("'"))
        message = f"must be one of {ctx.get('expected_tags', '?')}"
        if kind == "union_tag_invalid":
            message += f", got {ctx.get('tag')!r}"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')}, got {error['input']!r}"
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
        shown = error.get("input")
        if isinstance(shown, str | int | float | bool) and len(repr(shown)) <= 60:
            message += f", got {shown!r}"
    full = (*prefix, *path)
    origin = (outside or {}).get(full)
    if origin is not None:
        return ConfigError(format_loc(full), f"{message} (from {origin})", loc=full)
    return ConfigError(format_loc(full), message, line=line_of(lines or {}, full), loc=full)


def format_loc(loc: Loc) -> str:
    """``("budgets", 0, "limit_usd")`` -> ``budgets[0].limit_usd``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _walk(tp: Any, loc: Loc) -> tuple[Loc, Any]:
    """The file's spelling of a pydantic error location, and the type found at its parent
    (to list the keys it allows): union tags are dropped, aliases kept."""
    path: list[str | int] = []
    parent: Any = None
    current: Any = tp
    for part in loc:
        parent = current = _unwrap(current)
        if isinstance(part, int):
            path.append(part)
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        members = _union_members(current)
        if members:
            chosen = next((m for m in members if _tag_of(m) == part), None)
            if chosen is not None or part not in _field_names(parent):
                current = chosen
                continue  # the union's tag (or a member's name): not part of the file's path
        path.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for name, f in current.model_fields.items() if (f.alias or name) == part),
                None,
            )
            current = field.annotation if field is not None else None
        elif typing.get_origin(current) in (dict, Mapping):
            current = typing.get_args(current)[1]
        else:
            current = None
    parent = _unwrap(current) if not loc else parent
    return tuple(path), parent


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    members = [m for m in _union_members(tp) if m is not type(None)]
    if len(members) == 1:
        return _unwrap(members[0])
    return tp


def _union_members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(
            _unwrap(m) if typing.get_origin(m) is Annotated else m for m in typing.get_args(tp)
        )
    return ()


def _tag_of(tp: Any) -> str | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel) and "type" in tp.model_fields:
        default = tp.model_fields["type"].default
        return default if isinstance(default, str) else None
    return None


def _field_names(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(f.alias or name for name, f in tp.model_fields.items())
    names: set[str] = set()
    for member in _union_members(tp):
        names.update(_field_names(member))
    return sorted(names)
