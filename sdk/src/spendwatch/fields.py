"""Checks and conversions for event fields, mirroring ``schemas/usage_event_v1.json``.

Run in the caller's thread when it hands a value to the SDK, so a bad value fails at the line
that passed it (``InvalidEventError`` naming the field) instead of as a dead-letter row later.

Money and quantities travel as decimal strings. ``Decimal``, ``int`` and ``str`` are kept
exactly (more decimal places than the schema allows is an error, never a silent rounding). A
``float`` is read through its shortest repr (``Decimal(str(x))``, so ``2.5`` is ``"2.5"`` and
``0.1`` is ``"0.1"``) and then rounded half-even to 9 decimal places, since a float was already
an approximation (``0.1 + 0.2`` gives ``"0.300000000"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from .errors import InvalidEventError

MAX_TOKENS: Final = 100_000_000
MAX_TAGS: Final = 32
MAX_TAG_KEY: Final = 64
MAX_TAG_VALUE: Final = 256
MAX_LATENCY_MS: Final = 86_400_000

_SERVICE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
_UNIT_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_TAG_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]+$")
_NANO: Final = Decimal("0.000000001")

# (max characters) of the free-text string fields, from the schema.
STRING_LIMITS: Final = {
    "operation": 128,
    "provider": 64,
    "model": 128,
    "response_model": 128,
    "error_type": 128,
    "environment": 64,
}


def sendable(value: str) -> bool:
    """Whether ``value`` can be sent as UTF-8 (a lone surrogate cannot)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def text(field: str, value: object, *, max_len: int, min_len: int = 1) -> str:
    """A string of ``min_len..max_len`` characters that UTF-8 can carry."""
    if not isinstance(value, str):
        raise InvalidEventError(field, f"must be a string, got {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise InvalidEventError(field, f"must be {min_len}..{max_len} characters, got {len(value)}")
    if not sendable(value):
        raise InvalidEventError(field, "is not valid Unicode (a lone surrogate)")
    return value


def service_name(field: str, value: object) -> str:
    """A service name as the schema allows: ``[A-Za-z0-9][A-Za-z0-9._:/-]*``, at most 128."""
    name = text(field, value, max_len=128)
    if not _SERVICE_RE.match(name):
        raise InvalidEventError(
            field, f"{name!r} must start with a letter or digit and use only A-Z a-z 0-9 . _ : / -"
        )
    return name


_UNITS_SEEN: set[str] = set()  # unit names already checked (a handful per app)


def unit(value: object) -> str:
    """A unit name: lowercase snake case such as ``request``, ``minute``, ``email``."""
    if value.__class__ is str and value in _UNITS_SEEN:
        return value  # type: ignore[return-value]
    name = text("unit", value, max_len=32)
    if not _UNIT_RE.match(name):
        raise InvalidEventError("unit", f"{name!r} must be lowercase snake case, e.g. 'minute'")
    if len(_UNITS_SEEN) < 1024:
        _UNITS_SEEN.add(name)
    return name


def tokens(field: str, value: object) -> int:
    """A token count: an ``int`` in ``0..100_000_000`` (``bool`` refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventError(field, f"must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidEventError(field, f"must be in 0..{MAX_TOKENS}, got {value}")
    return value


def latency_ms(value: object) -> float:
    """A non-negative duration in milliseconds, at most one day."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEventError("latency_ms", f"must be a number, got {type(value).__name__}")
    if not 0 <= value <= MAX_LATENCY_MS:
        raise InvalidEventError("latency_ms", f"must be in 0..{MAX_LATENCY_MS}, got {value}")
    return float(value)


_PLAIN_DECIMAL: Final = {
    9: re.compile(r"^\d{1,9}(\.\d{1,9})?$"),
    12: re.compile(r"^\d{1,12}(\.\d{1,9})?$"),
}


def decimal_string(field: str, value: object, *, int_digits: int) -> str:
    """A non-negative decimal as a plain string with at most ``int_digits`` integer digits and 9
    decimal places. See the module docstring for how each input type is read."""
    # Fast paths (the common inputs, already in the wire form): a plain int or decimal string.
    if type(value) is int and 0 <= value < 10**int_digits:
        return str(value)
    if type(value) is str and _PLAIN_DECIMAL[int_digits].match(value):
        return value
    if isinstance(value, bool):
        raise InvalidEventError(field, "must be a Decimal, int, str or float, got bool")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
        if number.is_finite():
            number = number.quantize(_NANO, rounding=ROUND_HALF_EVEN).normalize()
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidEventError(field, f"{value!r} is not a decimal number") from None
    else:
        raise InvalidEventError(
            field, f"must be a Decimal, int, str or float, got {type(value).__name__}"
        )
    if not number.is_finite():
        raise InvalidEventError(field, f"must be finite, got {value!r}")
    if number < 0:
        raise InvalidEventError(field, f"must not be negative, got {value!r}")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers have an int exponent
    if exponent < -9:
        raise InvalidEventError(field, f"{value!r} has more than 9 decimal places")
    rendered = format(number, "f")
    if number == 0:
        rendered = "0" if exponent >= 0 else rendered.lstrip("-")
    if len(rendered.partition(".")[0]) > int_digits:
        raise InvalidEventError(field, f"{value!r} has more than {int_digits} integer digits")
    return rendered


def cost_usd(value: object) -> str:
    """``cost_usd`` as the schema's decimal string (at most 9 integer digits)."""
    return decimal_string("cost_usd", value, int_digits=9)


def quantity(value: object) -> str:
    """``quantity`` as the schema's decimal string (at most 12 integer digits)."""
    return decimal_string("quantity", value, int_digits=12)


def tags(field: str, value: object) -> dict[str, str]:
    """A tag map: at most 32 ``str -> str`` pairs, keys ``[A-Za-z0-9_.:-]{1,64}``, values at
    most 256 characters. Returns a new dict (the caller's map may change later)."""
    if not isinstance(value, Mapping):
        raise InvalidEventError(
            field, f"must be a mapping of str to str, got {type(value).__name__}"
        )
    if len(value) > MAX_TAGS:
        raise InvalidEventError(field, f"at most {MAX_TAGS} tags, got {len(value)}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= MAX_TAG_KEY
            or not _TAG_KEY_RE.match(key)
        ):
            raise InvalidEventError(
                field,
                f"tag name {key!r} must be 1..{MAX_TAG_KEY} characters of A-Z a-z 0-9 _ . : -",
            )
        if not isinstance(item, str):
            raise InvalidEventError(f"{field}.{key}", f"must be a str, got {type(item).__name__}")
        if len(item) > MAX_TAG_VALUE:
            raise InvalidEventError(f"{field}.{key}", f"at most {MAX_TAG_VALUE} characters")
        if not sendable(item):
            raise InvalidEventError(f"{field}.{key}", "is not valid Unicode (a lone surrogate)")
        result[key] = item
    return result


def merge_tags(base: dict[str, str] | None, extra: dict[str, str] | None) -> dict[str, str] | None:
    """``base`` overlaid with ``extra`` (both already checked); refuses more than 32 tags."""
    if not extra:
        return base
    if not base:
        return extra
    merged = {**base, **extra}
    if len(merged) > MAX_TAGS:
        raise InvalidEventError("tags", f"at most {MAX_TAGS} tags with the configured ones")
    return merged
