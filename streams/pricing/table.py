"""User prices for non-LLM units (``[[prices]]`` in spendwatch.toml).

```toml
[[prices]]
provider = "twilio"      # optional
service = "support-bot"  # optional: the event's service
unit = "minute"
usd_per_unit = "0.0085"  # decimal string or TOML number
```
An event's ``unit`` is matched most specific first: provider+service+unit, provider+unit,
service+unit, then unit alone. Names match exactly (case-sensitive).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import AfterValidator, PlainValidator, StrictStr, TypeAdapter, ValidationError

from schemas.settings import FieldError, Section, Text, config_error
from streams.pricing.exact import decimal_places, quantity_nanos, round_half_even_div, scaled_int

_UNIT_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # as usage_event_v1.json's ``unit``
# Large enough for any real per-unit price (cents of a cent of a cent); keeps ints small.
_MAX_PLACES: Final = 18


def _unit(value: str) -> str:
    if not _UNIT_RE.match(value):
        raise ValueError("required: lowercase name like 'minute' or 'email_sent'")
    return value


def _usd(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"must be a decimal string or number, got {type(value).__name__}")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"must be a finite amount >= 0, got {value!r}")
    if decimal_places(price) > _MAX_PLACES:
        raise ValueError(f"more than {_MAX_PLACES} decimal places: {value!r}")
    return price


class PriceEntry(Section):
    """One ``[[prices]]`` table as written in the file."""

    unit: Annotated[StrictStr, AfterValidator(_unit)]
    usd_per_unit: Annotated[Decimal, PlainValidator(_usd)]
    provider: Text | None = None
    service: Text | None = None


def _no_duplicates(entries: list[PriceEntry]) -> list[PriceEntry]:
    seen: set[tuple[str | None, str | None, str]] = set()
    for index, entry in enumerate(entries):
        key = (entry.provider, entry.service, entry.unit)
        if key in seen:
            raise FieldError((index,), f"duplicate price for {_describe(key)}")
        seen.add(key)
    return entries


PriceEntries = Annotated[list[PriceEntry], AfterValidator(_no_duplicates)]
"""The ``[[prices]]`` array: entries, no two with the same provider, service and unit."""
_ENTRIES: Final = TypeAdapter(PriceEntries)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """One ``[[prices]]`` entry. ``provider``/``service`` ``None`` match any event."""

    unit: str
    usd_per_unit: Decimal
    provider: str | None = None
    service: str | None = None
    _scaled: int = field(init=False, repr=False, compare=False)
    _den: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        places = decimal_places(self.usd_per_unit)
        object.__setattr__(self, "_scaled", scaled_int(self.usd_per_unit, places))
        object.__setattr__(self, "_den", 10**places)

    def cost_nusd(self, quantity: str) -> int:
        """``quantity * usd_per_unit`` in nano-USD, exact, rounded once half to even.

        ``quantity`` is the event's decimal string (at most 9 places); raises ``ValueError``
        for anything else.
        """
        # quantity_nanos is quantity * 1e9, which is already the nano-USD scale factor.
        return round_half_even_div(quantity_nanos(quantity) * self._scaled, self._den)


class PriceTable:
    """Lookup of ``UnitPrice`` entries by (provider, service, unit), most specific first."""

    def __init__(self, entries: Sequence[UnitPrice] = ()) -> None:
        """Raises ``ValueError`` if two entries have the same provider, service and unit."""
        self._by_key: dict[tuple[str | None, str | None, str], UnitPrice] = {}
        for entry in entries:
            key = (entry.provider, entry.service, entry.unit)
            if key in self._by_key:
                raise ValueError(f"duplicate price for {_describe(key)}")
            self._by_key[key] = entry

    @property
    def entries(self) -> tuple[UnitPrice, ...]:
        """All entries, in configuration order."""
        return tuple(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    @classmethod
    def from_entries(cls, entries: Sequence[PriceEntry]) -> PriceTable:
        """The table of validated ``[[prices]]`` entries."""
        return cls(
            [
                UnitPrice(e.unit, e.usd_per_unit, provider=e.provider, service=e.service)
                for e in entries
            ]
        )

    @classmethod
    def from_config(cls, items: list[dict[str, Any]], path: str = "prices") -> PriceTable:
        """Build the table from the parsed ``[[prices]]`` array (a list of TOML tables).

        Raises ``ConfigError`` naming the field, e.g. ``prices[1].usd_per_unit`` (0-based
        index): unknown keys, a missing or malformed ``unit``, a ``usd_per_unit`` that is not a
        finite non-negative decimal (strings and TOML numbers are read via ``Decimal(str(x))``),
        empty ``provider``/``service``, or a duplicate (provider, service, unit).
        """
        try:
            return cls.from_entries(_ENTRIES.validate_python(items))
        except ValidationError as exc:
            raise config_error(exc, PriceEntries, prefix=(path,)) from None

    def find(self, unit: str, provider: str | None, service: str | None) -> UnitPrice | None:
        """The most specific entry for an event's unit, provider and service, or ``None``."""
        by_key = self._by_key
        if provider is not None:
            if service is not None and (hit := by_key.get((provider, service, unit))):
                return hit
            if hit := by_key.get((provider, None, unit)):
                return hit
        if service is not None and (hit := by_key.get((None, service, unit))):
            return hit
        return by_key.get((None, None, unit))


def _describe(key: tuple[str | None, str | None, str]) -> str:
    provider, service, unit = key
    parts = [f"unit '{unit}'"]
    if provider is not None:
        parts.append(f"provider '{provider}'")
    if service is not None:
        parts.append(f"service '{service}'")
    return ", ".join(parts)
