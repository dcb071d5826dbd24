"""Exceptions the SDK raises. Only ever at set-up (``configure()``); ``record()``, ``track()``
and instrumented calls never receive an exception from spendwatch (a refused value is counted
in ``stats().rejected`` and logged)."""

from __future__ import annotations


class SpendwatchError(Exception):
    """Base class of every spendwatch exception."""


class ConfigurationError(SpendwatchError, ValueError):
    """``configure()`` got a missing or malformed setting; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spendwatch: {field}: {message}")
        self.field = field
        self.message = message


class InvalidEventError(SpendwatchError, ValueError):
    """A field given to ``record()`` / ``track()`` cannot be part of a valid usage event.
    Raised by the field checks; ``record()`` and ``track()`` catch it, count and log it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spendwatch: {field}: {message}")
        self.field = field
        self.message = message
