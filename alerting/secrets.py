"""Secrets in config: inline values or ``env:VAR_NAME`` references, never printed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.errors import ConfigError

ENV_PREFIX = "env:"


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value. ``repr``/``str`` show only where it came from (``env:SLACK_URL`` or
    ``inline``); call ``reveal()`` at the single place that needs the value."""

    source: str
    _value: str = field(repr=False, compare=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"Secret({self.source})"

    __repr__ = __str__


def resolve_secret(raw: object, path: str, environ: Mapping[str, str] | None = None) -> Secret:
    """``"env:VAR"`` -> the variable's value (ConfigError naming ``path`` when unset or
    empty); any other non-empty string is an inline secret."""
    env = os.environ if environ is None else environ
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(path, "must be a non-empty string or an env:VAR_NAME reference")
    if raw.startswith(ENV_PREFIX):
        var = raw[len(ENV_PREFIX) :].strip()
        if not var:
            raise ConfigError(path, "env: reference needs a variable name")
        value = env.get(var, "")
        if not value:
            raise ConfigError(path, f"environment variable {var} is not set")
        return Secret(f"env:{var}", value)
    return Secret("inline", raw)
